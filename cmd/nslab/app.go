package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/topo"
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
   nslab link lan h1 s1 set rate=10mbit   impair a link while the lab runs
   nslab iperf lan h1 h2                  throughput between two nodes
   nslab capture lan h1 udp               packets of h1, one line each (-w FILE: pcapng)
   nslab graph lan -o lan.svg             a picture of the lab: svg, dot, mermaid
   nslab down lan                         remove exactly what was built
   nslab clean --all                      remove labs left by a crash

Exit codes: 0 success, 1 a check failed (or the kernel refused), 2 bad input.
Without root, nslab runs labs in a user namespace of its own (docs/rootless.md).
The file format is in docs/topology.md.`

func newApp(stdout, stderr io.Writer) *cli.App {
	g := &globals{stdout: stdout, stderr: stderr}
	app := &cli.App{
		Name:            "nslab",
		Usage:           "network labs out of Linux namespaces, veth pairs and bridges",
		Description:     tour,
		Writer:          stdout,
		ErrWriter:       stderr,
		HideVersion:     true, // --version is ours: urfave's would take -v from --verbose
		OnUsageError:    usageError,
		ExitErrHandler:  func(*cli.Context, error) {},
		CommandNotFound: func(c *cli.Context, cmd string) {},
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "state-dir", Value: "/run/nslab", Usage: "`DIR` of lab records", EnvVars: []string{"NSLAB_STATE_DIR"}},
			&cli.StringFlag{Name: "netns-dir", Value: "/run/netns", Usage: "`DIR` where named namespaces are pinned (as ip netns expects)", EnvVars: []string{"NSLAB_NETNS_DIR"}},
			&cli.IntFlag{Name: "workers", Value: 2, Usage: "kernel steps run at once"},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "log each phase to stderr"},
			&cli.BoolFlag{Name: "version", Usage: "print the version and the revision nslab was built from"},
			rootlessFlag(),
		},
		Action: func(c *cli.Context) error {
			if c.Bool("version") {
				_, err := fmt.Fprintln(g.stdout, readVersion())
				return err
			}
			if c.Args().Present() {
				return topo.BadInput(fmt.Errorf("unknown command %q (run `nslab --help` for the list)", c.Args().First()))
			}
			return cli.ShowAppHelp(c)
		},
		Before: func(c *cli.Context) error {
			g.opts = emulator.Options{StateDir: c.String("state-dir"), NetnsDir: c.String("netns-dir"), Workers: c.Int("workers")}
			if c.Bool("verbose") {
				g.opts.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
			}
			if c.Args().Present() && c.App.Command(c.Args().First()) == nil {
				return topo.BadInput(fmt.Errorf("unknown command %q (run `nslab --help` for the list)", c.Args().First()))
			}
			return g.rootlessBefore(c)
		},
		Commands: []*cli.Command{
			g.runCommand(),
			g.upCommand(),
			g.downCommand(),
			g.statusCommand(),
			g.execCommand(),
			g.shellCommand(),
			g.attachCommand(),
			g.pingCommand(),
			g.pingallCommand(),
			g.serveCommand(),
			g.probeCommand(),
			g.punchCommand(),
			g.linkCommand(),
			g.iperfCommand(),
			g.captureCommand(),
			g.versionCommand(),
			g.validateCommand(),
			g.cleanCommand(),
			g.generateCommand(),
			g.graphCommand(),
			g.completionCommand(),
			g.completeCommand(),
			g.keeperCommand(),
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
	return topo.BadInput(fmt.Errorf("%w (see `%s`)", err, help))
}

type globals struct {
	stdout, stderr io.Writer
	opts           emulator.Options
	rootlessDir    string // the user's directory, in a rootless child (rootless.go)
}

// needCaps fails with one sentence when the process lacks a capability.
func needCaps(raw bool) error {
	if missing := emulator.MissingCapabilities(raw); len(missing) > 0 {
		return fmt.Errorf("nslab needs %s to build and enter namespaces: run it as root (sudo nslab ...)", strings.Join(missing, " and "))
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
func writeJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// topoFlags are the flags of the commands that build a lab from a file or
// a generator.
func topoFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "topo", Usage: "use a built-in topology instead of a file: `SPEC` is single,N | linear,N | tree,DEPTH,FANOUT (one L2 segment), or fattree,K | ring,N | mesh,N (routed; see nslab generate --help)"},
		&cli.StringFlag{Name: "name", Usage: "lab `NAME`: renames a file's lab, or names a --topo lab (default: the spec, e.g. single-4)"},
		&cli.StringFlag{Name: "datapath", Usage: "what forwards the frames of every switch whose node names no datapath: `KIND` is bridge (a Linux bridge, the default) or ebpf (nslab's eBPF learning switch: no bridge device, at most 64 ports, no STP; much less for the kernel to remove; docs/topology.md, datapath)"},
	}
}
