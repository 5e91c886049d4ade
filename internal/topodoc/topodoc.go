package topodoc

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/nslab/nslab/graph"
	"github.com/nslab/nslab/topo"
)

// Page is the path of the page in the repository.
const Page = "docs/topologies.md"

// Generate returns the page for the topology files (*.toml) in the
// directory topologies of the repository at root.
func Generate(root string) ([]byte, error) {
	files, err := filepath.Glob(filepath.Join(root, "topologies", "*.toml"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no topology files in %s", filepath.Join(root, "topologies"))
	}
	sort.Strings(files)
	var b bytes.Buffer
	b.WriteString(`# The example topologies

<!-- Generated from topologies/*.toml by ` + "`make graphs`" + `: do not edit here. -->

Every file in ` + "`topologies/`" + `, drawn by ` + "`nslab graph FILE --format mermaid`" + `.
Hosts are rounded boxes, routers stadiums, NAT gateways hexagons, switches
double-sided boxes and the machine itself (a host attachment) a
parallelogram; each link is labelled with the interface and addresses at
each end (` + "`node:interface address`" + `, a switch port has none), and a thick line
is an impaired link, with what each direction does. The same pictures as
SVG, without Graphviz: ` + "`nslab graph FILE -o FILE.svg`" + ` (see [graph.md](graph.md)).
`)
	for _, f := range files {
		rel := filepath.ToSlash(filepath.Join("topologies", filepath.Base(f)))
		top, err := topo.LoadFile(f)
		if err != nil {
			return nil, err
		}
		plan, err := topo.Resolve(top)
		if err != nil {
			return nil, err
		}
		src, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "\n## %s\n\n", rel)
		if about := summary(string(src), top.Name); about != "" {
			b.WriteString(about + "\n\n")
		}
		fmt.Fprintf(&b, "```\nnslab run %s\n```\n\n", rel)
		b.WriteString("```mermaid\n")
		if err := graph.Write(&b, plan, graph.Mermaid); err != nil {
			return nil, err
		}
		b.WriteString("```\n")
	}
	return b.Bytes(), nil
}

// summary is the first paragraph of the file's leading comment, without
// the "NAME: " it starts with.
func summary(src, name string) string {
	var words []string
	for _, line := range strings.Split(src, "\n") {
		if !strings.HasPrefix(line, "#") {
			break
		}
		text := strings.TrimSpace(strings.TrimPrefix(line, "#"))
		if text == "" {
			break
		}
		words = append(words, text)
	}
	s := strings.TrimPrefix(strings.Join(words, " "), name+": ")
	if s == "" {
		return ""
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
