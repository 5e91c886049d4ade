package tests

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/emulator/nslabtest"
	"github.com/nslab/nslab/impair"
	"github.com/nslab/nslab/topo"
	"github.com/stretchr/testify/require"
)

// iperfLab is four pairs of hosts: a plain cable, one limited to 10
// Mbit/s and one to 100 Mbit/s each way, and one that loses 30 % of what
// its first end sends (eBPF: no netem needed). iperfLabNoLoss is the
// first three, for the tests that need no loss (which a user namespace
// cannot have on a kernel without netem: needsLoss).
const iperfLab = iperfLabNoLoss + `
[[nodes]]
name = "g"
[[nodes]]
name = "h"

[[links]]
endpoints = ["g", "h"]
[links.impair.from.g]
loss = "30%"
`

const iperfLabNoLoss = `
name = "ipf"

[[nodes]]
name = "a"
[[nodes]]
name = "b"
[[nodes]]
name = "c"
[[nodes]]
name = "d"
[[nodes]]
name = "e"
[[nodes]]
name = "f"

[[links]]
endpoints = ["a", "b"]

[[links]]
endpoints = ["c", "d"]
impair = { rate = "10mbit" }

[[links]]
endpoints = ["e", "f"]
impair = { rate = "100mbit" }
`

func startIperfLab(t *testing.T) *emulator.Lab {
	t.Helper()
	return startTOML(t, "ipf", iperfLab)
}

func startIperfLabNoLoss(t *testing.T) *emulator.Lab {
	t.Helper()
	return startTOML(t, "ipf", iperfLabNoLoss)
}

// TCP goodput: far above a gigabit over a plain veth pair, and what
// iperf-like tools report over a rate limit: 0.85-1.0 of the rate (the
// headers take about 4.4 % of each full frame).
func TestIperfTCP(t *testing.T) {
	lab := startIperfLabNoLoss(t)
	for _, tc := range []struct {
		name, from, to string
		lo, hi         float64 // bit/s
	}{
		{"plain", "a", "b", 1e9, math.Inf(1)},
		{"rate=10mbit", "c", "d", 0.85 * 10e6, 1.0 * 10e6},
		{"rate=10mbit back", "d", "c", 0.85 * 10e6, 1.0 * 10e6},
		{"rate=100mbit", "e", "f", 0.85 * 100e6, 1.0 * 100e6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := lab.Iperf(context.Background(), tc.from, tc.to, emulator.IperfOptions{})
			require.NoError(t, err)
			t.Log(r)
			require.Equal(t, "tcp", r.Proto)
			require.InDelta(t, 2*time.Second, r.Duration, float64(50*time.Millisecond))
			require.GreaterOrEqual(t, r.Goodput, tc.lo, "%s", r)
			require.LessOrEqual(t, r.Goodput, tc.hi, "%s", r)
			require.Positive(t, r.RTT, "TCP_INFO's smoothed RTT: %s", r)
		})
	}
}

// UDP at 5 Mbit/s: all of it over a plain link, and over a link that
// loses 30 % the loss within 4 sigma.
func TestIperfUDP(t *testing.T) {
	needsLoss(t)
	lab := startIperfLab(t)
	warmUp(t, lab, "g", "h")
	r, err := lab.Iperf(context.Background(), "a", "b", emulator.IperfOptions{Proto: "udp", Rate: 5e6})
	require.NoError(t, err)
	t.Log(r)
	require.Zero(t, r.Lost, "%s", r)
	require.InDelta(t, 5e6, r.Goodput, 0.05*5e6, "%s", r)
	r, err = lab.Iperf(context.Background(), "g", "h", emulator.IperfOptions{Proto: "udp", Rate: 5e6})
	require.NoError(t, err)
	t.Log(r)
	n, p := float64(r.Sent), 0.3
	require.InDelta(t, n, 2*5e6/8/emulator.UDPPayload, 2, "datagrams sent in 2 s at 5 Mbit/s")
	require.InDelta(t, n*p, float64(r.Lost), 4*math.Sqrt(n*p*(1-p)), "%s", r)
}

