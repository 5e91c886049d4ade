package scripting

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/internal/text"
	"github.com/nslab/nslab/topo"
)

// Options tune Run.
type Options struct {
	// Out receives each line's result and the programs' output; nil
	// discards it.
	Out io.Writer
	// KeepGoing runs the lines after a failing one instead of stopping.
	KeepGoing bool
	// Registry holds the commands (nil: Builtins()).
	Registry *Registry
	// Timeout is how long reach, pingall, nat, tcp and udp wait for an
	// answer (default 1s; `set timeout` changes it).
	Timeout time.Duration
	// Limit is how long a program line may run before it is stopped and
	// fails (default DefaultLimit; negative: no limit). `set limit` changes
	// it for the lines that follow, `limit DURATION NODE PROGRAM...` for
	// one line.
	Limit time.Duration
}

// DefaultLimit is a program line's time limit when Options.Limit is zero:
// long enough for iperf3's default ten-second run, short enough that a
// program that never ends on its own (`red ping blue`) fails in a script
// instead of hanging it.
const DefaultLimit = 30 * time.Second

// Result is what a script run did.
type Result struct {
	// Lines counts the lines run, Checks the checks among them, Passed
	// the checks that passed.
	Lines    int           `json:"lines"`
	Checks   int           `json:"checks"`
	Passed   int           `json:"passed"`
	Failures []Failure     `json:"failures"`
	Elapsed  time.Duration `json:"elapsed_ns"`
}

// OK reports whether no line failed.
func (r *Result) OK() bool { return len(r.Failures) == 0 }

// Err returns nil when every line passed, else a *FailedError listing the
// failures.
func (r *Result) Err() error {
	if r.OK() {
		return nil
	}
	return &FailedError{Failures: r.Failures}
}

// Summary is one line for a person: "9 checks passed, 0 failed (12 lines,
// 1.42s)".
func (r *Result) Summary() string {
	return fmt.Sprintf("%d of %d checks passed, %d failed (%d lines run in %s)",
		r.Passed, r.Checks, len(r.Failures), r.Lines, r.Elapsed.Round(time.Millisecond))
}

// Failure is one failing line.
type Failure struct {
	File string `json:"file,omitempty"`
	Line int    `json:"line"`
	// Command is the line as written.
	Command string `json:"command"`
	// Message says what was expected and what happened.
	Message string `json:"message"`
}

// String gives "file:line: command: what was expected, what happened".
func (f Failure) String() string {
	where := fmt.Sprintf("line %d", f.Line)
	if f.File != "" {
		where = fmt.Sprintf("%s:%d", f.File, f.Line)
	}
	return fmt.Sprintf("%s: %s: %s", where, f.Command, f.Message)
}

// FailedError is returned (by Result.Err) when a line failed: a check did
// not hold or a command could not be run.
type FailedError struct{ Failures []Failure }

func (e *FailedError) Error() string {
	s := make([]string, len(e.Failures))
	for i, f := range e.Failures {
		s[i] = f.String()
	}
	return strings.Join(s, "\n")
}

// Run checks s against plan, the lab's plan (every problem reported at
// once, before anything runs, as topo.Problems), and then runs its lines
// in lab in order.
// A failing line stops the script unless o.KeepGoing is set. The error is
// for bad input and cancellation; failed checks are in the Result.
func Run(ctx context.Context, lab Lab, plan *topo.Plan, s *Script, o Options) (*Result, error) {
	sess := NewSession(lab, plan, o)
	if err := Check(s, plan, sess.Reg); err != nil {
		return nil, err
	}
	defer sess.Close()
	t0 := time.Now()
	err := sess.runLines(ctx, s.Lines)
	sess.res.Elapsed = time.Since(t0)
	if errors.Is(err, errStop) {
		err = nil
	}
	return sess.res, err
}

// errStop ends a script at its first failure.
var errStop = errors.New("script stopped at a failing line")

