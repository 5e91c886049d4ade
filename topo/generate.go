package topo

// This file: the built-in topologies (Generate).

import (
	"fmt"
	"strconv"
	"strings"
)

// Generate makes one of the built-in topologies Mininet users know, from a
// spec: "single,N" (one switch s1, hosts h1..hN), "linear,N" (switches
// s1..sN in a chain, host hI on switch sI) or "tree,DEPTH,FANOUT" (a tree
// of switches, FANOUT^DEPTH hosts at its leaves). The lab is named after
// the spec ("single-4") unless name is given.
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
	want := map[string]int{"single": 1, "linear": 1, "tree": 2}
	w, known := want[kind]
	if !known {
		return nil, BadInput(fmt.Errorf("unknown topology %q (known: single,N  linear,N  tree,DEPTH,FANOUT)", kind))
	}
	if len(nums) != w {
		return nil, BadInput(fmt.Errorf("topology %q takes %d number(s): single,N  linear,N  tree,DEPTH,FANOUT", kind, w))
	}
	hosts := nums[0]
	if kind == "tree" {
		hosts = 1
		for i := 0; i < nums[0] && hosts <= 4000; i++ {
			hosts *= nums[1]
		}
	}
	for hosts+2 > 1<<(32-b.t.Addressing.IPv4Subnet) && b.t.Addressing.IPv4Subnet > 8 {
		b.t.Addressing.IPv4Subnet--
	}
	switch kind {
	case "single":
		if nums[0] > maxBridgePorts {
			return nil, BadInput(fmt.Errorf("single,%d: at most %d hosts on one switch (a Linux bridge's port limit); tree,2,%d has more hosts", nums[0], maxBridgePorts, maxBridgePorts/2))
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
