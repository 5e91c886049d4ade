package tests

import (
	"context"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/topo"
	"github.com/stretchr/testify/require"
)

// TestIPv6OnlyNode builds a dual-stack lab in which one host says
// families = ["ipv6"]: in the kernel it has no IPv4 address and no IPv4
// route, it reaches a host behind a router over IPv6, and pingall counts
// every pair it is in as answering (probed over IPv6).
func TestIPv6OnlyNode(t *testing.T) {
	t.Parallel()
	top, err := topo.LoadFile(filepath.Join("testdata", "family_v6only.toml"))
	require.NoError(t, err)
	top.Name = uniqueName("fam6")
	lab := startLab(t, top, emulator.Options{})
	ctx := context.Background()
	plan := lab.Plan

	h6 := plan.Node("h6")
	_, has4 := h6.FirstAddr(4)
	require.False(t, has4, "the plan gives h6 no IPv4 address")
	want6, ok := h6.FirstAddr(6)
	require.True(t, ok, "the plan gives h6 an IPv6 address")

	// In the kernel: no IPv4 address and no IPv4 route; its IPv6 address.
	out := func(node string, args ...string) string {
		t.Helper()
		res, err := lab.Exec(ctx, node, append([]string{"ip"}, args...)...)
		require.NoError(t, err)
		require.Zero(t, res.ExitCode, "ip %v in %s: %s", args, node, res.Stderr)
		return string(res.Stdout)
	}
	for _, line := range strings.Split(strings.TrimSpace(out("h6", "-o", "-4", "addr", "show")), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[1] != "lo" {
			t.Errorf("h6 has an IPv4 address: %s", line)
		}
	}
	require.Empty(t, strings.TrimSpace(out("h6", "-4", "route", "show")), "h6 has IPv4 routes")
	require.Contains(t, out("h6", "-o", "-6", "addr", "show", "dev", "eth0"), "inet6 "+want6.String()+"/")
	// The dual-stack neighbour still has both families.
	require.Contains(t, out("h1", "-o", "-4", "addr", "show", "dev", "eth0"), "inet ")

	// h6 reaches h2, on the other LAN through r1, over IPv6.
	h2v6, ok := plan.Node("h2").FirstAddr(6)
	require.True(t, ok)
	r, err := lab.Ping(ctx, "h6", "h2", emulator.PingOptions{Family: 6, Count: 2})
	require.NoError(t, err)
	require.True(t, r.OK(), r.String())
	require.Equal(t, h2v6, r.Target)
	require.Equal(t, h2v6, r.Responder)
	// Over IPv4 there is nothing to probe from: bad input, not a loss.
	_, err = lab.Ping(ctx, "h6", "h2", emulator.PingOptions{Family: 4})
	require.Error(t, err)
	require.True(t, topo.IsBadInput(err), "%v", err)

	// pingall: every pair answers; those with h6 over IPv6, the others
	// over IPv4.
	m, err := lab.PingAll(ctx, nil, emulator.PingOptions{})
	require.NoError(t, err)
	probes, okPairs := m.Counts()
	require.Equal(t, 12, probes, "4 hosts and routers, every ordered pair")
	require.Equal(t, probes, okPairs, "every pair answers")
	for _, a := range m.Nodes {
		for _, b := range m.Nodes {
			if a == b {
				continue
			}
			res := m.Get(a, b)
			require.NotNil(t, res, "%s -> %s", a, b)
			want4 := a != "h6" && b != "h6"
			require.Equal(t, want4, res.Target.Is4(), "%s -> %s probed at %s", a, b, res.Target)
			if !want4 {
				wantTarget, _ := plan.Node(b).FirstAddr(6)
				require.Equal(t, wantTarget, res.Target)
			}
		}
	}
	require.True(t, netip.MustParsePrefix(top.Addressing.IPv6).Contains(want6), "h6's address %s is from the pool", want6)
}
