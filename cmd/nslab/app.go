package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/scripting"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

const tour = `nslab builds a lab network in milliseconds on one Linux machine: every node
is a named network namespace (ip netns list shows it), cables are veth pairs,
switches are Linux bridges in namespaces of their own, routers are namespaces
with forwarding on. No Docker, no Open vSwitch, no external binaries.

A first session:
   nslab validate topologies/lan.toml     check a file, create nothing
   nslab run topologies/lan.toml          build, ping every pair, tear down
   nslab run --topo single,4              the same with a generated lab
   nslab up topologies/lan.toml           build and leave the lab up
   nslab status lan                       nodes, interfaces, addresses, routes
   nslab exec lan h1 -- ip route          run a command inside node h1
   nslab shell lan h1                     a shell inside h1 (hostname h1)
   nslab ping lan h1 h3                   an in-process ICMP probe
   nslab pingall lan                      every pair, Mininet style
   nslab down lan                         remove exactly what was built
   nslab clean --all                      remove labs left by a crash

Exit codes: 0 success, 1 a check failed (or the kernel refused), 2 bad input.
Needs root, or CAP_NET_ADMIN and CAP_SYS_ADMIN (CAP_NET_RAW for probes).
The file format is in docs/topology.md.`

func newApp(stdout, stderr io.Writer) *cli.App {
	g := &globals{stdout: stdout, stderr: stderr}
	usageErr := usageError
	topoFlags := []cli.Flag{
		&cli.StringFlag{Name: "topo", Usage: "use a built-in topology instead of a file: `SPEC` is single,N | linear,N | tree,DEPTH,FANOUT"},
		&cli.StringFlag{Name: "name", Usage: "lab `NAME`: renames a file's lab, or names a --topo lab (default: the spec, e.g. single-4)"},
	}
	app := &cli.App{
		Name:            "nslab",
		Usage:           "network labs out of Linux namespaces, veth pairs and bridges",
		Description:     tour,
		Writer:          stdout,
		ErrWriter:       stderr,
		HideVersion:     true, // --version is ours: urfave's would take -v from --verbose
		OnUsageError:    usageErr,
		ExitErrHandler:  func(*cli.Context, error) {},
		CommandNotFound: func(c *cli.Context, cmd string) {},
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "state-dir", Value: "/run/nslab", Usage: "`DIR` of lab records", EnvVars: []string{"NSLAB_STATE_DIR"}},
			&cli.StringFlag{Name: "netns-dir", Value: "/run/netns", Usage: "`DIR` where named namespaces are pinned (as ip netns expects)", EnvVars: []string{"NSLAB_NETNS_DIR"}},
			&cli.IntFlag{Name: "workers", Value: 2, Usage: "kernel steps run at once"},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "log each phase to stderr"},
			&cli.BoolFlag{Name: "version", Usage: "print the version and the revision nslab was built from"},
		},
		Action: func(c *cli.Context) error {
			if c.Bool("version") {
				_, err := fmt.Fprintln(g.stdout, readVersion())
				return err
			}
			if c.Args().Present() {
				return emulator.BadInput(fmt.Errorf("unknown command %q (run `nslab --help` for the list)", c.Args().First()))
			}
			return cli.ShowAppHelp(c)
		},
		Before: func(c *cli.Context) error {
			g.opts = emulator.Options{StateDir: c.String("state-dir"), NetnsDir: c.String("netns-dir"), Workers: c.Int("workers")}
			if c.Bool("verbose") {
				g.opts.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
			}
			if c.Args().Present() && c.App.Command(c.Args().First()) == nil {
				return emulator.BadInput(fmt.Errorf("unknown command %q (run `nslab --help` for the list)", c.Args().First()))
			}
			return nil
		},
		Commands: []*cli.Command{
			{
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
				Flags: append(append([]cli.Flag{}, topoFlags...),
					&cli.StringFlag{Name: "test", Usage: "`TEST` to run once up: script, pingall or none (default: the script if there is one, else pingall up to 32 hosts)"},
					&cli.StringFlag{Name: "script", Usage: "run the script in `FILE` (instead of the topology's own)"},
					&cli.BoolFlag{Name: "keep-going", Aliases: []string{"k"}, Usage: "run the script's lines after a failing one"},
					&cli.BoolFlag{Name: "prompt", Usage: "open the prompt once the test has run (default: on a terminal when there is no script)"},
					&cli.BoolFlag{Name: "json", Usage: "print the summary and results as JSON"},
				),
				OnUsageError: usageErr,
				Action:       g.cmdRun,
			},
			{
				Name:      "up",
				Usage:     "build a lab and leave it up",
				ArgsUsage: "FILE | --topo SPEC",
				Description: `Builds the lab and exits, leaving it up; nslab exec, shell, ping, status and
down work on it by name. Ctrl-C during the build rolls everything back.

   nslab up topologies/lan.toml
   nslab up --topo single,100 --name big`,
				Flags:        append(append([]cli.Flag{}, topoFlags...), &cli.BoolFlag{Name: "json", Usage: "print the summary as JSON"}),
				OnUsageError: usageErr,
				Action:       g.cmdUp,
			},
			{
				Name:         "down",
				Usage:        "tear a lab down",
				ArgsUsage:    "LAB",
				Description:  "Stops every process inside the lab's namespaces and removes exactly what its\nownership record lists.\n\n   nslab down lan",
				OnUsageError: usageErr,
				Action:       g.cmdDown,
			},
			{
				Name:      "status",
				Usage:     "show labs, or one lab's nodes, interfaces, addresses and routes",
				ArgsUsage: "[LAB]",
				Description: `Without LAB, lists the labs. With LAB, reads every node's interfaces,
addresses and routes live from the kernel.

   nslab status
   nslab status lan --json | jq '.nodes[].interfaces'`,
				Flags:        []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON"}},
				OnUsageError: usageErr,
				Action:       g.cmdStatus,
			},
			{
				Name:      "exec",
				Usage:     "run a command inside a node",
				ArgsUsage: "LAB NODE [--] CMD [ARG...]",
				Description: `Runs CMD in the node's network namespace, with the node's name as hostname
and the lab's /etc/hosts (every node by name); stdin, stdout, stderr, the
environment and the exit code are the command's own. No fork of ip.

   nslab exec lan h1 -- ip -br addr
   nslab exec lan h2 -- getent hosts h3`,
				SkipFlagParsing: true,
				Action:          g.cmdExec,
			},
			{
				Name:         "shell",
				Usage:        "an interactive shell inside a node",
				ArgsUsage:    "LAB NODE",
				Description:  "Starts $SHELL (or /bin/sh) inside the node, on your terminal. Exit the shell to\nleave the node.\n\n   nslab shell lan h1",
				OnUsageError: usageErr,
				Action:       g.cmdShell,
			},
			{
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
				OnUsageError: usageErr,
				Action:       g.cmdAttach,
			},
			{
				Name:      "ping",
				Usage:     "probe one pair of nodes with ICMP echo, in process",
				ArgsUsage: "LAB FROM TO",
				Description: `Sends ICMP echo requests from FROM to TO's first address (IPv4 when both
have it), from a socket opened inside FROM's namespace: no ping binary is
needed. Exit 0 when every request got a reply, 1 otherwise.

   nslab ping lan h1 h3 -c 5`,
				Flags: []cli.Flag{
					&cli.IntFlag{Name: "count", Aliases: []string{"c"}, Value: 3, Usage: "echo requests to send"},
					&cli.DurationFlag{Name: "interval", Aliases: []string{"i"}, Value: 10 * time.Millisecond, Usage: "time between requests"},
					&cli.DurationFlag{Name: "timeout", Aliases: []string{"W"}, Value: time.Second, Usage: "how long to wait for the last reply"},
					&cli.IntFlag{Name: "family", Usage: "4 or 6 (default: 4 when both nodes have it)"},
					&cli.BoolFlag{Name: "json", Usage: "print the result as JSON"},
				},
				OnUsageError: usageErr,
				Action:       g.cmdPing,
			},
			{
				Name:      "pingall",
				Usage:     "probe every pair of hosts and routers",
				ArgsUsage: "LAB",
				Description: `Probes every ordered pair at once, in process, and prints the matrix the way
Mininet does. Exit 0 when every pair answered, 1 otherwise.

   nslab pingall lan
   nslab pingall lan --json`,
				Flags: []cli.Flag{
					&cli.DurationFlag{Name: "timeout", Value: time.Second, Usage: "how long to wait for replies"},
					&cli.BoolFlag{Name: "json", Usage: "print the matrix as JSON"},
				},
				OnUsageError: usageErr,
				Action:       g.cmdPingall,
			},
			{
				Name:      "serve",
				Usage:     "run nslab's echo service in a node: it answers each probe with the source it saw",
				ArgsUsage: "LAB NODE (--udp PORT | --tcp PORT)",
				Description: `Listens on every address of NODE and answers each probe (a UDP datagram or a
TCP connection from nslab probe) with the source address and port it saw,
which behind a NAT is the mapped address. Prints each source; runs until
Ctrl-C. Nothing needs to be installed in the lab.

   nslab serve nat server --udp 9000`,
				Flags: []cli.Flag{
					&cli.IntFlag{Name: "udp", Usage: "serve UDP on `PORT`"},
					&cli.IntFlag{Name: "tcp", Usage: "serve TCP on `PORT`"},
				},
				OnUsageError: usageErr,
				Action:       g.cmdServe,
			},
			{
				Name:      "probe",
				Usage:     "probe an echo service and print the source address the far side saw",
				ArgsUsage: "LAB FROM TO (--udp PORT | --tcp PORT)",
				Description: `Sends one probe from FROM to TO (a node, aimed at its first IPv4 address, or
an address) where nslab serve runs, and prints the source address and port
the service saw: behind a NAT, the mapping. Exit 0 on an answer, 1 without.

   nslab probe nat client1 server --udp 9000 --from-port 40000
   nslab probe nat server 203.0.113.1 --tcp 8080 --json`,
				Flags: []cli.Flag{
					&cli.IntFlag{Name: "udp", Usage: "probe UDP `PORT`"},
					&cli.IntFlag{Name: "tcp", Usage: "probe TCP `PORT`"},
					&cli.IntFlag{Name: "from-port", Usage: "local `PORT` to probe from (default: any)"},
					&cli.DurationFlag{Name: "timeout", Value: time.Second, Usage: "how long to wait for the answer"},
					&cli.BoolFlag{Name: "json", Usage: "print the result as JSON"},
				},
				OnUsageError: usageErr,
				Action:       g.cmdProbe,
			},
			g.punchCommand(),
			g.versionCommand(),
			{
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
				OnUsageError: usageErr,
				Action:       g.cmdValidate,
			},
			{
				Name:      "clean",
				Usage:     "remove a lab in whatever state it is in",
				ArgsUsage: "LAB... | --all",
				Description: `Removes a lab, fully up or half-built after a crash or kill -9, from its
ownership record: its namespaces, its processes, its mount namespace and
record. Nothing nslab did not create is touched. Cleaning twice is fine.

   nslab clean lan
   nslab clean --all`,
				Flags:        []cli.Flag{&cli.BoolFlag{Name: "all", Usage: "clean every lab that has a record"}},
				OnUsageError: usageErr,
				Action:       g.cmdClean,
			},
			{
				Name:      "generate",
				Usage:     "print the TOML of a built-in topology",
				ArgsUsage: "SPEC",
				Description: `Prints the file equivalent to --topo SPEC, to edit and keep.

   nslab generate single,3 > my.toml
   nslab generate tree,2,3 --name campus`,
				Flags:        []cli.Flag{&cli.StringFlag{Name: "name", Usage: "lab `NAME`"}},
				OnUsageError: usageErr,
				Action:       g.cmdGenerate,
			},
		},
	}
	tidyHelp(app)
	return app
}