// TCP_INFO's count of retransmissions: none over a rate limit whose queue
// drops nothing, some once the switch port toward the receiver loses 5 %.
// (The loss is put on the switch's side: a drop on the sending host's own
// interface is a local drop, which TCP sends again without counting a
// retransmission.)
func TestIperfTCPRetransmits(t *testing.T) {
	needsLoss(t)
	t.Parallel()
	lab := nslabtest.Start(t, topo.NewBuilder("ipfr").Switch("s1").Host("a").Host("b").Link("a", "s1").Link("b", "s1").Topology())
	for _, tc := range []struct {
		from, to string // the direction impaired: the switch port to b, or a's own
		words    []string
		some     bool
	}{
		{"s1", "b", []string{"rate=10mbit"}, false},
		{"s1", "b", []string{"rate=10mbit", "loss=5%"}, true},
		// Loss on the sender's own interface is loss on the wire too: TCP
		// counts it and retransmits (it did not while the classifier
		// reported a local drop).
		{"a", "s1", []string{"rate=10mbit", "loss=5%"}, true},
	} {
		lab.Impair("s1", "b")
		lab.Impair("a", "s1")
		lab.Impair(tc.from, tc.to, tc.words...)
		r := lab.Iperf("a", "b", emulator.IperfOptions{Duration: time.Second})
		t.Log(tc.from, tc.words, r)
		require.True(t, r.OK(), "%s", r)
		require.Equal(t, tc.some, r.Retransmits > 0, "%s->%s %v: %s", tc.from, tc.to, tc.words, r)
	}
}

// A probe is bounded by its context: a cancelled one returns at once with
// the context's error, and bad options are bad input.
func TestIperfBounded(t *testing.T) {
	needsLoss(t)
	t.Parallel()
	lab := startIperfLab(t)
	for _, proto := range []string{"tcp", "udp"} {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		t0 := time.Now()
		_, err := lab.Iperf(ctx, "a", "b", emulator.IperfOptions{Proto: proto, Duration: 10 * time.Second})
		cancel()
		require.ErrorIs(t, err, context.DeadlineExceeded, proto)
		require.Less(t, time.Since(t0), 2*time.Second, proto)
	}
	for _, o := range []emulator.IperfOptions{
		{Proto: "sctp"}, {Rate: 1e6}, {Duration: -time.Second}, {Port: 70000}, {Family: 5},
	} {
		_, err := lab.Iperf(context.Background(), "a", "b", o)
		require.True(t, topo.IsBadInput(err), "%+v: %v", o, err)
	}
	_, err := lab.Iperf(context.Background(), "a", "nobody", emulator.IperfOptions{})
	require.True(t, topo.IsBadInput(err), "%v", err)
	// Everything lost: TCP cannot connect, an error; UDP gets nothing
	// through, a result without bytes.
	_, err = lab.SetImpairment("c", "d", impairWords(t, "loss=100%"))
	require.NoError(t, err)
	_, err = lab.Iperf(context.Background(), "c", "d", emulator.IperfOptions{Duration: 200 * time.Millisecond})
	require.ErrorContains(t, err, `iperf tcp from node "c" to node "d"`)
	r, err := lab.Iperf(context.Background(), "c", "d", emulator.IperfOptions{Proto: "udp", Duration: 200 * time.Millisecond})
	require.NoError(t, err)
	require.False(t, r.OK(), "%s", r)
	require.Equal(t, r.Sent, r.Lost)
}

