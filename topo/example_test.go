package topo_test

import (
	"fmt"

	"github.com/nslab/nslab/topo"
)

// Decode reads a topology file; Resolve decides every name, address and
// route. Here a router joins two hosts, and every address is automatic.
func ExampleDecode() {
	const text = `
name = "demo"
routing = "auto"

[[nodes]]
name = "h1"

[[nodes]]
name = "r1"
kind = "router"

[[nodes]]
name = "h2"

[[links]]
endpoints = ["h1", "r1"]

[[links]]
endpoints = ["r1", "h2"]
`
	t, err := topo.Decode("demo.toml", []byte(text))
	if err != nil {
		fmt.Println(err)
		return
	}
	plan, err := topo.Resolve(t)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, n := range plan.Nodes {
		for _, i := range n.Ifaces {
			fmt.Printf("%s %s %s\n", n.Namespace, i.Name, i.Addrs[0])
		}
	}
	for _, r := range plan.Node("h1").Routes {
		fmt.Println("h1 route", r)
	}
	// Output:
	// demo.h1 eth0 10.0.0.2/24
	// demo.r1 eth0 10.0.0.1/24
	// demo.r1 eth1 10.0.1.1/24
	// demo.h2 eth0 10.0.1.2/24
	// h1 route 10.0.1.0/24 via 10.0.0.1 dev eth0
}

// Resolve reports every problem of a topology at once, each placed in its
// file.
func ExampleResolve() {
	const text = `name = "demo"

[[nodes]]
name = "h1"

[[nodes]]
name = "h2"
gateway = "192.168.1.1"

[[links]]
endpoints = ["h1", "hh2"]
`
	t, err := topo.Decode("demo.toml", []byte(text))
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = topo.Resolve(t)
	fmt.Println(err)
	// Output:
	// demo.toml:8:1: node "h2": next hop 192.168.1.1 is not on-link: no interface of the node has an address in its subnet
	// demo.toml:11:20: link h1 -- hh2: unknown node "hh2" (did you mean "h2"?)
}

// Generate makes the built-in topologies Mininet users know.
func ExampleGenerate() {
	t, err := topo.Generate("tree,2,2", "")
	if err != nil {
		fmt.Println(err)
		return
	}
	plan, err := topo.Resolve(t)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(plan.Lab, plan.NodeNames())
	for _, l := range plan.Links {
		fmt.Printf("%s:%s -- %s:%s\n", l.A.Node, l.A.Name, l.B.Node, l.B.Name)
	}
	a, _ := plan.Node("h4").FirstAddr(4)
	fmt.Println("h4", a)

	_, err = topo.Generate("star,3", "")
	fmt.Println(err, topo.IsBadInput(err))
	// Output:
	// tree-2-2 [s1 s2 s3 h1 h2 h3 h4]
	// s1:s2 -- s2:s1
	// s1:s3 -- s3:s1
	// h1:eth0 -- s2:h1
	// h2:eth0 -- s2:h2
	// h3:eth0 -- s3:h3
	// h4:eth0 -- s3:h4
	// h4 10.0.0.4
	// unknown topology "star" (known: single,N  linear,N  tree,DEPTH,FANOUT  fattree,K  ring,N  mesh,N) true
}

// A Builder makes the same Topology as a file, from Go code.
func ExampleNewBuilder() {
	t := topo.NewBuilder("office").
		Switch("sw").
		Router("gw").
		Host("pc1").
		Host("pc2").
		Link("pc1", "sw").
		Link("pc2", "sw").
		Link("gw:lan", "sw").
		Topology()
	plan, err := topo.Resolve(t)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, name := range []string{"gw", "pc1", "pc2"} {
		n := plan.Node(name)
		fmt.Println(name, n.Ifaces[0].Name, n.Ifaces[0].Addrs)
	}
	fmt.Println("bridge", plan.Node("sw").Bridge, "ports:", len(plan.Node("sw").Ifaces))
	// Output:
	// gw lan [10.0.0.1/24]
	// pc1 eth0 [10.0.0.2/24]
	// pc2 eth0 [10.0.0.3/24]
	// bridge sw ports: 3
}
