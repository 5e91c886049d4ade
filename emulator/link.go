package emulator

import (
	"fmt"
	"strings"
)

// End names one end of a cable as a user writes it: "node" or
// "node:interface".
type End struct {
	Node, Iface string
}

// ParseEnd splits "node:interface" (or a bare "node").
func ParseEnd(s string) End {
	n, i, _ := strings.Cut(s, ":")
	return End{Node: n, Iface: i}
}

func (e End) String() string {
	if e.Iface == "" {
		return e.Node
	}
	return e.Node + ":" + e.Iface
}

func (e End) matches(i *Iface) bool {
	return i.Node == e.Node && (e.Iface == "" || e.Iface == i.Name)
}

// FindLink returns the cable between a and b, in either order. Each is a
// node name, or "node:interface" where two nodes are joined by more than
// one cable. The error names what is unknown (with the closest known name)
// or ambiguous; it is bad input.
func (p *Plan) FindLink(a, b string) (*Link, error) {
	ea, eb := ParseEnd(a), ParseEnd(b)
	for _, e := range []End{ea, eb} {
		n := p.Node(e.Node)
		if n == nil {
			return nil, BadInput(fmt.Errorf("no node %q in lab %q%s", e.Node, p.Lab, suggest(e.Node, p.NodeNames())))
		}
		if e.Iface != "" && n.Iface(e.Iface) == nil {
			return nil, BadInput(fmt.Errorf("node %q has no interface %q%s", e.Node, e.Iface, suggest(e.Iface, ifaceNames(n))))
		}
	}
	var found []*Link
	for _, k := range p.Links {
		if (ea.matches(k.A) && eb.matches(k.B)) || (ea.matches(k.B) && eb.matches(k.A)) {
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
