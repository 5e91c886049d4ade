package scripting

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"

	"golang.org/x/term"
)

// PromptOptions tune Prompt.
type PromptOptions struct {
	// In is the terminal to read from (normally os.Stdin); Out is where
	// prompts and results go (normally os.Stdout).
	In  *os.File
	Out *os.File
	// Prompt is shown before each line (default "nslab> ").
	Prompt string
	// History is a file that keeps the lines typed between sessions; ""
	// keeps them for this session only.
	History string
	// Interrupt, when set, routes Ctrl-C (SIGINT) to the prompt while it
	// is up: the prompt calls it with the function that stops the line
	// that runs, if any, and calls the function it returns when the
	// prompt ends. When nil, the prompt catches SIGINT itself. (A program
	// that owns SIGINT for its own shutdown passes its router here.)
	Interrupt func(stop func()) (release func())
}

// Prompt reads lines from a terminal and runs them in sess until Ctrl-D,
// `exit` or ctx ends: the interactive counterpart of Run, like Mininet's
// `mininet>` prompt. It edits lines with history (up and down arrows) and
// completes commands and node names with Tab. Ctrl-C clears the line being
// typed, or stops the line that runs. A failing line is reported and the
// prompt goes on. It returns nil on Ctrl-D or `exit`.
func Prompt(ctx context.Context, sess *Session, o PromptOptions) error {
	if o.Prompt == "" {
		o.Prompt = "nslab> "
	}
	fd := int(o.In.Fd())
	if !term.IsTerminal(fd) {
		return errors.New("the prompt needs a terminal on stdin (run a script with --script instead)")
	}
	t := term.NewTerminal(struct {
		io.Reader
		io.Writer
	}{&ctrlC{r: o.In}, o.Out}, o.Prompt)
	hist := loadHistory(o.History)
	t.History = hist
	t.AutoCompleteCallback = func(line string, pos int, key rune) (string, int, bool) {
		if key != '\t' {
			return "", 0, false
		}
		return complete(t, sess, line, pos)
	}
	sess.Echo, sess.Live, sess.Stdin, sess.Out = false, o.Out, o.In, o.Out
	defer sess.Close()
	// Ctrl-C stops the line that runs, and nothing else, for as long as
	// the prompt is up: also between lines, where the terminal is briefly
	// not in raw mode and Ctrl-C is a signal.
	var mu sync.Mutex
	var stopLine func()
	onInterrupt := func() {
		mu.Lock()
		defer mu.Unlock()
		if stopLine != nil {
			stopLine()
		}
	}
	if o.Interrupt != nil {
		defer o.Interrupt(onInterrupt)()
	} else {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, os.Interrupt)
		done := make(chan struct{})
		defer func() { signal.Stop(ch); close(done) }()
		go func() {
			for {
				select {
				case <-ch:
					onInterrupt()
				case <-done:
					return
				}
			}
		}()
	}
	run := func(ln *Line) {
		lctx, cancel := context.WithCancel(ctx)
		defer cancel()
		mu.Lock()
		stopLine = cancel
		mu.Unlock()
		sess.RunLine(lctx, ln)
		mu.Lock()
		stopLine = nil
		mu.Unlock()
	}
	fmt.Fprintf(o.Out, "lab %s: %d nodes. Type `help` for the commands, Ctrl-D to leave.\n", sess.Plan.Lab, len(sess.Plan.Nodes))
	num := 0
	for {
		t.SetSize(termSize(term.GetSize(fd)))
		line, err := readLine(ctx, fd, t)
		if errors.Is(err, io.EOF) {
			fmt.Fprintln(o.Out)
			return nil
		}
		if err != nil && !errors.Is(err, term.ErrPasteIndicator) {
			return err
		}
		num++
		hist.save(line)
		switch strings.TrimSpace(line) {
		case "exit", "quit":
			return nil
		}
		s, err := Parse("", line, num)
		if err != nil {
			fmt.Fprintln(o.Out, err)
			continue
		}
		for _, ln := range s.Lines {
			if err := CheckLine(ln, sess.Plan, sess.Reg); err != nil {
				fmt.Fprintln(o.Out, err)
				continue
			}
			run(ln)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// termSize is the terminal's size as the line editor needs it: a terminal
// that reports 0 columns or rows (under script(1), a pty nobody sized), or
// none at all, counts as 80x24, else every character typed would land on
// a line of its own.
func termSize(w, h int, err error) (int, int) {
	if err != nil || w <= 0 {
		w = 80
	}
	if err != nil || h <= 0 {
		h = 24
	}
	return w, h
}

// readLine reads one line in raw mode, giving up when ctx ends.
func readLine(ctx context.Context, fd int, t *term.Terminal) (string, error) {
	old, err := term.MakeRaw(fd)
	if err != nil {
		return "", fmt.Errorf("terminal: %w", err)
	}
	defer term.Restore(fd, old)
	type res struct {
		line string
		err  error
	}
	ch := make(chan res, 1)
	go func() {
		l, err := t.ReadLine()
		ch <- res{l, err}
	}()
	select {
	case r := <-ch:
		return r.line, r.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// ctrlC turns Ctrl-C typed at the prompt into "clear the line" (End, then
// Ctrl-U) instead of the end of input that x/term makes of it.
type ctrlC struct {
	r       io.Reader
	pending []byte
}

func (c *ctrlC) Read(p []byte) (int, error) {
	if len(c.pending) == 0 {
		n, err := c.r.Read(p)
		if bytes.IndexByte(p[:n], 3) < 0 {
			return n, err
		}
		c.pending = bytes.ReplaceAll(p[:n], []byte{3}, []byte("\x1b[F\x15"))
		if len(c.pending) == 0 {
			return 0, err
		}
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

// complete completes the word before the cursor: a command or node name
// first, then node names (or the words a command takes). With several
// candidates it extends the word to their common prefix, or lists them.
func complete(t *term.Terminal, sess *Session, line string, pos int) (string, int, bool) {
	head := line[:pos]
	start := strings.LastIndexAny(head, " \t") + 1
	word := head[start:]
	fields := strings.Fields(head[:start])
	neg := ""
	if len(fields) == 0 && strings.HasPrefix(word, "!") {
		neg, word = "!", word[1:]
	}
	var cands []string
	switch {
	case len(fields) == 0:
		cands = append(sess.Reg.Names(), sess.Plan.NodeNames()...)
	case fields[0] == "help":
		cands = sess.Reg.Names()
	case fields[0] == "set" && len(fields) == 1:
		cands = []string{"subst", "timeout", "limit"}
	case fields[0] == "set" && len(fields) == 2 && fields[1] == "subst":
		cands = []string{"on", "off"}
	case (fields[0] == "set" && len(fields) == 2 && fields[1] == "limit") || (fields[0] == "limit" && len(fields) == 1):
		cands = []string{"off"}
	case fields[0] == "link" && len(fields) == 3:
		cands = []string{"down", "up"}
	case fields[0] == "wait" && len(fields) == 1:
		for _, n := range sess.Reg.Names() {
			if c := sess.Reg.Lookup(n); c.Check && n != "wait" {
				cands = append(cands, n)
			}
		}
	default:
		cands = sess.Plan.NodeNames()
	}
	var match []string
	for _, c := range cands {
		if strings.HasPrefix(c, word) {
			match = append(match, c)
		}
	}
	sort.Strings(match)
	switch len(match) {
	case 0:
		return "", 0, false
	case 1:
		nl := head[:start] + neg + match[0] + " " + line[pos:]
		return nl, start + len(neg) + len(match[0]) + 1, true
	}
	if p := commonPrefix(match); len(p) > len(word) {
		nl := head[:start] + neg + p + line[pos:]
		return nl, start + len(neg) + len(p), true
	}
	fmt.Fprintln(t, strings.Join(match, "  "))
	return line, pos, true
}

func commonPrefix(s []string) string {
	p := s[0]
	for _, x := range s[1:] {
		for !strings.HasPrefix(x, p) {
			p = p[:len(p)-1]
		}
	}
	return p
}

// history keeps the lines typed, newest first, and appends each new one to
// a file when it has one.
type history struct {
	lines []string
	file  string
}

const historyMax = 1000

func loadHistory(file string) *history {
	h := &history{file: file}
	if file == "" {
		return h
	}
	f, err := os.Open(file)
	if err != nil {
		return h
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := sc.Text(); l != "" {
			h.lines = append([]string{l}, h.lines...)
		}
	}
	if len(h.lines) > historyMax {
		h.lines = h.lines[:historyMax]
	}
	return h
}

// Add, Len and At implement term.History.
func (h *history) Add(l string) {
	if strings.TrimSpace(l) == "" || (len(h.lines) > 0 && h.lines[0] == l) {
		return
	}
	h.lines = append([]string{l}, h.lines...)
	if len(h.lines) > historyMax {
		h.lines = h.lines[:historyMax]
	}
}
func (h *history) Len() int        { return len(h.lines) }
func (h *history) At(i int) string { return h.lines[i] }

// save appends a typed line to the history file (errors are ignored: a
// history that cannot be written must not stop the prompt).
func (h *history) save(l string) {
	if h.file == "" || strings.TrimSpace(l) == "" {
		return
	}
	f, err := os.OpenFile(h.file, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return
	}
	fmt.Fprintln(f, l)
	f.Close()
}
