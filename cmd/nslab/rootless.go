package main

// This file: nslab without root: the commands that build or enter a lab
// run inside a user namespace of nslab's own, a lab of `up` held by a
// keeper that runs the user's later commands on it (docs/rootless.md).

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/internal/rootless"
	"github.com/nslab/nslab/topo"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

// self is the program a child or a keeper runs: this very binary.
const self = "/proc/self/exe"

// rootlessFlag is the global --rootless.
func rootlessFlag() cli.Flag {
	return &cli.BoolFlag{Name: "rootless", EnvVars: []string{rootless.ForceEnv},
		Usage: "run inside a user namespace of nslab's own, as an ordinary user does (automatic without the capabilities; docs/rootless.md)"}
}

// rootlessBefore runs last in the app's Before. In the child of a
// rootless command it sets the child up (its tmpfs, its state and
// namespace directories). Where nslab lacks the capabilities, or
// --rootless asks, it gives every command that builds or enters a lab its
// rootless action: run and up through a new keeper, the others through
// the lab's keeper.
func (g *globals) rootlessBefore(c *cli.Context) error {
	p, child, err := rootless.Setup()
	if child {
		if err != nil {
			return err
		}
		g.opts.StateDir, g.opts.NetnsDir = p.StateDir, p.NetnsDir
		g.rootlessDir = p.Dir
		return nil
	}
	if !rootless.Needed(emulator.MissingCapabilities(false), c.Bool("rootless")) {
		return nil
	}
	for _, cmd := range c.App.Commands {
		switch cmd.Name {
		case "run", "up":
			cmd.Action = g.rootlessBuild
		case "clean":
			cmd.Action = g.rootlessClean
		case "status":
			cmd.Action = func(c *cli.Context) error {
				if c.NArg() == 0 {
					return g.rootlessStatus(c)
				}
				return g.rootlessForward(c)
			}
		case "graph":
			// A file or a --topo is drawn here; a lab that is up, by
			// its keeper (its record is in the lab's namespaces).
			orig := cmd.Action
			cmd.Action = func(c *cli.Context) error {
				dir, err := rootless.Dir()
				if err == nil && c.NArg() == 1 && !exists(c.Args().First()) && slices.Contains(rootless.Keepers(dir), c.Args().First()) {
					return g.rootlessForward(c)
				}
				return orig(c)
			}
		case "__complete":
			orig := cmd.Action
			cmd.Action = func(c *cli.Context) error { return g.rootlessComplete(c, orig) }
		default:
			if !slices.Contains(forwardedCommands(), cmd.Name) {
				continue // needs no kernel: localCommands
			}
			orig := cmd.Action
			cmd.Action = func(c *cli.Context) error {
				if first := c.Args().First(); first == "-h" || first == "--help" {
					return orig(c) // exec's own flags are not parsed
				}
				return g.rootlessForward(c)
			}
		}
	}
	return nil
}

// forwardedCommands work on a lab named by their first argument: without
// root, their keeper runs them. A new command that enters a lab belongs
// here (TestRootlessCommandsClassified fails until it is placed).
func forwardedCommands() []string {
	return []string{"down", "exec", "shell", "attach", "ping", "pingall", "serve", "probe", "punch", "link", "iperf", "capture"}
}

// localCommands need no kernel and run as they are without root; the
// others of rootlessBefore have rootless actions of their own.
func localCommands() []string {
	return []string{"validate", "generate", "completion", "version", "help", "__keeper"}
}

// hostNeedsRoot refuses a plan with a host attachment: the machine's
// namespace is out of reach of a user namespace.
func hostNeedsRoot(p *topo.Plan) error {
	if p.Host != nil {
		return fmt.Errorf("lab %q: a host attachment needs root: the machine's network namespace is out of reach of nslab's user namespace (run as root, or remove [host]; docs/rootless.md)", p.Lab)
	}
	return nil
}

// exitWith ends nslab with the exit code of a command run in a user
// namespace: that command has said all there is to say.
func exitWith(code int, err error) error {
	if err != nil {
		return err
	}
	os.Exit(code)
	return nil
}

