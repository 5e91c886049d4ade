package scripting

import (
	"context"
	"errors"
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