// Every probe gives back its sockets and goroutines.
func TestIperfLeavesNothingOpen(t *testing.T) {
	requireNothingLeftOpen(t, func(t *testing.T) {
		lab := startIperfLabNoLoss(t)
		for _, o := range []emulator.IperfOptions{
			{Duration: 300 * time.Millisecond},
			{Proto: "udp", Rate: 20e6, Duration: 300 * time.Millisecond},
		} {
			r, err := lab.Iperf(context.Background(), "c", "d", o)
			require.NoError(t, err)
			require.True(t, r.OK(), "%s", r)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := lab.Iperf(ctx, "a", "b", emulator.IperfOptions{Duration: 5 * time.Second})
		require.Error(t, err)
		require.NoError(t, lab.Close())
	})
}

// nslab iperf: a line like iperf's, JSON, exit 1 when nothing got
// through, exit 2 on bad input.
func TestCLIIperf(t *testing.T) {
	needsLoss(t)
	t.Parallel()
	p := filepath.Join(t.TempDir(), "ipf.toml")
	require.NoError(t, os.WriteFile(p, []byte(iperfLab), 0o644))
	name := uniqueName("ipfcli")
	_, errs, code := cli(t, "", "up", p, "--name", name)
	require.Equal(t, 0, code, errs)
	t.Cleanup(func() { cli(t, "", "down", name) })

	out, errs, code := cli(t, "", "iperf", name, "c", "d", "--time", "1s")
	require.Equal(t, 0, code, errs)
	require.Regexp(t, `^c -> d \(10\.0\.1\.2:\d+\) tcp: .* in 1\.\d\ds = \d\.\d\d Mbit/s, \d+ retransmits, rtt `, out)

	// UDP at twice the rate of c's own link: the kernel holds the sender
	// back (its socket buffer fills), as it would iperf, so little is lost
	// and the goodput is the link's; the time stays the one asked.
	out, errs, code = cli(t, "", "iperf", name, "c", "d", "--udp", "--rate", "20mbit", "--time", "1s", "--json")
	require.Equal(t, 0, code, errs)
	var r emulator.IperfResult
	require.NoError(t, json.Unmarshal([]byte(out), &r), out)
	require.Equal(t, "udp", r.Proto)
	require.Equal(t, uint64(20e6), r.Rate)
	require.InDelta(t, 0.97*10e6, r.Goodput, 1e6, "%s", out)
	require.Less(t, r.Duration, 1500*time.Millisecond, "%s", out)
	require.Equal(t, r.Sent, r.Received+r.Lost)

	_, errs, code = cli(t, "", "link", name, "g", "h", "set", "loss=100%", "--from", "g")
	require.Equal(t, 0, code, errs)
	out, errs, code = cli(t, "", "iperf", name, "g", "h", "--udp", "--time", "300ms")
	require.Equal(t, 1, code, out+errs)
	require.Contains(t, errs, "no data got through from g to h")

	for _, args := range [][]string{
		{"a", "b", "--rate", "10mbit"},
		{"a", "b", "--udp", "--rate", "10mbits"},
		{"a", "b", "--udp", "--rate", "0"},
		{"a", "b", "--time", "-1s"},
		{"a", "bb"},
		{"a"},
	} {
		_, errs, code = cli(t, "", append([]string{"iperf", name}, args...)...)
		require.Equal(t, 2, code, "%v: %s", args, errs)
	}
}

// The script word and the nslabtest helpers, on a lab of nslabtest's.
func TestScriptIperf(t *testing.T) {
	t.Parallel()
	lab := nslabtest.Start(t, topo.NewBuilder("sipf").Host("a").Host("b").Link("a", "b").Topology())
	r := lab.RequireThroughput("a", "b", 1e9)
	require.Equal(t, "tcp", r.Proto)
	lab.Impair("a", "b", "rate=10mbit")
	r = lab.Iperf("a", "b", emulator.IperfOptions{Proto: "udp", Rate: 5e6, Duration: time.Second})
	require.Zero(t, r.Lost, "%s", r)
	res := lab.Script("iperf a b time=1s >= 8mbit\n!iperf a b time=1s >= 11mbit\niperf b a time=1s >= 100mbit\niperf a b udp rate=20mbit time=1s\n")
	require.Equal(t, 4, res.Passed)
}

func impairWords(t *testing.T, words ...string) impair.Direction {
	t.Helper()
	d, err := impair.Parse(words)
	require.NoError(t, err)
	return d
}
