package main

// This file: run, up, down and clean: a lab's life from a file or a generator to nothing left.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/internal/text"
	"github.com/nslab/nslab/scripting"
	"github.com/nslab/nslab/topo"
	"github.com/urfave/cli/v2"
)

// runCommand is `nslab run`.
func (g *globals) runCommand() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "build a lab, test it, tear it down",
		ArgsUsage: "FILE | --topo SPEC",
		Description: `Builds the lab, prints a summary, runs the test, and tears the lab down,
also on Ctrl-C. The test is the script given with --script, else the
topology file's own script, else pingall for labs of up to 32 hosts and
routers (docs/scripting.md tells the script language). A script is checked
against the lab before anything is built.

On a terminal, with no script, a prompt (nslab> ) opens once the test has
run: type checks and commands (help lists them), Ctrl-D tears the lab down.

Exit 0 when the lab came up and every check passed, 1 when a check failed,
2 on bad input (in the topology or the script).

   nslab run topologies/lan.toml
   nslab run topologies/tutorial.toml --script experiment.nsl
   nslab run --topo linear,4 --test none
   nslab run topologies/routed.toml --json > result.json`,
		Flags: append(topoFlags(),
			&cli.StringFlag{Name: "test", Usage: "`TEST` to run once up: script, pingall or none (default: the script if there is one, else pingall up to 32 hosts)"},
			&cli.StringFlag{Name: "script", Usage: "run the script in `FILE` (instead of the topology's own)"},
			&cli.BoolFlag{Name: "keep-going", Aliases: []string{"k"}, Usage: "run the script's lines after a failing one"},
			&cli.BoolFlag{Name: "prompt", Usage: "open the prompt once the test has run (default: on a terminal when there is no script)"},
			&cli.BoolFlag{Name: "json", Usage: "print the summary and results as JSON"},
		),
		OnUsageError: usageError,
		Action:       g.cmdRun,
	}
}

// upCommand is `nslab up`.
func (g *globals) upCommand() *cli.Command {
	return &cli.Command{
		Name:      "up",
		Usage:     "build a lab and leave it up",
		ArgsUsage: "FILE | --topo SPEC",
		Description: `Builds the lab and exits, leaving it up; nslab exec, shell, ping, status and
down work on it by name. Ctrl-C during the build rolls everything back.

   nslab up topologies/lan.toml
   nslab up --topo single,100 --name big`,
		Flags:        append(topoFlags(), &cli.BoolFlag{Name: "json", Usage: "print the summary as JSON"}),
		OnUsageError: usageError,
		Action:       g.cmdUp,
	}
}

// downCommand is `nslab down`.
func (g *globals) downCommand() *cli.Command {
	return &cli.Command{
		Name:         "down",
		Usage:        "tear a lab down",
		ArgsUsage:    "LAB",
		Description:  "Stops every process inside the lab's namespaces and removes exactly what its\nownership record lists.\n\n   nslab down lan",
		OnUsageError: usageError,
		Action:       g.cmdDown,
	}
}

// cleanCommand is `nslab clean`.
func (g *globals) cleanCommand() *cli.Command {
	return &cli.Command{
		Name:      "clean",
		Usage:     "remove a lab in whatever state it is in",
		ArgsUsage: "LAB... | --all",
		Description: `Removes a lab, fully up or half-built after a crash or kill -9, from its
ownership record: its namespaces, its processes, its mount namespace and
record. Nothing nslab did not create is touched. Cleaning twice is fine.

   nslab clean lan
   nslab clean --all`,
		Flags:        []cli.Flag{&cli.BoolFlag{Name: "all", Usage: "clean every lab that has a record"}},
		OnUsageError: usageError,
		Action:       g.cmdClean,
	}
}

// loadPlan reads FILE or --topo into a plan.
func (g *globals) loadPlan(c *cli.Context) (*topo.Plan, error) {
	var t *topo.Topology
	var err error
	switch {
	case c.String("topo") != "" && c.Args().Present():
		return nil, topo.BadInput(errors.New("give a file or --topo, not both"))
	case c.NArg() > 1:
		return nil, topo.BadInput(fmt.Errorf("give one topology file, not %d (see `nslab %s --help`)", c.NArg(), c.Command.Name))
	}
	// The name given with --name is checked as the flag's, so that an
	// error points at the command line, not at the file's name line.
	if c.IsSet("name") {
		if err := topo.CheckLabName(c.String("name")); err != nil {
			return nil, topo.BadInput(fmt.Errorf("--name: %w", err))
		}
	}
	switch {
	case c.String("topo") != "":
		t, err = topo.Generate(c.String("topo"), c.String("name"))
	case c.NArg() == 1:
		t, err = loadFile(c.Args().First())
		if err == nil && c.String("name") != "" {
			t.Origin, t.Name = t.Name, c.String("name")
		}
	default:
		return nil, topo.BadInput(fmt.Errorf("give one topology file or --topo SPEC (see `nslab %s --help`)", c.Command.Name))
	}
	if err != nil {
		return nil, err
	}
	if dp := c.String("datapath"); dp != "" {
		if dp != topo.DatapathBridge && dp != topo.DatapathEBPF {
			return nil, topo.BadInput(fmt.Errorf("--datapath: unknown datapath %q (known: %s, %s)", dp, topo.DatapathBridge, topo.DatapathEBPF))
		}
		for i := range t.Nodes {
			if n := &t.Nodes[i]; n.Kind == topo.KindSwitch && n.Datapath == "" {
				n.Datapath = dp
			}
		}
	}
	return topo.Resolve(t)
}

