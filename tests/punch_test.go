package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/emulator/nslabtest"
	"github.com/nslab/nslab/topo"
	"github.com/stretchr/testify/require"
)

// masquerade stands for a gateway with plain masquerade and no profile in
// the punch grid.
const masquerade = "masquerade"

// p2pTopology is topologies/p2p.toml in Go: alice behind gw-a (profile
// pa), bob behind gw-b (profile pb), and a rendezvous with an echo
// service on the internet switch between them.
func p2pTopology(pa, pb string) *topo.Topology {
	nat := func(profile string) *topo.NATSpec {
		n := &topo.NATSpec{Outside: "wan", Masquerade: true}
		if profile != masquerade {
			n.Profile = profile
		}
		return n
	}
	ep := func(node, iface string, addrs ...string) *topo.EndpointSpec {
		return &topo.EndpointSpec{Node: node, Interface: iface, Addresses: addrs}
	}
	return &topo.Topology{
		Name: "punch",
		Nodes: []topo.NodeSpec{
			{Name: "internet", Kind: topo.KindSwitch},
			{Name: "rendezvous", Echo: []int{3478}},
			{Name: "gw-a", Kind: topo.KindRouter, NAT: nat(pa)},
			{Name: "alice", Gateway: "192.168.1.1"},
			{Name: "gw-b", Kind: topo.KindRouter, NAT: nat(pb)},
			{Name: "bob", Gateway: "192.168.2.1"},
		},
		Links: []topo.LinkSpec{
			{A: ep("alice", "", "192.168.1.2/24"), B: ep("gw-a", "lan", "192.168.1.1/24")},
			{A: ep("bob", "", "192.168.2.2/24"), B: ep("gw-b", "lan", "192.168.2.1/24")},
			{A: ep("gw-a", "wan", "203.0.113.1/24"), B: ep("internet", "")},
			{A: ep("gw-b", "wan", "203.0.113.2/24"), B: ep("internet", "")},
			{A: ep("rendezvous", "", "203.0.113.10/24"), B: ep("internet", "")},
		},
	}
}

// punchGrid is the outcome docs/nat.md ("Hole punching") predicts for
// each pair of presets, whichever peer sends first (or both at once).
var punchGrid = []struct {
	a, b   string
	direct bool
}{
	{"full-cone", "full-cone", true},
	{"full-cone", "restricted-cone", true},
	{"full-cone", "port-restricted", true},
	{"full-cone", "symmetric", true},
	{"restricted-cone", "restricted-cone", true},
	{"restricted-cone", "port-restricted", true},
	{"restricted-cone", "symmetric", true},
	{"port-restricted", "port-restricted", true},
	{"port-restricted", "symmetric", false},
	{"symmetric", "symmetric", false},
}

// masqueradeGrid is plain masquerade (no profile) against each preset:
// the outcome depends on which side sends first. directFirst is the
// outcome when the masquerading side (alice) sends first, directLate
// when the other does.
var masqueradeGrid = []struct {
	b                       string
	directFirst, directLate bool
}{
	{"full-cone", true, true},
	{"restricted-cone", true, true},
	{"port-restricted", true, false},
	{"symmetric", false, false},
	{masquerade, false, false},
}

// punchOrders are the three ways to start: both at once, alice first, bob
// first.
var punchOrders = []string{"", "alice", "bob"}

func orderName(first string) string {
	if first == "" {
		return "at-once"
	}
	return first + "-first"
}

// TestPunchGrid punches every pair of presets, each in a lab of its own,
// in each order, and asserts the documented outcome and the typed result.
func TestPunchGrid(t *testing.T) {
	t.Parallel()
	for _, g := range punchGrid {
		for _, first := range punchOrders {
			t.Run(g.a+"/"+g.b+"/"+orderName(first), func(t *testing.T) {
				t.Parallel()
				lab := nslabtest.Start(t, p2pTopology(g.a, g.b))
				r := punch(t, lab, first)
				require.Equal(t, g.direct, r.Direct, "%s + %s (%s): %s", g.a, g.b, orderName(first), r)
				checkPunchSides(t, r, map[string]string{"alice": g.a, "bob": g.b})
			})
		}
	}
	for _, g := range masqueradeGrid {
		for _, first := range punchOrders[1:] {
			t.Run(masquerade+"/"+g.b+"/"+orderName(first), func(t *testing.T) {
				t.Parallel()
				lab := nslabtest.Start(t, p2pTopology(masquerade, g.b))
				r := punch(t, lab, first)
				want := g.directFirst
				if first == "bob" {
					want = g.directLate
				}
				require.Equal(t, want, r.Direct, "masquerade + %s (%s): %s", g.b, orderName(first), r)
				// A masquerading gateway that was punched at first moves its
				// host to another port: it behaves as a symmetric NAT.
				profiles := map[string]string{"alice": "port-restricted", "bob": g.b}
				if first == "bob" {
					profiles["alice"] = "symmetric"
				}
				if g.b == masquerade {
					profiles["bob"] = "symmetric"
					if first == "bob" {
						profiles["bob"] = "port-restricted"
					}
				}
				checkPunchSides(t, r, profiles)
			})
		}
	}
}

