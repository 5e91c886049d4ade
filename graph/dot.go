package graph

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// dotShape is a role's Graphviz shape and style.
func dotShape(r Role) (shape, style string) {
	switch r {
	case RoleRouter:
		return "ellipse", "filled"
	case RoleSwitch:
		return "box", "filled"
	case RoleNATGateway:
		return "hexagon", "filled"
	case RoleHostAttachment:
		return "house", "filled"
	}
	return "box", "rounded,filled"
}

// WriteDot writes the graph in Graphviz's dot language, an undirected
// graph laid out left to right: `dot -Tsvg` or `dot -Tpng` renders it.
func (g *Graph) WriteDot(w io.Writer) error {
	b := bufio.NewWriter(w)
	fmt.Fprintf(b, "graph %s {\n", dotQuote(g.Lab))
	fmt.Fprintf(b, "  label=%s;\n  labelloc=t;\n  rankdir=LR;\n", dotQuote("lab "+g.Lab))
	b.WriteString("  node [fontname=\"Helvetica\", fontsize=11, penwidth=1.5];\n")
	b.WriteString("  edge [fontname=\"Helvetica\", fontsize=9, color=\"#6b7280\"];\n")
	for _, n := range g.Nodes {
		shape, style := dotShape(n.Role)
		s := styleOf(n.Role)
		fmt.Fprintf(b, "  %s [label=%s, shape=%s, style=%s, fillcolor=%s, color=%s];\n",
			dotQuote(n.ID), dotQuote(strings.Join(n.label(), "\n")), shape, dotQuote(style), dotQuote(s.fill), dotQuote(s.stroke))
	}
	for _, l := range g.Links {
		attrs := "label=" + dotQuote(strings.Join(g.linkLabel(l), "\n"))
		if l.AB != "" || l.BA != "" {
			attrs += ", color=\"#dc2626\", style=bold"
		}
		fmt.Fprintf(b, "  %s -- %s [%s];\n", dotQuote(l.A.Node), dotQuote(l.B.Node), attrs)
	}
	b.WriteString("}\n")
	return b.Flush()
}

// dotQuote writes s as a dot string: quotes and backslashes escaped, a
// newline as dot's centred line break.
func dotQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}
