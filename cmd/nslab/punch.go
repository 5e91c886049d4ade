package main

import (
	"fmt"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/topo"
	"github.com/urfave/cli/v2"
)

// punchCommand is `nslab punch`: a UDP hole punch between two hosts.
func (g *globals) punchCommand() *cli.Command {
	return &cli.Command{
		Name:      "punch",
		Usage:     "can two hosts behind NATs talk directly? a UDP hole punch, in process",
		ArgsUsage: "LAB A B [--via NODE]",
		Description: `Punches a UDP hole between hosts A and B the way P2P software (STUN, ICE)
does, from sockets opened inside the two nodes:

  1. each peer learns its mapped address and port (what its NATs turned its
     socket into) from the echo service of the rendezvous node NODE, a node
     with echo = [3478] in the topology;
  2. the two learned endpoints are exchanged inside nslab (the signalling
     channel of real software), not over the lab network;
  3. both peers send probes to each other's learned endpoint, --rounds
     rounds --interval apart (at once, or --first NODE first); a peer that
     receives a probe answers to the address it came from.

The punch is direct when each peer received the other's probes. The output
shows, for each peer, its socket, the endpoint it learned, and the source
the other peer actually saw: when these two differ, its NAT maps per
destination (symmetric). The outcome for every pair of NAT profiles is in
docs/nat.md, "Hole punching".

Exit 0 when the punch is direct, 1 when the peers need a relay, 2 on bad
input (A or B not a host, A twice, a rendezvous with no echo service or
that a peer cannot reach, an unknown lab or node).

   nslab up topologies/p2p.toml
   nslab punch p2p alice bob --via rendezvous
   nslab punch p2p alice bob --first bob --json`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "via", Usage: "rendezvous `NODE` with an echo service (default: the one node that has echo ports)"},
			&cli.IntFlag{Name: "port", Usage: "the rendezvous's echo `PORT` (default: its first echo port)"},
			&cli.BoolFlag{Name: "udp", Usage: "punch over UDP (the default and only protocol: what P2P software punches with)"},
			&cli.StringFlag{Name: "first", Usage: "`NODE` (A or B) that sends first; the other starts half an interval later (default: both at once)"},
			&cli.IntFlag{Name: "rounds", Value: emulator.DefaultPunchRounds, Usage: "probes each peer sends"},
			&cli.DurationFlag{Name: "interval", Value: emulator.DefaultPunchInterval, Usage: "time between a peer's probes"},
			&cli.DurationFlag{Name: "timeout", Value: emulator.DefaultPunchTimeout, Usage: "bound on the whole punch, learning the mappings included"},
			&cli.BoolFlag{Name: "json", Usage: "print the result as JSON"},
		},
		OnUsageError: func(c *cli.Context, err error, _ bool) error {
			return topo.BadInput(fmt.Errorf("%w (see `nslab %s --help`)", err, c.Command.FullName()))
		},
		Action: g.cmdPunch,
	}
}

func (g *globals) cmdPunch(c *cli.Context) error {
	lab, err := g.withLab(c, 3, "nslab punch LAB A B [--via NODE]", false)
	if err != nil {
		return err
	}
	if n := c.Int("rounds"); n < 1 {
		return topo.BadInput(fmt.Errorf("--rounds %d: give at least 1", n))
	}
	for _, f := range []string{"interval", "timeout"} {
		if d := c.Duration(f); d <= 0 {
			return topo.BadInput(fmt.Errorf("--%s %s: give a positive duration", f, d))
		}
	}
	if p := c.Int("port"); c.IsSet("port") && (p < 1 || p > 65535) {
		return topo.BadInput(fmt.Errorf("--port %d: a port is 1-65535", p))
	}
	ctx, cancel := signalContext()
	defer cancel()
	a, b := c.Args().Get(1), c.Args().Get(2)
	res, err := lab.Punch(ctx, a, b, emulator.PunchOptions{
		Via: c.String("via"), Port: c.Int("port"), First: c.String("first"),
		Rounds: c.Int("rounds"), Interval: c.Duration("interval"), Timeout: c.Duration("timeout"),
	})
	if err != nil {
		return err
	}
	g.printResult(c, res)
	if !res.Direct {
		return &checkFailed{fmt.Sprintf("no direct path between %s and %s: they need a relay", a, b)}
	}
	return nil
}
