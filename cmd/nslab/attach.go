package main

// This file: attach, the prompt or a script on a lab that is up.

import "github.com/urfave/cli/v2"

// attachCommand is `nslab attach`.
func (g *globals) attachCommand() *cli.Command {
	return &cli.Command{
		Name:      "attach",
		Usage:     "open the prompt on a lab that is up, or run a script in it",
		ArgsUsage: "LAB",
		Description: `Opens the nslab> prompt on a lab started with nslab up: the same commands as
in scripts (help lists them, Tab completes commands and node names, the
arrows walk the history). Ctrl-D or exit leaves the prompt; the lab stays up
(nslab down removes it). With --script, runs that script instead and exits
0 when every line passed, 1 when one failed, 2 on bad input.

   nslab up topologies/tutorial.toml && nslab attach tutorial
   nslab attach tutorial --script checks.nsl`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "script", Usage: "run the script in `FILE` instead of opening the prompt"},
			&cli.BoolFlag{Name: "keep-going", Aliases: []string{"k"}, Usage: "run the script's lines after a failing one"},
			&cli.BoolFlag{Name: "json", Usage: "print the script's result as JSON"},
		},
		OnUsageError: usageError,
		Action:       g.cmdAttach,
	}
}