// Session is the state a script runs in: the lab and its plan, the
// settings `set` changes, and the output of the last program for
// `expect`. The prompt keeps one Session for all the lines typed.
type Session struct {
	Lab Lab
	// Plan is the lab's plan: its nodes, interfaces, addresses and links.
	Plan *topo.Plan
	Reg  *Registry
	Out  io.Writer
	// Live, when set, receives programs' output as it comes (the
	// prompt), instead of once they are done.
	Live io.Writer
	// Stdin is given to programs (nil: none).
	Stdin io.Reader
	// Echo prints each line with its place before its result (scripts).
	Echo    bool
	Subst   bool
	Timeout time.Duration
	// Limit is a program line's time limit (0: none).
	Limit     time.Duration
	KeepGoing bool

	last     string // output of the last program
	lastCmd  string
	res      *Result
	services []*emulator.Service // started by `serve`
	captures []*scriptCapture    // started by `capture`
}

// NewSession returns a session on lab, whose plan is plan, with the
// options' settings.
func NewSession(lab Lab, plan *topo.Plan, o Options) *Session {
	s := &Session{Lab: lab, Plan: plan, Reg: o.Registry, Out: o.Out, Echo: true, Subst: true, Timeout: o.Timeout, KeepGoing: o.KeepGoing, res: &Result{}}
	if s.Reg == nil {
		s.Reg = Builtins()
	}
	if s.Out == nil {
		s.Out = io.Discard
	}
	if s.Timeout <= 0 {
		s.Timeout = time.Second
	}
	switch {
	case o.Limit == 0:
		s.Limit = DefaultLimit
	case o.Limit > 0:
		s.Limit = o.Limit
	}
	return s
}

// Result returns what the session has run so far.
func (s *Session) Result() *Result { return s.res }

func (s *Session) runLines(ctx context.Context, lines []*Line) error {
	for _, ln := range lines {
		if err := ctx.Err(); err != nil {
			return err
		}
		ok := s.RunLine(ctx, ln)
		if err := ctx.Err(); err != nil {
			return err // the line was reported as interrupted
		}
		if !ok && !s.KeepGoing {
			return errStop
		}
	}
	return nil
}

// RunLine runs one checked line, prints its result and records it. It
// reports whether the line passed.
func (s *Session) RunLine(ctx context.Context, ln *Line) bool {
	c := s.Reg.Lookup(ln.Name)
	args := ln.Strings()
	if c == nil { // a program in a node
		c = s.Reg.Lookup("exec")
		args = append([]string{ln.Name}, args...)
		ln = &Line{File: ln.File, Num: ln.Num, Text: ln.Text, Neg: ln.Neg, Name: "exec", Args: append([]Word{{Text: ln.Name}}, ln.Args...)}
	}
	if c.Name != "source" {
		s.res.Lines++
	}
	if c.Check {
		s.res.Checks++
	}
	o, err := c.Run(ctx, s, ln, args)
	var msg string
	interrupted := false
	switch {
	case errors.Is(err, errStop) || (c.Name == "source" && ctx.Err() != nil):
		return false // a sourced line failed, and was reported
	case ctx.Err() != nil || errors.Is(err, errInterrupted):
		// Ctrl-C at the prompt, or a signal to the script's run: whatever
		// the line said is not its answer.
		interrupted, msg = true, stoppedBy(ctx)
	case err != nil:
		msg = err.Error()
	case c.Check && o.Held == ln.Neg:
		want, prefix := o.Want, ", but "
		if ln.Neg {
			want = o.WantNot
		}
		if want == "" {
			want, prefix = "", ""
		} else {
			want = "expected " + want
		}
		msg = want + prefix + o.Said
	}
	if s.Echo {
		status := "ok  "
		if msg != "" {
			status = "FAIL"
		}
		if c.Name != "source" {
			fmt.Fprintf(s.Out, "%s %s: %s\n", status, ln.Where(), ln.Text)
		}
	}
	if o.Output != "" {
		indent := ""
		if s.Echo {
			indent = "    "
		}
		for _, l := range strings.Split(strings.TrimRight(o.Output, "\n"), "\n") {
			fmt.Fprintf(s.Out, "%s%s\n", indent, l)
		}
	}
	if msg != "" {
		f := Failure{File: ln.File, Line: ln.Num, Command: ln.Text, Message: msg}
		s.res.Failures = append(s.res.Failures, f)
		switch {
		case s.Echo:
			fmt.Fprintf(s.Out, "     %s\n", indentRest(msg, "     "))
		case interrupted:
			// At the prompt: the person asked for it. The terminal has
			// echoed ^C, with no new line.
			fmt.Fprintf(s.Out, "\n%s\n", msg)
		default:
			fmt.Fprintf(s.Out, "FAIL: %s\n", indentRest(msg, "      "))
		}
		return false
	}
	if c.Check {
		s.res.Passed++
	}
	if o.Said != "" && (!s.Echo || (c.Name != "exec" && c.Name != "limit")) {
		indent := "     "
		if !s.Echo {
			indent = ""
		}
		fmt.Fprintf(s.Out, "%s%s\n", indent, indentRest(o.Said, indent))
	}
	return true
}