// rootlessBuild is `nslab up` and `nslab run` without root: a keeper for
// the lab, which then runs this command inside. A lab of run is torn down
// when run ends (its keeper then ends too), but while it runs the user's
// other commands reach it, as under root; if run is killed, its command
// in the keeper gets a hang-up and tears the lab down.
func (g *globals) rootlessBuild(c *cli.Context) error {
	plan, err := g.loadPlan(c)
	if err != nil {
		return err
	}
	if err := hostNeedsRoot(plan); err != nil {
		return err
	}
	dir, err := rootless.Dir()
	if err != nil {
		return err
	}
	lab := plan.Lab
	if r, err := rootless.ReadRecord(dir, lab); err == nil && !r.Alive() {
		return fmt.Errorf("lab %q: its keeper is gone (killed?): remove what is left with `nslab clean %s`", lab, lab)
	}
	// A keeper found alive may be ending (its lab just went: run X; run
	// X): it then closes the connection unanswered, and a new keeper is
	// started.
	for attempt := 0; ; attempt++ {
		if _, err := rootless.ReadRecord(dir, lab); err != nil {
			err := rootless.StartKeeper(dir, lab, self, []string{os.Args[0], "__keeper", lab})
			if err != nil && (attempt >= 5 || !errors.Is(err, rootless.ErrKeeperExists)) {
				return err
			}
		}
		wd, _ := os.Getwd()
		code, err := rootless.Forward(dir, lab, rootless.Request{Args: os.Args, Env: os.Environ(), Dir: wd}, os.Stdin, g.stdoutFile(), g.stderrFile())
		if errors.Is(err, rootless.ErrNoKeeper) && attempt < 5 {
			waitGone(dir, lab)
			continue
		}
		return exitWith(code, err)
	}
}

