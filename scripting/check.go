package scripting

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/nslab/nslab/internal/text"
	"github.com/nslab/nslab/topo"
)

// maxSourceDepth bounds `source` nesting.
const maxSourceDepth = 8

// Validator checks a script against a lab's plan before anything runs:
// every command known, every node in the lab, every duration and pattern
// well formed, every sourced file readable. Command.Validate functions get
// it to check their arguments.
type Validator struct {
	Plan *topo.Plan
	Reg  *Registry

	ps      topo.Problems
	known   map[string]bool // nodes named that the lab has
	unknown map[string]bool // nodes named that it does not
	// oneLine is set for a line typed at the prompt: no wrong-lab hint
	// for a single word.
	oneLine bool
}

// Check validates s against plan with the commands of reg (nil: the
// built-ins). It returns every problem at once, as topo.Problems
// (bad input: the CLI exits 2), each naming the file, line and command.
// `source` lines are read and checked too.
func Check(s *Script, plan *topo.Plan, reg *Registry) error {
	return check(s, plan, reg, false)
}

func check(s *Script, plan *topo.Plan, reg *Registry, oneLine bool) error {
	if reg == nil {
		reg = Builtins()
	}
	v := &Validator{Plan: plan, Reg: reg, known: map[string]bool{}, unknown: map[string]bool{}, oneLine: oneLine}
	v.ps = append(v.ps, s.problems...)
	v.lines(s.Lines, 0, map[string]bool{})
	if len(v.unknown) > 0 && len(v.known) == 0 && !v.oneLine {
		var names []string
		for n := range v.unknown {
			names = append(names, n)
		}
		sort.Strings(names)
		file := s.File
		v.ps = append(topo.Problems{{File: file, Msg: fmt.Sprintf("lab %q has none of the nodes this script names (%s): is the script for another lab? Its nodes: %s",
			plan.Lab, strings.Join(names, ", "), strings.Join(plan.NodeNames(), ", "))}}, v.ps...)
	}
	if len(v.ps) > 0 {
		// In file order: by file (as first met), then line.
		rank := map[string]int{}
		for _, p := range v.ps {
			if _, ok := rank[p.File]; !ok {
				rank[p.File] = len(rank)
			}
		}
		sort.SliceStable(v.ps, func(i, j int) bool {
			a, b := v.ps[i], v.ps[j]
			if a.File != b.File {
				return rank[a.File] < rank[b.File]
			}
			return a.Pos.Line < b.Pos.Line
		})
		return v.ps
	}
	return nil
}

// CheckLine validates one line (typed at the prompt). Unlike Check, it
// does not take an unknown word for a sign that the script is for
// another lab: one line is too little to tell.
func CheckLine(ln *Line, plan *topo.Plan, reg *Registry) error {
	return check(&Script{File: ln.File, Lines: []*Line{ln}}, plan, reg, true)
}

func (v *Validator) lines(lines []*Line, depth int, active map[string]bool) {
	for _, ln := range lines {
		for _, err := range flatten(v.line(ln, depth, active)) {
			v.ps = append(v.ps, topo.Problem{File: ln.File, Pos: topo.Pos{Line: ln.Num}, Object: ln.Text, Msg: err.Error()})
		}
	}
}

func (v *Validator) line(ln *Line, depth int, active map[string]bool) error {
	c := v.Reg.Lookup(ln.Name)
	if c == nil {
		if v.Plan.Node(ln.Name) == nil {
			return v.unknownCommand(ln.Name)
		}
		v.known[ln.Name] = true
		if len(ln.Args) == 0 {
			return fmt.Errorf("no program to run in node %q (write `%s PROGRAM ARG...`, e.g. `%s ip addr`)", ln.Name, ln.Name, ln.Name)
		}
		return nil
	}
	if err := v.command(c, ln); err != nil {
		return err
	}
	if c.Name == "source" {
		return v.source(ln, depth, active)
	}
	return nil
}

