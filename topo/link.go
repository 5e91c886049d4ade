package topo

import (
	"fmt"
	"strings"
)

// endMatches tells whether interface i is the end e names: its node, and
// its interface when e names one.
func endMatches(e EndpointSpec, i *Iface) bool {
	return i.Node == e.Node && (e.Interface == "" || e.Interface == i.Name)
}

// FindLink returns the cable between a and b, in either order. Each is a
// node name, or "node:interface" where two nodes are joined by more than
// one cable. The error names what is unknown (with the closest known name)
// or ambiguous; it is bad input.
func (p *Plan) FindLink(a, b string) (*Link, error) {
	ea, eb := parseBrief(a), parseBrief(b)
	for _, e := range []EndpointSpec{ea, eb} {
		n := p.Node(e.Node)
		if n == nil {
			return nil, p.UnknownNode(e.Node)
		}
		if e.Interface != "" && n.Iface(e.Interface) == nil {
			return nil, BadInput(fmt.Errorf("node %q has no interface %q%s", e.Node, e.Interface, suggest(e.Interface, ifaceNames(n))))
		}
	}
	var found []*Link
	for _, k := range p.Links {
		if (endMatches(ea, k.A) && endMatches(eb, k.B)) || (endMatches(ea, k.B) && endMatches(eb, k.A)) {
			found = append(found, k)
		}
	}
	switch len(found) {
	case 0:
		return nil, BadInput(fmt.Errorf("no cable between %s and %s in lab %q (%s)", ea, eb, p.Lab, p.cablesOf(ea.Node)))
	case 1:
		return found[0], nil
	}
	var alts []string
	for _, k := range found {
		x, y := k.A, k.B
		if x.Node != ea.Node {
			x, y = y, x
		}
		alts = append(alts, fmt.Sprintf("%s:%s %s:%s", x.Node, x.Name, y.Node, y.Name))
	}
	return nil, BadInput(fmt.Errorf("%d cables join %s and %s: name the interfaces, one of: %s", len(found), ea, eb, strings.Join(alts, "; ")))
}

// cablesOf says what node is cabled to, for error messages.
func (p *Plan) cablesOf(node string) string {
	var peers []string
	for _, k := range p.Links {
		switch node {
		case k.A.Node:
			peers = append(peers, k.B.Node)
		case k.B.Node:
			peers = append(peers, k.A.Node)
		}
	}
	if len(peers) == 0 {
		return fmt.Sprintf("node %q has no cables", node)
	}
	return fmt.Sprintf("node %q is cabled to %s", node, strings.Join(peers, ", "))
}

func ifaceNames(n *Node) []string {
	out := make([]string, len(n.Ifaces))
	for i, f := range n.Ifaces {
		out[i] = f.Name
	}
	return out
}

// String names the cable's ends: "red:eth0 -- v-net-0:red-eth0".
func (k *Link) String() string {
	return fmt.Sprintf("%s:%s -- %s:%s", k.A.Node, k.A.Name, k.B.Node, k.B.Name)
}