func punch(t *testing.T, lab *nslabtest.Lab, first string) emulator.PunchResult {
	t.Helper()
	r, err := lab.Engine().Punch(context.Background(), "alice", "bob", emulator.PunchOptions{Via: "rendezvous", First: first})
	require.NoError(t, err)
	return r
}

// checkPunchSides checks the typed result: every side learned its gateway's
// outside address; a cone keeps its port, and the other side sees it as
// learned; a symmetric NAT's mapping toward the peer is not the one the
// rendezvous saw.
func checkPunchSides(t *testing.T, r emulator.PunchResult, profile map[string]string) {
	t.Helper()
	require.Equal(t, "rendezvous", r.Via)
	require.Equal(t, "203.0.113.10:3478", r.Rendezvous.String())
	gw := map[string]string{"alice": "203.0.113.1", "bob": "203.0.113.2"}
	local := map[string]string{"alice": "192.168.1.2", "bob": "192.168.2.2"}
	for _, s := range []emulator.PunchSide{r.A, r.B} {
		require.Equal(t, gw[s.Node], s.Learned.Addr().String(), "%s learned its gateway's address: %s", s.Node, r)
		require.Equal(t, local[s.Node], s.Local.Addr().String(), "%s", r)
		symmetric := profile[s.Node] == "symmetric"
		if !symmetric && profile[s.Node] != "" {
			require.Equal(t, s.Local.Port(), s.Learned.Port(), "a cone preserves %s's port: %s", s.Node, r)
		}
		if r.Direct {
			require.True(t, s.Received, "%s", r)
			require.True(t, s.Seen.IsValid(), "%s", r)
			require.Equal(t, s.Learned.Addr(), s.Seen.Addr(), "%s", r)
			if symmetric {
				require.NotEqual(t, s.Learned.Port(), s.Seen.Port(), "%s's symmetric NAT maps per destination: %s", s.Node, r)
				require.True(t, s.MappingChanged())
			} else {
				require.Equal(t, s.Learned, s.Seen, "%s's cone keeps one mapping: %s", s.Node, r)
			}
		}
	}
	if r.Direct {
		require.Contains(t, []string{"alice", "bob"}, r.First, "%s", r)
		require.GreaterOrEqual(t, r.Rounds, 1)
	} else {
		require.False(t, r.A.Received && r.B.Received, "%s", r)
	}
	require.Positive(t, r.Elapsed)
}

// The punching race itself (pitfalls: plain masquerade is not a
// port-restricted cone): with port-restricted presets, bob's probe reaches
// gw-a before alice has sent anything and is dropped before conntrack
// confirms it, so alice keeps her mapping and the punch succeeds in both
// orders; with plain masquerade the same early probe moves the late peer
// to another port.
func TestPunchEarlyProbe(t *testing.T) {
	t.Parallel()
	for _, first := range []string{"alice", "bob"} {
		t.Run("port-restricted/"+first+"-first", func(t *testing.T) {
			t.Parallel()
			lab := nslabtest.Start(t, p2pTopology("port-restricted", "port-restricted"))
			r := punch(t, lab, first)
			require.True(t, r.Direct, "%s", r)
			require.False(t, r.A.MappingChanged() || r.B.MappingChanged(), "no mapping moved: %s", r)
			late := map[string]string{"alice": "bob", "bob": "alice"}[first]
			require.Equal(t, late, r.First, "the late peer's probe is the first to get through: %s", r)
		})
		t.Run("masquerade/"+first+"-first", func(t *testing.T) {
			t.Parallel()
			lab := nslabtest.Start(t, p2pTopology(masquerade, masquerade))
			r := punch(t, lab, first)
			require.False(t, r.Direct, "%s", r)
		})
	}
}