// loadFile reads a topology file. Every way it can fail is the user's
// input (no such file, a directory, no permission, bad TOML): exit 2.
func loadFile(path string) (*topo.Topology, error) {
	t, err := topo.LoadFile(path)
	if err != nil {
		return nil, topo.BadInput(err)
	}
	return t, nil
}

// progressLine shows a build's or teardown's progress on a terminal once
// it has taken more than half a second: one line, redrawn, then cleared.
// Not on a terminal (and under --json, whose output is not one), nothing.
type progressLine struct {
	w  io.Writer
	on bool // w is a terminal
	mu sync.Mutex
	p  emulator.Progress
}

func (g *globals) newProgressLine() *progressLine {
	return &progressLine{w: g.stderr, on: isTerminal(g.stderr)}
}

// hook makes opts report to the line.
func (l *progressLine) hook(opts *emulator.Options) {
	if l.on {
		opts.Progress = l.set
	}
}

func (l *progressLine) set(p emulator.Progress) {
	l.mu.Lock()
	l.p = p
	l.mu.Unlock()
}

// show draws "VERB lab LAB: ..." until the returned function is called,
// which clears the line.
func (l *progressLine) show(verb, lab string) func() {
	return l.showFrom(verb, lab, emulator.Progress{})
}

// showFrom is show, starting from p.
func (l *progressLine) showFrom(verb, lab string, p emulator.Progress) func() {
	if !l.on {
		return func() {}
	}
	l.set(p)
	// The delay is a setting (NSLAB_PROGRESS_DELAY, a Go duration) so
	// that a test can see the progress line of a small, fast build.
	delay := 500 * time.Millisecond
	if d, err := time.ParseDuration(os.Getenv("NSLAB_PROGRESS_DELAY")); err == nil {
		delay = d
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	shown := false
	go func() {
		defer close(done)
		select {
		case <-stop:
			return
		case <-time.After(delay):
		}
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		var drawn emulator.Progress
		draw := func() {
			l.mu.Lock()
			p := l.p
			l.mu.Unlock()
			pct := 0
			if p.Total > 0 {
				pct = 100 * p.Done / p.Total
			}
			fmt.Fprintf(l.w, "\r\033[K%s lab %s: %-10s %3d%% (%d/%d steps)", verb, lab, p.Phase, pct, p.Done, p.Total)
			drawn, shown = p, true
		}
		for {
			draw()
			select {
			case <-stop:
				// The last state once more, if it changed since the
				// last tick, before the line is cleared.
				l.mu.Lock()
				changed := l.p != drawn
				l.mu.Unlock()
				if changed {
					draw()
				}
				return
			case <-t.C:
			}
		}
	}()
	return func() {
		close(stop)
		<-done
		if shown {
			fmt.Fprint(l.w, "\r\033[K")
		}
	}
}

// build builds plan, showing its progress on line (which the lab goes on
// reporting to: its teardown shows there too).
func (g *globals) build(c *cli.Context, ctx context.Context, plan *topo.Plan, line *progressLine) (*emulator.Lab, time.Duration, error) {
	opts := g.opts
	line.hook(&opts)
	clear := line.show("building", plan.Lab)
	t0 := time.Now()
	lab, err := emulator.Up(ctx, plan, opts)
	clear()
	if err != nil && ctx.Err() != nil {
		return nil, 0, fmt.Errorf("interrupted: lab %q rolled back", plan.Lab)
	}
	return lab, time.Since(t0), err
}

type summary struct {
	Lab      string  `json:"lab"`
	Nodes    int     `json:"nodes"`
	Hosts    int     `json:"hosts"`
	Routers  int     `json:"routers"`
	Switches int     `json:"switches"`
	Links    int     `json:"links"`
	Segments int     `json:"segments"`
	UpMS     float64 `json:"up_ms"`
	DownMS   float64 `json:"down_ms,omitempty"`
}

// runResult is what `nslab run --json` prints: the summary `nslab up
// --json` prints, in the same shape, and the test's result.
type runResult struct {
	summary
	Test    string            `json:"test"`
	Pingall *emulator.Matrix  `json:"pingall,omitempty"`
	Script  *scripting.Result `json:"script,omitempty"`
}

func summarize(p *topo.Plan, up time.Duration) summary {
	s := summary{Lab: p.Lab, Nodes: len(p.Nodes), Links: len(p.Links), Segments: len(p.Segments), UpMS: ms(up)}
	for _, n := range p.Nodes {
		switch n.Kind {
		case topo.KindHost:
			s.Hosts++
		case topo.KindRouter:
			s.Routers++
		case topo.KindSwitch:
			s.Switches++
		}
	}
	return s
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (s summary) String() string {
	return fmt.Sprintf("lab %s: %s; up in %.1f ms", s.Lab, s.shape(), s.UpMS)
}

// shape says what the lab is made of: "4 nodes (3 hosts, 1 switch), 3 links, 1 segment".
func (s summary) shape() string {
	var kinds []string
	for _, k := range []struct {
		n    int
		name string
	}{{s.Hosts, "host"}, {s.Routers, "router"}, {s.Switches, "switch"}} {
		if k.n > 0 {
			kinds = append(kinds, text.Plural(k.n, k.name))
		}
	}
	return fmt.Sprintf("%s (%s), %s, %s", text.Plural(s.Nodes, "node"), strings.Join(kinds, ", "), text.Plural(s.Links, "link"), text.Plural(s.Segments, "segment"))
}

func (g *globals) cmdRun(c *cli.Context) error {
	plan, err := g.loadPlan(c)
	if err != nil {
		return err
	}
	script, err := loadScript(c, plan)
	if err != nil {
		return err
	}
	test := c.String("test")
	switch test {
	case "":
		test = "none"
		if n := countProbeable(plan); script != nil {
			test = "script"
		} else if n >= 2 && n <= 32 {
			test = "pingall"
		}
	case "script":
		if script == nil {
			return topo.BadInput(errors.New("--test script: the topology has no script; give one with --script FILE"))
		}
	case "pingall", "none":
	default:
		return topo.BadInput(fmt.Errorf("unknown --test %q (known: script, pingall, none)", test))
	}
	prompt := c.Bool("prompt")
	if !c.IsSet("prompt") {
		prompt = script == nil && !c.Bool("json") && isTerminal(os.Stdin) && isTerminal(g.stdout)
	}
	if prompt && c.Bool("json") {
		return topo.BadInput(errors.New("--prompt and --json do not go together"))
	}
	if prompt && (!isTerminal(os.Stdin) || !isTerminal(g.stdout)) {
		// Refused before anything is built.
		return topo.BadInput(errors.New("--prompt needs a terminal on stdin and stdout (give a script with --script FILE, or --script - to read it from stdin)"))
	}
	if err := emulator.CheckCapture(plan); err != nil {
		return err
	}
	if err := needCaps(true); err != nil {
		return err
	}
	ctx, cancel, router := routedSignalContext()
	defer cancel()
	ctx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	out := &watchedWriter{w: g.stdout, onErr: func(error) { stopRun() }}
	g.stdout = out
	// The lab lives as long as this process: nslab status calls it
	// orphaned if the process dies without tearing it down (kill -9).
	g.opts.Held = true
	line := g.newProgressLine()
	lab, up, err := g.build(c, ctx, plan, line)
	if err != nil {
		return err
	}
	sum := summarize(plan, up)
	if !c.Bool("json") {
		fmt.Fprintln(g.stdout, sum)
	}
	stopCapture, err := g.startFileCapture(lab, plan)
	if err != nil {
		return errors.Join(err, lab.Down())
	}
	var m *emulator.Matrix
	var res *scripting.Result
	var testErr error
	if test == "pingall" && ctx.Err() == nil {
		m, testErr = lab.PingAll(ctx, nil, emulator.PingOptions{})
		if testErr == nil && !c.Bool("json") {
			printMatrix(g.stdout, m)
		}
	}
	if test == "script" && ctx.Err() == nil {
		res, testErr = g.runScript(ctx, c, lab, script)
	}
	if prompt && testErr == nil && ctx.Err() == nil {
		testErr = g.prompt(ctx, lab, router)
		if errors.Is(testErr, context.Canceled) {
			testErr = nil
		}
	}
	capErr := stopCapture()
	t0 := time.Now()
	clear := line.show("tearing down", plan.Lab)
	downErr := lab.Down()
	clear()
	sum.DownMS = ms(time.Since(t0))
	logMemory(g.opts.Logger)
	if c.Bool("json") {
		writeJSON(g.stdout, runResult{summary: sum, Test: test, Pingall: m, Script: res})
	} else {
		fmt.Fprintf(g.stdout, "lab %s torn down in %.1f ms\n", plan.Lab, sum.DownMS)
	}
	if err := out.Err(); err != nil {
		return fmt.Errorf("stdout failed (%w): lab %q torn down", err, plan.Lab)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted: lab %q torn down", plan.Lab)
	}
	if err := errors.Join(testErr, capErr, downErr); err != nil {
		return err
	}
	if m != nil {
		if probes, ok := m.Counts(); ok != probes {
			return &checkFailed{fmt.Sprintf("pingall: %d of %d pairs did not answer", probes-ok, probes)}
		}
	}
	return scriptFailed(res)
}

func countProbeable(p *topo.Plan) int {
	n := 0
	for _, x := range p.Nodes {
		if x.Kind != topo.KindSwitch {
			n++
		}
	}
	return n
}

func (g *globals) cmdUp(c *cli.Context) error {
	plan, err := g.loadPlan(c)
	if err != nil {
		return err
	}
	if err := emulator.CheckCapture(plan); err != nil {
		return err
	}
	if err := needCaps(false); err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	lab, up, err := g.build(c, ctx, plan, g.newProgressLine())
	if err != nil {
		return err
	}
	sum := summarize(plan, up)
	logMemory(g.opts.Logger)
	if plan.Topology != nil && plan.Topology.Capture != nil {
		fmt.Fprintf(g.stderr, "nslab run takes the file's [capture]; for a lab left up, run `nslab capture %s %s`\n", lab.Name(), strings.Join(plan.Topology.Capture.Interfaces, " "))
	}
	if c.Bool("json") {
		writeJSON(g.stdout, sum)
		return nil
	}
	fmt.Fprintln(g.stdout, sum)
	first := ""
	for _, n := range plan.Nodes {
		if n.Kind != topo.KindSwitch {
			first = n.Name
			break
		}
	}
	if first != "" {
		fmt.Fprintf(g.stdout, "enter a node with `nslab shell %s %s`; tear it down with `nslab down %s`\n", lab.Name(), first, lab.Name())
	}
	return nil
}

func (g *globals) cmdDown(c *cli.Context) error {
	if c.NArg() != 1 {
		return topo.BadInput(errors.New("give the name of one lab (nslab status lists them)"))
	}
	if err := needCaps(false); err != nil {
		return err
	}
	name := c.Args().First()
	if err := topo.CheckLabName(name); err != nil {
		return topo.BadInput(err)
	}
	if _, err := emulator.ReadRecord(g.opts.StateDir, name); err != nil {
		labs, _ := emulator.ListLabs(g.opts.StateDir)
		return topo.BadInput(&emulator.NoSuchLabError{Lab: name, Labs: labs})
	}
	t0 := time.Now()
	opts, line := g.opts, g.newProgressLine()
	line.hook(&opts)
	clear := line.show("tearing down", name)
	err := emulator.Clean(name, opts)
	clear()
	if err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "lab %s torn down in %.1f ms\n", name, ms(time.Since(t0)))
	return nil
}

func (g *globals) cmdClean(c *cli.Context) error {
	names := c.Args().Slice()
	if c.Bool("all") {
		if len(names) > 0 {
			return topo.BadInput(errors.New("give lab names or --all, not both"))
		}
		var err error
		if names, err = emulator.ListLabs(g.opts.StateDir); err != nil {
			return err
		}
	} else if len(names) == 0 {
		return topo.BadInput(errors.New("usage: nslab clean LAB... | --all"))
	}
	if err := needCaps(false); err != nil {
		return err
	}
	for _, n := range names {
		if err := topo.CheckLabName(n); err != nil {
			return topo.BadInput(err)
		}
	}
	known, err := emulator.ListLabs(g.opts.StateDir)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		if !slices.Contains(known, n) && !exists(filepath.Join(g.opts.StateDir, n)) {
			// Exit 0 all the same: after clean, the lab is gone either way.
			fmt.Fprintf(g.stdout, "no lab %s: nothing to clean\n", n)
			continue
		}
		opts, line := g.opts, g.newProgressLine()
		line.hook(&opts)
		clear := line.show("cleaning", n)
		err := emulator.Clean(n, opts)
		clear()
		if err != nil {
			errs = append(errs, fmt.Errorf("clean lab %q: %w", n, err))
			continue
		}
		fmt.Fprintf(g.stdout, "lab %s cleaned\n", n)
	}
	if len(names) == 0 {
		fmt.Fprintln(g.stdout, "no labs to clean")
	}
	return errors.Join(errs...)
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
