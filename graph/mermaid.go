package graph

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// mermaidShape wraps a label in a role's Mermaid flowchart shape.
func mermaidShape(r Role, label string) string {
	q := `"` + label + `"`
	switch r {
	case RoleRouter:
		return "([" + q + "])" // stadium
	case RoleSwitch:
		return "[[" + q + "]]" // subroutine
	case RoleNATGateway:
		return "{{" + q + "}}" // hexagon
	case RoleHostAttachment:
		return "[/" + q + "/]" // parallelogram
	}
	return "(" + q + ")" // rounded
}

// WriteMermaid writes the graph as a Mermaid flowchart, left to right,
// which code-hosting pages draw from a ```mermaid block in Markdown.
// Mermaid's node IDs are n1, n2, ... in the graph's order.
func (g *Graph) WriteMermaid(w io.Writer) error {
	b := bufio.NewWriter(w)
	b.WriteString("flowchart LR\n")
	ids := map[string]string{}
	byRole := map[Role][]string{}
	for i, n := range g.Nodes {
		id := fmt.Sprintf("n%d", i+1)
		ids[n.ID] = id
		byRole[n.Role] = append(byRole[n.Role], id)
		fmt.Fprintf(b, "  %s%s\n", id, mermaidShape(n.Role, mermaidText(n.label())))
	}
	for _, l := range g.Links {
		arrow := "---"
		if l.AB != "" || l.BA != "" {
			arrow = "===" // a thick line: an impaired link
		}
		fmt.Fprintf(b, "  %s %s|\"%s\"| %s\n", ids[l.A.Node], arrow, mermaidText(g.linkLabel(l)), ids[l.B.Node])
	}
	for _, r := range Roles() {
		if len(byRole[r]) == 0 {
			continue
		}
		s := styleOf(r)
		class := strings.ReplaceAll(string(r), "-", "_")
		fmt.Fprintf(b, "  classDef %s fill:%s,stroke:%s,color:#111827\n", class, s.fill, s.stroke)
		fmt.Fprintf(b, "  class %s %s\n", strings.Join(byRole[r], ","), class)
	}
	return b.Flush()
}

// mermaidText joins lines with <br/> and escapes what would end a quoted
// Mermaid label; an arrow "->" is drawn as "→".
func mermaidText(lines []string) string {
	r := strings.NewReplacer("->", "→", `"`, "#quot;", "<", "#lt;", ">", "#gt;")
	for i, l := range lines {
		lines[i] = r.Replace(l)
	}
	return strings.Join(lines, "<br/>")
}
