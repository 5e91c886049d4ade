package topo

// This file: the built-in topologies (Generate).

import (
	"fmt"
	"strconv"
	"strings"
)

// GenerateSpecs lists the specs Generate knows, as usage text.
// maxSingle bounds single,N: 10,000 hosts, the largest lab nslab is
// measured with (docs/performance.md).
const maxSingle = 10000

const GenerateSpecs = "single,N  linear,N  tree,DEPTH,FANOUT  fattree,K  ring,N  mesh,N"

// Generate makes one of the built-in topologies, from a spec. Mininet's:
// "single,N" (one switch s1, hosts h1..hN), "linear,N" (switches s1..sN in
// a chain, host hI on switch sI) and "tree,DEPTH,FANOUT" (a tree of
// switches, FANOUT^DEPTH hosts at its leaves), each one L2 segment; and
// routed fabrics, whose loops a bridge without STP could not carry:
// "fattree,K" (a k-ary fat-tree of routers r1.. with K^3/4 hosts, see
// fatTree), "ring,N" (routers r1..rN in a ring, host hI on router rI) and
// "mesh,N" (N routers, each cabled to every other, host hI on rI). The lab
// is named after the spec ("single-4") unless name is given. A spec out of
// a shape's limits is bad input (IsBadInput).
func Generate(spec, name string) (*Topology, error) {
	parts := strings.Split(spec, ",")
	nums := make([]int, 0, len(parts)-1)
	for _, p := range parts[1:] {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 1 {
			return nil, BadInput(fmt.Errorf("topology spec %q: %q is not a positive number", spec, p))
		}
		nums = append(nums, n)
	}
	kind := strings.TrimSpace(parts[0])
	if name == "" {
		name = kind
		for _, n := range nums {
			name += "-" + strconv.Itoa(n)
		}
	}
	b := NewBuilder(name)
	// Every generated lab is one L2 segment: size its subnet for the hosts,
	// as Mininet does with 10.0.0.0/8.
	b.t.Addressing = Addressing{IPv4: "10.0.0.0/8", IPv4Subnet: 24}
	want := map[string]int{"single": 1, "linear": 1, "tree": 2, "fattree": 1, "ring": 1, "mesh": 1}
	w, known := want[kind]
	if !known {
		return nil, BadInput(fmt.Errorf("unknown topology %q (known: %s)", kind, GenerateSpecs))
	}
	if len(nums) != w {
		return nil, BadInput(fmt.Errorf("topology %q takes %d number(s): %s", kind, w, GenerateSpecs))
	}
	switch kind {
	case "fattree":
		return fatTree(b, nums[0])
	case "ring":
		return ring(b, nums[0])
	case "mesh":
		return mesh(b, nums[0])
	}
	hosts := nums[0]
	if kind == "tree" {
		hosts = 1
		for i := 0; i < nums[0] && hosts <= maxSingle; i++ {
			hosts *= nums[1]
		}
	}
	for hosts+2 > 1<<(32-b.t.Addressing.IPv4Subnet) && b.t.Addressing.IPv4Subnet > 8 {
		b.t.Addressing.IPv4Subnet--
	}
	switch kind {
	case "single":
		// Past 1,000 hosts the switch is a chain of bridges (Trunk).
		if nums[0] > maxSingle {
			return nil, BadInput(fmt.Errorf("single,%d: at most %d hosts on one switch", nums[0], maxSingle))
		}
		b.Switch("s1")
		for i := 1; i <= nums[0]; i++ {
			b.Host("h" + strconv.Itoa(i))
		}
		for i := 1; i <= nums[0]; i++ {
			b.Link("h"+strconv.Itoa(i), "s1")
		}
	case "linear":
		n := nums[0]
		if n > 2000 {
			return nil, BadInput(fmt.Errorf("linear,%d: at most 2000 switches", n))
		}
		for i := 1; i <= n; i++ {
			b.Switch("s" + strconv.Itoa(i))
		}
		for i := 1; i <= n; i++ {
			b.Host("h" + strconv.Itoa(i))
		}
		for i := 1; i <= n; i++ {
			b.Link("h"+strconv.Itoa(i), "s"+strconv.Itoa(i))
		}
		for i := 2; i <= n; i++ {
			b.Link("s"+strconv.Itoa(i-1), "s"+strconv.Itoa(i))
		}
	case "tree":
		depth, fan := nums[0], nums[1]
		hosts, switches, width := 1, 0, 1
		for i := 0; i < depth; i++ {
			switches += width
			width *= fan
			hosts *= fan
			if hosts > 4000 || switches > 4000 {
				return nil, BadInput(fmt.Errorf("tree,%d,%d: more than 4000 hosts or switches", depth, fan))
			}
		}
		// Switches level by level, breadth first: s1 is the root.
		level := []string{"s1"}
		b.Switch("s1")
		next := 2
		var links [][2]string
		for d := 1; d < depth; d++ {
			var lower []string
			for _, parent := range level {
				for f := 0; f < fan; f++ {
					s := "s" + strconv.Itoa(next)
					next++
					b.Switch(s)
					links = append(links, [2]string{parent, s})
					lower = append(lower, s)
				}
			}
			level = lower
		}
		h := 1
		for _, parent := range level {
			for f := 0; f < fan; f++ {
				name := "h" + strconv.Itoa(h)
				h++
				b.Host(name)
				links = append(links, [2]string{name, parent})
			}
		}
		for _, l := range links {
			b.Link(l[0], l[1])
		}
	}
	return b.Topology(), nil
}