// usageError is every command's answer to a flag it cannot parse: bad
// input, with the help to read. At the top level the command is the app
// itself, whose full name is "nslab" already.
func usageError(c *cli.Context, err error, _ bool) error {
	help := "nslab --help"
	if c.Command != nil && c.Command.Name != "" && c.Command.Name != c.App.Name {
		help = "nslab " + c.Command.FullName() + " --help"
	}
	return emulator.BadInput(fmt.Errorf("%w (see `%s`)", err, help))
}

type globals struct {
	stdout, stderr io.Writer
	opts           emulator.Options
}

// loadPlan reads FILE or --topo into a plan.
func (g *globals) loadPlan(c *cli.Context) (*emulator.Plan, error) {
	var t *emulator.Topology
	var err error
	switch {
	case c.String("topo") != "" && c.Args().Present():
		return nil, emulator.BadInput(errors.New("give a file or --topo, not both"))
	case c.NArg() > 1:
		return nil, emulator.BadInput(fmt.Errorf("give one topology file, not %d (see `nslab %s --help`)", c.NArg(), c.Command.Name))
	}
	// The name given with --name is checked as the flag's, so that an
	// error points at the command line, not at the file's name line.
	if c.IsSet("name") {
		if err := emulator.CheckLabName(c.String("name")); err != nil {
			return nil, emulator.BadInput(fmt.Errorf("--name: %w", err))
		}
	}
	switch {
	case c.String("topo") != "":
		t, err = emulator.Generate(c.String("topo"), c.String("name"))
	case c.NArg() == 1:
		t, err = loadFile(c.Args().First())
		if err == nil && c.String("name") != "" {
			t.Origin, t.Name = t.Name, c.String("name")
		}
	default:
		return nil, emulator.BadInput(fmt.Errorf("give one topology file or --topo SPEC (see `nslab %s --help`)", c.Command.Name))
	}
	if err != nil {
		return nil, err
	}
	return emulator.Resolve(t)
}

