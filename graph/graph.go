package graph

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/nslab/nslab/impair"
	"github.com/nslab/nslab/internal/text"
	"github.com/nslab/nslab/topo"
)

// Format is an output format of Write.
type Format string

// The formats.
const (
	Dot     Format = "dot"
	Mermaid Format = "mermaid"
	SVG     Format = "svg"
	JSON    Format = "json"
)

// Formats lists the formats Write knows, in the order help texts name them.
func Formats() []Format { return []Format{Dot, Mermaid, SVG, JSON} }

// ParseFormat reads a format's name ("dot", "mermaid", "svg", "json").
func ParseFormat(s string) (Format, error) {
	var names []string
	for _, f := range Formats() {
		if string(f) == strings.ToLower(s) {
			return f, nil
		}
		names = append(names, string(f))
	}
	return "", fmt.Errorf("unknown format %q (known: %s)", s, strings.Join(names, ", "))
}

// Role is what a node is in the picture, which decides its shape and
// colour.
type Role string

// The roles.
const (
	RoleHost   Role = "host"
	RoleRouter Role = "router"
	RoleSwitch Role = "switch"
	// RoleNATGateway is a node with a [nodes.nat] table.
	RoleNATGateway Role = "nat-gateway"
	// RoleHostAttachment is the machine nslab runs on, joined to the lab
	// by a host attachment ([host]).
	RoleHostAttachment Role = "host-attachment"
)

// Roles lists the roles in the order a legend shows them.
func Roles() []Role {
	return []Role{RoleHost, RoleRouter, RoleNATGateway, RoleSwitch, RoleHostAttachment}
}

// HostID is the ID of the host attachment's node: '@' is not allowed in
// a node name, so it never collides with a lab node (a node may well be
// called "host").
const HostID = "@host"

// Graph is what every format draws.
type Graph struct {
	Lab   string `json:"lab"`
	Nodes []Node `json:"nodes"`
	Links []Link `json:"links"`
}

// Node is a node of the picture.
type Node struct {
	// ID is the node's name, or HostID for the host attachment.
	ID   string `json:"id"`
	Name string `json:"name"`
	Role Role   `json:"role"`
	// Kind is the node's kind as the topology says it ("host", "router",
	// "switch"); "" for the host attachment.
	Kind     topo.Kind `json:"kind,omitempty"`
	NAT      *NAT      `json:"nat,omitempty"`
	Firewall *Firewall `json:"firewall,omitempty"`
	// Echo are the ports of the node's echo service.
	Echo []int `json:"echo,omitempty"`
}

// NAT is a NAT gateway's translation, in the words of the topology file.
type NAT struct {
	Outside string `json:"outside"`
	// Mode is "masquerade", or "snat ADDR" / "snat ADDR-ADDR".
	Mode string `json:"mode"`
	// Profile is the named behaviour ("symmetric", ...), "" when none.
	Profile   string `json:"profile,omitempty"`
	Mapping   string `json:"mapping,omitempty"`
	Filtering string `json:"filtering,omitempty"`
	// Forwards are the port forwards: "tcp 203.0.113.1:8080 -> client1:80".
	Forwards []string `json:"forwards,omitempty"`
}

// Firewall is a node's packet filter, by its policies.
type Firewall struct {
	Input   string `json:"input"`
	Forward string `json:"forward"`
	Output  string `json:"output"`
	Rules   int    `json:"rules"`
}

// Link is an edge: a veth pair, or the host attachment's.
type Link struct {
	A End `json:"a"`
	B End `json:"b"`
	// AB and BA are the impairments of each direction in tc's words
	// ("rate 10Mbit delay 20ms"), "" for a plain direction.
	AB string `json:"ab,omitempty"`
	BA string `json:"ba,omitempty"`
}

// End is one end of a link.
type End struct {
	// Node is the ID of the node the end is in.
	Node      string   `json:"node"`
	Interface string   `json:"interface"`
	Addresses []string `json:"addresses,omitempty"`
}

// New makes the picture of a plan.
func New(p *topo.Plan) *Graph {
	g := &Graph{Lab: p.Lab, Nodes: []Node{}, Links: []Link{}}
	for _, n := range p.Nodes {
		node := Node{ID: n.Name, Name: n.Name, Kind: n.Kind, Echo: n.Echo}
		switch {
		case n.NAT != nil:
			node.Role = RoleNATGateway
			node.NAT = natOf(n.NAT)
		case n.Kind == topo.KindRouter:
			node.Role = RoleRouter
		case n.Kind == topo.KindSwitch:
			node.Role = RoleSwitch
		default:
			node.Role = RoleHost
		}
		if f := n.Firewall; f != nil {
			node.Firewall = &Firewall{Input: f.Input, Forward: f.Forward, Output: f.Output, Rules: len(f.Rules)}
		}
		g.Nodes = append(g.Nodes, node)
	}
	for _, l := range p.Links {
		g.Links = append(g.Links, link(endOf(l.A.Node, l.A), endOf(l.B.Node, l.B), l.Impair))
	}
	if h := p.Host; h != nil {
		g.Nodes = append(g.Nodes, Node{ID: HostID, Name: "host", Role: RoleHostAttachment})
		g.Links = append(g.Links, link(endOf(HostID, h.Host), endOf(h.Lab.Node, h.Lab), h.Impair))
	}
	return g
}

