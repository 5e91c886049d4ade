package main

// This file: validate and generate: topology files, with no lab built.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/impair"
	"github.com/nslab/nslab/topo"
	"github.com/urfave/cli/v2"
)

// validateCommand is `nslab validate`.
func (g *globals) validateCommand() *cli.Command {
	return &cli.Command{
		Name:      "validate",
		Usage:     "check a topology file and create nothing",
		ArgsUsage: "FILE...",
		Description: `Decodes the file strictly (an unknown key is an error) and validates it,
listing every problem with file:line:column. The file's [test] script, or
the --script given, is checked against it too (unknown nodes and commands,
malformed durations and patterns). Exit 0 when valid, 2 when not.

   nslab validate topologies/*.toml
   nslab validate topologies/lan.toml --script topologies/lan.nsl`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "plan", Usage: "print the resolved addresses and routes"},
			&cli.StringFlag{Name: "script", Usage: "check the script in `FILE` against each topology"},
		},
		OnUsageError: usageError,
		Action:       g.cmdValidate,
	}
}

// generateCommand is `nslab generate`.
func (g *globals) generateCommand() *cli.Command {
	return &cli.Command{
		Name:      "generate",
		Usage:     "print the TOML of a built-in topology",
		ArgsUsage: "SPEC",
		Description: `Prints the file equivalent to --topo SPEC, to edit and keep, or writes it
to a file with -o. SPEC is one of:

   single,N             N hosts on one switch (at most 10000)
   linear,N             N switches in a chain, a host on each
   tree,DEPTH,FANOUT    a tree of switches, FANOUT^DEPTH hosts at its leaves
   fattree,K            a k-ary fat-tree of routers (K even, 2-32): (K/2)^2 core,
                        K pods of K/2 aggregation and K/2 edge routers, K/2 hosts
                        on each edge router; static two-level routes
   ring,N               N routers in a ring (3-100), a host on each; routing = "auto"
   mesh,N               N routers each cabled to every other (2-32), a host on each

The first three are one L2 segment, as in Mininet; the last three are
routed, so their loops need no spanning tree (docs/topology.md).

   nslab generate single,3 > my.toml
   nslab generate tree,2,3 --name campus
   nslab generate fattree,4 -o fattree.toml`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "name", Usage: "lab `NAME` (default: the spec, e.g. fattree-4)"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the TOML to `FILE` instead of stdout"},
		},
		OnUsageError: usageError,
		Action:       g.cmdGenerate,
	}
}

func (g *globals) cmdValidate(c *cli.Context) error {
	if c.NArg() == 0 {
		return topo.BadInput(errors.New("usage: nslab validate FILE..."))
	}
	var errs []error
	for _, f := range c.Args().Slice() {
		t, err := loadFile(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		plan, err := topo.Resolve(t)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		script, err := loadScript(c, plan)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := emulator.CheckCapture(plan); err != nil {
			errs = append(errs, err)
			continue
		}
		checked := ""
		if script != nil {
			checked = fmt.Sprintf("; its script (%d lines) fits it", len(script.Lines))
		}
		fmt.Fprintf(g.stdout, "%s: lab %s is valid: %s%s\n", f, plan.Lab, summarize(plan, 0).shape(), checked)
		if c.Bool("plan") {
			printPlan(g.stdout, plan)
		}
	}
	if len(errs) > 0 {
		return topo.BadInput(errors.Join(errs...))
	}
	return nil
}

func printPlan(w io.Writer, p *topo.Plan) {
	for _, n := range p.Nodes {
		switch {
		case n.Bridge != "":
			fmt.Fprintf(w, "  %s (%s, netns %s, bridge %s)\n", n.Name, n.Kind, n.Namespace, n.Bridge)
		case n.Datapath == topo.DatapathEBPF:
			fmt.Fprintf(w, "  %s (%s, netns %s, eBPF learning switch)\n", n.Name, n.Kind, n.Namespace)
		default:
			fmt.Fprintf(w, "  %s (%s, netns %s)\n", n.Name, n.Kind, n.Namespace)
		}
		for _, i := range n.Ifaces {
			var as []string
			for _, a := range i.Addrs {
				as = append(as, a.String())
			}
			peer := ""
			if i.Peer != nil {
				peer = fmt.Sprintf(" -> %s:%s", orHost(i.Peer.Node), i.Peer.Name)
			}
			fmt.Fprintf(w, "    %s%s %s\n", i.Name, peer, strings.Join(as, " "))
		}
		for _, r := range n.Routes {
			fmt.Fprintf(w, "    route %s\n", r)
		}
		if len(n.Echo) > 0 {
			fmt.Fprintf(w, "    echo service on udp and tcp %s\n", strings.Trim(fmt.Sprint(n.Echo), "[]"))
		}
		if n.NAT != nil {
			profile := ""
			if n.NAT.Profile != "" {
				profile = ", profile " + n.NAT.Profile
			}
			fmt.Fprintf(w, "    nat out of %s%s\n", n.NAT.Outside, profile)
		}
	}
	for _, k := range p.Links {
		printImpair(w, k.A.Node, k.B.Node, k.Impair)
	}
	if h := p.Host; h != nil {
		var as []string
		for _, a := range h.Host.Addrs {
			as = append(as, a.String())
		}
		fmt.Fprintf(w, "  host attachment (in the namespace nslab runs in)\n    %s -> %s:%s %s\n", h.Host.Name, h.Lab.Node, h.Lab.Name, strings.Join(as, " "))
		for _, r := range h.Routes {
			fmt.Fprintf(w, "    route %s\n", r)
		}
		printImpair(w, topo.HostEnd, h.Lab.Node, h.Impair)
	}
}

func orHost(s string) string {
	if s == "" {
		return "host"
	}
	return s
}

func (g *globals) cmdGenerate(c *cli.Context) error {
	if c.NArg() != 1 {
		return topo.BadInput(fmt.Errorf("usage: nslab generate SPEC [--name NAME] [-o FILE] (SPEC: %s)", topo.GenerateSpecs))
	}
	if c.IsSet("name") {
		if err := topo.CheckLabName(c.String("name")); err != nil {
			return topo.BadInput(fmt.Errorf("--name: %w", err))
		}
	}
	t, err := topo.Generate(c.Args().First(), c.String("name"))
	if err != nil {
		return err
	}
	data, err := t.TOML()
	if err != nil {
		return err
	}
	// Where the file came from, for whoever edits it later.
	data = append([]byte(fmt.Sprintf("# nslab generate %s: see \"Built-in topologies\" in docs/topology.md\n", strings.TrimSpace(c.Args().First()))), data...)
	out := c.String("output")
	if out == "" {
		_, err = g.stdout.Write(data)
		return err
	}
	plan, err := topo.Resolve(t)
	if err != nil {
		return fmt.Errorf("generated %s does not resolve: %w", t.Name, err)
	}
	if err := os.WriteFile(out, data, 0o644); err != nil {
		return fmt.Errorf("generate %s: %w", t.Name, err)
	}
	fmt.Fprintf(g.stdout, "%s: lab %s: %s\n", out, plan.Lab, summarize(plan, 0).shape())
	return nil
}

// printImpair prints a link's impairment, a line per direction that has
// one, in tc's words: "  impair a -> s1: rate 10Mbit delay 20ms".
func printImpair(w io.Writer, a, b string, l impair.Link) {
	for _, d := range []struct {
		from, to string
		d        impair.Direction
	}{{a, b, l.AB}, {b, a, l.BA}} {
		if !d.d.IsZero() {
			fmt.Fprintf(w, "  impair %s -> %s: %s\n", d.from, d.to, d.d)
		}
	}
}
