package topo_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nslab/nslab/topo"
)

// TestFamilies resolves labs whose nodes, switches and links list the
// address families they take, and checks every address and route: a node
// without "ipv4" gets no IPv4 address, and no IPv4 route goes through it.
func TestFamilies(t *testing.T) {
	for _, tc := range []struct {
		file   string
		addrs  map[string]string // NODE:IF -> addresses
		routes map[string]string // NODE -> routes
	}{
		{
			file: "host_families.toml",
			addrs: map[string]string{
				"h1:eth0": "10.0.0.1/24 fd00:1::1/64",
				"h6:eth0": "fd00:1::2/64", // no IPv4, though the LAN has it
				"h4:eth0": "10.0.0.2/24",  // the next IPv4 address: h6 took none
			},
		},
		{
			// r6 (IPv6 only) comes first in the file, so it is the IPv6
			// next hop between the LANs; IPv4 goes through r1. lan3 is
			// IPv6 only (families on its switch sw3) and takes no IPv4
			// subnet from the pool.
			file: "router_families.toml",
			addrs: map[string]string{
				"r6:eth0": "fd00:2::1/64",
				"r6:eth1": "fd00:2:0:1::1/64",
				"r6:eth2": "fd00:2:0:2::1/64",
				"r1:eth0": "10.0.0.1/24 fd00:2::2/64",
				"r1:eth1": "10.0.1.1/24 fd00:2:0:1::2/64",
				"h1:eth0": "10.0.0.2/24 fd00:2::3/64",
				"h2:eth0": "10.0.1.2/24 fd00:2:0:1::3/64",
				"h3:eth0": "fd00:2:0:2::2/64",
			},
			routes: map[string]string{
				"h1": "10.0.1.0/24 via 10.0.0.1 dev eth0; fd00:2:0:1::/64 via fd00:2::1 dev eth0; fd00:2:0:2::/64 via fd00:2::1 dev eth0",
				"h2": "10.0.0.0/24 via 10.0.1.1 dev eth0; fd00:2::/64 via fd00:2:0:1::1 dev eth0; fd00:2:0:2::/64 via fd00:2:0:1::1 dev eth0",
				"h3": "fd00:2::/64 via fd00:2:0:2::1 dev eth0; fd00:2:0:1::/64 via fd00:2:0:2::1 dev eth0",
				"r6": "",
				"r1": "fd00:2:0:2::/64 via fd00:2::1 dev eth0",
			},
		},
		{
			// The transit link is IPv6 only: it takes no IPv4 subnet, and
			// only IPv6 is routed across it.
			file: "link_families.toml",
			addrs: map[string]string{
				"ra:eth0": "10.0.0.1/24 fd00:3::1/64",
				"ra:eth1": "fd00:3:0:1::1/64",
				"rb:eth0": "fd00:3:0:1::2/64",
				"rb:eth1": "10.0.1.1/24 fd00:3:0:2::1/64",
			},
			routes: map[string]string{
				"ha": "fd00:3:0:1::/64 via fd00:3::1 dev eth0; fd00:3:0:2::/64 via fd00:3::1 dev eth0",
				"ra": "fd00:3:0:2::/64 via fd00:3:0:1::2 dev eth1",
			},
		},
	} {
		t.Run(tc.file, func(t *testing.T) {
			p := load(t, filepath.Join("testdata", "family", tc.file))
			checkPlan(t, p)
			for at, want := range tc.addrs {
				n, i, _ := strings.Cut(at, ":")
				wantAddrs(t, p, n, i, want)
			}
			for n, want := range tc.routes {
				wantRoutes(t, p, n, want)
			}
			// No route of a family goes through an interface without it.
			for _, n := range p.Nodes {
				for _, r := range n.Routes {
					if r.Via.IsValid() && !hasFamilyOn(n.Iface(r.Dev), r.Via.Is4()) {
						t.Errorf("node %s: route %s leaves through %s, which has no address of its family", n.Name, r, r.Dev)
					}
				}
			}
		})
	}
}

func hasFamilyOn(i *topo.Iface, v4 bool) bool {
	for _, a := range i.Addrs {
		if a.Addr().Is4() == v4 {
			return true
		}
	}
	return false
}