// waitGone waits a little for the keeper files of an ending keeper to go.
func waitGone(dir, lab string) {
	for i := 0; i < 100 && exists(rootless.RecordPath(dir, lab)); i++ {
		if r, err := rootless.ReadRecord(dir, lab); err == nil && !r.Alive() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (g *globals) stdoutFile() *os.File {
	if f, ok := asFile(g.stdout); ok {
		return f
	}
	return os.Stdout
}

func (g *globals) stderrFile() *os.File {
	if f, ok := asFile(g.stderr); ok {
		return f
	}
	return os.Stderr
}

// forward runs the request (its Args; its environment and working
// directory are this process's) in lab through its keeper, on this
// process's stdin, stdout and stderr.
func (g *globals) forward(dir, lab string, req rootless.Request) (int, error) {
	req.Env = os.Environ()
	req.Dir, _ = os.Getwd()
	code, err := rootless.Forward(dir, lab, req, os.Stdin, g.stdoutFile(), g.stderrFile())
	if err == nil {
		return code, nil
	}
	// A keeper killed a moment ago may still take a connection and then
	// drop it: its record says whether it is gone.
	if r, rerr := rootless.ReadRecord(dir, lab); rerr == nil && !r.Alive() {
		return 0, fmt.Errorf("lab %q: its keeper is gone (killed?): remove what is left with `nslab clean %s`", lab, lab)
	}
	if errors.Is(err, rootless.ErrNoKeeper) {
		return 0, topo.BadInput(&emulator.NoSuchLabError{Lab: lab, Labs: rootless.Keepers(dir)})
	}
	return 0, err
}

// rootlessForward runs this command line in the lab named by the first
// argument, through its keeper.
func (g *globals) rootlessForward(c *cli.Context) error {
	name := c.Args().First()
	dir, err := rootless.Dir()
	if err != nil {
		return err
	}
	if name == "" {
		return topo.BadInput(&emulator.NoSuchLabError{Lab: "", Labs: rootless.Keepers(dir)})
	}
	if err := topo.CheckLabName(name); err != nil {
		return topo.BadInput(err)
	}
	// A shell, and a program run from a terminal, get a terminal of
	// their own in the lab: a controlling terminal, so job control works.
	req := rootless.Request{Args: os.Args}
	req.TTY = (c.Command.Name == "shell" || c.Command.Name == "exec") && isTerminal(os.Stdin) && isTerminal(g.stdout)
	if args := c.Args().Slice(); c.Command.Name == "exec" && len(args) >= 3 {
		// The keeper starts the program itself: one start of nslab less.
		argv := args[2:]
		if argv[0] == "--" {
			argv = argv[1:]
		}
		if len(argv) > 0 {
			req.Exec = &rootless.ExecRequest{Node: args[1], Argv: argv}
		}
	}
	return exitWith(g.forward(dir, name, req))
}

// rootlessStatus is `nslab status` without a lab: every keeper of the
// user is asked for its lab.
func (g *globals) rootlessStatus(c *cli.Context) error {
	dir, err := rootless.Dir()
	if err != nil {
		return err
	}
	rows := []statusRow{}
	for _, lab := range rootless.Keepers(dir) {
		r, err := rootless.ReadRecord(dir, lab)
		if err != nil || !r.Alive() {
			rows = append(rows, statusRow{Lab: lab, State: "orphaned", Note: "its keeper is gone: run nslab clean " + lab})
			continue
		}
		got, err := g.capture(dir, lab, []string{os.Args[0], "status", "--json"})
		var these []statusRow
		if err == nil {
			err = json.Unmarshal(got, &these)
		}
		if err != nil {
			rows = append(rows, statusRow{Lab: lab, State: "unknown", Note: fmt.Sprintf("its keeper did not answer (%v): run nslab clean %s", err, lab)})
			continue
		}
		rows = append(rows, these...)
	}
	g.printStatusRows(rows, c.Bool("json"))
	return nil
}

// capture runs args in lab through its keeper and returns its stdout.
func (g *globals) capture(dir, lab string, args []string) ([]byte, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	out := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(r)
		out <- b
	}()
	wd, _ := os.Getwd()
	code, err := rootless.Forward(dir, lab, rootless.Request{Args: args, Env: os.Environ(), Dir: wd}, os.Stdin, w, os.Stderr)
	w.Close()
	b := <-out
	if err == nil && code != 0 {
		err = fmt.Errorf("exit %d", code)
	}
	return b, err
}

// rootlessClean is `nslab clean` without root: a lab whose keeper answers
// is cleaned by it; a lab whose keeper is gone is removed by the identity
// of its user namespace (rootless.Kill).
func (g *globals) rootlessClean(c *cli.Context) error {
	dir, err := rootless.Dir()
	if err != nil {
		return err
	}
	names := c.Args().Slice()
	if c.Bool("all") {
		if len(names) > 0 {
			return topo.BadInput(errors.New("give lab names or --all, not both"))
		}
		names = rootless.Keepers(dir)
	} else if len(names) == 0 {
		return topo.BadInput(errors.New("usage: nslab clean LAB... | --all"))
	}
	for _, n := range names {
		if err := topo.CheckLabName(n); err != nil {
			return topo.BadInput(err)
		}
	}
	var errs []error
	for _, n := range names {
		r, rerr := rootless.ReadRecord(dir, n)
		switch {
		case rerr != nil && !exists(rootless.SockPath(dir, n)):
			fmt.Fprintf(g.stdout, "no lab %s: nothing to clean\n", n)
		case rerr == nil && r.Alive():
			code, err := g.forward(dir, n, rootless.Request{Args: []string{os.Args[0], "clean", n}})
			if err == nil && code != 0 {
				err = fmt.Errorf("exit %d", code)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("clean lab %q: %w", n, err))
			}
		default:
			killed, err := rootless.Kill(dir, n)
			if err != nil {
				errs = append(errs, fmt.Errorf("clean lab %q: %w", n, err))
				continue
			}
			fmt.Fprintf(g.stdout, "lab %s cleaned (its keeper was gone; %d processes of its user namespace stopped)\n", n, killed)
		}
	}
	if len(names) == 0 {
		fmt.Fprintln(g.stdout, "no labs to clean")
	}
	return errors.Join(errs...)
}

// keeperCommand is the hidden `nslab __keeper LAB`, which `up` starts
// without root in new namespaces: it holds them and serves the user's
// commands on the lab (docs/rootless.md).
func (g *globals) keeperCommand() *cli.Command {
	return &cli.Command{
		Name:   "__keeper",
		Hidden: true,
		Action: func(c *cli.Context) error {
			lab := c.Args().First()
			if err := topo.CheckLabName(lab); err != nil {
				return topo.BadInput(err)
			}
			if g.rootlessDir == "" {
				return errors.New("nslab __keeper runs only as nslab up starts it without root")
			}
			opts := emulator.Options{StateDir: g.opts.StateDir, NetnsDir: g.opts.NetnsDir}
			k := &rootless.Keeper{
				Dir: g.rootlessDir, Lab: lab, Self: self,
				Env: []string{rootless.StateEnv + "=" + opts.StateDir, rootless.NetnsEnv + "=" + opts.NetnsDir},
				LabsLeft: func() bool {
					labs, _ := emulator.ListLabs(opts.StateDir)
					return len(labs) > 0
				},
				Teardown: func() { emulator.Clean(lab, opts) },
				Exec:     (&keeperExec{name: lab, opts: opts}).start,
			}
			// Readiness goes to up on stdout, a pipe that must then be
			// closed: fd 1 becomes /dev/null (never left closed, where a
			// socket could take its number).
			rfd, err := unix.Dup(1)
			if err != nil {
				return err
			}
			ready := os.NewFile(uintptr(rfd), "ready")
			if null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0); err == nil {
				unix.Dup3(int(null.Fd()), 1, 0)
				null.Close()
			}
			return k.Serve(ready, 10*time.Second)
		},
	}
}

