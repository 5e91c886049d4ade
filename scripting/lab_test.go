package scripting

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/impair"
	"github.com/nslab/nslab/topo"
	"github.com/stretchr/testify/require"
)

// fakeLab is a Lab without a kernel: every node reaches every other
// unless a link of the pinging node is down.
type fakeLab struct {
	plan   *topo.Plan
	down   map[*topo.Link]bool
	calls  []string
	impair map[string]impair.Direction // by "from to"
	iperf  emulator.IperfResult        // what Iperf measures
}

func (f *fakeLab) Ping(ctx context.Context, from, to string, o emulator.PingOptions) (emulator.PingResult, error) {
	f.calls = append(f.calls, "ping "+from+" "+to)
	r := emulator.PingResult{From: from, To: to, Sent: 1, Received: 1}
	for k, down := range f.down {
		if down && (k.A.Node == from || k.B.Node == from) {
			r.Received = 0
		}
	}
	return r, nil
}

func (f *fakeLab) SetLink(a, b string, up bool) (*topo.Link, error) {
	f.calls = append(f.calls, "link "+a+" "+b)
	k, err := f.plan.FindLink(a, b)
	if err != nil {
		return nil, err
	}
	f.down[k] = !up
	return k, nil
}

var errFake = errors.New("not in the fake")

func (f *fakeLab) PingAll(context.Context, []string, emulator.PingOptions) (*emulator.Matrix, error) {
	return nil, errFake
}
func (f *fakeLab) Probe(context.Context, string, netip.AddrPort, string, emulator.ProbeOptions) (emulator.ProbeResult, error) {
	return emulator.ProbeResult{}, errFake
}
func (f *fakeLab) Serve(string, string, int) (*emulator.Service, error) { return nil, errFake }
func (f *fakeLab) AddrOf(string, int, int) (netip.AddrPort, error)      { return netip.AddrPort{}, errFake }
func (f *fakeLab) Punch(context.Context, string, string, emulator.PunchOptions) (emulator.PunchResult, error) {
	return emulator.PunchResult{}, errFake
}
func (f *fakeLab) Start(string, *exec.Cmd) error { return errFake }

func (f *fakeLab) Iperf(ctx context.Context, from, to string, o emulator.IperfOptions) (emulator.IperfResult, error) {
	f.calls = append(f.calls, fmt.Sprintf("iperf %s %s %s %d %s", from, to, o.Proto, o.Rate, o.Duration))
	r := f.iperf
	r.From, r.To, r.Proto = from, to, o.Proto
	return r, nil
}

func (f *fakeLab) SetImpairment(from, to string, d impair.Direction) (*topo.Link, error) {
	f.calls = append(f.calls, "impair "+from+" "+to+" "+d.String())
	if f.impair == nil {
		f.impair = map[string]impair.Direction{}
	}
	f.impair[from+" "+to] = d
	return f.plan.FindLink(from, to)
}

func (f *fakeLab) Impairment(a, b string) (*emulator.Impairment, error) {
	k, err := f.plan.FindLink(a, b)
	if err != nil {
		return nil, err
	}
	ea, eb := k.A.Node+":"+k.A.Name, k.B.Node+":"+k.B.Name
	return &emulator.Impairment{Link: k, A: ea, B: eb, Now: impair.Link{AB: f.impair[ea+" "+eb], BA: f.impair[eb+" "+ea]}}, nil
}
func (f *fakeLab) Status() (*emulator.LabStatus, error) { return nil, errFake }

// Run needs of a lab only the Lab interface: a script runs against a fake
// without root, checked against the plan given beside it.
func TestRunOnAnyLab(t *testing.T) {
	plan := testPlan(t)
	lab := &fakeLab{plan: plan, down: map[*topo.Link]bool{}}
	s, err := Parse("fake.nsl", "reach red blue\nlink red v-net-0 down\n!reach red blue\nlink red v-net-0 up\nreach red blue\n", 1)
	require.NoError(t, err)
	var out strings.Builder
	res, err := Run(context.Background(), lab, plan, s, Options{Out: &out})
	require.NoError(t, err)
	require.True(t, res.OK(), out.String())
	require.Equal(t, 3, res.Checks)
	require.Equal(t, []string{"ping red blue", "link red v-net-0", "ping red blue", "link red v-net-0", "ping red blue"}, lab.calls)

	// The plan, not the lab, is what a script is checked against.
	s, _ = Parse("fake.nsl", "reach red bleu", 1)
	_, err = Run(context.Background(), lab, plan, s, Options{})
	require.ErrorContains(t, err, `fake.nsl:1: reach red bleu: no node "bleu" in lab "tutorial" (did you mean "blue"?)`)
	require.Len(t, lab.calls, 5, "nothing ran")
}

