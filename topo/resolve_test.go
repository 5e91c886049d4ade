package topo_test

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nslab/nslab/topo"
)

// goodFiles lists the topologies that must resolve: the repository's
// examples and testdata/good.
func goodFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, pat := range []string{
		filepath.Join("..", "topologies", "*.toml"),
		filepath.Join("testdata", "good", "*.toml"),
	} {
		m, err := filepath.Glob(pat)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 6 {
		t.Fatalf("found only %d good topologies: %v", len(files), files)
	}
	return files
}

// load decodes and resolves a file that must be good.
func load(t *testing.T, file string) *topo.Plan {
	t.Helper()
	tp, err := topo.LoadFile(file)
	if err != nil {
		t.Fatalf("LoadFile(%s): %v", file, err)
	}
	p, err := topo.Resolve(tp)
	if err != nil {
		t.Fatalf("Resolve(%s):\n%v", file, err)
	}
	return p
}

func node(t *testing.T, p *topo.Plan, name string) *topo.Node {
	t.Helper()
	n := p.Node(name)
	if n == nil {
		t.Fatalf("lab %s has no node %q (nodes: %v)", p.Lab, name, p.NodeNames())
	}
	return n
}

func iface(t *testing.T, p *topo.Plan, nodeName, ifName string) *topo.Iface {
	t.Helper()
	n := node(t, p, nodeName)
	i := n.Iface(ifName)
	if i == nil {
		var names []string
		for _, i := range n.Ifaces {
			names = append(names, i.Name)
		}
		t.Fatalf("node %s has no interface %q (has %v)", nodeName, ifName, names)
	}
	return i
}

func addrs(i *topo.Iface) string {
	s := make([]string, len(i.Addrs))
	for k, a := range i.Addrs {
		s[k] = a.String()
	}
	return strings.Join(s, " ")
}

func routes(rs []topo.Route) string {
	s := make([]string, len(rs))
	for k, r := range rs {
		s[k] = r.String()
	}
	return strings.Join(s, "; ")
}

// wantAddrs checks the addresses of node:iface, written "a/n b/m".
func wantAddrs(t *testing.T, p *topo.Plan, nodeName, ifName, want string) {
	t.Helper()
	if got := addrs(iface(t, p, nodeName, ifName)); got != want {
		t.Errorf("%s:%s addresses = %q, want %q", nodeName, ifName, got, want)
	}
}

// wantRoutes checks a node's routes, in the order Route.String gives them.
func wantRoutes(t *testing.T, p *topo.Plan, nodeName, want string) {
	t.Helper()
	if got := routes(node(t, p, nodeName).Routes); got != want {
		t.Errorf("%s routes:\n got %s\nwant %s", nodeName, got, want)
	}
}

