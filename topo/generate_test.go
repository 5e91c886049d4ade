package topo_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nslab/nslab/topo"
)

// TestGenerateRouted: the routed fabrics have the sizes of their
// definitions (Al-Fares et al. for the fat-tree), resolve, and read back
// from their TOML to the same plan.
func TestGenerateRouted(t *testing.T) {
	for _, c := range []struct {
		spec                  string
		hosts, routers, links int
		routing               string
		firstRouter, lastHost string
		maxHops               int // the longest path between two hosts, in cables
	}{
		// k^3/4 hosts, 5k^2/4 routers, 3k^3/4 cables.
		{"fattree,2", 2, 5, 6, "", "r1", "h2", 6},
		{"fattree,4", 16, 20, 48, "", "r1", "h16", 6},
		{"fattree,6", 54, 45, 162, "", "r1", "h54", 6},
		{"fattree,16", 1024, 320, 3072, "", "r1", "h1024", 0},
		{"ring,3", 3, 3, 6, "auto", "r1", "h3", 3},
		{"ring,5", 5, 5, 10, "auto", "r1", "h5", 4},
		{"ring,8", 8, 8, 16, "auto", "r1", "h8", 6},
		{"mesh,2", 2, 2, 3, "auto", "r1", "h2", 3},
		{"mesh,4", 4, 4, 10, "auto", "r1", "h4", 3},
		{"mesh,7", 7, 7, 28, "auto", "r1", "h7", 3},
	} {
		t.Run(c.spec, func(t *testing.T) {
			start := time.Now()
			p := resolveGenerated(t, c.spec)
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("generate and resolve took %v", d)
			}
			var hosts, routers int
			for _, n := range p.Nodes {
				switch n.Kind {
				case topo.KindHost:
					hosts++
				case topo.KindRouter:
					routers++
				default:
					t.Errorf("node %s is a %s: a routed fabric has no switch", n.Name, n.Kind)
				}
			}
			if hosts != c.hosts || routers != c.routers || len(p.Links) != c.links {
				t.Errorf("%d hosts, %d routers, %d links; want %d, %d, %d", hosts, routers, len(p.Links), c.hosts, c.routers, c.links)
			}
			if p.Routing != c.routing && !(c.routing == "" && p.Routing == "static") {
				t.Errorf("routing %q, want %q", p.Routing, c.routing)
			}
			if p.Nodes[0].Name != c.firstRouter || p.Nodes[len(p.Nodes)-1].Name != c.lastHost {
				t.Errorf("nodes from %s to %s, want %s to %s", p.Nodes[0].Name, p.Nodes[len(p.Nodes)-1].Name, c.firstRouter, c.lastHost)
			}
			if c.maxHops > 0 {
				checkForwarding(t, p, c.maxHops)
			}
			roundTrip(t, c.spec, p)
		})
	}
}

// roundTrip writes the generated topology as TOML, reads it back and
// compares the plans.
func roundTrip(t *testing.T, spec string, want *topo.Plan) {
	t.Helper()
	tp, err := topo.Generate(spec, "")
	if err != nil {
		t.Fatal(err)
	}
	text, err := tp.TOML()
	if err != nil {
		t.Fatal(err)
	}
	back, err := topo.Decode(spec+".toml", text)
	if err != nil {
		t.Fatalf("Decode of TOML(): %v", err)
	}
	got, err := topo.Resolve(back)
	if err != nil {
		t.Fatalf("Resolve of TOML(): %v", err)
	}
	if g, w := summary(got), summary(want); g != w {
		t.Errorf("plans differ\nfrom TOML:\n%s\ngenerated:\n%s", g, w)
	}
}

// checkForwarding follows, in the plan, a packet from every host to every
// address of every node, and back from the node to the host: each hop
// takes the longest matching prefix among the node's connected subnets and
// routes, and only routers forward. The packet must arrive (a loop never
// does), and between two hosts within maxHops cables, the longest path
// being exactly maxHops (more: a detour). An address is reached by the
// plan's routes alone, as the kernel would forward it.
func checkForwarding(t *testing.T, p *topo.Plan, maxHops int) {
	t.Helper()
	owner := map[netip.Addr]*topo.Node{}
	for _, n := range p.Nodes {
		for _, i := range n.Ifaces {
			for _, a := range i.Addrs {
				owner[a.Addr()] = n
			}
		}
	}
	// walk returns the number of cables from n to dst, or an error.
	walk := func(n *topo.Node, dst netip.Addr) (int, error) {
		path := []string{n.Name}
		for hops := 0; hops <= 2*maxHops; hops++ {
			if owner[dst] == n {
				return hops, nil
			}
			if hops > 0 && n.Kind != topo.KindRouter {
				return 0, fmt.Errorf("%s reached host %s, which does not forward", strings.Join(path, " > "), n.Name)
			}
			next, bits := (*topo.Node)(nil), -1
			for _, i := range n.Ifaces {
				for _, a := range i.Addrs {
					if a.Masked().Contains(dst) && a.Bits() > bits {
						next, bits = owner[dst], a.Bits()
					}
				}
			}
			for _, r := range n.Routes {
				if r.Dst.Contains(dst) && r.Dst.Bits() > bits {
					next, bits = owner[r.Via], r.Dst.Bits()
				}
			}
			if next == nil {
				return 0, fmt.Errorf("%s: %s has no route to %s", strings.Join(path, " > "), n.Name, dst)
			}
			n = next
			path = append(path, n.Name)
		}
		return 0, fmt.Errorf("%s: no arrival at %s within %d cables", strings.Join(path, " > "), dst, 2*maxHops)
	}
	longest := 0
	for _, src := range p.Nodes {
		if src.Kind != topo.KindHost {
			continue
		}
		srcAddr, _ := src.FirstAddr(4)
		for a, dst := range owner {
			h, err := walk(src, a)
			if err != nil {
				t.Fatalf("from %s to %s (%s): %v", src.Name, dst.Name, a, err)
			}
			if _, err := walk(dst, srcAddr); err != nil {
				t.Fatalf("back from %s to %s: %v", dst.Name, src.Name, err)
			}
			if dst.Kind == topo.KindHost && h > longest {
				longest = h
			}
		}
	}
	if longest != maxHops {
		t.Errorf("the longest path between two hosts is %d cables, want %d", longest, maxHops)
	}
}