// The limits of the routed shapes: a fat-tree's k = 32 is 8,192 hosts and
// 1,280 routers; the far side of a ring of N is N/2+1 routers away, which
// must stay within the 64 hops of a packet's TTL (and automatic routing
// gives every node of a ring a route per subnet: 4N^2 routes, 40,000 at
// N = 100); a mesh's nodes have a route per subnet too (N^3, 32,768 at
// N = 32).
const (
	maxFatTreeK = 32
	maxRing     = 100
	maxMesh     = 32
)

// multipathSysctls turn reverse-path filtering off on a router of a fabric
// with loops: a reply may come back over another path than its request
// went (the fat-tree goes up by the destination's pod, a ring breaks ties
// between its two ways by file order), and a strict filter (rp_filter = 1,
// which some distributions set and new namespaces inherit) would drop it.
func multipathSysctls() map[string]string {
	return map[string]string{"net.ipv4.conf.all.rp_filter": "0", "net.ipv4.conf.default.rp_filter": "0"}
}

// fatTree makes the k-ary fat-tree of Al-Fares, Loukissas and Vahdat (A
// Scalable, Commodity Data Center Network Architecture, SIGCOMM 2008) as an
// L3 fabric: every switch of the paper is a router, so its loops carry no
// broadcast. (k/2)^2 core routers, then k pods of k/2 aggregation and k/2
// edge routers, k/2 hosts on each edge router: k^3/4 hosts, 5k^2/4 routers.
// Names follow that order: cores r1.., then pod by pod its aggregation
// routers and its edge routers; hosts h1.. pod by pod, edge by edge.
//
// Addresses follow the paper's plan, pod p in 10.p.0.0/16, each cable a
// /30 (lower address up the tree):
//
//	host i of edge e:       10.p.e.4i/30             (edge .4i+1, host .4i+2)
//	edge e to aggregation a: 10.p.(128+a).4e/30       (aggregation .4e+1, edge .4e+2)
//	aggregation a to core j: 10.p.(128+a).(128+4j)/30 (core .+1, aggregation .+2)
//
// where core j of group a (core a*k/2+j) joins aggregation router a of
// every pod. Routing is static and two-level as in the paper, k+1 routes a
// router at most: a core routes each pod's /16 down to that pod's
// aggregation router; an aggregation router routes each edge's 10.p.e.0/24
// down to it, the other aggregation routers' /24 through edge 0, and the
// rest up to core p mod k/2 of its group; an edge router routes each
// aggregation router's /24 to it and the rest up to aggregation router e;
// a host's gateway is its edge router. Traffic spreads over the cores by
// edge and pod, with no ECMP.
func fatTree(b *Builder, k int) (*Topology, error) {
	switch {
	case k%2 != 0:
		return nil, BadInput(fmt.Errorf("fattree,%d: k must be even (a switch of the fat-tree has k ports, half down and half up)", k))
	case k > maxFatTreeK:
		return nil, BadInput(fmt.Errorf("fattree,%d: k is at most %d (%d hosts, %d routers)", k, maxFatTreeK, maxFatTreeK*maxFatTreeK*maxFatTreeK/4, 5*maxFatTreeK*maxFatTreeK/4))
	}
	b.t.Addressing = Addressing{} // every address is written
	m := k / 2
	ip := func(p, x, y int) string { return fmt.Sprintf("10.%d.%d.%d", p, x, y) }
	core := func(a, j int) string { return "r" + strconv.Itoa(1+a*m+j) }
	agg := func(p, a int) string { return "r" + strconv.Itoa(1+m*m+p*k+a) }
	edge := func(p, e int) string { return "r" + strconv.Itoa(1+m*m+p*k+m+e) }
	host := func(p, e, i int) string { return "h" + strconv.Itoa(1+p*m*m+e*m+i) }
	cable := func(a, aAddr, z, zAddr string) {
		b.LinkSpec(LinkSpec{
			A: &EndpointSpec{Node: a, Addresses: []string{aAddr + "/30"}},
			B: &EndpointSpec{Node: z, Addresses: []string{zAddr + "/30"}},
		})
	}
	router := func(name, gateway string, routes []RouteSpec) {
		b.Node(NodeSpec{Name: name, Kind: KindRouter, Gateway: gateway, Routes: routes, Sysctls: multipathSysctls()})
	}
	for a := 0; a < m; a++ {
		for j := 0; j < m; j++ {
			var rs []RouteSpec
			for p := 0; p < k; p++ {
				rs = append(rs, RouteSpec{To: fmt.Sprintf("10.%d.0.0/16", p), Via: ip(p, 128+a, 128+4*j+2)})
			}
			router(core(a, j), "", rs)
		}
	}
	for p := 0; p < k; p++ {
		for a := 0; a < m; a++ {
			var rs []RouteSpec
			for e := 0; e < m; e++ {
				rs = append(rs, RouteSpec{To: ip(p, e, 0) + "/24", Via: ip(p, 128+a, 4*e+2)})
			}
			for o := 0; o < m; o++ {
				if o != a {
					rs = append(rs, RouteSpec{To: ip(p, 128+o, 0) + "/24", Via: ip(p, 128+a, 2)})
				}
			}
			router(agg(p, a), ip(p, 128+a, 128+4*(p%m)+1), rs)
		}
		for e := 0; e < m; e++ {
			var rs []RouteSpec
			for a := 0; a < m; a++ {
				rs = append(rs, RouteSpec{To: ip(p, 128+a, 0) + "/24", Via: ip(p, 128+a, 4*e+1)})
			}
			router(edge(p, e), ip(p, 128+e, 4*e+1), rs)
		}
	}
	for p := 0; p < k; p++ {
		for e := 0; e < m; e++ {
			for i := 0; i < m; i++ {
				b.Node(NodeSpec{Name: host(p, e, i), Gateway: ip(p, e, 4*i+1)})
			}
		}
	}
	for p := 0; p < k; p++ {
		for e := 0; e < m; e++ {
			for i := 0; i < m; i++ {
				cable(edge(p, e), ip(p, e, 4*i+1), host(p, e, i), ip(p, e, 4*i+2))
			}
		}
	}
	for p := 0; p < k; p++ {
		for a := 0; a < m; a++ {
			for e := 0; e < m; e++ {
				cable(agg(p, a), ip(p, 128+a, 4*e+1), edge(p, e), ip(p, 128+a, 4*e+2))
			}
		}
	}
	for p := 0; p < k; p++ {
		for a := 0; a < m; a++ {
			for j := 0; j < m; j++ {
				cable(core(a, j), ip(p, 128+a, 128+4*j+1), agg(p, a), ip(p, 128+a, 128+4*j+2))
			}
		}
	}
	return b.Topology(), nil
}