// command checks the negation, the argument count and the arguments.
func (v *Validator) command(c *Command, ln *Line) error {
	if ln.Neg && !c.Check {
		return fmt.Errorf("%q is not a check: '!' cannot negate it", c.Name)
	}
	n := len(ln.Args)
	if n < c.MinArgs || (c.MaxArgs >= 0 && n > c.MaxArgs) {
		return fmt.Errorf("wrong number of arguments: usage is `%s`", c.Usage)
	}
	if c.Validate == nil {
		return nil
	}
	return c.Validate(v, ln, ln.Strings())
}

func (v *Validator) source(ln *Line, depth int, active map[string]bool) error {
	path := ln.Args[0].Text
	if ln.File != "" && !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(ln.File), path)
	}
	if depth >= maxSourceDepth {
		return fmt.Errorf("source %q: nested more than %d deep", path, maxSourceDepth)
	}
	if active[path] {
		return fmt.Errorf("source %q: the file sources itself (a loop)", path)
	}
	s, err := ParseFile(path)
	if s == nil {
		return err
	}
	v.ps = append(v.ps, s.problems...)
	ln.Sourced = s
	active[path] = true
	v.lines(s.Lines, depth+1, active)
	delete(active, path)
	return nil
}

// mininetWords are words of Mininet's prompt that nslab has no command
// for, with what to do instead. LAB stands for the lab's name.
var mininetWords = map[string]string{
	"iperfudp": "nslab's own throughput probe takes udp as a word: `iperf A B udp rate=10mbit`",
	"iperf3": "nslab's own throughput probe is `iperf A B` (no binary needed); to run the iperf3 program, " +
		"`NODE iperf3 -s -D -1` in one node, then `OTHER iperf3 -c NODE -t 5`",
	"xterm": "nslab opens no windows: for a shell in a node, run `nslab shell LAB NODE` in another terminal",
	"sh": "nslab runs programs in the lab's nodes, not on the machine itself: `NODE sh -c '...'` runs a " +
		"shell command in NODE (use another terminal for the machine)",
	"py": "the prompt has no Python: run python3 in a node (`NODE python3 -c '...'`), or write Go against " +
		"the lab (docs/scripting.md, \"From Go\")",
	"pingpair":    "`reach A B` and `reach B A` ping one pair",
	"pingallfull": "`pingall` shows the matrix; `reach A B` shows one pair's round-trip time",
}

func init() {
	mininetWords["gterm"] = mininetWords["xterm"]
	mininetWords["x"] = mininetWords["xterm"]
	mininetWords["px"] = mininetWords["py"]
}

// unknownCommand reports a first word that is neither a command nor a
// node: a word of Mininet's with what to write instead, or the close
// names. A node's name mistyped counts toward the wrong-lab hint.
func (v *Validator) unknownCommand(name string) error {
	if hint, ok := mininetWords[name]; ok {
		return fmt.Errorf("unknown command %q: %s", name, strings.ReplaceAll(hint, "LAB", v.Plan.Lab))
	}
	if len(closeNames(name, v.Reg.Names())) == 0 {
		// Not a mistyped command: perhaps a node of another lab.
		v.unknown[name] = true
	}
	msg := fmt.Sprintf("unknown command %q, and lab %q has no node of that name", name, v.Plan.Lab)
	if close := closeNames(name, append(v.Reg.Names(), v.Plan.NodeNames()...)); len(close) > 0 {
		msg += fmt.Sprintf(" (close: %s)", strings.Join(close, ", "))
	}
	return errors.New(msg + "; `help` lists the commands")
}