// checkPlan checks what must hold in every plan.
func checkPlan(t *testing.T, p *topo.Plan) {
	t.Helper()
	if p.Routing != "static" && p.Routing != "auto" {
		t.Errorf("Routing = %q", p.Routing)
	}
	index := map[int]string{}
	for _, n := range p.Nodes {
		if want := p.Lab + "." + n.Name; n.Namespace != want {
			t.Errorf("node %s: Namespace = %q, want %q", n.Name, n.Namespace, want)
		}
		if p.Node(n.Name) != n {
			t.Errorf("Plan.Node(%q) does not return the node", n.Name)
		}
		if (n.Kind == topo.KindSwitch) != (n.Bridge != "") {
			t.Errorf("node %s (%s): Bridge = %q", n.Name, n.Kind, n.Bridge)
		}
		names := map[string]bool{}
		v6 := false
		for _, i := range n.Ifaces {
			where := n.Name + ":" + i.Name
			if i.Node != n.Name {
				t.Errorf("%s: Node = %q", where, i.Node)
			}
			if why := topo.ValidIfName(i.Name); why != "" {
				t.Errorf("%s: interface name %s", where, why)
			}
			if names[i.Name] || i.Name == "lo" || i.Name == n.Bridge {
				t.Errorf("%s: interface name used twice in the node", where)
			}
			names[i.Name] = true
			if i.Index < 3 {
				t.Errorf("%s: Index = %d, want >= 3 (1 is lo, 2 the bridge)", where, i.Index)
			}
			if o, dup := index[i.Index]; dup {
				t.Errorf("%s: Index %d is also %s's", where, i.Index, o)
			}
			index[i.Index] = where
			if i.Port != (n.Kind == topo.KindSwitch) {
				t.Errorf("%s: Port = %v on a %s", where, i.Port, n.Kind)
			}
			if i.Port && len(i.Addrs) > 0 {
				t.Errorf("%s: switch port has addresses %s", where, addrs(i))
			}
			if i.Peer == nil || i.Peer.Peer != i {
				t.Fatalf("%s: Peer is not the other end of its pair", where)
			}
			if i.Peer.Index == i.Index {
				t.Errorf("%s: same Index %d as its peer", where, i.Index)
			}
			if i.Peer.Segment != i.Segment || i.Segment < 0 || i.Segment >= len(p.Segments) {
				t.Errorf("%s: Segment %d, peer's %d, %d segments", where, i.Segment, i.Peer.Segment, len(p.Segments))
			}
			if i.MTU != i.Peer.MTU {
				t.Errorf("%s: MTU %d, peer's %d", where, i.MTU, i.Peer.MTU)
			}
			for _, a := range i.Addrs {
				v6 = v6 || a.Addr().Is6()
			}
		}
		if n.IPv6 != v6 {
			t.Errorf("node %s: IPv6 = %v, want %v", n.Name, n.IPv6, v6)
		}
		for _, r := range n.Routes {
			if r.Dev == "" || n.Iface(r.Dev) == nil {
				t.Errorf("node %s: route %s leaves through no interface of the node", n.Name, r)
			}
		}
	}
	for _, l := range p.Links {
		if l.A.Peer != l.B || l.B.Peer != l.A {
			t.Errorf("link %s:%s -- %s:%s: ends are not each other's peer", l.A.Node, l.A.Name, l.B.Node, l.B.Name)
		}
	}
	// Addresses are unique in a segment, and every member's subnets are
	// the segment's.
	for _, s := range p.Segments {
		seen := map[netip.Addr]bool{}
		for _, m := range s.Members {
			if m.Port {
				t.Errorf("segment %d: switch port %s:%s is a member", s.Index, m.Node, m.Name)
			}
			for _, a := range m.Addrs {
				if seen[a.Addr()] {
					t.Errorf("segment %d: address %s twice", s.Index, a.Addr())
				}
				seen[a.Addr()] = true
				if !slices.Contains(s.Subnets, a.Masked()) {
					t.Errorf("segment %d: %s of %s:%s is on none of its subnets %v", s.Index, a, m.Node, m.Name, s.Subnets)
				}
			}
		}
	}
}