func link(a, b End, im impair.Link) Link {
	return Link{A: a, B: b, AB: im.AB.String(), BA: im.BA.String()}
}

func endOf(id string, i *topo.Iface) End {
	e := End{Node: id, Interface: i.Name}
	for _, a := range i.Addrs {
		e.Addresses = append(e.Addresses, a.String())
	}
	return e
}

func natOf(n *topo.NAT) *NAT {
	out := &NAT{Outside: n.Outside, Mode: "masquerade", Profile: n.Profile,
		Mapping: string(n.Mapping), Filtering: string(n.Filtering)}
	if !n.Masquerade && n.SNATMin.IsValid() {
		out.Mode = "snat " + n.SNATMin.String()
		if n.SNATMax != n.SNATMin {
			out.Mode += "-" + n.SNATMax.String()
		}
	}
	for _, f := range n.Forwards {
		at := ":" + strconv.Itoa(int(f.Port))
		if f.Addr.IsValid() {
			at = f.Addr.String() + at
		}
		to := f.ToAddr.String()
		if f.ToNode != "" {
			to = f.ToNode
		}
		out.Forwards = append(out.Forwards, fmt.Sprintf("%s %s -> %s:%d", f.Proto, at, to, f.ToPort))
	}
	return out
}

// Node returns the node with the ID, or nil.
func (g *Graph) Node(id string) *Node {
	for i := range g.Nodes {
		if g.Nodes[i].ID == id {
			return &g.Nodes[i]
		}
	}
	return nil
}

// Write draws the plan in the format.
func Write(w io.Writer, p *topo.Plan, f Format) error {
	g := New(p)
	switch f {
	case Dot:
		return g.WriteDot(w)
	case Mermaid:
		return g.WriteMermaid(w)
	case SVG:
		return g.WriteSVG(w)
	case JSON:
		return g.WriteJSON(w)
	}
	_, err := ParseFormat(string(f))
	return err
}

// WriteJSON writes the graph as indented JSON.
func (g *Graph) WriteJSON(w io.Writer) error {
	data, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(data, '\n'))
	return err
}

// label is a node's text, one line each: its name, then what it does.
func (n *Node) label() []string {
	lines := []string{n.Name}
	switch n.Role {
	case RoleRouter, RoleSwitch:
		lines = append(lines, string(n.Role))
	case RoleHostAttachment:
		lines = append(lines, "(this machine)")
	}
	if t := n.NAT; t != nil {
		lines = append(lines, "NAT "+t.Mode+" out of "+t.Outside)
		switch {
		case t.Profile != "":
			lines = append(lines, "profile "+t.Profile)
		case t.Mapping != "" || t.Filtering != "":
			lines = append(lines, "mapping "+orDefault(t.Mapping)+", filtering "+orDefault(t.Filtering))
		}
		for _, f := range t.Forwards {
			lines = append(lines, "forward "+f)
		}
	}
	if f := n.Firewall; f != nil {
		lines = append(lines, fmt.Sprintf("firewall in %s fwd %s out %s, %s", f.Input, f.Forward, f.Output, text.Plural(f.Rules, "rule")))
	}
	if len(n.Echo) > 0 {
		ports := make([]string, len(n.Echo))
		for i, p := range n.Echo {
			ports[i] = strconv.Itoa(p)
		}
		lines = append(lines, "echo "+strings.Join(ports, ","))
	}
	return lines
}

func orDefault(s string) string {
	if s == "" {
		return "default"
	}
	return s
}

// endText is an end's "node:iface addr addr".
func (g *Graph) endText(e End) string {
	name := e.Node
	if n := g.Node(e.Node); n != nil {
		name = n.Name
	}
	return strings.Join(append([]string{name + ":" + e.Interface}, e.Addresses...), " ")
}

// label is a link's text, one line each: its two ends, then each
// impaired direction.
func (g *Graph) linkLabel(l Link) []string {
	lines := []string{g.endText(l.A), g.endText(l.B)}
	an, bn := g.endName(l.A), g.endName(l.B)
	if l.AB != "" {
		lines = append(lines, an+" -> "+bn+": "+l.AB)
	}
	if l.BA != "" {
		lines = append(lines, bn+" -> "+an+": "+l.BA)
	}
	return lines
}

func (g *Graph) endName(e End) string {
	if n := g.Node(e.Node); n != nil {
		return n.Name
	}
	return e.Node
}

// style is a role's colours: fill, stroke.
type style struct{ fill, stroke string }

func styleOf(r Role) style {
	switch r {
	case RoleRouter:
		return style{"#dcfce7", "#15803d"}
	case RoleSwitch:
		return style{"#f3f4f6", "#4b5563"}
	case RoleNATGateway:
		return style{"#fef3c7", "#b45309"}
	case RoleHostAttachment:
		return style{"#fce7f3", "#be185d"}
	}
	return style{"#dbeafe", "#1d4ed8"}
}
