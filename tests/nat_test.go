package tests

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/topo"
	"github.com/stretchr/testify/require"
)

func serve(t *testing.T, lab *emulator.Lab, node, proto string, port int) {
	t.Helper()
	svc, err := lab.Serve(node, proto, port)
	require.NoError(t, err)
	t.Cleanup(func() { svc.Close() })
}

func probe(t *testing.T, lab *emulator.Lab, from string, to netip.AddrPort, proto string, fromPort int) emulator.ProbeResult {
	t.Helper()
	r, err := lab.Probe(context.Background(), from, to, proto, emulator.ProbeOptions{FromPort: fromPort})
	require.NoError(t, err)
	return r
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// topologies/nat.toml: masquerade out, nothing in but the port forward.
func TestNATTopology(t *testing.T) {
	t.Parallel()
	lab := startLab(t, loadTopology(t, "nat.toml"), emulator.Options{})
	serve(t, lab, "server", "udp", 9000)
	serve(t, lab, "server", "tcp", 9000)

	// The server sees the gateway's outside address, not the inside one.
	for _, proto := range []string{"udp", "tcp"} {
		r := probe(t, lab, "client1", ap("203.0.113.10:9000"), proto, 0)
		require.Equal(t, "203.0.113.1", r.Observed.Addr().String(), "%s: %s", proto, r)
		require.Equal(t, "192.168.1.2", r.Local.Addr().String())
		require.True(t, r.Translated())
	}
	// Plain masquerade keeps the source port when it is free.
	r := probe(t, lab, "client2", ap("203.0.113.10:9000"), "udp", 41000)
	require.Equal(t, ap("203.0.113.1:41000"), r.Observed, r.String())

	// From the server, client1's inside address is unreachable.
	reach(t, lab, "server", "client1", false)
	_, err := lab.Probe(context.Background(), "server", ap("192.168.1.2:9000"), "udp", emulator.ProbeOptions{Timeout: 200 * time.Millisecond})
	require.Error(t, err)

	// The port forward reaches the service on client1, which sees the
	// server's own address.
	serve(t, lab, "client1", "tcp", 80)
	r = probe(t, lab, "server", ap("203.0.113.1:8080"), "tcp", 0)
	require.Equal(t, "203.0.113.10", r.Observed.Addr().String(), r.String())
	// Port 80 of the gateway itself forwards nothing.
	_, err = lab.Probe(context.Background(), "server", ap("203.0.113.1:80"), "tcp", emulator.ProbeOptions{Timeout: 300 * time.Millisecond})
	require.Error(t, err)
}

// Even with a route to the inside, a gateway drops what comes in unasked.
func TestNATDropsUnsolicitedInbound(t *testing.T) {
	t.Parallel()
	top := loadTopology(t, "nat.toml")
	for i := range top.Nodes {
		if top.Nodes[i].Name == "server" {
			top.Nodes[i].Routes = []topo.RouteSpec{{To: "192.168.1.0/24", Via: "203.0.113.1"}}
		}
	}
	lab := startLab(t, top, emulator.Options{})
	serve(t, lab, "client1", "udp", 9000)
	reach(t, lab, "client1", "server", true)
	reach(t, lab, "server", "client1", false)
	_, err := lab.Probe(context.Background(), "server", ap("192.168.1.2:9000"), "udp", emulator.ProbeOptions{Timeout: 300 * time.Millisecond})
	require.Error(t, err)

	// inbound = "accept" opens it.
	top2 := loadTopology(t, "nat.toml")
	for i := range top2.Nodes {
		switch top2.Nodes[i].Name {
		case "server":
			top2.Nodes[i].Routes = []topo.RouteSpec{{To: "192.168.1.0/24", Via: "203.0.113.1"}}
		case "gw":
			top2.Nodes[i].NAT.Inbound = "accept"
		}
	}
	lab2 := startLab(t, top2, emulator.Options{})
	reach(t, lab2, "server", "client1", true)
}

// Every step of the classic namespace tutorial.
func TestTutorialTopology(t *testing.T) {
	t.Parallel()
	lab := startLab(t, loadTopology(t, "tutorial.toml"), emulator.Options{})
	reach(t, lab, "red", "blue", true)
	reach(t, lab, "blue", "red", true)
	reach(t, lab, "host", "red", true)
	reach(t, lab, "red", "host", true)
	// blue goes out to the LAN through host's masquerade: lan sees host.
	reach(t, lab, "blue", "lan", true)
	serve(t, lab, "lan", "udp", 7000)
	r := probe(t, lab, "blue", ap("192.168.1.3:7000"), "udp", 0)
	require.Equal(t, "192.168.1.2", r.Observed.Addr().String(), r.String())
	// red has no route to the LAN.
	reach(t, lab, "red", "lan", false)
	// lan reaches blue only through the port forward.
	reach(t, lab, "lan", "blue", false)
	serve(t, lab, "blue", "tcp", 80)
	r = probe(t, lab, "lan", ap("192.168.1.2:80"), "tcp", 0)
	require.Equal(t, "192.168.1.3", r.Observed.Addr().String(), "blue sees lan itself: %s", r)
	_, err := lab.Probe(context.Background(), "lan", ap("192.168.15.2:80"), "tcp", emulator.ProbeOptions{Timeout: 300 * time.Millisecond})
	require.Error(t, err, "no way in without the forward")
}

// natLab is one client behind gateway gw, whose outside interface carries
// outside addresses 203.0.113.1-4, and a server with eight addresses.
func natLab(t *testing.T, nat topo.NATSpec) *emulator.Lab {
	t.Helper()
	server := []string{}
	for i := 10; i < 18; i++ {
		server = append(server, fmt.Sprintf("203.0.113.%d/24", i))
	}
	nat.Outside = "wan"
	top := &topo.Topology{
		Name: uniqueName("natflags"),
		Nodes: []topo.NodeSpec{
			{Name: "client", Gateway: "192.168.1.1"},
			{Name: "gw", Kind: topo.KindRouter, NAT: &nat},
			{Name: "server"},
		},
		Links: []topo.LinkSpec{
			{A: &topo.EndpointSpec{Node: "client", Addresses: []string{"192.168.1.2/24"}}, B: &topo.EndpointSpec{Node: "gw", Interface: "lan", Addresses: []string{"192.168.1.1/24"}}},
			{A: &topo.EndpointSpec{Node: "gw", Interface: "wan", Addresses: []string{"203.0.113.1/24", "203.0.113.2/24", "203.0.113.3/24", "203.0.113.4/24"}},
				B: &topo.EndpointSpec{Node: "server", Addresses: server}},
		},
	}
	lab := startLab(t, top, emulator.Options{})
	serve(t, lab, "server", "udp", 9000)
	return lab
}

// Each masquerade/SNAT flag changes what it claims to change.
func TestNATFlags(t *testing.T) {
	t.Parallel()
	samePort := func(t *testing.T, lab *emulator.Lab) (same, total int) {
		for i := 0; i < 8; i++ {
			p := 42000 + i
			r := probe(t, lab, "client", ap("203.0.113.10:9000"), "udp", p)
			if int(r.Observed.Port()) == p {
				same++
			}
			total++
		}
		return
	}
	t.Run("plain masquerade preserves ports", func(t *testing.T) {
		t.Parallel()
		same, total := samePort(t, natLab(t, topo.NATSpec{Masquerade: true}))
		require.Equal(t, total, same)
	})
	for _, flag := range []string{"random", "fully-random"} {
		t.Run(flag+" changes ports", func(t *testing.T) {
			t.Parallel()
			same, _ := samePort(t, natLab(t, topo.NATSpec{Masquerade: true, Flags: []string{flag}}))
			require.Zero(t, same, "with %s no source port should survive (8 tries)", flag)
		})
	}
	// persistent: one client keeps one outside address for every
	// destination; without it the address depends on the destination too.
	addrs := func(t *testing.T, lab *emulator.Lab) map[netip.Addr]bool {
		seen := map[netip.Addr]bool{}
		for i := 10; i < 18; i++ {
			r := probe(t, lab, "client", ap(fmt.Sprintf("203.0.113.%d:9000", i)), "udp", 0)
			seen[r.Observed.Addr()] = true
		}
		return seen
	}
	t.Run("snat range spreads destinations", func(t *testing.T) {
		t.Parallel()
		seen := addrs(t, natLab(t, topo.NATSpec{SNAT: "203.0.113.1-203.0.113.4"}))
		require.Greater(t, len(seen), 1, "8 destinations over 4 outside addresses: %v", seen)
	})
	t.Run("persistent keeps one address", func(t *testing.T) {
		t.Parallel()
		seen := addrs(t, natLab(t, topo.NATSpec{SNAT: "203.0.113.1-203.0.113.4", Flags: []string{"persistent"}}))
		require.Len(t, seen, 1, "%v", seen)
	})
	t.Run("snat ports", func(t *testing.T) {
		t.Parallel()
		lab := natLab(t, topo.NATSpec{SNAT: "203.0.113.3", Ports: "20000-20099"})
		for i := 0; i < 4; i++ {
			r := probe(t, lab, "client", ap("203.0.113.10:9000"), "udp", 43000+i)
			require.Equal(t, "203.0.113.3", r.Observed.Addr().String())
			require.GreaterOrEqual(t, r.Observed.Port(), uint16(20000))
			require.LessOrEqual(t, r.Observed.Port(), uint16(20099))
		}
	})
}

// A home gateway behind a carrier-grade NAT: the server sees the outer
// gateway's address.
func TestNestedNAT(t *testing.T) {
	t.Parallel()
	top := &topo.Topology{
		Name: uniqueName("cgn"),
		Nodes: []topo.NodeSpec{
			{Name: "pc", Gateway: "192.168.0.1"},
			{Name: "home", Kind: topo.KindRouter, Gateway: "100.64.0.1", NAT: &topo.NATSpec{Outside: "wan", Masquerade: true}},
			{Name: "cgn", Kind: topo.KindRouter, NAT: &topo.NATSpec{Outside: "wan", Masquerade: true}},
			{Name: "server"},
		},
		Links: []topo.LinkSpec{
			{A: &topo.EndpointSpec{Node: "pc", Addresses: []string{"192.168.0.2/24"}}, B: &topo.EndpointSpec{Node: "home", Interface: "lan", Addresses: []string{"192.168.0.1/24"}}},
			{A: &topo.EndpointSpec{Node: "home", Interface: "wan", Addresses: []string{"100.64.0.2/24"}}, B: &topo.EndpointSpec{Node: "cgn", Interface: "lan", Addresses: []string{"100.64.0.1/24"}}},
			{A: &topo.EndpointSpec{Node: "cgn", Interface: "wan", Addresses: []string{"198.51.100.1/24"}}, B: &topo.EndpointSpec{Node: "server", Addresses: []string{"198.51.100.10/24"}}},
		},
	}
	lab := startLab(t, top, emulator.Options{})
	serve(t, lab, "server", "udp", 9000)
	serve(t, lab, "server", "tcp", 9000)
	for _, proto := range []string{"udp", "tcp"} {
		r := probe(t, lab, "pc", ap("198.51.100.10:9000"), proto, 0)
		require.Equal(t, "198.51.100.1", r.Observed.Addr().String(), "%s: %s", proto, r)
	}
	// The home gateway's own traffic is translated once.
	r := probe(t, lab, "home", ap("198.51.100.10:9000"), "udp", 0)
	require.Equal(t, "198.51.100.1", r.Observed.Addr().String())
	reach(t, lab, "server", "pc", false)
}

func TestFirewall(t *testing.T) {
	t.Parallel()
	top := &topo.Topology{
		Name: uniqueName("fw"),
		Nodes: []topo.NodeSpec{
			{Name: "web", Firewall: &topo.FirewallSpec{Input: "drop", Rules: []topo.FirewallRule{
				{Chain: "input", Action: "accept", Proto: "tcp", DPort: 80},
				{Chain: "input", Action: "accept", Proto: "udp", DPort: 53, Src: "10.0.0.1"},
				{Chain: "input", Action: "reject", Proto: "tcp", DPort: 81},
			}}},
			{Name: "a"},
			{Name: "b"},
			{Name: "s1", Kind: topo.KindSwitch},
		},
		Links: []topo.LinkSpec{{Endpoints: []string{"a", "s1"}}, {Endpoints: []string{"b", "s1"}}, {Endpoints: []string{"web", "s1"}}},
	}
	lab := startLab(t, top, emulator.Options{})
	web, err := lab.AddrOf("web", 4, 0)
	require.NoError(t, err)
	for _, p := range []struct {
		proto string
		port  int
	}{{"tcp", 80}, {"tcp", 81}, {"tcp", 22}, {"udp", 53}} {
		serve(t, lab, "web", p.proto, p.port)
	}
	try := func(from, proto string, port int) error {
		_, err := lab.Probe(context.Background(), from, netip.AddrPortFrom(web.Addr(), uint16(port)), proto, emulator.ProbeOptions{Timeout: 300 * time.Millisecond})
		return err
	}
	require.NoError(t, try("a", "tcp", 80), "accepted")
	require.Error(t, try("a", "tcp", 22), "dropped by the policy")
	err = try("a", "tcp", 81)
	require.Error(t, err)
	require.Contains(t, err.Error(), "refused", "reject answers at once")
	require.NoError(t, try("a", "udp", 53), "a (10.0.0.1) may ask for DNS")
	require.Error(t, try("b", "udp", 53), "b may not")
	reach(t, lab, "a", "web", false) // no ICMP rule
	reach(t, lab, "web", "a", true)  // replies to what web sends are accepted
}

// A drop policy on an IPv6 segment keeps neighbour discovery working.
func TestFirewallIPv6NeighbourDiscovery(t *testing.T) {
	t.Parallel()
	top := &topo.Topology{
		Name:       uniqueName("fw6"),
		Addressing: topo.Addressing{IPv6: "fd00:6::/48"},
		Nodes: []topo.NodeSpec{
			{Name: "a", Firewall: &topo.FirewallSpec{Input: "drop", Output: "drop", Rules: []topo.FirewallRule{
				{Chain: "output", Action: "accept", Proto: "udp", DPort: 9000},
			}}},
			{Name: "b"},
		},
		Links: []topo.LinkSpec{{Endpoints: []string{"a", "b"}}},
	}
	lab := startLab(t, top, emulator.Options{})
	serve(t, lab, "b", "udp", 9000)
	b6, err := lab.AddrOf("b", 6, 9000)
	require.NoError(t, err)
	r, err := lab.Probe(context.Background(), "a", b6, "udp", emulator.ProbeOptions{})
	require.NoError(t, err, "a reaches b over IPv6 through its drop policies")
	require.Equal(t, "fd00:6::1", r.Observed.Addr().String())
}