// TestGood resolves every good topology and checks the plan's invariants.
func TestGood(t *testing.T) {
	for _, file := range goodFiles(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			p := load(t, file)
			checkPlan(t, p)
			if err := topo.Validate(p.Topology); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestLAN(t *testing.T) {
	p := load(t, filepath.Join("..", "topologies", "lan.toml"))
	if got := strings.Join(p.NodeNames(), " "); got != "s1 h1 h2 h3" {
		t.Errorf("NodeNames = %s", got)
	}
	if p.Routing != "static" {
		t.Errorf("Routing = %q, want the default static", p.Routing)
	}
	wantAddrs(t, p, "h1", "eth0", "10.0.0.1/24")
	wantAddrs(t, p, "h2", "eth0", "10.0.0.2/24")
	wantAddrs(t, p, "h3", "eth0", "10.0.0.3/24")
	if len(p.Segments) != 1 || len(p.Segments[0].Members) != 3 ||
		fmt.Sprint(p.Segments[0].Subnets) != "[10.0.0.0/24]" {
		t.Errorf("segments: want one, 10.0.0.0/24 with three members; got %d: %+v", len(p.Segments), p.Segments[0])
	}
	s1 := node(t, p, "s1")
	if s1.Kind != topo.KindSwitch || s1.Bridge != "s1" || s1.Namespace != "lan.s1" {
		t.Errorf("s1: kind %s, bridge %q, namespace %q", s1.Kind, s1.Bridge, s1.Namespace)
	}
	// Switch ports are named after the node on the far end.
	for _, h := range []string{"h1", "h2", "h3"} {
		port := iface(t, p, "s1", h)
		if !port.Port || port.Peer != iface(t, p, h, "eth0") {
			t.Errorf("s1:%s: Port %v, peer %s:%s", h, port.Port, port.Peer.Node, port.Peer.Name)
		}
	}
	for _, n := range p.Nodes {
		if n.IPv6 || len(n.Routes) != 0 {
			t.Errorf("%s: IPv6 %v, routes %s", n.Name, n.IPv6, routes(n.Routes))
		}
	}
	if p.Host != nil {
		t.Errorf("Host = %+v, want none", p.Host)
	}
}

func TestDirect(t *testing.T) {
	p := load(t, filepath.Join("..", "topologies", "direct.toml"))
	wantAddrs(t, p, "red", "veth-red", "192.168.15.1/24")
	wantAddrs(t, p, "blue", "veth-blue", "192.168.15.2/24")
	if len(p.Links) != 1 || len(p.Segments) != 1 {
		t.Errorf("%d links, %d segments; want 1 and 1", len(p.Links), len(p.Segments))
	}
}

func TestRoutedAutoRoutes(t *testing.T) {
	p := load(t, filepath.Join("..", "topologies", "routed.toml"))
	if p.Routing != "auto" {
		t.Fatalf("Routing = %q", p.Routing)
	}
	wantAddrs(t, p, "r1", "lan", "10.1.0.1/24")
	wantAddrs(t, p, "h1", "eth0", "10.1.0.2/24")
	wantAddrs(t, p, "h2", "eth0", "10.1.0.3/24")
	wantAddrs(t, p, "r1", "transit", "10.9.0.1/24")
	wantAddrs(t, p, "r2", "transit", "10.9.0.2/24")
	wantAddrs(t, p, "r2", "lan", "10.2.0.1/24")
	wantAddrs(t, p, "h3", "eth0", "10.2.0.2/24")
	wantAddrs(t, p, "h4", "eth0", "10.2.0.3/24")

	wantRoutes(t, p, "h1", "10.9.0.0/24 via 10.1.0.1 dev eth0; 10.2.0.0/24 via 10.1.0.1 dev eth0")
	wantRoutes(t, p, "h2", "10.9.0.0/24 via 10.1.0.1 dev eth0; 10.2.0.0/24 via 10.1.0.1 dev eth0")
	wantRoutes(t, p, "r1", "10.2.0.0/24 via 10.9.0.2 dev transit")
	wantRoutes(t, p, "r2", "10.1.0.0/24 via 10.9.0.1 dev transit")
	wantRoutes(t, p, "h3", "10.1.0.0/24 via 10.2.0.1 dev eth0; 10.9.0.0/24 via 10.2.0.1 dev eth0")
	wantRoutes(t, p, "h4", "10.1.0.0/24 via 10.2.0.1 dev eth0; 10.9.0.0/24 via 10.2.0.1 dev eth0")
	for _, n := range p.Nodes {
		for _, r := range n.Routes {
			if !r.Auto {
				t.Errorf("%s: route %s is not marked Auto", n.Name, r)
			}
		}
	}
	for _, sw := range []string{"sw-a", "sw-b"} {
		if n := node(t, p, sw); len(n.Routes) != 0 || n.Bridge != sw {
			t.Errorf("%s: bridge %q, routes %s", sw, n.Bridge, routes(n.Routes))
		}
	}
	// r1's LAN end is named by the file, its switch port after r1.
	if port := iface(t, p, "sw-a", "r1"); port.Peer != iface(t, p, "r1", "lan") {
		t.Errorf("sw-a:r1 is not cabled to r1:lan")
	}
}

func TestDualStack(t *testing.T) {
	p := load(t, filepath.Join("testdata", "good", "dual_stack.toml"))
	// The router comes first in its segment although it is written last.
	wantAddrs(t, p, "r1", "eth0", "10.0.0.1/24 fd00:1::1/64")
	wantAddrs(t, p, "h1", "eth0", "10.0.0.2/24 fd00:1::2/64")
	wantAddrs(t, p, "h2", "eth0", "10.0.0.3/24 fd00:1::3/64")
	wantAddrs(t, p, "r1", "eth1", "10.0.1.1/24 fd00:1:0:1::1/64")
	wantAddrs(t, p, "h3", "eth0", "10.0.1.2/24 fd00:1:0:1::2/64")
	wantRoutes(t, p, "h1", "10.0.1.0/24 via 10.0.0.1 dev eth0; fd00:1:0:1::/64 via fd00:1::1 dev eth0")
	wantRoutes(t, p, "h3", "10.0.0.0/24 via 10.0.1.1 dev eth0; fd00:1::/64 via fd00:1:0:1::1 dev eth0")
	wantRoutes(t, p, "r1", "")
	for _, n := range p.Nodes {
		if want := n.Kind != topo.KindSwitch; n.IPv6 != want {
			t.Errorf("%s: IPv6 = %v, want %v", n.Name, n.IPv6, want)
		}
	}
	if a, ok := node(t, p, "h2").FirstAddr(6); !ok || a.String() != "fd00:1::3" {
		t.Errorf("h2 FirstAddr(6) = %v, %v", a, ok)
	}
	if a, ok := node(t, p, "h2").FirstAddr(4); !ok || a.String() != "10.0.0.3" {
		t.Errorf("h2 FirstAddr(4) = %v, %v", a, ok)
	}
}

func TestStaticRoutesAndHost(t *testing.T) {
	p := load(t, filepath.Join("testdata", "good", "static.toml"))
	// The host attachment's written addresses make the LAN's subnets
	// 10.0.0.0/24 and fd00::/64; h1 gets the first free address of each.
	wantAddrs(t, p, "h1", "eth0", "10.0.0.1/24 fd00::3/64")
	wantAddrs(t, p, "h2", "lan0", "fd00::2/64 10.0.0.2/24")
	// The explicit gateway is a default route; routes keep their order.
	wantRoutes(t, p, "h1", "default via 10.0.0.254 dev eth0; 192.168.0.0/16 dev eth0; 172.16.0.0/12 via 10.0.0.2 dev eth0")
	wantRoutes(t, p, "h2", "default via fd00::1 dev lan0")
	h1 := node(t, p, "h1")
	if r := h1.Routes[0]; r.Dst != netip.MustParsePrefix("0.0.0.0/0") || r.Auto {
		t.Errorf("gateway route: Dst %s, Auto %v", r.Dst, r.Auto)
	}
	if r := h1.Routes[1]; r.Via.IsValid() || r.Dev != "eth0" {
		t.Errorf("device route: Via %v, Dev %q", r.Via, r.Dev)
	}
	if r := node(t, p, "h2").Routes[0]; r.Dst != netip.MustParsePrefix("::/0") {
		t.Errorf("gateway6 route: Dst %s", r.Dst)
	}

	lan0 := iface(t, p, "h2", "lan0")
	if lan0.MAC.String() != "02:00:00:00:00:02" || lan0.MTU != 9000 || lan0.Peer.MTU != 9000 {
		t.Errorf("h2:lan0: MAC %s, MTU %d, peer MTU %d", lan0.MAC, lan0.MTU, lan0.Peer.MTU)
	}
	h2 := node(t, p, "h2")
	if fmt.Sprint(h2.Sysctls) != "[{net.ipv4.conf.all.rp_filter 0}]" || fmt.Sprint(h2.Start) != "[sleep 1000]" {
		t.Errorf("h2: sysctls %v, start %q", h2.Sysctls, h2.Start)
	}

	h := p.Host
	if h == nil {
		t.Fatal("no host attachment")
	}
	if h.Host.Name != "nslab0" || h.Host.Node != "" || h.Host.Index != 0 || addrs(h.Host) != "10.0.0.254/24 fd00::1/64" {
		t.Errorf("host end: %q node %q index %d addresses %s", h.Host.Name, h.Host.Node, h.Host.Index, addrs(h.Host))
	}
	if h.Lab != iface(t, p, "s1", "host") || !h.Lab.Port || h.Lab.Peer != h.Host || h.Host.Peer != h.Lab {
		t.Errorf("lab end: %s:%s port %v", h.Lab.Node, h.Lab.Name, h.Lab.Port)
	}
	if got := routes(h.Routes); got != "10.99.0.0/16 via 10.0.0.1 dev nslab0" {
		t.Errorf("host routes = %s", got)
	}
	if seg := p.Segments[h.Host.Segment]; !slices.Contains(seg.Members, h.Host) || len(seg.Members) != 3 {
		t.Errorf("host end is not a member of the LAN segment: %+v", seg)
	}
}

func TestTableForms(t *testing.T) {
	p := load(t, filepath.Join("testdata", "good", "table_forms.toml"))
	wantAddrs(t, p, "r1", "down", "192.168.7.1/24")
	wantAddrs(t, p, "h1", "eth0", "192.168.7.2/24")
	wantAddrs(t, p, "r1", "up", "10.0.0.1/24")
	wantAddrs(t, p, "h1", "mgmt", "10.0.0.2/24")
	if l := p.Links[0]; l.MTU != 1400 || l.A.MTU != 1400 {
		t.Errorf("link 1 MTU %d, end MTU %d; want 1400", l.MTU, l.A.MTU)
	}
}

// TestInterfaceIndexes checks that indexes are unique across the lab and
// differ on the two ends of each pair, here on a bigger generated lab.
func TestInterfaceIndexes(t *testing.T) {
	tp, err := topo.Generate("tree,3,3", "")
	if err != nil {
		t.Fatal(err)
	}
	p, err := topo.Resolve(tp)
	if err != nil {
		t.Fatal(err)
	}
	checkPlan(t, p)
	seen := map[int]bool{}
	for _, l := range p.Links {
		for _, i := range []*topo.Iface{l.A, l.B} {
			if seen[i.Index] {
				t.Fatalf("index %d used twice", i.Index)
			}
			seen[i.Index] = true
		}
	}
	if len(seen) != 2*len(p.Links) {
		t.Errorf("%d indexes for %d links", len(seen), len(p.Links))
	}
}

// TestBuilderProblemsHaveNoPlace: a topology built in Go has no file, so
// its problems read "object: message".
func TestBuilderProblemsHaveNoPlace(t *testing.T) {
	tp := topo.NewBuilder("b").Host("h1").Router("r1").Link("h1", "r9").Link("r1", "r1").Topology()
	_, err := topo.Resolve(tp)
	var ps topo.Problems
	if !errors.As(err, &ps) {
		t.Fatalf("err = %v, want Problems", err)
	}
	want := `link h1 -- r9: unknown node "r9" (did you mean "r1"?)` + "\n" +
		`link r1 -- r1: a link from node "r1" to itself`
	if ps.Error() != want {
		t.Errorf("got:\n%s\nwant:\n%s", ps.Error(), want)
	}
	for _, p := range ps {
		if p.File != "" || p.Pos != (topo.Pos{}) {
			t.Errorf("%s: File %q, Pos %+v; want none", p, p.File, p.Pos)
		}
	}
	if !topo.IsBadInput(err) || topo.Validate(tp) == nil {
		t.Error("Validate accepts what Resolve rejects, or the error is not bad input")
	}
}

func TestProblemString(t *testing.T) {
	for _, c := range []struct {
		p    topo.Problem
		want string
	}{
		{topo.Problem{File: "f.toml", Pos: topo.Pos{Line: 3, Col: 7}, Object: `node "h1"`, Msg: "bad"}, `f.toml:3:7: node "h1": bad`},
		{topo.Problem{File: "f.toml", Object: "lab", Msg: "bad"}, "f.toml: lab: bad"},
		{topo.Problem{File: "f.toml", Pos: topo.Pos{Line: 2, Col: 1}, Msg: "bad"}, "f.toml:2:1: bad"},
		{topo.Problem{Object: "link 1", Msg: "bad"}, "link 1: bad"},
		{topo.Problem{Msg: "bad"}, "bad"},
	} {
		if got := c.p.String(); got != c.want {
			t.Errorf("String() = %q, want %q", got, c.want)
		}
	}
	ps := topo.Problems{{Msg: "a"}, {Msg: "b"}}
	if ps.Error() != "a\nb" {
		t.Errorf("Problems.Error() = %q", ps.Error())
	}
	if topo.IsBadInput(errors.New("x")) || !topo.IsBadInput(fmt.Errorf("w: %w", topo.BadInput(errors.New("x")))) ||
		!topo.IsBadInput(fmt.Errorf("w: %w", ps)) {
		t.Error("IsBadInput is wrong")
	}
}

func TestLoadFileMissing(t *testing.T) {
	_, err := topo.LoadFile(filepath.Join(t.TempDir(), "none.toml"))
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v, want a wrapped ErrNotExist", err)
	}
}

// TestValidIfName covers each reason a name is refused.
func TestValidIfName(t *testing.T) {
	for name, want := range map[string]string{
		"eth0":             "",
		"a-15-byte-name1":  "",
		"":                 "is empty",
		"a-16-byte-name12": "is 16 bytes, the kernel allows at most 15",
		".":                "is not allowed",
		"..":               "is not allowed",
		"a/b":              "contains '/', ':' or white space",
		"a b":              "contains '/', ':' or white space",
	} {
		if got := topo.ValidIfName(name); got != want {
			t.Errorf("ValidIfName(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestKnownKinds(t *testing.T) {
	if got := fmt.Sprint(topo.KnownKinds()); got != "[host router switch]" {
		t.Errorf("KnownKinds = %s", got)
	}
}

// resolveGenerated generates and resolves a built-in topology.
func resolveGenerated(t *testing.T, spec string) *topo.Plan {
	t.Helper()
	tp, err := topo.Generate(spec, "")
	if err != nil {
		t.Fatalf("Generate(%q): %v", spec, err)
	}
	p, err := topo.Resolve(tp)
	if err != nil {
		t.Fatalf("Resolve(Generate(%q)):\n%v", spec, err)
	}
	checkPlan(t, p)
	return p
}

func linkNames(p *topo.Plan) string {
	s := make([]string, len(p.Links))
	for k, l := range p.Links {
		s[k] = l.A.Node + "-" + l.B.Node
	}
	return strings.Join(s, " ")
}

func TestGenerate(t *testing.T) {
	for _, c := range []struct {
		spec, lab, nodes, links string
		subnet                  string
	}{
		{"single,3", "single-3", "s1 h1 h2 h3", "h1-s1 h2-s1 h3-s1", "10.0.0.0/24"},
		{"linear,3", "linear-3", "s1 s2 s3 h1 h2 h3", "h1-s1 h2-s2 h3-s3 s1-s2 s2-s3", "10.0.0.0/24"},
		{"tree,2,2", "tree-2-2", "s1 s2 s3 h1 h2 h3 h4", "s1-s2 s1-s3 h1-s2 h2-s2 h3-s3 h4-s3", "10.0.0.0/24"},
		{" single , 1 ", "single-1", "s1 h1", "h1-s1", "10.0.0.0/24"},
		{"linear,1", "linear-1", "s1 h1", "h1-s1", "10.0.0.0/24"},
		{"tree,1,3", "tree-1-3", "s1 h1 h2 h3", "h1-s1 h2-s1 h3-s1", "10.0.0.0/24"},
	} {
		t.Run(c.spec, func(t *testing.T) {
			p := resolveGenerated(t, c.spec)
			if p.Lab != c.lab {
				t.Errorf("Lab = %q, want %q", p.Lab, c.lab)
			}
			if got := strings.Join(p.NodeNames(), " "); got != c.nodes {
				t.Errorf("nodes = %s, want %s", got, c.nodes)
			}
			if got := linkNames(p); got != c.links {
				t.Errorf("links = %s, want %s", got, c.links)
			}
			// One L2 segment, hosts numbered in order.
			if len(p.Segments) != 1 || fmt.Sprint(p.Segments[0].Subnets) != "["+c.subnet+"]" {
				t.Fatalf("segments: %d, first %+v", len(p.Segments), p.Segments[0])
			}
			k := 0
			for _, n := range p.Nodes {
				if n.Kind == topo.KindSwitch {
					continue
				}
				k++
				if n.Kind != topo.KindHost || n.Name != fmt.Sprintf("h%d", k) {
					t.Errorf("node %s is a %s", n.Name, n.Kind)
				}
				wantAddrs(t, p, n.Name, "eth0", fmt.Sprintf("10.0.0.%d/24", k))
			}
		})
	}
	tp, err := topo.Generate("single,2", "mylab")
	if err != nil || tp.Name != "mylab" {
		t.Errorf("Generate with a name: %v, name %q", err, tp.Name)
	}
}

func TestGenerateBad(t *testing.T) {
	for _, spec := range []string{
		"", "single", "single,", "single,0", "single,-1", "single,x", "single,2,3",
		"star,3", "Single,3", "linear", "linear,0", "tree,2", "tree,0,2", "tree,2,0", "tree,2,2,2",
		"single,10001", "linear,2001", "tree,12,2", "tree,2,64",
	} {
		tp, err := topo.Generate(spec, "")
		if err == nil {
			t.Errorf("Generate(%q) = %d nodes, want an error", spec, len(tp.Nodes))
			continue
		}
		if !topo.IsBadInput(err) {
			t.Errorf("Generate(%q): IsBadInput(%v) = false", spec, err)
		}
		if tp != nil {
			t.Errorf("Generate(%q): topology with the error", spec)
		}
	}
}

func TestGenerateSingle1000(t *testing.T) {
	p := resolveGenerated(t, "single,1000")
	if len(p.Nodes) != 1001 || len(p.Links) != 1000 {
		t.Fatalf("%d nodes, %d links", len(p.Nodes), len(p.Links))
	}
	// 1000 hosts do not fit a /24: the subnet grows to a /22.
	if got := fmt.Sprint(p.Segments[0].Subnets); got != "[10.0.0.0/22]" {
		t.Errorf("subnets = %s, want [10.0.0.0/22]", got)
	}
	seen := map[netip.Addr]string{}
	for _, n := range p.Nodes {
		if n.Kind == topo.KindSwitch {
			continue
		}
		a, ok := n.FirstAddr(4)
		if !ok {
			t.Fatalf("%s has no address", n.Name)
		}
		if o, dup := seen[a]; dup {
			t.Fatalf("%s and %s both have %s", n.Name, o, a)
		}
		seen[a] = n.Name
	}
	if len(seen) != 1000 {
		t.Errorf("%d distinct addresses, want 1000", len(seen))
	}
	if a, _ := node(t, p, "h1000").FirstAddr(4); a.String() != "10.0.3.232" {
		t.Errorf("h1000 has %s, want 10.0.3.232", a)
	}
}

// TestGenerateRoundTrip: a generated topology written as TOML and read
// back resolves to the same plan.
func TestGenerateRoundTrip(t *testing.T) {
	for _, spec := range []string{"single,3", "linear,4", "tree,2,3"} {
		t.Run(spec, func(t *testing.T) {
			tp, err := topo.Generate(spec, "")
			if err != nil {
				t.Fatal(err)
			}
			want, err := topo.Resolve(tp)
			if err != nil {
				t.Fatal(err)
			}
			text, err := tp.TOML()
			if err != nil {
				t.Fatal(err)
			}
			back, err := topo.Decode(spec+".toml", text)
			if err != nil {
				t.Fatalf("Decode of TOML():\n%v\n%s", err, text)
			}
			got, err := topo.Resolve(back)
			if err != nil {
				t.Fatalf("Resolve of TOML():\n%v\n%s", err, text)
			}
			if g, w := summary(got), summary(want); g != w {
				t.Errorf("plans differ\nfrom TOML:\n%s\ngenerated:\n%s", g, w)
			}
		})
	}
}

// summary prints a plan's nodes, interfaces, addresses and routes.
func summary(p *topo.Plan) string {
	var b strings.Builder
	fmt.Fprintf(&b, "lab %s routing %s\n", p.Lab, p.Routing)
	for _, n := range p.Nodes {
		fmt.Fprintf(&b, "%s %s %s bridge=%q\n", n.Name, n.Kind, n.Namespace, n.Bridge)
		for _, i := range n.Ifaces {
			fmt.Fprintf(&b, "  %s #%d -> %s:%s seg %d mtu %d [%s]\n", i.Name, i.Index, i.Peer.Node, i.Peer.Name, i.Segment, i.MTU, addrs(i))
		}
		for _, r := range n.Routes {
			fmt.Fprintf(&b, "  route %s\n", r)
		}
	}
	if h := p.Host; h != nil {
		fmt.Fprintf(&b, "host %s -> %s:%s mtu %d [%s] routes %s\n", h.Host.Name, h.Lab.Node, h.Lab.Name, h.Host.MTU, addrs(h.Host), routes(h.Routes))
	}
	return b.String()
}

// TestTOMLRoundTrip: every good topology written back with TOML() reads
// back to the same plan.
func TestTOMLRoundTrip(t *testing.T) {
	for _, file := range goodFiles(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			want := load(t, file)
			text, err := want.Topology.TOML()
			if err != nil {
				t.Fatal(err)
			}
			back, err := topo.Decode("back.toml", text)
			if err != nil {
				t.Fatalf("Decode of TOML():\n%v\n%s", err, text)
			}
			got, err := topo.Resolve(back)
			if err != nil {
				t.Fatalf("Resolve of TOML():\n%v\n%s", err, text)
			}
			if g, w := summary(got), summary(want); g != w {
				t.Errorf("plans differ\nfrom TOML:\n%s\nfrom %s:\n%s", g, file, w)
			}
		})
	}
}

// resolveString decodes and resolves a topology given as text, with a
// time limit: a resolver that loops fails the test instead of hanging it.
func resolveString(t *testing.T, text string) (*topo.Plan, error) {
	t.Helper()
	tp, err := topo.Decode("t.toml", []byte(text))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	type result struct {
		p   *topo.Plan
		err error
	}
	done := make(chan result, 1)
	go func() {
		p, err := topo.Resolve(tp)
		done <- result{p, err}
	}()
	select {
	case r := <-done:
		return r.p, r.err
	case <-time.After(3 * time.Second):
		t.Fatal("Resolve did not return within 3s")
		return nil, nil
	}
}

// A pool whose subnets are all inside a written subnet is exhausted.
func TestPoolTakenByWrittenSubnet(t *testing.T) {
	_, err := resolveString(t, poolTaken(64))
	want := "t.toml:3:2: addressing: the pool fd00::/48 has no free /64 subnet left for segment 2"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
}

func poolTaken(bits int) string {
	return fmt.Sprintf(`name = "pool"

[addressing]
ipv6 = "fd00::/48"
ipv6_subnet = %d

[[nodes]]
name = "h1"

[[nodes]]
name = "h2"

[[links]]
a = { node = "h1", addresses = ["10.0.0.1/24", "fd00::1/48"] }
b = { node = "h2" }

[[links]]
endpoints = ["h1", "h2"]
`, bits)
}

// Known bug (resolve.go, subnetAlloc.next): the allocator walks the pool
// one subnet at a time, also across a written subnet that covers millions
// of them, so Resolve hangs on this small file (2^48 steps for a /96 in a
// /48 taken by fd00::1/48). It should jump past a taken prefix.
func TestPoolTakenByWrittenSubnetIsFast(t *testing.T) {
	_, err := resolveString(t, poolTaken(96))
	want := "t.toml:3:2: addressing: the pool fd00::/48 has no free /96 subnet left for segment 2"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
}

// A /31 (RFC 3021) or /127 uses both of its addresses: whichever end is
// written, the other end gets the other address.
func TestFill31(t *testing.T) {
	for _, tc := range []struct{ written, want string }{
		{"10.0.0.0/31", "10.0.0.1/31"},
		{"10.0.0.1/31", "10.0.0.0/31"},
		{"fd00::1/127", "10.0.0.2/24 fd00::/127"}, // IPv4 comes from the pool
	} {
		p, err := resolveString(t, `name = "p2p"

[[nodes]]
name = "h1"

[[nodes]]
name = "h2"

[[links]]
a = { node = "h1", addresses = ["`+tc.written+`"] }
b = { node = "h2" }
`)
		if err != nil {
			t.Fatal(err)
		}
		wantAddrs(t, p, "h2", "eth0", tc.want)
	}
}
