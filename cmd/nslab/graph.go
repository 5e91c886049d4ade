package main

// This file: graph: a picture of a lab, from a file, a generator or a lab
// that is up.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nslab/nslab/graph"
	"github.com/nslab/nslab/topo"
	"github.com/urfave/cli/v2"
)

// graphCommand is `nslab graph`.
func (g *globals) graphCommand() *cli.Command {
	return &cli.Command{
		Name:      "graph",
		Usage:     "draw a lab: dot, mermaid, svg or json",
		ArgsUsage: "FILE | --topo SPEC | LAB",
		Description: `Draws a topology file, a built-in topology or a lab that is up: nodes by kind
(host, router, switch, NAT gateway, the machine for a host attachment),
links with the interface names and addresses at each end, NAT profiles,
forwards and link impairments. The SVG needs no Graphviz; dot renders with
Graphviz's dot, mermaid inside a Markdown ` + "```mermaid" + ` block (code-hosting
pages draw it) or with mermaid-cli's mmdc. With -o, the format follows the
file's extension (.dot .gv .mmd .svg .json) unless --format says otherwise.
An argument that is a file, or has a '/' or ends in .toml, is read as a
file; any other names a lab that is up, drawn as it was built (changes
made since with nslab link are in nslab status). See docs/graph.md.

   nslab graph topologies/nat.toml -o nat.svg
   nslab graph topologies/nat.toml --format mermaid
   nslab graph topologies/nat.toml | dot -Tpng > nat.png
   nslab graph --topo tree,2,2 --format svg > tree.svg
   nslab graph lan --format json | jq '.links[] | .a'`,
		Flags: append(topoFlags(),
			&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Usage: "`FORMAT` of the picture: dot, mermaid, svg or json (default: from -o's extension, else dot)"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write to `FILE` instead of stdout"},
		),
		OnUsageError: usageError,
		Action:       g.cmdGraph,
	}
}

// graphExt maps an output file's extension to its format.
var graphExt = map[string]graph.Format{
	".dot": graph.Dot, ".gv": graph.Dot, ".mmd": graph.Mermaid, ".mermaid": graph.Mermaid,
	".svg": graph.SVG, ".json": graph.JSON,
}

func (g *globals) cmdGraph(c *cli.Context) error {
	format := graph.Dot
	if out := c.String("output"); out != "" {
		if f, ok := graphExt[strings.ToLower(filepath.Ext(out))]; ok {
			format = f
		}
	}
	if c.IsSet("format") {
		f, err := graph.ParseFormat(c.String("format"))
		if err != nil {
			return topo.BadInput(fmt.Errorf("--format: %w", err))
		}
		format = f
	}
	plan, err := g.graphPlan(c)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := graph.Write(&buf, plan, format); err != nil {
		return err
	}
	if out := c.String("output"); out != "" && out != "-" {
		if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
			return topo.BadInput(fmt.Errorf("-o: %w", err))
		}
		return nil
	}
	_, err = g.stdout.Write(buf.Bytes())
	return err
}

// graphPlan is the plan to draw: a file's, a generator's (loadPlan), or
// a lab's that is up, read from its record as nslab status reads it. An
// argument that names an existing file, or looks like a path (a '/' or a
// .toml ending), is a file; any other is a lab's name.
func (g *globals) graphPlan(c *cli.Context) (*topo.Plan, error) {
	arg := c.Args().First()
	if c.NArg() == 0 && c.String("topo") == "" {
		return nil, topo.BadInput(errors.New("usage: nslab graph FILE | --topo SPEC | LAB (see `nslab graph --help`)"))
	}
	if c.NArg() != 1 || c.String("topo") != "" || looksLikeFile(arg) {
		return g.loadPlan(c)
	}
	if c.IsSet("name") {
		return nil, topo.BadInput(errors.New("--name renames a file's or a --topo lab, not a lab that is up"))
	}
	lab, err := g.openLab(c, arg)
	if err != nil && topo.IsBadInput(err) {
		return nil, topo.BadInput(fmt.Errorf("%q is not a file, nor a lab that is up: %w", arg, err))
	}
	if err != nil {
		return nil, err
	}
	return lab.Plan, nil
}

func looksLikeFile(arg string) bool {
	if _, err := os.Stat(arg); err == nil {
		return true
	}
	return strings.ContainsRune(arg, '/') || strings.HasSuffix(arg, ".toml")
}