// TestFamiliesBuilt checks the Go side: NodeSpec.Families and
// LinkSpec.Families, in a topology built without a file.
func TestFamiliesBuilt(t *testing.T) {
	b := topo.NewBuilder("fam-go").Switch("s1").Host("a").
		Node(topo.NodeSpec{Name: "v6", Families: []string{topo.FamilyIPv6}})
	b.Link("a", "s1").Link("v6", "s1").
		LinkSpec(topo.LinkSpec{Endpoints: []string{"a", "v6"}, Families: []string{topo.FamilyIPv4}})
	top := b.Topology()
	top.Addressing.IPv6 = "fd00:6::/48"
	_, err := topo.Resolve(top)
	if err == nil {
		t.Fatal("a link of IPv4 only to an IPv6-only node resolved")
	}
	if want := `v6:eth1: no address family is left for it: node "v6" has families = ["ipv6"] and link a -- v6 has families = ["ipv4"]`; err.Error() != want {
		t.Errorf("error:\n%v\nwant:\n%s", err, want)
	}
	top.Links = top.Links[:2]
	p, err := topo.Resolve(top)
	if err != nil {
		t.Fatal(err)
	}
	wantAddrs(t, p, "a", "eth0", "10.0.0.1/24 fd00:6::1/64")
	wantAddrs(t, p, "v6", "eth0", "fd00:6::2/64")
	if a, ok := node(t, p, "v6").FirstAddr(4); ok {
		t.Errorf("v6 has IPv4 address %s", a)
	}
}

// TestFamiliesBad checks that a wrong or contradictory families list is
// reported at its place, with every other problem of the file.
func TestFamiliesBad(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []string // LINE:COL: OBJECT: MESSAGE
	}{
		{"bad_values.toml", []string{
			`9:13: node "a": unknown address family "ip6" (did you mean "ipv6"?)`,
			`13:21: node "b": unknown address family "IPv4" (did you mean "ipv4"?)`,
			`17:21: node "c": family "ipv6" is listed twice`,
			`21:1: node "d": families is empty: list "ipv4", "ipv6" or both, or leave it out for every family the lab hands out`,
			`25:13: node "e": unknown address family "6" (did you mean "ipv6"?)`,
			`29:13: link a -- b: unknown address family "ipx" (did you mean "ipv4"?)`,
		}},
		{"bad_conflicts.toml", []string{
			`20:1: node "h6": gateway is an IPv4 default route, but the node has families = ["ipv6"]`,
			`21:11: node "h6": route to 10.9.0.0/16 is IPv4, but the node has families = ["ipv6"]`,
			`28:49: h6:eth0: address 10.0.0.6/24 is IPv4, but node "h6" has families = ["ipv6"]`,
			`32:14: h4:eth0: no address family is left for it: node "h4" has families = ["ipv4"] and link h4 -- s1 has families = ["ipv6"]`,
			`37:1: link s1 -- s2: a link between two switches has no addresses: write families on a switch to cover its whole segment`,
		}},
		{"bad_no_ipv6.toml", []string{
			`6:1: node "h6": families lists "ipv6", but no IPv6 address is written or handed out for it: set addressing.ipv6 for automatic IPv6 addresses, or write one on a link`,
			`16:1: link h1 -- h6: families lists "ipv6", but no IPv6 address is written or handed out for it: set addressing.ipv6 for automatic IPv6 addresses, or write one on a link`,
		}},
		{"bad_disabled.toml", []string{
			`9:1: node "a": families lists "ipv4", but no IPv4 address is written or handed out for it: addressing.disable is set, so write one on a link`,
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			file := filepath.Join("testdata", "family", tc.file)
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			_, err = decodeResolve(file, data)
			if !topo.IsBadInput(err) {
				t.Fatalf("got %v, want bad input", err)
			}
			var ps topo.Problems
			if !errors.As(err, &ps) {
				t.Fatalf("error is %T, not Problems: %v", err, err)
			}
			var got []string
			for _, p := range ps {
				if p.File != file {
					t.Errorf("problem %q: File = %q, want %q", p.Msg, p.File, file)
				}
				got = append(got, fmt.Sprintf("%d:%d: %s: %s", p.Pos.Line, p.Pos.Col, p.Object, p.Msg))
			}
			if g, w := strings.Join(got, "\n"), strings.Join(tc.want, "\n"); g != w {
				t.Errorf("problems:\n%s\nwant:\n%s", g, w)
			}
		})
	}
}
