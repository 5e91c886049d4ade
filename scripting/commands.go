package scripting

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/impair"
	"github.com/nslab/nslab/topo"
)

// Command is one command of the script language. The built-in commands
// are listed by Builtins; more (the impairment commands of a later
// release, a test suite's own) are added with Registry.Register.
type Command struct {
	// Name is the word that starts the line.
	Name string
	// Usage shows the arguments: "reach A B".
	Usage string
	// Summary is one line for `help`.
	Summary string
	// Help is the rest of the documentation, for `help NAME`.
	Help string
	// Check is true when the command passes or fails: it can then be
	// negated with a leading '!' and retried with `wait`.
	Check bool
	// MinArgs and MaxArgs bound the number of arguments (MaxArgs < 0: no
	// bound).
	MinArgs, MaxArgs int
	// Validate checks the arguments before anything runs (node names,
	// durations, patterns). nil accepts any.
	Validate func(v *Validator, ln *Line, args []string) error
	// Run does the work. A check tells in Outcome.Held whether it held;
	// an error means it could not be run at all, and fails the line
	// whether or not it is negated.
	Run func(ctx context.Context, s *Session, ln *Line, args []string) (Outcome, error)
}

// Outcome is what running a line did.
type Outcome struct {
	// Held tells whether a check held (ignored for other commands).
	Held bool
	// Said tells what happened, in a few words: "red -> blue
	// (10.0.0.2): 1/1 replies ...".
	Said string
	// Want and WantNot say what was expected when the check is written
	// plainly and with '!': "red to reach blue", "red not to reach blue".
	Want, WantNot string
	// Output is the full output to show (a program's, a listing).
	Output string
}

// Registry is a set of commands. The zero value is empty; Builtins returns
// one holding the built-in commands.
type Registry struct {
	cmds map[string]*Command
}

// Register adds c; a command of the same name is an error.
func (r *Registry) Register(c *Command) error {
	if c.Name == "" || c.Run == nil {
		return fmt.Errorf("register command %q: it needs a name and a Run function", c.Name)
	}
	if r.cmds == nil {
		r.cmds = map[string]*Command{}
	}
	if _, ok := r.cmds[c.Name]; ok {
		return fmt.Errorf("register command %q: there is one already", c.Name)
	}
	r.cmds[c.Name] = c
	return nil
}

// Lookup returns the command called name, or nil.
func (r *Registry) Lookup(name string) *Command {
	if r == nil {
		return nil
	}
	return r.cmds[name]
}