// keeperExec starts the programs of `nslab exec` in the keeper's lab
// itself, as cmdExec would through ExecReplace: in the node, with the
// client's environment, directory and files.
type keeperExec struct {
	name string
	opts emulator.Options
	mu   sync.Mutex
	lab  *emulator.Lab // opened on first use
}

func (k *keeperExec) start(r rootless.ExecRequest, env []string, dir string, stdin, stdout, stderr *os.File) (*exec.Cmd, int, error) {
	k.mu.Lock()
	if k.lab == nil {
		lab, err := emulator.Open(k.name, k.opts)
		if err != nil {
			k.mu.Unlock()
			return nil, exitCode(err), err
		}
		k.lab = lab
	}
	lab := k.lab
	k.mu.Unlock()
	path, err := lookPathIn(r.Argv[0], env)
	if err != nil {
		err = execStatus(topo.BadInput(&emulator.ProgramError{Node: r.Node, Program: r.Argv[0], Err: err}))
		return nil, exitCode(err), err
	}
	cmd := &exec.Cmd{Path: path, Args: r.Argv, Env: env, Dir: dir, Stdin: stdin, Stdout: stdout, Stderr: stderr}
	if err := lab.Start(r.Node, cmd); err != nil {
		return nil, exitCode(err), err
	}
	return cmd, 0, nil
}

// exitCode is the code run gives err.
func exitCode(err error) int {
	var es *exitStatus
	switch {
	case errors.As(err, &es):
		return es.code
	case topo.IsBadInput(err):
		return exitBadInput
	}
	return exitFailed
}

// lookPathIn finds a program as exec.LookPath does, in the PATH of env.
func lookPathIn(file string, env []string) (string, error) {
	if strings.Contains(file, "/") {
		return exec.LookPath(file)
	}
	path := ""
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			path = v
		}
	}
	for _, d := range filepath.SplitList(path) {
		if d == "" {
			d = "."
		}
		p := filepath.Join(d, file)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			if !filepath.IsAbs(p) {
				return "", &exec.Error{Name: file, Err: exec.ErrDot}
			}
			return p, nil
		}
	}
	return "", &exec.Error{Name: file, Err: exec.ErrNotFound}
}

// rootlessComplete is the hidden __complete without root: the labs and
// their nodes are in the keepers' namespaces, so the words are completed
// by the keeper of the lab they name, or, before a lab is named, by every
// keeper, their candidates put together. It never fails (see
// completeCommand).
func (g *globals) rootlessComplete(c *cli.Context, orig cli.ActionFunc) error {
	dir, err := rootless.Dir()
	if err != nil {
		return orig(c)
	}
	labs := rootless.Keepers(dir)
	live := labs[:0]
	for _, lab := range labs {
		if r, err := rootless.ReadRecord(dir, lab); err == nil && r.Alive() {
			live = append(live, lab)
		}
	}
	if len(live) == 0 {
		return orig(c)
	}
	for _, w := range c.Args().Slice() {
		if slices.Contains(live, w) {
			live = []string{w}
			break
		}
	}
	var lines []string
	directive := ""
	for _, lab := range live {
		out, err := g.capture(dir, lab, os.Args)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
			switch {
			case strings.HasPrefix(l, ":"):
				directive = l
			case l != "" && !slices.Contains(lines, l):
				lines = append(lines, l)
			}
		}
	}
	if directive == "" {
		return orig(c)
	}
	for _, l := range lines {
		fmt.Fprintln(g.stdout, l)
	}
	fmt.Fprintln(g.stdout, directive)
	return nil
}
