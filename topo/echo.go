package topo

import "fmt"

// DefaultEchoPort is the port a hole punch asks the rendezvous's echo
// service on when none is given: STUN's port, 3478.
const DefaultEchoPort = 3478

// echoPorts checks a node's echo = [...] list: ports 1-65535, each once,
// on a node that has addresses.
func (r *resolver) echoPorts(path, obj string, n *Node, ports []int) []int {
	if len(ports) == 0 {
		return nil
	}
	c := r.c
	if n.Kind == KindSwitch {
		c.add(path+".echo", obj, "a switch has no address to serve on: give echo to a host or router")
		return nil
	}
	var out []int
	first := map[int]int{}
	for j, p := range ports {
		ppath := fmt.Sprintf("%s.echo[%d]", path, j)
		if p < 1 || p > 65535 {
			c.add(ppath, obj, "echo port %d is outside 1-65535", p)
			continue
		}
		if k, dup := first[p]; dup {
			c.add(ppath, obj, "echo port %d is listed twice (entries %d and %d)", p, k+1, j+1)
			continue
		}
		first[p] = j
		out = append(out, p)
	}
	return out
}

// Echo makes node run nslab's echo service on ports (UDP and TCP) once
// the lab is up, as echo = [...] in a file does; with no ports, on
// DefaultEchoPort.
func (b *Builder) Echo(node string, ports ...int) *Builder {
	if len(ports) == 0 {
		ports = []int{DefaultEchoPort}
	}
	for i := range b.t.Nodes {
		if b.t.Nodes[i].Name == node {
			b.t.Nodes[i].Echo = append(b.t.Nodes[i].Echo, ports...)
		}
	}
	return b
}
