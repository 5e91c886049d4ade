package main

// This file: status: the labs, and one lab's nodes read live from the kernel.

import (
	"fmt"
	"strings"
	"time"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/internal/text"
	"github.com/urfave/cli/v2"
)

// statusCommand is `nslab status`.
func (g *globals) statusCommand() *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "show labs, or one lab's nodes, interfaces, addresses and routes",
		ArgsUsage: "[LAB]",
		Description: `Without LAB, lists the labs. With LAB, reads every node's interfaces,
addresses and routes live from the kernel.

   nslab status
   nslab status lan --json | jq '.nodes[].interfaces'`,
		Flags:        []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON"}},
		OnUsageError: usageError,
		Action:       g.cmdStatus,
	}
}

// statusRow is a lab in the list `nslab status` prints.
type statusRow struct {
	Lab     string    `json:"lab"`
	State   string    `json:"state"`
	Note    string    `json:"note,omitempty"`
	Nodes   int       `json:"nodes"`
	PID     int       `json:"pid"`
	Created time.Time `json:"created"`
}

// printStatusRows prints the list of labs, as a table or as JSON.
func (g *globals) printStatusRows(rows []statusRow, asJSON bool) {
	if asJSON {
		if rows == nil {
			rows = []statusRow{}
		}
		writeJSON(g.stdout, rows)
		return
	}
	if len(rows) == 0 {
		fmt.Fprintln(g.stdout, "no labs are up")
		return
	}
	fmt.Fprintf(g.stdout, "%-20s %-10s %6s  %s\n", "LAB", "STATE", "NODES", "CREATED")
	for _, r := range rows {
		created := ""
		if !r.Created.IsZero() {
			created = r.Created.Local().Format(time.DateTime)
		}
		fmt.Fprintf(g.stdout, "%-20s %-10s %6d  %s\n", r.Lab, r.State, r.Nodes, created)
		if r.Note != "" {
			fmt.Fprintf(g.stdout, "  %s\n", r.Note)
		}
	}
}

func (g *globals) cmdStatus(c *cli.Context) error {
	if c.NArg() == 0 {
		labs, err := emulator.ListLabs(g.opts.StateDir)
		if err != nil {
			return err
		}
		var rows []statusRow
		for _, name := range labs {
			r, err := emulator.ReadRecord(g.opts.StateDir, name)
			if err != nil {
				rows = append(rows, statusRow{Lab: name, State: "half-built", Note: "no record: run nslab clean " + name})
				continue
			}
			n := 0
			if r.Topology != nil {
				n = len(r.Topology.Nodes)
			}
			state, note := r.Condition(r.BuilderAlive())
			rows = append(rows, statusRow{name, state, note, n, r.PID, r.Created})
		}
		g.printStatusRows(rows, c.Bool("json"))
		return nil
	}
	if err := needCaps(false); err != nil {
		return err
	}
	lab, err := g.openLab(c, c.Args().First())
	if err != nil {
		return err
	}
	st, err := lab.Status()
	if err != nil {
		return err
	}
	// A node that could not be read fails the command, after the rest is
	// printed: a script must not take a broken lab for a good one.
	var bad []string
	for _, n := range st.Nodes {
		if n.Error != "" {
			bad = append(bad, n.Name)
		}
	}
	var failed error
	if len(bad) > 0 {
		failed = &checkFailed{fmt.Sprintf("lab %s: %s could not be read (%s); if the lab is broken, remove it with `nslab clean %s`",
			st.Lab, text.Plural(len(bad), "node"), strings.Join(bad, ", "), st.Lab)}
	}
	if c.Bool("json") {
		writeJSON(g.stdout, st)
		return failed
	}
	state, note := lab.Record.Condition(lab.Record.BuilderAlive())
	fmt.Fprintf(g.stdout, "lab %s (%s), built by pid %d at %s\n", st.Lab, state, st.PID, st.Created.Local().Format(time.DateTime))
	if note != "" {
		fmt.Fprintf(g.stdout, "  %s\n", note)
	}
	for _, n := range st.Nodes {
		fmt.Fprintf(g.stdout, "\n%s (%s, netns %s)\n", n.Name, n.Kind, n.Namespace)
		if n.Error != "" {
			fmt.Fprintf(g.stdout, "  error: %s\n", n.Error)
		}
		for _, i := range n.Interfaces {
			extra := ""
			if i.Master != "" {
				extra = " master " + i.Master
			}
			fmt.Fprintf(g.stdout, "  %-15s %-8s %-17s mtu %d%s %s\n", i.Name, i.State, i.MAC, i.MTU, extra, strings.Join(i.Addrs, " "))
			if i.Impair != nil {
				fmt.Fprintf(g.stdout, "  %-15s impair %s\n", "", i.Impair)
			}
		}
		for _, r := range n.Routes {
			fmt.Fprintf(g.stdout, "  route %s\n", r)
		}
	}
	return failed
}