// errInterrupted is a program's end by Ctrl-C at the prompt, seen before
// the prompt has stopped the line (the terminal signals the program and
// nslab at once).
var errInterrupted = errors.New("interrupted")

// stoppedBy says why a line's context ended.
func stoppedBy(ctx context.Context) string {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return "stopped: the run's own deadline passed"
	}
	return "interrupted"
}

// runProgram runs a program in a node, with node names among its
// arguments replaced by addresses, for at most limit (0: no limit). When
// the limit passes (or the line is stopped) the program gets SIGINT, as
// from Ctrl-C, and SIGKILL a second later if it is still there: ping
// prints its statistics, a shell script runs its traps.
func (s *Session) runProgram(ctx context.Context, node string, words []Word, limit time.Duration) (Outcome, error) {
	argv := make([]string, len(words))
	for i, w := range words {
		argv[i] = w.Text
		if i > 0 && s.Subst && !w.Quoted {
			argv[i] = s.addressOf(w.Text)
		}
	}
	shown := node + " " + strings.Join(argv, " ")
	o := Outcome{Want: "`" + shown + "` to exit 0", WantNot: "`" + shown + "` to fail"}
	var buf bytes.Buffer
	var w io.Writer = &buf
	if s.Live != nil {
		w = io.MultiWriter(&buf, s.Live)
	}
	lctx, cancel := ctx, context.CancelFunc(func() {})
	if limit > 0 {
		lctx, cancel = context.WithTimeout(ctx, limit)
	}
	defer cancel()
	cmd := exec.CommandContext(lctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr, cmd.Stdin = w, w, s.Stdin
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = time.Second
	if cmd.Err != nil {
		hint := ""
		if (argv[0] == "ping" || argv[0] == "ping6") && len(argv) > 1 {
			hint = fmt.Sprintf(" (nslab's own probe needs none: `reach %s %s`)", node, argv[len(argv)-1])
		}
		return o, topo.BadInput(fmt.Errorf("no program %q to run in node %q: %w%s", argv[0], node, cmd.Err, hint))
	}
	if err := s.Lab.Start(node, cmd); err != nil {
		return o, err
	}
	err := cmd.Wait()
	s.last, s.lastCmd = buf.String(), shown
	if s.Live == nil {
		o.Output = buf.String()
	}
	var ee *exec.ExitError
	switch {
	case ctx.Err() == nil && errors.Is(lctx.Err(), context.DeadlineExceeded):
		return o, limitError(node, words, argv, limit)
	case ctx.Err() != nil:
		return o, ctx.Err()
	case s.Stdin != nil && errors.As(err, &ee) && signalled(ee, syscall.SIGINT):
		// Ctrl-C at the prompt reached the program first.
		return o, errInterrupted
	case err == nil:
		o.Held, o.Said = true, "exit status 0"
	case errors.As(err, &ee):
		o.Said = ee.Error()
	default:
		return o, fmt.Errorf("run %q in node %q: %w", argv[0], node, err)
	}
	return o, nil
}

// signalled tells whether a program ended by the signal sig.
func signalled(ee *exec.ExitError, sig syscall.Signal) bool {
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}

// limitError says that a program line ran out of time, and how to give it
// more.
func limitError(node string, words []Word, argv []string, limit time.Duration) error {
	more := fmtLimit(2 * limit)
	written := make([]string, len(words))
	for i, w := range words {
		written[i] = w.Text
	}
	hint := ""
	if (argv[0] == "ping" || argv[0] == "ping6") && !slices.ContainsFunc(argv[1:], func(a string) bool {
		return strings.HasPrefix(a, "-c") || strings.HasPrefix(a, "-w")
	}) {
		hint = fmt.Sprintf("; ping runs until it is stopped: give it a count, as in `%s ping -c 3 %s`", node, strings.Join(written[1:], " "))
	}
	return fmt.Errorf("stopped after the line's time limit of %s (`set limit %s` gives the lines that follow more, `limit %s %s %s` this line alone, `set limit off` lifts it)%s",
		fmtLimit(limit), more, more, node, strings.Join(written, " "), hint)
}

// fmtLimit shows a limit as it is written in a script: 30s, 1m, 1m30s,
// 500ms.
func fmtLimit(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}

// addressOf replaces a node's name by its first address (IPv4 first).
func (s *Session) addressOf(word string) string {
	n := s.Plan.Node(word)
	if n == nil || n.Kind == topo.KindSwitch {
		return word
	}
	for _, f := range []int{4, 6} {
		if a, ok := n.FirstAddr(f); ok {
			return a.String()
		}
	}
	return word
}

func (s *Session) ping(ctx context.Context, from, to string) (emulator.PingResult, error) {
	o := emulator.PingOptions{Timeout: s.Timeout}
	if a, err := netip.ParseAddr(to); err == nil {
		o.Target = a
		r, err := s.Lab.Ping(ctx, from, "", o)
		r.To = to
		return r, err
	}
	return s.Lab.Ping(ctx, from, to, o)
}

// natPort is the UDP port of the echo service `nat` starts (RFC 862 echo).
const natPort = 7

func (s *Session) nat(ctx context.Context, args []string) (Outcome, error) {
	a, b := args[0], args[1]
	o := Outcome{Want: "the source to be translated on the way from " + a + " to " + b, WantNot: "the source to reach " + b + " untranslated"}
	var want []string
	if len(args) == 3 {
		want = []string{args[2]}
		shown := args[2]
		if n := s.Plan.Node(args[2]); n != nil {
			// A node stands for any of its addresses.
			want = nil
			for _, i := range n.Ifaces {
				for _, p := range i.Addrs {
					want = append(want, p.Addr().String())
				}
			}
			shown = fmt.Sprintf("%s (%s)", args[2], strings.Join(want, " or "))
		}
		o.Want, o.WantNot = b+" to see "+a+" as "+shown, b+" not to see "+a+" as "+shown
	}
	target, err := s.Lab.AddrOf(b, 4, natPort)
	if err != nil {
		if target, err = s.Lab.AddrOf(b, 6, natPort); err != nil {
			return o, err
		}
	}
	if !s.serving(b, "udp", natPort) && !slices.Contains(s.Plan.Node(b).Echo, natPort) {
		svc, err := s.Lab.Serve(b, "udp", natPort)
		if err != nil {
			return o, err
		}
		defer svc.Close()
	}
	r, err := s.Lab.Probe(ctx, a, target, "udp", emulator.ProbeOptions{Timeout: s.Timeout})
	if err != nil {
		return o, fmt.Errorf("%s -> %s (%s): no answer from the echo service, so nothing to tell: %w", a, b, target, err)
	}
	o.Said = fmt.Sprintf("%s saw %s (sent from %s)", b, r.Observed, r.Local)
	if want != nil {
		for _, w := range want {
			o.Held = o.Held || seenMatches(w, r.Observed)
		}
	} else {
		o.Held = r.Translated()
	}
	return o, nil
}

func (s *Session) expect(pattern string) (Outcome, error) {
	re, err := compileExpect(pattern)
	if err != nil {
		return Outcome{}, err
	}
	if s.lastCmd == "" {
		return Outcome{}, errors.New("no program has run yet: expect matches the output of the last one")
	}
	o := Outcome{Want: fmt.Sprintf("the output of `%s` to match %q", s.lastCmd, pattern), WantNot: fmt.Sprintf("the output of `%s` not to match %q", s.lastCmd, pattern)}
	o.Held = re.MatchString(s.last)
	out := strings.TrimRight(s.last, "\n")
	if out == "" {
		o.Said = "it printed nothing"
	} else {
		o.Said = "it printed:\n        " + strings.ReplaceAll(out, "\n", "\n        ")
	}
	if o.Held {
		o.Said = "matched"
	}
	return o, nil
}

// wait retries the check in `wait CHECK ARG... DURATION` until it holds
// (as written, with its own '!') or the time is up. No try starts after
// the deadline. A try of a check that must not hold (`wait !reach`) gets
// its whole timeout, so that "no answer" is never an answer cut short; a
// try of one that must hold ends at the deadline. When the last try could
// not be run at all, the line fails with that error, negated or not.
func (s *Session) wait(ctx context.Context, ln *Line) (Outcome, error) {
	d, _ := time.ParseDuration(ln.Args[len(ln.Args)-1].Text)
	in := waitLine(ln, s.Reg)
	c := s.Reg.Lookup(in.Name)
	t0 := time.Now()
	deadline := t0.Add(d)
	tries := 0
	for {
		tries++
		tctx, cancel := ctx, context.CancelFunc(func() {})
		if !in.Neg {
			tctx, cancel = context.WithDeadline(ctx, deadline)
		}
		o, err := c.Run(tctx, s, in, in.Strings())
		cut := tctx.Err() != nil && ctx.Err() == nil
		cancel()
		switch {
		case ctx.Err() != nil:
			return o, ctx.Err()
		case err != nil && topo.IsBadInput(err):
			return o, err
		case err != nil && cut:
			err, o.Held, o.Said = nil, false, "no answer before the time was up"
		}
		held := err == nil && o.Held != in.Neg
		if !held && time.Now().Before(deadline) {
			select {
			case <-ctx.Done():
				return o, ctx.Err()
			case <-time.After(min(50*time.Millisecond, time.Until(deadline))):
			}
			if time.Now().Before(deadline) {
				continue
			}
		}
		took := fmt.Sprintf("after %s in %s", text.Plural(tries, "try", "tries"), roundDur(time.Since(t0)))
		if err != nil {
			return o, fmt.Errorf("%s, the last could not be run: %w", took, err)
		}
		want := o.Want
		if in.Neg {
			want = o.WantNot
		}
		out := Outcome{Held: held, Want: fmt.Sprintf("within %s, %s", d, want), WantNot: fmt.Sprintf("not within %s, %s", d, want)}
		if held {
			out.Said = took + ": " + o.Said
		} else {
			out.Said = took + ", the last: " + o.Said
		}
		return out, nil
	}
}

// roundDur shows a duration with about three significant digits.
func roundDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}

// indentRest indents every line of s after the first.
func indentRest(s, indent string) string {
	if indent == "" {
		return s
	}
	return strings.ReplaceAll(s, "\n", "\n"+indent)
}
