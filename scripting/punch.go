package scripting

import (
	"context"
	"fmt"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/topo"
)

// punchCommand is `punch A B [via NODE]`: the hole-punch probe of
// emulator.Lab.Punch as a check.
func punchCommand() *Command {
	return &Command{
		Name: "punch", Usage: "punch A B [via NODE]", Check: true, MinArgs: 2, MaxArgs: 4,
		Summary: "A and B, each behind its NAT, connect directly by hole punching",
		Help: `Each peer learns its mapped address from the echo service of the rendezvous
node (via NODE, or the one node with echo ports), the two addresses are
exchanged inside nslab, and both send UDP probes to each other at once,
answering what arrives, as ICE does. Holds when both receive: they connect
without a relay. ` + "`!punch A B`" + ` holds when they do not. docs/nat.md has the grid of
NAT profiles and what each pair gives.`,
		Validate: func(v *Validator, ln *Line, args []string) error {
			errs := []error{v.host(args[0]), v.host(args[1])}
			if args[0] == args[1] {
				errs = append(errs, fmt.Errorf("a node cannot punch a hole to itself (%q twice)", args[0]))
			}
			switch len(args) {
			case 2:
				var echo []string
				for _, n := range v.Plan.Nodes {
					if len(n.Echo) > 0 {
						echo = append(echo, n.Name)
					}
				}
				if len(echo) != 1 {
					errs = append(errs, fmt.Errorf("say which node to meet at (punch %s %s via NODE): %d nodes run an echo service", args[0], args[1], len(echo)))
				}
			case 3:
				errs = append(errs, fmt.Errorf("write `via NODE` after the two peers"))
			case 4:
				if args[2] != "via" {
					errs = append(errs, fmt.Errorf("%q: write `via NODE` after the two peers", args[2]))
				} else if err := v.Source(args[3]); err != nil {
					errs = append(errs, err)
				} else if len(v.Plan.Node(args[3]).Echo) == 0 {
					errs = append(errs, fmt.Errorf("node %q runs no echo service to meet at (add echo = [%d] to it in the topology)", args[3], topo.DefaultEchoPort))
				}
			}
			return v.all(errs...)
		},
		Run: func(ctx context.Context, s *Session, ln *Line, args []string) (Outcome, error) {
			o := Outcome{Want: args[0] + " and " + args[1] + " to connect directly", WantNot: args[0] + " and " + args[1] + " to need a relay"}
			po := emulator.PunchOptions{}
			if len(args) == 4 {
				po.Via = args[3]
			}
			r, err := s.Lab.Punch(ctx, args[0], args[1], po)
			if err != nil {
				return o, err
			}
			o.Held, o.Said = r.Direct, r.String()
			return o, nil
		},
	}
}