// A site behind two gateways in series (a home gateway behind a
// carrier-grade NAT) against a full cone, and against a symmetric NAT.
func TestPunchNestedNAT(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		home, cgn, b string
		direct       bool
	}{
		{"port-restricted", "port-restricted", "full-cone", true},
		{"symmetric", "full-cone", "full-cone", true},
		{"port-restricted", "port-restricted", "symmetric", false},
	} {
		t.Run(tc.home+"+"+tc.cgn+"/"+tc.b, func(t *testing.T) {
			t.Parallel()
			top := p2pTopology(tc.cgn, tc.b)
			// alice moves behind a home gateway whose outside is gw-a's
			// inside (100.64.0.0/24, the shared address space of CGNs).
			top.Nodes = append(top.Nodes, topo.NodeSpec{Name: "home", Kind: topo.KindRouter, Gateway: "100.64.0.1",
				NAT: &topo.NATSpec{Outside: "wan", Masquerade: true, Profile: tc.home}})
			for i := range top.Nodes {
				if top.Nodes[i].Name == "alice" {
					top.Nodes[i].Gateway = "10.0.0.1"
				}
			}
			top.Links[0] = topo.LinkSpec{A: &topo.EndpointSpec{Node: "gw-a", Interface: "lan", Addresses: []string{"100.64.0.1/24"}},
				B: &topo.EndpointSpec{Node: "home", Interface: "wan", Addresses: []string{"100.64.0.2/24"}}}
			top.Links = append(top.Links, topo.LinkSpec{A: &topo.EndpointSpec{Node: "alice", Addresses: []string{"10.0.0.2/24"}},
				B: &topo.EndpointSpec{Node: "home", Interface: "lan", Addresses: []string{"10.0.0.1/24"}}})
			lab := nslabtest.Start(t, top)
			var r emulator.PunchResult
			if tc.direct {
				r = lab.RequirePunch("alice", "bob", "")
			} else {
				r = lab.RequireNoPunch("alice", "bob", "")
			}
			require.Equal(t, "203.0.113.1", r.A.Learned.Addr().String(), "the rendezvous sees the outer gateway: %s", r)
			require.Equal(t, "10.0.0.2", r.A.Local.Addr().String())
			if tc.direct {
				require.Equal(t, tc.home == "symmetric", r.A.MappingChanged(), "%s", r)
			}
		})
	}
}

func TestPunchBadInput(t *testing.T) {
	t.Parallel()
	top := p2pTopology("full-cone", "full-cone")
	// A second echo service, behind gw-b: bob reaches it, alice does not.
	top.Nodes = append(top.Nodes, topo.NodeSpec{Name: "lonely", Echo: []int{3478}})
	top.Links = append(top.Links, topo.LinkSpec{A: &topo.EndpointSpec{Node: "lonely", Addresses: []string{"192.168.3.2/24"}},
		B: &topo.EndpointSpec{Node: "gw-b", Addresses: []string{"192.168.3.1/24"}}})
	for i := range top.Nodes {
		if top.Nodes[i].Name == "lonely" {
			top.Nodes[i].Gateway = "192.168.3.1"
		}
	}
	lab := nslabtest.Start(t, top)
	ctx := context.Background()
	for _, tc := range []struct {
		a, b string
		o    emulator.PunchOptions
		msg  string
	}{
		{"alice", "gw-b", emulator.PunchOptions{Via: "rendezvous"}, `node "gw-b" is a router, not a host`},
		{"internet", "bob", emulator.PunchOptions{Via: "rendezvous"}, `node "internet" is a switch, not a host`},
		{"alice", "alice", emulator.PunchOptions{Via: "rendezvous"}, `node "alice" given twice`},
		{"alice", "bobb", emulator.PunchOptions{Via: "rendezvous"}, `has no node "bobb" (did you mean "bob"?)`},
		{"alice", "bob", emulator.PunchOptions{Via: "rendevous"}, `has no node "rendevous" to meet at (did you mean "rendezvous"?)`},
		{"alice", "bob", emulator.PunchOptions{Via: "gw-a"}, `node "gw-a" runs no echo service: add echo = [3478] to it`},
		{"alice", "bob", emulator.PunchOptions{Via: "alice"}, `the rendezvous "alice" is one of the peers`},
		{"alice", "bob", emulator.PunchOptions{Via: "internet", Port: 3478}, `node "internet" is a switch`},
		{"alice", "bob", emulator.PunchOptions{}, `nodes rendezvous, lonely run echo services: say which to meet at (via)`},
		{"alice", "bob", emulator.PunchOptions{Via: "rendezvous", First: "carol"}, `the peer to send first, "carol", is neither "alice" nor "bob"`},
		{"alice", "bob", emulator.PunchOptions{Via: "rendezvous", Rounds: -1}, `rounds -1 is negative`},
		{"alice", "bob", emulator.PunchOptions{Via: "lonely", Timeout: 100 * time.Millisecond}, `the echo service of "lonely" (192.168.3.2:3478, udp) does not answer node "alice" within 100ms`},
		{"alice", "bob", emulator.PunchOptions{Via: "rendezvous", Port: 9999, Timeout: 100 * time.Millisecond}, `does not answer node "alice" nor "bob"`},
	} {
		_, err := lab.Engine().Punch(ctx, tc.a, tc.b, tc.o)
		require.Error(t, err, "%s <-> %s %+v", tc.a, tc.b, tc.o)
		require.True(t, topo.IsBadInput(err), "%v", err)
		require.Contains(t, err.Error(), tc.msg)
	}
	// The lab still works after all that.
	lab.RequirePunch("alice", "bob", "rendezvous")

	// A lab with no echo service at all.
	bare := p2pTopology("full-cone", "full-cone")
	bare.Nodes[1].Echo = nil
	lab2 := nslabtest.Start(t, bare)
	_, err := lab2.Engine().Punch(ctx, "alice", "bob", emulator.PunchOptions{})
	require.True(t, topo.IsBadInput(err), "%v", err)
	require.ErrorContains(t, err, "runs an echo service to meet at: add echo = [3478] to a node outside the NATs")
}

