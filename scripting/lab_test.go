package scripting

import (
	"context"
	"errors"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/topo"
	"github.com/stretchr/testify/require"
)

// fakeLab is a Lab without a kernel: every node reaches every other
// unless a link of the pinging node is down.
type fakeLab struct {
	plan  *topo.Plan
	down  map[*topo.Link]bool
	calls []string
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
func (f *fakeLab) Start(string, *exec.Cmd) error        { return errFake }
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
