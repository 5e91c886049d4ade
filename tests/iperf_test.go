package tests

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/topo"
	"github.com/stretchr/testify/require"
)

// iperfLab is three pairs of hosts: a plain cable, one limited to 10
// Mbit/s and one to 100 Mbit/s each way, and one that loses 30 % of what
// its first end sends (eBPF: no netem needed).
const iperfLab = `
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
[[nodes]]
name = "g"
[[nodes]]
name = "h"

[[links]]
endpoints = ["a", "b"]

[[links]]
endpoints = ["c", "d"]
impair = { rate = "10mbit" }

[[links]]
endpoints = ["e", "f"]
impair = { rate = "100mbit" }

[[links]]
endpoints = ["g", "h"]
[links.impair.from.g]
loss = "30%"
`

func startIperfLab(t *testing.T) *emulator.Lab {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ipf.toml")
	require.NoError(t, os.WriteFile(p, []byte(iperfLab), 0o644))
	top, err := topo.LoadFile(p)
	require.NoError(t, err)
	top.Name = uniqueName("ipf")
	return startLab(t, top, emptyOpts())
}

// TCP goodput: far above a gigabit over a plain veth pair, and what
// iperf-like tools report over a rate limit: 0.85-1.0 of the rate (the
// headers take about 4.4 % of each full frame).
func TestIperfTCP(t *testing.T) {
	lab := startIperfLab(t)
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