// A punch leaves no goroutine, socket or process behind, whether it
// connects, fails or is refused; the echo service goes with the lab.
func TestPunchLeavesNothingOpen(t *testing.T) {
	var name string
	requireNothingLeftOpen(t, func(t *testing.T) {
		lab := nslabtest.Start(t, p2pTopology("port-restricted", "symmetric"))
		name = lab.Name()
		require.NotEmpty(t, echoProcesses(name), "the echo service runs while the lab is up")
		lab.RequireNoPunch("alice", "bob", "rendezvous")
		lab.Engine().Punch(context.Background(), "alice", "gw-b", emulator.PunchOptions{})
		lab.Engine().Punch(context.Background(), "alice", "bob", emulator.PunchOptions{Port: 9999, Timeout: 50 * time.Millisecond})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := lab.Engine().Punch(ctx, "alice", "bob", emulator.PunchOptions{})
		require.ErrorIs(t, err, context.Canceled)
	})
	require.Empty(t, echoProcesses(name), "the echo service is stopped at teardown")
}

// echoProcesses lists the echo service processes of a lab.
func echoProcesses(lab string) []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		data, _ := os.ReadFile(p)
		if bytes.HasPrefix(data, []byte("nslab-echo-service\x00-test.run=^$\x00"+lab+"\x00")) {
			out = append(out, p)
		}
	}
	return out
}