// closeNames lists the known names close to name, closest first: within a
// few edits (one for a short word), or starting with it.
func closeNames(name string, known []string) []string {
	type cand struct {
		name string
		d    int
	}
	limit := 1
	switch {
	case len(name) > 8:
		limit = 3
	case len(name) > 4:
		limit = 2
	}
	var cs []cand
	seen := map[string]bool{}
	for _, k := range known {
		if seen[k] || k == name {
			continue
		}
		seen[k] = true
		d := text.Distance(name, k)
		if d <= limit || (len(name) >= 2 && strings.HasPrefix(k, name)) {
			cs = append(cs, cand{k, d})
		}
	}
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].d != cs[j].d {
			return cs[i].d < cs[j].d
		}
		return cs[i].name < cs[j].name
	})
	var out []string
	for i := 0; i < len(cs) && i < 5; i++ {
		out = append(out, cs[i].name)
	}
	return out
}

// Node checks that name is a node of the lab.
func (v *Validator) Node(name string) error {
	if v.Plan.Node(name) == nil {
		v.unknown[name] = true
		return fmt.Errorf("no node %q in lab %q%s", name, v.Plan.Lab, suggest(name, v.Plan.NodeNames()))
	}
	v.known[name] = true
	return nil
}

// nodes records names that a failed lookup mentioned, for the wrong-lab
// hint.
func (v *Validator) nodes(ends ...string) {
	for _, e := range ends {
		n, _, _ := strings.Cut(e, ":")
		if v.Plan.Node(n) == nil {
			v.unknown[n] = true
		} else {
			v.known[n] = true
		}
	}
}

// Source checks that name is a node with addresses: a host or a router.
func (v *Validator) Source(name string) error {
	if err := v.Node(name); err != nil {
		return err
	}
	if v.Plan.Node(name).Kind == topo.KindSwitch {
		return fmt.Errorf("node %q is a switch: it has no address", name)
	}
	return nil
}

// host checks that name is a host (not a router or switch).
func (v *Validator) host(name string) error {
	if err := v.Node(name); err != nil {
		return err
	}
	if k := v.Plan.Node(name).Kind; k != topo.KindHost {
		return fmt.Errorf("node %q is a %s, not a host", name, k)
	}
	return nil
}

// Target checks a node with addresses, or an IP address.
func (v *Validator) Target(s string) error {
	if _, err := netip.ParseAddr(s); err == nil {
		return nil
	}
	return v.Source(s)
}

// Seen checks an address, address:port, or a node.
func (v *Validator) Seen(s string) error {
	if _, err := netip.ParseAddrPort(s); err == nil {
		return nil
	}
	return v.Target(s)
}

// Duration parses a positive duration such as 500ms or 2s.
func (v *Validator) Duration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("malformed duration %q (write a positive number with a unit: 500ms, 2s, 1m)", s)
	}
	return d, nil
}

// limit checks a time limit: a positive duration, or off.
func (v *Validator) limit(s string) error {
	if s == "off" {
		return nil
	}
	if d, err := time.ParseDuration(s); err != nil || d <= 0 {
		return fmt.Errorf("malformed time limit %q (write a positive number with a unit: 500ms, 2s, 1m; or off)", s)
	}
	return nil
}

// parseLimit reads a time limit as the validator accepted it (off: 0).
func parseLimit(s string) (time.Duration, error) {
	if s == "off" {
		return 0, nil
	}
	return time.ParseDuration(s)
}

// Regexp compiles a pattern as `expect` uses it.
func (v *Validator) Regexp(s string) error {
	if _, err := regexp.Compile(s); err != nil {
		return fmt.Errorf("malformed regular expression %q: %v", s, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
	}
	return nil
}

func compileExpect(s string) (*regexp.Regexp, error) { return regexp.Compile("(?m)" + s) }

// checks lists the commands that are checks.
func (v *Validator) checks() []string {
	var out []string
	for _, n := range v.Reg.Names() {
		if c := v.Reg.Lookup(n); c.Check && n != "wait" {
			out = append(out, n)
		}
	}
	return out
}

// all joins the errors that are not nil.
func (v *Validator) all(errs ...error) error { return errors.Join(errs...) }

// flatten splits a joined error into its parts.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

func suggest(name string, known []string) string { return topo.Suggest(name, known) }