// link A B set/clear/show: the file's keys, both directions or one
// (from.NODE.KEY), applied as two directions named by their senders.
func TestLinkImpairmentWords(t *testing.T) {
	plan := testPlan(t)
	lab := &fakeLab{plan: plan, down: map[*topo.Link]bool{}}
	s, err := Parse("imp.nsl", "link red v-net-0 set delay=50ms loss=1%\nlink red v-net-0 set from.red.rate=1mbit\nlink red v-net-0 show\nlink red v-net-0 clear\n", 1)
	require.NoError(t, err)
	var out strings.Builder
	res, err := Run(context.Background(), lab, plan, s, Options{Out: &out})
	require.NoError(t, err)
	require.True(t, res.OK(), out.String())
	k, err := plan.FindLink("red", "v-net-0")
	require.NoError(t, err)
	a, b := k.A.Node+":"+k.A.Name, k.B.Node+":"+k.B.Name
	require.Equal(t, []string{
		"impair " + a + " " + b + " delay 50ms loss 1%", "impair " + b + " " + a + " delay 50ms loss 1%",
		"impair " + a + " " + b + " rate 1Mbit", "impair " + b + " " + a + " ",
		"impair " + a + " " + b + " ", "impair " + b + " " + a + " ",
	}, lab.calls)
	require.Contains(t, out.String(), "red -> v-net-0: rate 1Mbit\n")
	require.Contains(t, out.String(), "v-net-0 -> red: plain")

	// Bad words are bad input, found before anything runs.
	for _, tc := range []struct{ line, want string }{
		{"link red v-net-0 set delay=50xs", `unknown`},
		{"link red v-net-0 set loss=120%", `over 100%`},
		{"link red v-net-0 set", "needs KEY=VALUE"},
		{"link red v-net-0 show now", "takes no words"},
		{"link red v-net-0 jiggle", `unknown link word "jiggle"`},
	} {
		s, _ := Parse("bad.nsl", tc.line, 1)
		_, err := Run(context.Background(), lab, plan, s, Options{})
		require.ErrorContains(t, err, tc.want, tc.line)
	}
}

// iperf A B [udp] [rate=R] [time=D] [>= RATE]: the words become the
// probe's options; the line holds when data got through, or with >= when
// the goodput reaches RATE; '!' inverts it. Bad words are bad input.
func TestIperfWords(t *testing.T) {
	plan := testPlan(t)
	lab := &fakeLab{plan: plan, iperf: emulator.IperfResult{Bytes: 1 << 20, Goodput: 9.5e6}}
	for _, tc := range []struct {
		line, call string
		ok         bool
	}{
		{"iperf red blue", "iperf red blue  0 0s", true},
		{"iperf red blue >= 9mbit", "iperf red blue  0 0s", true},
		{"iperf red blue >= 10mbit", "iperf red blue  0 0s", false},
		{"!iperf red blue time=1s >= 10mbit", "iperf red blue  0 1s", true},
		{"!iperf red blue >= 9mbit", "iperf red blue  0 0s", false},
		{"iperf red blue udp rate=5mbit time=500ms", "iperf red blue udp 5000000 500ms", true},
		{"iperf red blue tcp >= 1kbit", "iperf red blue tcp 0 0s", true},
	} {
		lab.calls = nil
		s, err := Parse("ipf.nsl", tc.line, 1)
		require.NoError(t, err)
		var out strings.Builder
		res, err := Run(context.Background(), lab, plan, s, Options{Out: &out, KeepGoing: true})
		require.NoError(t, err, tc.line)
		require.Equal(t, tc.ok, res.OK(), "%s: %s", tc.line, out.String())
		require.Equal(t, []string{tc.call}, lab.calls, tc.line)
	}
	lab.iperf = emulator.IperfResult{} // nothing got through
	s, _ := Parse("ipf.nsl", "iperf red blue\n!iperf red blue udp", 1)
	res, err := Run(context.Background(), lab, plan, s, Options{KeepGoing: true})
	require.NoError(t, err)
	require.Equal(t, 1, res.Passed, "only the negated line holds")

	for _, tc := range []struct{ line, want string }{
		{"iperf red blue rate=10mbit", "rate= paces UDP only"},
		{"iperf red blue udp rate=10xbit", `rate=10xbit: unknown rate unit "xbit"`},
		{"iperf red blue udp rate=0", "above zero"},
		{"iperf red blue time=-1s", "time=-1s: write a positive duration"},
		{"iperf red blue >=", ">= needs a rate"},
		{"iperf red blue > 9mbit", `unknown iperf word ">"`},
		{"iperf red blue tcp udp", "give one"},
		{"iperf red bleu", `no node "bleu"`},
	} {
		s, _ := Parse("bad.nsl", tc.line, 1)
		lab.calls = nil
		_, err := Run(context.Background(), lab, plan, s, Options{})
		require.ErrorContains(t, err, tc.want, tc.line)
		require.Empty(t, lab.calls, "nothing ran: %s", tc.line)
	}
}