// The CLI: `nslab up` leaves the echo service running for a later
// `nslab punch`, which exits 0 when direct, 1 when not, 2 on bad input.
func TestPunchCLI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data, err := os.ReadFile("../topologies/p2p.toml")
	require.NoError(t, err)
	symmetric := filepath.Join(dir, "p2p-symmetric.toml")
	require.NoError(t, os.WriteFile(symmetric, bytes.ReplaceAll(data, []byte(`profile = "port-restricted"`), []byte(`profile = "symmetric"`)), 0o644))

	up := func(file string) string {
		name := uniqueName("p2p")
		_, errs, code := cli(t, "", "up", "--name", name, file)
		require.Equal(t, 0, code, errs)
		t.Cleanup(func() { cli(t, "", "down", name) })
		return name
	}
	name := up("../topologies/p2p.toml")
	out, errs, code := cli(t, "", "punch", name, "alice", "bob", "--via", "rendezvous")
	require.Equal(t, 0, code, errs)
	require.Regexp(t, `^alice <-> bob via rendezvous \(203\.0\.113\.10:3478\): direct after \d+ rounds?, `, out)
	require.Contains(t, out, "learned 203.0.113.1:")

	out, errs, code = cli(t, "", "punch", name, "alice", "bob", "--udp", "--json", "--first", "bob")
	require.Equal(t, 0, code, errs)
	var res struct {
		Direct     bool   `json:"direct"`
		Via        string `json:"via"`
		Rendezvous string `json:"rendezvous"`
		Started    string `json:"started"`
		First      string `json:"first"`
		Rounds     int    `json:"rounds"`
		Elapsed    int64  `json:"elapsed_ns"`
		A, B       struct {
			Node, Local, Learned, Seen string
			Received                   bool
		}
	}
	require.NoError(t, json.Unmarshal([]byte(out), &res), out)
	require.True(t, res.Direct)
	require.Equal(t, "rendezvous", res.Via)
	require.Equal(t, "203.0.113.10:3478", res.Rendezvous)
	require.Equal(t, "bob", res.Started)
	require.Equal(t, "alice", res.First, "bob's first probe is dropped by gw-a: alice's gets through first")
	require.Equal(t, "alice", res.A.Node)
	require.True(t, strings.HasPrefix(res.A.Learned, "203.0.113.1:"), res.A.Learned)
	require.Equal(t, res.A.Learned, res.A.Seen)
	require.True(t, strings.HasPrefix(res.B.Local, "192.168.2.2:"), res.B.Local)
	require.True(t, res.A.Received && res.B.Received)
	require.Positive(t, res.Elapsed)

	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"alice", "gw-a"}, `node "gw-a" is a router, not a host`},
		{[]string{"alice", "alice"}, `node "alice" given twice`},
		{[]string{"alice", "bob", "--via", "gw-b"}, `node "gw-b" runs no echo service`},
		{[]string{"alice", "bobb"}, `did you mean "bob"?`},
		{[]string{"alice"}, "usage: nslab punch LAB A B"},
		{[]string{"alice", "bob", "--rounds", "0"}, "--rounds 0: give at least 1"},
		{[]string{"alice", "bob", "--port", "70000"}, "--port 70000: a port is 1-65535"},
	} {
		_, errs, code := cli(t, "", append([]string{"punch", name}, tc.args...)...)
		require.Equal(t, 2, code, "%v: %s", tc.args, errs)
		require.Contains(t, errs, tc.msg)
	}
	_, errs, code = cli(t, "", "punch", "no-such-lab", "alice", "bob")
	require.Equal(t, 2, code, errs)

	sym := up(symmetric)
	out, errs, code = cli(t, "", "punch", sym, "alice", "bob")
	require.Equal(t, 1, code, out+errs)
	require.Contains(t, out, "no direct path after 5 rounds")
	require.Contains(t, errs, "no direct path between alice and bob: they need a relay")
}

func TestPunchTopologyFile(t *testing.T) {
	t.Parallel()
	out, errs, code := cli(t, "", "validate", "--plan", "../topologies/p2p.toml")
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "lab p2p is valid")
	require.Contains(t, out, "echo service on udp and tcp 3478")
	require.Contains(t, out, "nat out of wan, profile port-restricted")
	lab := nslabtest.StartFile(t, "../topologies/p2p.toml")
	r := lab.RequirePunch("alice", "bob", "")
	require.Equal(t, "rendezvous", r.Via)
	require.Equal(t, netip.MustParseAddrPort("203.0.113.10:3478"), r.Rendezvous)
	// The echo service answers TCP too.
	to, err := lab.Engine().AddrOf("rendezvous", 4, 3478)
	require.NoError(t, err)
	res, err := lab.Engine().Probe(context.Background(), "alice", to, "tcp", emulator.ProbeOptions{})
	require.NoError(t, err)
	require.Equal(t, "203.0.113.1", res.Observed.Addr().String())
}

// A failing RequirePunch explains itself: each peer's socket, learned and
// seen endpoints, then both nodes' routes. Checked in a child run.
func TestPunchFailureExplains(t *testing.T) {
	if os.Getenv("NSLAB_CHILD") == "failing-punch" {
		lab := nslabtest.Start(t, p2pTopology("port-restricted", "symmetric"))
		lab.RequirePunch("alice", "bob", "rendezvous")
		return
	}
	t.Parallel()
	s, _ := runChild(t, "TestPunchFailureExplains", "failing-punch")
	require.Contains(t, s, "nslabtest: alice and bob should connect directly through a hole punch, but:")
	require.Regexp(t, `alice <-> bob via rendezvous \(203\.0\.113\.10:3478\): no direct path after 5 rounds, [0-9.]+ms: they need a relay`, s)
	require.Regexp(t, `alice  local 192\.168\.1\.2:\d+, learned 203\.0\.113\.1:\d+, nothing reached bob`, s)
	require.Regexp(t, `bob    local 192\.168\.2\.2:\d+, learned 203\.0\.113\.2:\d+, nothing reached alice`, s)
	require.Contains(t, s, "route 0.0.0.0/0 via 192.168.1.1 dev eth0")
	require.Contains(t, s, "route 0.0.0.0/0 via 192.168.2.1 dev eth0")
	require.Contains(t, s, "--- FAIL: TestPunchFailureExplains")
}
