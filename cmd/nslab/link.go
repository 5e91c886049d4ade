package main

// This file: link, a running lab's cables: down and up, and impairments
// shown, set and cleared.

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/impair"
	"github.com/nslab/nslab/topo"
	"github.com/urfave/cli/v2"
)

// linkCommand is `nslab link`.
func (g *globals) linkCommand() *cli.Command {
	return &cli.Command{
		Name:      "link",
		Usage:     "show, impair or pull a cable of a running lab",
		ArgsUsage: "LAB A B (show | set KEY=VALUE... | clear | down | up)",
		Description: `Works on the link between nodes A and B (or NODE:INTERFACE where two nodes
have several) of a lab that is up, at once and without rebuilding anything.

   show            what each direction does now, read from the kernel (tc)
   set K=V...      replace the impairment: the keys and units of the file's
                   [links.impair] table (docs/impairments.md), both directions,
                   or the one from --from NODE; profile=NAME and
                   from.NODE.KEY=VALUE as in the file
   clear           give the plain link back (both directions, or --from's)
   down | up       pull the cable and plug it back (both ends)

A direction is named by the node that sends it and is applied on that
node's end, as tc would be (tc qdisc replace dev IF root ...). set replaces
what a direction had: write every key it should keep.

   nslab link lab h1 s1 set rate=10mbit delay=20ms
   nslab link lab home isp set profile=dsl
   nslab link lab h1 r1 set loss=1% --from h1
   nslab link lab h1 s1 show --json
   nslab link lab h1 s1 clear`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "from", Usage: "only the direction sent by `NODE` (A or B)"},
			&cli.BoolFlag{Name: "json", Usage: "print what the link does as JSON (show, set, clear)"},
		},
		OnUsageError: usageError,
		Action:       g.cmdLink,
	}
}

func (g *globals) cmdLink(c *cli.Context) error {
	const usage = "nslab link LAB A B (show | set KEY=VALUE... | clear | down | up)"
	if c.NArg() < 4 {
		return topo.BadInput(errors.New("usage: " + usage))
	}
	args := c.Args().Slice()
	a, b, verb, words := args[1], args[2], args[3], args[4:]
	if verb != "set" && len(words) > 0 {
		return topo.BadInput(fmt.Errorf("link %s takes no words after it, got %q (usage: %s)", verb, strings.Join(words, " "), usage))
	}
	if err := needCaps(false); err != nil {
		return err
	}
	lab, err := g.openLab(c, args[0])
	if err != nil {
		return err
	}
	k, err := lab.Plan.FindLink(a, b)
	if err != nil {
		return err
	}
	// Both directions, named by their senders, or the one --from sends.
	ab, ba := k.A.Node, k.B.Node
	dirs := [][2]string{{ab, ba}, {ba, ab}}
	if f := c.String("from"); f != "" {
		switch f {
		case ab:
			dirs = dirs[:1]
		case ba:
			dirs = dirs[1:]
		default:
			return topo.BadInput(fmt.Errorf("--from %s: the link's ends are %s and %s", f, ab, ba))
		}
	}
	switch verb {
	case "show":
	case "down", "up":
		if c.IsSet("from") {
			return topo.BadInput(fmt.Errorf("link %s takes both ends: --from does not apply", verb))
		}
		if _, err := lab.SetLink(a, b, verb == "up"); err != nil {
			return err
		}
		fmt.Fprintf(g.stdout, "%s:%s -- %s:%s %s\n", ab, k.A.Name, ba, k.B.Name, verb)
		return nil
	case "clear":
		for _, d := range dirs {
			if _, err := lab.SetImpairment(d[0], d[1], impair.Direction{}); err != nil {
				return err
			}
		}
	case "set":
		if len(words) == 0 {
			return topo.BadInput(errors.New("link set needs KEY=VALUE words, e.g. delay=50ms loss=1% (docs/impairments.md)"))
		}
		set, err := linkWords(words, ab, ba)
		if err != nil {
			return err
		}
		for _, d := range dirs {
			want := set.AB
			if d[0] == ba {
				want = set.BA
			}
			if _, err := lab.SetImpairment(d[0], d[1], want); err != nil {
				return err
			}
		}
	default:
		return topo.BadInput(fmt.Errorf("unknown link word %q (usage: %s)", verb, usage))
	}
	return g.showLink(c, lab, a, b)
}

// linkWords reads set's words for the link between ab and ba: the file's
// keys for both directions, profile=, user= and from.NODE.KEY=.
func linkWords(words []string, ab, ba string) (impair.Link, error) {
	spec, err := impair.ParseSpec(words)
	if err != nil {
		return impair.Link{}, topo.BadInput(err)
	}
	l, ps := spec.Resolve(ab, ba)
	if len(ps) > 0 {
		return impair.Link{}, topo.BadInput(ps)
	}
	return l, nil
}

// showLink prints what the link does now, read back from the kernel.
func (g *globals) showLink(c *cli.Context, lab *emulator.Lab, a, b string) error {
	im, err := lab.Impairment(a, b)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		writeJSON(g.stdout, im)
		return nil
	}
	k := im.Link
	for _, d := range []struct {
		from, to string
		d        impair.Direction
	}{{k.A.Node + ":" + k.A.Name, k.B.Node, im.Now.AB}, {k.B.Node + ":" + k.B.Name, k.A.Node, im.Now.BA}} {
		what := d.d.String()
		if d.d.IsZero() {
			what = "plain"
		}
		fmt.Fprintf(g.stdout, "%s -> %s: %s\n", d.from, d.to, what)
	}
	return nil
}