// Names lists the commands in alphabetical order.
func (r *Registry) Names() []string {
	var out []string
	if r != nil {
		for n := range r.cmds {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// Builtins returns a new registry holding the built-in commands.
func Builtins() *Registry {
	r := &Registry{}
	for _, c := range append(append(append(builtins(), probeCommands()...), punchCommand(), iperfCommand()), captureCommands()...) {
		if err := r.Register(c); err != nil {
			panic(err) // a programming error in the table below
		}
	}
	return r
}

func builtins() []*Command {
	return []*Command{
		{
			Name: "exec", Usage: "exec NODE PROGRAM [ARG...]", Check: true, MinArgs: 2, MaxArgs: -1,
			Summary: "run a program in a node (the same as `NODE PROGRAM ARG...`)",
			Help: `Runs PROGRAM inside NODE: its network namespace, hostname and /etc/hosts.
The line passes when the program exits 0 ('!' expects a non-zero exit).
Its output is shown and kept for the next ` + "`expect`" + `. Arguments that name a
node are replaced by that node's first address (IPv4 first), as at
Mininet's prompt: ` + "`red ping -c1 blue`" + ` pings blue's address. Quote a
word ('blue') or write ` + "`set subst off`" + ` to keep it as it is. Use the exec
form for a node whose name is also a command's. PROGRAM is the one this
machine has (` + "`red ping blue`" + ` is its ping, which runs until stopped).
A program line has a time limit (` + "`set limit`" + `, 30s by default): then the
program gets SIGINT, as from Ctrl-C, and the line fails.`,
			Validate: func(v *Validator, ln *Line, args []string) error { return v.Node(args[0]) },
			Run: func(ctx context.Context, s *Session, ln *Line, args []string) (Outcome, error) {
				return s.runProgram(ctx, ln.Args[0].Text, ln.Args[1:], s.Limit)
			},
		},
		{
			Name: "limit", Usage: "limit DURATION|off NODE PROGRAM [ARG...]", Check: true, MinArgs: 3, MaxArgs: -1,
			Summary: "run a program in a node with a time limit of its own",
			Help: `Runs the program as ` + "`NODE PROGRAM ARG...`" + ` does, for at most DURATION (as
500ms, 2s, 1m) instead of the limit ` + "`set limit`" + ` gives the other lines;
` + "`off`" + ` lifts it. When the time is up the program gets SIGINT (SIGKILL a
second later) and the line fails, '!' or not: ` + "`limit 5s red ping blue`" + `.`,
			Validate: func(v *Validator, ln *Line, args []string) error {
				errs := []error{v.limit(args[0])}
				node := args[1]
				if node == "exec" && v.Plan.Node(node) == nil {
					if len(args) < 4 {
						return v.all(append(errs, fmt.Errorf("no program to run: usage is `limit DURATION|off NODE PROGRAM [ARG...]`"))...)
					}
					node = args[2]
				}
				if v.Reg.Lookup(node) != nil && v.Plan.Node(node) == nil {
					return v.all(append(errs, fmt.Errorf("limit bounds a program in a node, and %q is a command, not a node (reach, pingall, nat, tcp and udp wait as long as `set timeout` says; wait has its own DURATION)", node))...)
				}
				return v.all(append(errs, v.Node(node))...)
			},
			Run: func(ctx context.Context, s *Session, ln *Line, args []string) (Outcome, error) {
				d, _ := parseLimit(args[0])
				words := ln.Args[1:]
				if words[0].Text == "exec" && s.Plan.Node("exec") == nil {
					words = words[1:]
				}
				return s.runProgram(ctx, words[0].Text, words[1:], d)
			},
		},
		{
			Name: "reach", Usage: "reach A B", Check: true, MinArgs: 2, MaxArgs: 2,
			Summary: "A gets an ICMP echo reply from B (a node or an address)",
			Help: `Sends ICMP echo requests from node A to node B's first address (or to the
address B), in process: no ping binary. Holds when a reply comes back
within the timeout (` + "`set timeout`" + `, 1s by default). ` + "`!reach A B`" + ` holds when none
does.`,
			Validate: func(v *Validator, ln *Line, args []string) error {
				return v.all(v.Source(args[0]), v.Target(args[1]))
			},
			Run: func(ctx context.Context, s *Session, ln *Line, args []string) (Outcome, error) {
				o := Outcome{Want: args[0] + " to reach " + args[1], WantNot: args[0] + " not to reach " + args[1]}
				r, err := s.ping(ctx, args[0], args[1])
				if err != nil {
					return o, err
				}
				o.Held, o.Said = r.OK(), r.String()
				return o, nil
			},
		},
		{
			Name: "pingall", Usage: "pingall [NODE...]", Check: true, MinArgs: 0, MaxArgs: -1,
			Summary: "every host and router reaches every other (or the nodes named)",
			Help: `Pings every ordered pair of the lab's hosts and routers (or of the nodes
named), in process, and shows the matrix. Holds when every pair answers;
` + "`!pingall`" + ` holds when at least one pair does not.`,
			Validate: func(v *Validator, ln *Line, args []string) error {
				var errs []error
				for _, a := range args {
					errs = append(errs, v.Source(a))
				}
				return v.all(errs...)
			},
			Run: func(ctx context.Context, s *Session, ln *Line, args []string) (Outcome, error) {
				o := Outcome{Want: "every pair to answer", WantNot: "some pair not to answer"}
				m, err := s.Lab.PingAll(ctx, args, emulator.PingOptions{Timeout: s.Timeout})
				if err != nil {
					return o, err
				}
				probes, ok := m.Counts()
				o.Held = ok == probes
				o.Said = fmt.Sprintf("%d/%d pairs answered", ok, probes)
				var b strings.Builder
				writeMatrix(&b, m)
				o.Output = b.String()
				return o, nil
			},
		},
		{
			Name: "nat", Usage: "nat A B [SEEN]", Check: true, MinArgs: 2, MaxArgs: 3,
			Summary: "the source address B sees when A sends to it (UDP)",
			Help: `Starts nslab's echo service on node B (UDP port 7, for the duration of the
check), sends one datagram from node A and shows the source address and
port B saw. Without SEEN the check holds when the source was translated on
the way (a NAT); with SEEN (an address, address:port, or a node: any of
its addresses) it holds when B saw that. '!' inverts either.`,
			Validate: func(v *Validator, ln *Line, args []string) error {
				errs := []error{v.Source(args[0]), v.Source(args[1])}
				if len(args) == 3 {
					errs = append(errs, v.Seen(args[2]))
				}
				return v.all(errs...)
			},
			Run: func(ctx context.Context, s *Session, ln *Line, args []string) (Outcome, error) {
				return s.nat(ctx, args)
			},
		},
		{
			Name: "expect", Usage: "expect REGEX", Check: true, MinArgs: 1, MaxArgs: 1,
			Summary: "the last program's output matches REGEX",
			Help: `Matches the output (stdout and stderr) of the last program run with a Go
regular expression (https://pkg.go.dev/regexp/syntax), in multi-line mode:
^ and $ match at each line. Quote it: expect 'default via 10\.0\.1\.1'.`,
			Validate: func(v *Validator, ln *Line, args []string) error { return v.Regexp(args[0]) },
			Run: func(ctx context.Context, s *Session, ln *Line, args []string) (Outcome, error) {
				return s.expect(args[0])
			},
		},
		{
			Name: "wait", Usage: "wait CHECK ARG... DURATION", MinArgs: 2, MaxArgs: -1,
			Summary: "retry a check until it holds, for at most DURATION",
			Help: `Runs the check again and again (every 50ms) until it holds or DURATION
(as 500ms, 2s, 1m) has passed: ` + "`wait reach red blue 2s`" + `, ` + "`wait !reach red blue 1s`" + `.
'!wait' holds when the check did not hold within DURATION.`,
			Check:    true,
			Validate: validateWait,
			Run: func(ctx context.Context, s *Session, ln *Line, args []string) (Outcome, error) {
				return s.wait(ctx, ln)
			},
		},
		{
			Name: "link", Usage: "link A B down|up|show|clear|set KEY=VALUE...", MinArgs: 3, MaxArgs: -1,
			Summary: "pull the cable between A and B or plug it back; show, set or clear its impairment",
			Help: `down and up set both ends of the cable between nodes A and B down (` + "`ip link set dev IF down`" + `
in each node) or up again; on up, the addresses and routes the lab gave
those interfaces are restored. Name an interface (A:eth1) when two nodes
share more than one cable.

set replaces what the link does with the keys and units of the file's
[links.impair] table, for both directions: link red blue set delay=50ms
loss=1%; from.red.rate=1mbit is one direction, profile=dsl a profile.
clear gives the plain link back; show prints what each direction does,
read from the kernel. The change reaches the next packet; nothing is
rebuilt (docs/impairments.md).`,
			Validate: func(v *Validator, ln *Line, args []string) error {
				var errs []error
				k, err := v.Plan.FindLink(args[0], args[1])
				if err != nil {
					errs = append(errs, err)
					v.nodes(args[0], args[1])
				}
				switch verb, words := args[2], args[3:]; verb {
				case "up", "down", "show", "clear":
					if len(words) > 0 {
						errs = append(errs, fmt.Errorf("link %s takes no words after it", verb))
					}
				case "set":
					if len(words) == 0 {
						errs = append(errs, errors.New("link set needs KEY=VALUE words, e.g. delay=50ms loss=1%"))
					} else if k != nil {
						if _, err := linkImpairment(k, words); err != nil {
							errs = append(errs, err)
						}
					}
				default:
					errs = append(errs, fmt.Errorf("unknown link word %q (down, up, show, clear or set)", verb))
				}
				return v.all(errs...)
			},
			Run: func(ctx context.Context, s *Session, ln *Line, args []string) (Outcome, error) {
				verb := args[2]
				if verb == "up" || verb == "down" {
					k, err := s.Lab.SetLink(args[0], args[1], verb == "up")
					if err != nil {
						return Outcome{}, err
					}
					return Outcome{Said: fmt.Sprintf("%s %s", k, verb)}, nil
				}
				k, err := s.Plan.FindLink(args[0], args[1])
				if err != nil {
					return Outcome{}, err
				}
				var want impair.Link // clear: the plain link
				if verb == "set" {
					if want, err = linkImpairment(k, args[3:]); err != nil {
						return Outcome{}, err
					}
				}
				if verb != "show" {
					if _, err := s.Lab.SetImpairment(k.A.Node+":"+k.A.Name, k.B.Node+":"+k.B.Name, want.AB); err != nil {
						return Outcome{}, err
					}
					if _, err := s.Lab.SetImpairment(k.B.Node+":"+k.B.Name, k.A.Node+":"+k.A.Name, want.BA); err != nil {
						return Outcome{}, err
					}
				}
				im, err := s.Lab.Impairment(k.A.Node+":"+k.A.Name, k.B.Node+":"+k.B.Name)
				if err != nil {
					return Outcome{}, err
				}
				return Outcome{Said: fmt.Sprintf("%s -> %s: %s\n%s -> %s: %s", k.A.Node, k.B.Node, orPlain(im.Now.AB), k.B.Node, k.A.Node, orPlain(im.Now.BA))}, nil
			},
		},
		{
			Name: "sleep", Usage: "sleep DURATION", MinArgs: 1, MaxArgs: 1,
			Summary: "pause (500ms, 2s, 1m)",
			Validate: func(v *Validator, ln *Line, args []string) error {
				_, err := v.Duration(args[0])
				return err
			},
			Run: func(ctx context.Context, s *Session, ln *Line, args []string) (Outcome, error) {
				d, _ := time.ParseDuration(args[0])
				t := time.NewTimer(d)
				defer t.Stop()
				select {
				case <-ctx.Done():
					return Outcome{}, ctx.Err()
				case <-t.C:
				}
				return Outcome{}, nil
			},
		},
		{
			Name: "nodes", Usage: "nodes", Summary: "list the nodes, their kinds and addresses",
			Run: func(ctx context.Context, s *Session, ln *Line, args []string) (Outcome, error) {
				return Outcome{Output: listNodes(s.Plan)}, nil
			},
		},
		{
			Name: "net", Usage: "net", Summary: "list each node's interfaces and what they are cabled to (as Mininet's net)",
			Run: func(ctx context.Context, s *Session, ln *Line, args []string) (Outcome, error) {
				return Outcome{Output: listNet(s.Plan)}, nil
			},
		},
		{
			Name: "intfs", Usage: "intfs", Summary: "list each node's interfaces (as Mininet's intfs)",
			Run: func(ctx context.Context, s *Session, ln *Line, args []string) (Outcome, error) {
				return Outcome{Output: listIntfs(s.Plan)}, nil
			},
		},
		{
			Name: "links", Usage: "links", Summary: "list the cables and the state of their ends",
			Run: func(ctx context.Context, s *Session, ln *Line, args []string) (Outcome, error) {
				out, err := listLinks(s.Lab, s.Plan)
				return Outcome{Output: out}, err
			},
		},
		{
			Name: "dump", Usage: "dump [NODE...]", MaxArgs: -1,
			Summary: "addresses and routes of every node, read from the kernel",
			Validate: func(v *Validator, ln *Line, args []string) error {
				var errs []error
				for _, a := range args {
					errs = append(errs, v.Node(a))
				}
				return v.all(errs...)
			},
			Run: func(ctx context.Context, s *Session, ln *Line, args []string) (Outcome, error) {
				out, err := dump(s.Lab, args)
				return Outcome{Output: out}, err
			},
		},
		{
			Name: "source", Usage: "source FILE", MinArgs: 1, MaxArgs: 1,
			Summary: "run the lines of another script file (relative to this one)",
			Run: func(ctx context.Context, s *Session, ln *Line, args []string) (Outcome, error) {
				return Outcome{}, s.runLines(ctx, ln.Sourced.Lines)
			},
		},
		{
			Name: "echo", Usage: "echo TEXT...", MaxArgs: -1, Summary: "print TEXT",
			Run: func(ctx context.Context, s *Session, ln *Line, args []string) (Outcome, error) {
				return Outcome{Output: strings.Join(args, " ") + "\n"}, nil
			},
		},
		{
			Name: "set", Usage: "set subst on|off | timeout DURATION | limit DURATION|off", MinArgs: 2, MaxArgs: 2,
			Summary: "change a setting for the lines that follow",
			Help: `subst: replace node names in program arguments by addresses (on by
default). timeout: how long reach, pingall, nat, tcp and udp wait for an
answer (1s by default). limit: how long a program line may run before it
is stopped and fails (30s by default; off: no limit).`,
			Validate: validateSet,
			Run: func(ctx context.Context, s *Session, ln *Line, args []string) (Outcome, error) {
				switch args[0] {
				case "subst":
					s.Subst = args[1] == "on"
				case "timeout":
					s.Timeout, _ = time.ParseDuration(args[1])
				case "limit":
					s.Limit, _ = parseLimit(args[1])
				}
				return Outcome{}, nil
			},
		},
		{
			Name: "lab", Usage: "lab NAME", MinArgs: 1, MaxArgs: 1,
			Summary: "say which lab the script is for (checked before anything runs)",
			Help: `The lab's name, or the name its topology file gives it when it runs
under another (nslab run --name, the unique names of nslabtest).`,
			Validate: func(v *Validator, ln *Line, args []string) error {
				origin := ""
				if v.Plan.Topology != nil {
					origin = v.Plan.Topology.Origin
				}
				if args[0] != origin && !sameLab(args[0], v.Plan.Lab) {
					also := ""
					if origin != "" {
						also = fmt.Sprintf(" (its file calls it %q)", origin)
					}
					return fmt.Errorf("this script is for lab %q, not for %q%s", args[0], v.Plan.Lab, also)
				}
				return nil
			},
			Run: func(ctx context.Context, s *Session, ln *Line, args []string) (Outcome, error) { return Outcome{}, nil },
		},
		{
			Name: "help", Usage: "help [COMMAND]", MaxArgs: 1, Summary: "list the commands, or explain one",
			Validate: func(v *Validator, ln *Line, args []string) error {
				if len(args) == 1 && v.Reg.Lookup(args[0]) == nil {
					if hint, ok := mininetWords[args[0]]; ok {
						return fmt.Errorf("unknown command %q: %s", args[0], strings.ReplaceAll(hint, "LAB", v.Plan.Lab))
					}
					return fmt.Errorf("no command %q%s", args[0], suggest(args[0], v.Reg.Names()))
				}
				return nil
			},
			Run: func(ctx context.Context, s *Session, ln *Line, args []string) (Outcome, error) {
				var b strings.Builder
				if len(args) == 1 {
					WriteHelp(&b, s.Reg.Lookup(args[0]))
				} else {
					writeHelpList(&b, s.Reg)
				}
				return Outcome{Output: b.String()}, nil
			},
		},
	}
}

// sameLab accepts a lab's own name, or the name a test gave it by adding a
// unique suffix ("tutorial-12345-1" for "tutorial").
func sameLab(want, got string) bool {
	return want == got || strings.HasPrefix(got, want+"-")
}

func validateSet(v *Validator, ln *Line, args []string) error {
	switch args[0] {
	case "subst":
		if args[1] != "on" && args[1] != "off" {
			return fmt.Errorf("subst is on or off, not %q", args[1])
		}
	case "timeout":
		_, err := v.Duration(args[1])
		return err
	case "limit":
		return v.limit(args[1])
	default:
		return fmt.Errorf("no setting %q%s", args[0], suggest(args[0], []string{"subst", "timeout", "limit"}))
	}
	return nil
}

// validateWait checks `wait CHECK ARG... DURATION` as the check itself
// would be checked.
func validateWait(v *Validator, ln *Line, args []string) error {
	errs := []error{}
	if _, err := v.Duration(args[len(args)-1]); err != nil {
		errs = append(errs, err)
	}
	inner := waitLine(ln, v.Reg)
	c := v.Reg.Lookup(inner.Name)
	switch {
	case c.Name == "exec" && len(inner.Args) > 0 && v.Plan.Node(inner.Args[0].Text) == nil:
		name := inner.Args[0].Text
		v.unknown[name] = true
		errs = append(errs, fmt.Errorf("no check or node %q%s", name, suggest(name, append(v.checks(), v.Plan.NodeNames()...))))
	case !c.Check || c.Name == "wait":
		errs = append(errs, fmt.Errorf("%q is not a check that can be waited for (checks: %s)", inner.Name, strings.Join(v.checks(), ", ")))
	default:
		errs = append(errs, v.command(c, inner))
	}
	return v.all(errs...)
}

// waitLine is the check inside a wait line: `wait reach a b 2s`, `wait
// !reach a b 2s` or `wait ! reach a b 2s`, and `wait NODE PROGRAM... 2s`
// (a program in a node, as `exec`).
func waitLine(ln *Line, reg *Registry) *Line {
	words := ln.Args[:len(ln.Args)-1]
	in := &Line{File: ln.File, Num: ln.Num, Text: ln.Text}
	if words[0].Text == "!" && len(words) > 1 {
		in.Neg, words = true, words[1:]
	} else if strings.HasPrefix(words[0].Text, "!") {
		in.Neg = true
		words = append([]Word{{Text: words[0].Text[1:]}}, words[1:]...)
	}
	in.Name, in.Args = words[0].Text, words[1:]
	if reg.Lookup(in.Name) == nil {
		in.Name, in.Args = "exec", words
	}
	return in
}

func listNodes(p *topo.Plan) string {
	var b strings.Builder
	for _, n := range p.Nodes {
		var addrs []string
		for _, i := range n.Ifaces {
			for _, a := range i.Addrs {
				addrs = append(addrs, fmt.Sprintf("%s %s", i.Name, a))
			}
		}
		fmt.Fprintf(&b, "%-12s %-7s %s\n", n.Name, n.Kind, strings.Join(addrs, ", "))
	}
	return b.String()
}

// listNet writes, for each node, its interfaces and the node and
// interface at the other end of each cable: "red  eth0->v-net-0:red".
func listNet(p *topo.Plan) string {
	var b strings.Builder
	width := 0
	for _, n := range p.Nodes {
		width = max(width, len(n.Name))
	}
	for _, n := range p.Nodes {
		var ends []string
		for _, i := range n.Ifaces {
			peer := "?"
			if i.Peer != nil {
				owner := i.Peer.Node
				if owner == "" {
					owner = "(host)"
				}
				peer = owner + ":" + i.Peer.Name
			}
			ends = append(ends, i.Name+"->"+peer)
		}
		fmt.Fprintf(&b, "%-*s  %s\n", width, n.Name, strings.Join(ends, " "))
	}
	return b.String()
}

// listIntfs writes each node's interfaces: "red: eth0 eth1".
func listIntfs(p *topo.Plan) string {
	var b strings.Builder
	for _, n := range p.Nodes {
		var names []string
		for _, i := range n.Ifaces {
			names = append(names, i.Name)
		}
		fmt.Fprintf(&b, "%s: %s\n", n.Name, strings.Join(names, " "))
	}
	return b.String()
}

func listLinks(l Lab, plan *topo.Plan) (string, error) {
	st, err := l.Status()
	if err != nil {
		return "", err
	}
	state := map[string]string{}
	for _, n := range st.Nodes {
		for _, i := range n.Interfaces {
			state[n.Name+":"+i.Name] = strings.ToLower(i.State)
		}
	}
	var b strings.Builder
	for _, k := range plan.Links {
		a, z := k.A.Node+":"+k.A.Name, k.B.Node+":"+k.B.Name
		fmt.Fprintf(&b, "%s (%s) -- %s (%s)\n", a, state[a], z, state[z])
	}
	return b.String(), nil
}

func dump(l Lab, only []string) (string, error) {
	st, err := l.Status()
	if err != nil {
		return "", err
	}
	want := map[string]bool{}
	for _, n := range only {
		want[n] = true
	}
	var b strings.Builder
	for _, n := range st.Nodes {
		if len(want) > 0 && !want[n.Name] {
			continue
		}
		fmt.Fprintf(&b, "%s (%s, namespace %s)\n", n.Name, n.Kind, n.Namespace)
		if n.Error != "" {
			fmt.Fprintf(&b, "  error: %s\n", n.Error)
		}
		for _, i := range n.Interfaces {
			if i.Name == "lo" {
				continue
			}
			fmt.Fprintf(&b, "  %-10s %-5s %s\n", i.Name, strings.ToLower(i.State), strings.Join(i.Addrs, " "))
		}
		for _, r := range n.Routes {
			fmt.Fprintf(&b, "  route %s\n", r)
		}
	}
	return b.String(), nil
}

func writeMatrix(w io.Writer, m *emulator.Matrix) {
	width := 4
	for _, n := range m.Nodes {
		width = max(width, len(n)+1)
	}
	fmt.Fprintf(w, "%*s", width, "")
	for _, n := range m.Nodes {
		fmt.Fprintf(w, "%*s", width, n)
	}
	fmt.Fprintln(w)
	for i, n := range m.Nodes {
		fmt.Fprintf(w, "%*s", width, n)
		for j := range m.Nodes {
			cell := "-"
			if r := m.Results[i][j]; i != j && r != nil {
				cell = "X"
				if r.OK() {
					cell = "ok"
				}
			}
			fmt.Fprintf(w, "%*s", width, cell)
		}
		fmt.Fprintln(w)
	}
}

// WriteHelp writes a command's usage and documentation.
func WriteHelp(w io.Writer, c *Command) {
	fmt.Fprintf(w, "%s\n    %s", c.Usage, c.Summary)
	if c.Check {
		fmt.Fprint(w, " (a check: '!' negates it)")
	}
	fmt.Fprintln(w)
	if c.Help != "" {
		for _, l := range strings.Split(c.Help, "\n") {
			fmt.Fprintf(w, "    %s\n", l)
		}
	}
}

func writeHelpList(w io.Writer, r *Registry) {
	fmt.Fprintln(w, "Commands (NODE PROGRAM ARG... runs a program in a node; '!' before a check negates it):")
	for _, n := range r.Names() {
		c := r.Lookup(n)
		fmt.Fprintf(w, "  %-34s %s\n", c.Usage, c.Summary)
	}
	fmt.Fprintln(w, "`help COMMAND` tells more; docs/scripting.md has it all.")
}

// seenMatches tells whether the address B saw matches what the script
// expected: an address (any port) or an address:port.
func seenMatches(want string, seen netip.AddrPort) bool {
	if ap, err := netip.ParseAddrPort(want); err == nil {
		return ap == seen
	}
	a, err := netip.ParseAddr(want)
	return err == nil && a == seen.Addr()
}

// linkImpairment reads link set's words for link k: the file's keys for
// both directions, profile=, user= and from.NODE.KEY=.
func linkImpairment(k *topo.Link, words []string) (impair.Link, error) {
	spec, err := impair.ParseSpec(words)
	if err != nil {
		return impair.Link{}, topo.BadInput(err)
	}
	l, ps := spec.Resolve(k.A.Node, k.B.Node)
	if len(ps) > 0 {
		return impair.Link{}, topo.BadInput(ps)
	}
	return l, nil
}

func orPlain(d impair.Direction) string {
	if d.IsZero() {
		return "plain"
	}
	return d.String()
}