// routedHosts adds routers r1..rN and hosts h1..hN, host hI cabled to
// router rI, with automatic routing and a /24 from 10.0.0.0/8 for each
// cable: the start of a ring and of a mesh.
func routedHosts(b *Builder, n int) {
	b.t.Routing = "auto"
	b.t.Addressing = Addressing{IPv4: "10.0.0.0/8", IPv4Subnet: 24}
	for i := 1; i <= n; i++ {
		b.Node(NodeSpec{Name: "r" + strconv.Itoa(i), Kind: KindRouter, Sysctls: multipathSysctls()})
	}
	for i := 1; i <= n; i++ {
		b.Host("h" + strconv.Itoa(i))
	}
	for i := 1; i <= n; i++ {
		b.Link("h"+strconv.Itoa(i), "r"+strconv.Itoa(i))
	}
}

// ring makes routers r1..rN cabled in a ring (rI to rI+1, rN to r1), host
// hI on router rI, with automatic routing: the shorter way round, ties
// (the far side of an even ring) broken by file order.
func ring(b *Builder, n int) (*Topology, error) {
	switch {
	case n < 3:
		return nil, BadInput(fmt.Errorf("ring,%d: a ring has at least 3 routers", n))
	case n > maxRing:
		return nil, BadInput(fmt.Errorf("ring,%d: at most %d routers (the far side is N/2+1 routers away, within a TTL of 64; and automatic routing gives each node a route per subnet)", n, maxRing))
	}
	routedHosts(b, n)
	for i := 1; i <= n; i++ {
		b.Link("r"+strconv.Itoa(i), "r"+strconv.Itoa(i%n+1))
	}
	return b.Topology(), nil
}

// mesh makes N routers each cabled to every other (N(N-1)/2 cables), host
// hI on router rI, with automatic routing: every host is two routers from
// every other.
func mesh(b *Builder, n int) (*Topology, error) {
	switch {
	case n < 2:
		return nil, BadInput(fmt.Errorf("mesh,%d: a mesh has at least 2 routers", n))
	case n > maxMesh:
		return nil, BadInput(fmt.Errorf("mesh,%d: at most %d routers (%d cables, and automatic routing gives each of the %d nodes a route per subnet)", n, maxMesh, n*(n-1)/2, 2*n))
	}
	routedHosts(b, n)
	for i := 1; i <= n; i++ {
		for j := i + 1; j <= n; j++ {
			b.Link("r"+strconv.Itoa(i), "r"+strconv.Itoa(j))
		}
	}
	return b.Topology(), nil
}