// loadFile reads a topology file. Every way it can fail is the user's
// input (no such file, a directory, no permission, bad TOML): exit 2.
func loadFile(path string) (*emulator.Topology, error) {
	t, err := emulator.LoadFile(path)
	if err != nil {
		return nil, emulator.BadInput(err)
	}
	return t, nil
}

// needCaps fails with one sentence when the process lacks a capability.
func needCaps(raw bool) error {
	if missing := emulator.MissingCapabilities(raw); len(missing) > 0 {
		return fmt.Errorf("nslab needs %s to build and enter namespaces: run it as root (sudo nslab ...)", strings.Join(missing, " and "))
	}
	return nil
}

// endSignals are the signals that end nslab short of kill -9: each one
// cancels the command's context, so that a build rolls back and a `run`
// lab is torn down. SIGHUP is a closed terminal; SIGPIPE a reader that
// went away (`nslab run ... | head -1`): once it is caught, the write that
// raised it fails with EPIPE instead of killing the process.
var endSignals = []os.Signal{os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE}

// signalContext is cancelled by any of endSignals. The signals stay caught
// until the returned function is called, so that a second one cannot kill
// the process half-way through a teardown.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), endSignals...)
}

func isTerminal(w io.Writer) bool {
	f, ok := asFile(w)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// asFile returns the file behind w, also through a watchedWriter.
func asFile(w io.Writer) (*os.File, bool) {
	if ww, ok := w.(*watchedWriter); ok {
		w = ww.w
	}
	f, ok := w.(*os.File)
	return f, ok
}

// watchedWriter calls onErr once when a write fails: `nslab run` cancels
// itself then, and tears its lab down, when its stdout is gone (a closed
// pipe, a full disk, a hung-up terminal).
type watchedWriter struct {
	w     io.Writer
	onErr func(error)
	mu    sync.Mutex
	err   error // the first write error
}

func (w *watchedWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	if err != nil {
		w.mu.Lock()
		first := w.err == nil
		if first {
			w.err = err
		}
		w.mu.Unlock()
		if first {
			w.onErr(err)
		}
	}
	return n, err
}

// Err is the first write error, or nil.
func (w *watchedWriter) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// withProgress shows the build's progress on a terminal once it has taken
// more than a second. It returns a function that clears the line.
func (g *globals) withProgress(opts *emulator.Options, lab string) func() {
	if !isTerminal(g.stderr) {
		return func() {}
	}
	var mu sync.Mutex
	var last emulator.Progress
	opts.Progress = func(p emulator.Progress) {
		mu.Lock()
		last = p
		mu.Unlock()
	}
	// The delay is a setting (NSLAB_PROGRESS_DELAY, a Go duration) so
	// that a test can see the progress line of a small, fast build.
	delay := time.Second
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
		for {
			mu.Lock()
			p := last
			mu.Unlock()
			pct := 0
			if p.Total > 0 {
				pct = 100 * p.Done / p.Total
			}
			fmt.Fprintf(g.stderr, "\r\033[Kbuilding lab %s: %-10s %3d%% (%d/%d steps)", lab, p.Phase, pct, p.Done, p.Total)
			shown = true
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() {
		close(stop)
		<-done
		if shown {
			fmt.Fprint(g.stderr, "\r\033[K")
		}
	}
}

func (g *globals) build(c *cli.Context, ctx context.Context, plan *emulator.Plan) (*emulator.Lab, time.Duration, error) {
	opts := g.opts
	clear := g.withProgress(&opts, plan.Lab)
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

func summarize(p *emulator.Plan, up time.Duration) summary {
	s := summary{Lab: p.Lab, Nodes: len(p.Nodes), Links: len(p.Links), Segments: len(p.Segments), UpMS: ms(up)}
	for _, n := range p.Nodes {
		switch n.Kind {
		case emulator.KindHost:
			s.Hosts++
		case emulator.KindRouter:
			s.Routers++
		case emulator.KindSwitch:
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
			kinds = append(kinds, plural(k.n, k.name))
		}
	}
	return fmt.Sprintf("%s (%s), %s, %s", plural(s.Nodes, "node"), strings.Join(kinds, ", "), plural(s.Links, "link"), plural(s.Segments, "segment"))
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	if strings.HasSuffix(word, "ch") {
		return fmt.Sprintf("%d %ses", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
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
			return emulator.BadInput(errors.New("--test script: the topology has no script; give one with --script FILE"))
		}
	case "pingall", "none":
	default:
		return emulator.BadInput(fmt.Errorf("unknown --test %q (known: script, pingall, none)", test))
	}
	prompt := c.Bool("prompt")
	if !c.IsSet("prompt") {
		prompt = script == nil && !c.Bool("json") && isTerminal(os.Stdin) && isTerminal(g.stdout)
	}
	if prompt && c.Bool("json") {
		return emulator.BadInput(errors.New("--prompt and --json do not go together"))
	}
	if prompt && (!isTerminal(os.Stdin) || !isTerminal(g.stdout)) {
		// Refused before anything is built.
		return emulator.BadInput(errors.New("--prompt needs a terminal on stdin and stdout (give a script with --script FILE, or --script - to read it from stdin)"))
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
	lab, up, err := g.build(c, ctx, plan)
	if err != nil {
		return err
	}
	sum := summarize(plan, up)
	if !c.Bool("json") {
		fmt.Fprintln(g.stdout, sum)
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
	t0 := time.Now()
	downErr := lab.Down()
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
	if err := errors.Join(testErr, downErr); err != nil {
		return err
	}
	if m != nil {
		if probes, ok := m.Counts(); ok != probes {
			return &checkFailed{fmt.Sprintf("pingall: %d of %d pairs did not answer", probes-ok, probes)}
		}
	}
	return scriptFailed(res)
}

func countProbeable(p *emulator.Plan) int {
	n := 0
	for _, x := range p.Nodes {
		if x.Kind != emulator.KindSwitch {
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
	if err := needCaps(false); err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	lab, up, err := g.build(c, ctx, plan)
	if err != nil {
		return err
	}
	sum := summarize(plan, up)
	logMemory(g.opts.Logger)
	if c.Bool("json") {
		writeJSON(g.stdout, sum)
		return nil
	}
	fmt.Fprintln(g.stdout, sum)
	first := ""
	for _, n := range plan.Nodes {
		if n.Kind != emulator.KindSwitch {
			first = n.Name
			break
		}
	}
	if first != "" {
		fmt.Fprintf(g.stdout, "enter a node with `nslab shell %s %s`; tear it down with `nslab down %s`\n", lab.Name(), first, lab.Name())
	}
	return nil
}

func (g *globals) openLab(c *cli.Context, name string) (*emulator.Lab, error) {
	if name == "" {
		labs, _ := emulator.ListLabs(g.opts.StateDir)
		return nil, emulator.BadInput(&emulator.NoSuchLabError{Lab: "", Labs: labs})
	}
	return emulator.Open(name, g.opts)
}

// withLab checks the argument count, the capabilities and opens the lab
// named by the first argument: the start of every command that works on a
// running lab.
func (g *globals) withLab(c *cli.Context, nargs int, usage string, raw bool) (*emulator.Lab, error) {
	if c.NArg() != nargs {
		return nil, emulator.BadInput(errors.New("usage: " + usage))
	}
	if err := needCaps(raw); err != nil {
		return nil, err
	}
	return g.openLab(c, c.Args().First())
}

func (g *globals) cmdDown(c *cli.Context) error {
	if c.NArg() != 1 {
		return emulator.BadInput(errors.New("give the name of one lab (nslab status lists them)"))
	}
	if err := needCaps(false); err != nil {
		return err
	}
	name := c.Args().First()
	if _, err := emulator.ReadRecord(g.opts.StateDir, name); err != nil {
		labs, _ := emulator.ListLabs(g.opts.StateDir)
		return emulator.BadInput(&emulator.NoSuchLabError{Lab: name, Labs: labs})
	}
	t0 := time.Now()
	if err := emulator.Clean(name, g.opts); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "lab %s torn down in %.1f ms\n", name, ms(time.Since(t0)))
	return nil
}

func (g *globals) cmdStatus(c *cli.Context) error {
	if c.NArg() == 0 {
		labs, err := emulator.ListLabs(g.opts.StateDir)
		if err != nil {
			return err
		}
		type row struct {
			Lab     string    `json:"lab"`
			State   string    `json:"state"`
			Note    string    `json:"note,omitempty"`
			Nodes   int       `json:"nodes"`
			PID     int       `json:"pid"`
			Created time.Time `json:"created"`
		}
		var rows []row
		for _, name := range labs {
			r, err := emulator.ReadRecord(g.opts.StateDir, name)
			if err != nil {
				rows = append(rows, row{Lab: name, State: "half-built", Note: "no record: run nslab clean " + name})
				continue
			}
			n := 0
			if r.Topology != nil {
				n = len(r.Topology.Nodes)
			}
			state, note := r.Condition(r.BuilderAlive())
			rows = append(rows, row{name, state, note, n, r.PID, r.Created})
		}
		if c.Bool("json") {
			if rows == nil {
				rows = []row{}
			}
			writeJSON(g.stdout, rows)
			return nil
		}
		if len(rows) == 0 {
			fmt.Fprintln(g.stdout, "no labs are up")
			return nil
		}
		fmt.Fprintf(g.stdout, "%-20s %-10s %6s  %s\n", "LAB", "STATE", "NODES", "CREATED")
		for _, r := range rows {
			fmt.Fprintf(g.stdout, "%-20s %-10s %6d  %s\n", r.Lab, r.State, r.Nodes, r.Created.Local().Format(time.DateTime))
			if r.Note != "" {
				fmt.Fprintf(g.stdout, "  %s\n", r.Note)
			}
		}
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
	if c.Bool("json") {
		writeJSON(g.stdout, st)
		return nil
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
		}
		for _, r := range n.Routes {
			fmt.Fprintf(g.stdout, "  route %s\n", r)
		}
	}
	return nil
}

func (g *globals) cmdExec(c *cli.Context) error {
	args := c.Args().Slice()
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
		return cli.ShowCommandHelp(c.Lineage()[1], "exec")
	}
	if len(args) < 3 || (args[2] == "--" && len(args) < 4) {
		return emulator.BadInput(errors.New("usage: nslab exec LAB NODE [--] CMD [ARG...]"))
	}
	argv := args[2:]
	if argv[0] == "--" {
		argv = argv[1:]
	}
	if err := needCaps(false); err != nil {
		return err
	}
	lab, err := g.openLab(c, args[0])
	if err != nil {
		return err
	}
	return execStatus(lab.ExecReplace(args[1], argv, os.Environ()))
}

// execStatus gives a program that cannot be started the exit codes shells
// use (127 not found, 126 not executable), so that a program's own exit 2
// is not mistaken for nslab's bad input.
func execStatus(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, exec.ErrNotFound), errors.Is(err, fs.ErrNotExist):
		return &exitStatus{127, err}
	case errors.Is(err, fs.ErrPermission), errors.Is(err, exec.ErrDot), errors.Is(err, syscall.EISDIR):
		return &exitStatus{126, err}
	}
	return err
}

func (g *globals) cmdShell(c *cli.Context) error {
	lab, err := g.withLab(c, 2, "nslab shell LAB NODE", false)
	if err != nil {
		return err
	}
	node := c.Args().Get(1)
	sh := os.Getenv("SHELL")
	if sh == "" {
		sh = "/bin/sh"
	}
	env := append(os.Environ(), "NSLAB_LAB="+lab.Name(), "NSLAB_NODE="+node, fmt.Sprintf("PS1=[%s:%s] \\w# ", lab.Name(), node))
	return execStatus(lab.ExecReplace(node, []string{sh}, env))
}

func (g *globals) cmdPing(c *cli.Context) error {
	lab, err := g.withLab(c, 3, "nslab ping LAB FROM TO", true)
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	res, err := lab.Ping(ctx, c.Args().Get(1), c.Args().Get(2), emulator.PingOptions{
		Count: c.Int("count"), Interval: c.Duration("interval"), Timeout: c.Duration("timeout"), Family: c.Int("family")})
	if err != nil {
		return err
	}
	g.printResult(c, res)
	if !res.OK() {
		return &checkFailed{fmt.Sprintf("%d of %d echo requests got no reply", res.Sent-res.Received, res.Sent)}
	}
	return nil
}

func (g *globals) cmdPingall(c *cli.Context) error {
	lab, err := g.withLab(c, 1, "nslab pingall LAB", true)
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	m, err := lab.PingAll(ctx, nil, emulator.PingOptions{Timeout: c.Duration("timeout")})
	if err != nil {
		return err
	}
	if c.Bool("json") {
		writeJSON(g.stdout, m)
	} else {
		printMatrix(g.stdout, m)
	}
	if probes, ok := m.Counts(); ok != probes {
		return &checkFailed{fmt.Sprintf("pingall: %d of %d pairs did not answer", probes-ok, probes)}
	}
	return nil
}

// printMatrix prints a pingall result the way Mininet does.
func printMatrix(w io.Writer, m *emulator.Matrix) {
	fmt.Fprintln(w, "*** Ping: testing reachability")
	for i, a := range m.Nodes {
		var b strings.Builder
		fmt.Fprintf(&b, "%s ->", a)
		for j, z := range m.Nodes {
			if i == j {
				continue
			}
			if m.Results[i][j].OK() {
				b.WriteString(" " + z)
			} else {
				b.WriteString(" X")
			}
		}
		fmt.Fprintln(w, b.String())
	}
	probes, ok := m.Counts()
	drop := 0
	if probes > 0 {
		drop = 100 * (probes - ok) / probes
	}
	fmt.Fprintf(w, "*** Results: %d%% dropped (%d/%d received)\n", drop, ok, probes)
}

func (g *globals) cmdValidate(c *cli.Context) error {
	if c.NArg() == 0 {
		return emulator.BadInput(errors.New("usage: nslab validate FILE..."))
	}
	var errs []error
	for _, f := range c.Args().Slice() {
		t, err := loadFile(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		plan, err := emulator.Resolve(t)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		script, err := loadScript(c, plan)
		if err != nil {
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
		return emulator.BadInput(errors.Join(errs...))
	}
	return nil
}

// printResult prints a probe's typed result: as JSON with --json, else as
// its String form.
func (g *globals) printResult(c *cli.Context, res fmt.Stringer) {
	if c.Bool("json") {
		writeJSON(g.stdout, res)
	} else {
		fmt.Fprintln(g.stdout, res)
	}
}

func printPlan(w io.Writer, p *emulator.Plan) {
	for _, n := range p.Nodes {
		if n.Bridge != "" {
			fmt.Fprintf(w, "  %s (%s, netns %s, bridge %s)\n", n.Name, n.Kind, n.Namespace, n.Bridge)
		} else {
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
	if h := p.Host; h != nil {
		var as []string
		for _, a := range h.Host.Addrs {
			as = append(as, a.String())
		}
		fmt.Fprintf(w, "  host attachment (in the namespace nslab runs in)\n    %s -> %s:%s %s\n", h.Host.Name, h.Lab.Node, h.Lab.Name, strings.Join(as, " "))
		for _, r := range h.Routes {
			fmt.Fprintf(w, "    route %s\n", r)
		}
	}
}

func orHost(s string) string {
	if s == "" {
		return "host"
	}
	return s
}

func (g *globals) cmdClean(c *cli.Context) error {
	names := c.Args().Slice()
	if c.Bool("all") {
		if len(names) > 0 {
			return emulator.BadInput(errors.New("give lab names or --all, not both"))
		}
		var err error
		if names, err = emulator.ListLabs(g.opts.StateDir); err != nil {
			return err
		}
	} else if len(names) == 0 {
		return emulator.BadInput(errors.New("usage: nslab clean LAB... | --all"))
	}
	if err := needCaps(false); err != nil {
		return err
	}
	for _, n := range names {
		if err := emulator.CheckLabName(n); err != nil {
			return emulator.BadInput(err)
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
		if err := emulator.Clean(n, g.opts); err != nil {
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

func (g *globals) cmdGenerate(c *cli.Context) error {
	if c.NArg() != 1 {
		return emulator.BadInput(errors.New("usage: nslab generate SPEC (single,N | linear,N | tree,DEPTH,FANOUT)"))
	}
	t, err := emulator.Generate(c.Args().First(), c.String("name"))
	if err != nil {
		return err
	}
	data, err := t.TOML()
	if err != nil {
		return err
	}
	_, err = g.stdout.Write(data)
	return err
}

// logMemory logs the process's peak resident memory (with -v): nslab
// keeps no process per node, so this is all the memory a lab costs in user
// space.
func logMemory(l *slog.Logger) {
	if l == nil {
		return
	}
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) == nil {
		l.Debug("memory", "max_rss_kib", ru.Maxrss)
	}
}

// protoPort reads exactly one of --udp and --tcp, and checks --from-port.
func protoPort(c *cli.Context) (string, int, error) {
	set := func(name string) bool { return c.IsSet(name) }
	var proto string
	var port int
	switch {
	case set("udp") && !set("tcp"):
		proto, port = "udp", c.Int("udp")
	case set("tcp") && !set("udp"):
		proto, port = "tcp", c.Int("tcp")
	default:
		return "", 0, emulator.BadInput(errors.New("give one of --udp PORT or --tcp PORT"))
	}
	if port < 1 || port > 65535 {
		return "", 0, emulator.BadInput(fmt.Errorf("--%s %d: a port is 1-65535", proto, port))
	}
	if c.Command.Name == "probe" {
		if fp := c.Int("from-port"); fp < 0 || fp > 65535 {
			return "", 0, emulator.BadInput(fmt.Errorf("--from-port %d: a port is 1-65535 (or 0 for any)", fp))
		}
	}
	return proto, port, nil
}

func (g *globals) cmdServe(c *cli.Context) error {
	lab, err := g.withLab(c, 2, "nslab serve LAB NODE (--udp PORT | --tcp PORT)", false)
	if err != nil {
		return err
	}
	proto, port, err := protoPort(c)
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	svc, err := lab.Serve(c.Args().Get(1), proto, port)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	svc.Seen = func(from netip.AddrPort) {
		mu.Lock()
		fmt.Fprintf(g.stdout, "probe from %s\n", from)
		mu.Unlock()
	}
	fmt.Fprintf(g.stdout, "echo service on %s %s port %d of node %s; Ctrl-C stops it\n", lab.Name(), proto, port, svc.Node)
	<-ctx.Done()
	return svc.Close()
}

func (g *globals) cmdProbe(c *cli.Context) error {
	lab, err := g.withLab(c, 3, "nslab probe LAB FROM TO (--udp PORT | --tcp PORT)", false)
	if err != nil {
		return err
	}
	proto, port, err := protoPort(c)
	if err != nil {
		return err
	}
	to := c.Args().Get(2)
	var target netip.AddrPort
	if a, err := netip.ParseAddr(to); err == nil {
		target = netip.AddrPortFrom(a, uint16(port))
	} else if target, err = lab.AddrOf(to, 4, port); err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	res, err := lab.Probe(ctx, c.Args().Get(1), target, proto, emulator.ProbeOptions{FromPort: c.Int("from-port"), Timeout: c.Duration("timeout")})
	if err != nil {
		if emulator.IsBadInput(err) {
			return err
		}
		return &checkFailed{err.Error()}
	}
	g.printResult(c, res)
	return nil
}

func writeJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// permuteArgs lets flags follow positional arguments (`nslab status lan
// --json`): for every command but exec, it moves the flags of the command
// in front of its other arguments.
func permuteArgs(app *cli.App, args []string) []string {
	// Skip the program name and global flags.
	i := 1
	for i < len(args) && strings.HasPrefix(args[i], "-") {
		if !isBoolFlag(app.Flags, args[i]) && !strings.Contains(args[i], "=") {
			i++
		}
		i++
	}
	if i >= len(args) {
		return args
	}
	cmd := app.Command(args[i])
	if cmd == nil || cmd.SkipFlagParsing {
		return args
	}
	var global, flags, pos []string
	rest := args[i+1:]
	for k := 0; k < len(rest); k++ {
		a := rest[k]
		if a == "--" {
			pos = append(pos, rest[k:]...)
			break
		}
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			// A global flag written after the command goes before it.
			dst, set := &flags, cmd.Flags
			if hasFlag(app.Flags, a) && !hasFlag(cmd.Flags, a) {
				dst, set = &global, app.Flags
			}
			*dst = append(*dst, a)
			if !isBoolFlag(set, a) && !strings.Contains(a, "=") && k+1 < len(rest) && a != "-h" && a != "--help" {
				k++
				*dst = append(*dst, rest[k])
			}
			continue
		}
		pos = append(pos, a)
	}
	out := append([]string{}, args[:i]...)
	out = append(out, global...)
	out = append(out, args[i])
	out = append(out, flags...)
	return append(out, pos...)
}

func flagName(arg string) string {
	name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
	return name
}

func hasFlag(flags []cli.Flag, arg string) bool {
	name := flagName(arg)
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return true
			}
		}
	}
	return false
}

func isBoolFlag(flags []cli.Flag, arg string) bool {
	name := flagName(arg)
	if name == "h" || name == "help" {
		return true
	}
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				_, ok := f.(*cli.BoolFlag)
				return ok
			}
		}
	}
	return false
}