// The fat-tree's addresses and routes follow the plan in fatTree's doc:
// pod p in 10.p.0.0/16, two-level routes, at most k+1 a router.
func TestGenerateFatTreeAddresses(t *testing.T) {
	p := resolveGenerated(t, "fattree,4")
	// Cores r1-r4, pod 0's aggregation r5 r6 and edge r7 r8, ...
	wantAddrs(t, p, "h1", "eth0", "10.0.0.2/30")
	wantAddrs(t, p, "r7", "eth0", "10.0.0.1/30")
	wantAddrs(t, p, "r7", "eth2", "10.0.128.2/30") // edge 0 up to aggregation 0
	wantAddrs(t, p, "r5", "eth2", "10.0.128.130/30")
	wantAddrs(t, p, "r1", "eth3", "10.3.128.129/30") // core 0 to pod 3
	wantAddrs(t, p, "h16", "eth0", "10.3.1.6/30")
	for name, want := range map[string]string{
		"h1": "default via 10.0.0.1 dev eth0",
		"r7": "default via 10.0.128.1 dev eth2, 10.0.128.0/24 via 10.0.128.1 dev eth2, 10.0.129.0/24 via 10.0.129.1 dev eth3",
		"r5": "default via 10.0.128.129 dev eth2, 10.0.0.0/24 via 10.0.128.2 dev eth0, 10.0.1.0/24 via 10.0.128.6 dev eth1, 10.0.129.0/24 via 10.0.128.2 dev eth0",
		"r1": "10.0.0.0/16 via 10.0.128.130 dev eth0, 10.1.0.0/16 via 10.1.128.130 dev eth1, 10.2.0.0/16 via 10.2.128.130 dev eth2, 10.3.0.0/16 via 10.3.128.130 dev eth3",
	} {
		var rs []string
		for _, r := range node(t, p, name).Routes {
			rs = append(rs, r.String())
		}
		if got := strings.Join(rs, ", "); got != want {
			t.Errorf("%s routes:\n got %s\nwant %s", name, got, want)
		}
	}
	for _, n := range p.Nodes {
		if n.Kind == topo.KindRouter && len(n.Routes) > 5 {
			t.Errorf("%s has %d routes, more than k+1", n.Name, len(n.Routes))
		}
		if n.Kind == topo.KindRouter && fmt.Sprint(n.Sysctls) != "[{net.ipv4.conf.all.rp_filter 0} {net.ipv4.conf.default.rp_filter 0}]" {
			t.Errorf("%s sysctls %v: reverse-path filtering must be off on a multipath fabric", n.Name, n.Sysctls)
		}
	}
}

// Specs out of a routed shape's limits are bad input, with a message that
// says the limit.
func TestGenerateRoutedBad(t *testing.T) {
	for _, c := range []struct{ spec, want string }{
		{"fattree,3", "fattree,3: k must be even"},
		{"fattree,1", "fattree,1: k must be even"},
		{"fattree,0", `"0" is not a positive number`},
		{"fattree,34", "fattree,34: k is at most 32 (8192 hosts, 1280 routers)"},
		{"fattree,4,2", `topology "fattree" takes 1 number(s)`},
		{"ring,2", "ring,2: a ring has at least 3 routers"},
		{"ring,101", "ring,101: at most 100 routers"},
		{"mesh,1", "mesh,1: a mesh has at least 2 routers"},
		{"mesh,33", "mesh,33: at most 32 routers"},
		{"star,3", `unknown topology "star" (known: single,N  linear,N  tree,DEPTH,FANOUT  fattree,K  ring,N  mesh,N)`},
	} {
		tp, err := topo.Generate(c.spec, "")
		if err == nil || tp != nil {
			t.Errorf("Generate(%q) = %v, %v; want an error", c.spec, tp != nil, err)
			continue
		}
		if !topo.IsBadInput(err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Generate(%q): %v (bad input %v), want %q", c.spec, err, topo.IsBadInput(err), c.want)
		}
	}
}
