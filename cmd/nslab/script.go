package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/scripting"
	"github.com/nslab/nslab/topo"
	"github.com/urfave/cli/v2"
)

// loadScript returns the script `nslab run` runs: the --script file, else
// the topology's own `script`, else nil. It is checked against the plan
// before anything is built, so a bad script creates nothing.
func loadScript(c *cli.Context, plan *topo.Plan) (*scripting.Script, error) {
	var s *scripting.Script
	var err error
	switch {
	case c.String("script") != "":
		s, err = parseScriptFile(c.String("script"))
		if s == nil {
			return nil, err
		}
	case plan.Topology != nil && plan.Topology.Test != nil && strings.TrimSpace(plan.Topology.Test.Script) != "":
		file, line := plan.Topology.ScriptSource()
		if file == "" {
			file = "script"
		}
		s, _ = scripting.Parse(file, plan.Topology.Test.Script, line)
	default:
		return nil, nil
	}
	return s, scripting.Check(s, plan, nil)
}

// parseScriptFile parses the script in path; "-" reads it from stdin.
func parseScriptFile(path string) (*scripting.Script, error) {
	if path != "-" {
		return scripting.ParseFile(path)
	}
	src, err := io.ReadAll(os.Stdin)
	if err != nil {
		return nil, fmt.Errorf("read the script from stdin: %w", err)
	}
	return scripting.Parse("stdin", string(src), 1)
}

// runScript runs s in lab, printing each line's result and a summary
// unless the output is JSON.
func (g *globals) runScript(ctx context.Context, c *cli.Context, lab *emulator.Lab, s *scripting.Script) (*scripting.Result, error) {
	out := g.stdout
	if c.Bool("json") {
		out = io.Discard
	}
	keep := c.Bool("keep-going")
	if t := lab.Plan.Topology; t != nil && t.Test != nil && c.String("script") == "" {
		keep = keep || t.Test.KeepGoing
	}
	res, err := scripting.Run(ctx, lab, lab.Plan, s, scripting.Options{Out: out, KeepGoing: keep})
	if err != nil {
		return res, err
	}
	name := s.File
	if name == "" {
		name = "script"
	}
	fmt.Fprintf(out, "%s: %s\n", name, res.Summary())
	return res, nil
}

func scriptFailed(res *scripting.Result) error {
	if res == nil || res.OK() {
		return nil
	}
	return &checkFailed{fmt.Sprintf("script: %d line(s) failed; the first: %s", len(res.Failures), res.Failures[0])}
}

// prompt opens the interactive prompt on lab.
func (g *globals) prompt(ctx context.Context, lab *emulator.Lab, r *sigRouter) error {
	out, ok := asFile(g.stdout)
	if !ok || !isTerminal(os.Stdin) || !isTerminal(out) {
		return topo.BadInput(errors.New("the prompt needs a terminal (give a script with --script FILE instead)"))
	}
	sess := scripting.NewSession(lab, lab.Plan, scripting.Options{})
	return scripting.Prompt(ctx, sess, scripting.PromptOptions{In: os.Stdin, Out: out, History: historyFile(), Interrupt: r.route})
}

// historyFile is where the prompt keeps its history: $NSLAB_HISTORY, else
// ~/.nslab_history ("" when NSLAB_HISTORY is set empty, or there is no
// home).
func historyFile() string {
	if f, ok := os.LookupEnv("NSLAB_HISTORY"); ok {
		return f
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".nslab_history")
}

// sigRouter cancels the command's context on SIGTERM, and on Ctrl-C unless
// a line runs at the prompt: then Ctrl-C stops that line only.
type sigRouter struct {
	mu   sync.Mutex
	intr func()
}

func (r *sigRouter) route(stop func()) func() {
	r.mu.Lock()
	r.intr = stop
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		r.intr = nil
		r.mu.Unlock()
	}
}

// routedSignalContext is signalContext with a router for the prompt. As
// there, the signals stay caught until the returned function is called.
func routedSignalContext() (context.Context, context.CancelFunc, *sigRouter) {
	ctx, cancel := context.WithCancel(context.Background())
	r := &sigRouter{}
	ch := make(chan os.Signal, 2)
	done := make(chan struct{})
	signal.Notify(ch, endSignals...)
	go func() {
		for {
			select {
			case <-done:
				return
			case sig := <-ch:
				r.mu.Lock()
				f := r.intr
				r.mu.Unlock()
				if sig == os.Interrupt && f != nil {
					f()
					continue
				}
				cancel()
			}
		}
	}()
	var once sync.Once
	return ctx, func() {
		once.Do(func() {
			signal.Stop(ch)
			close(done)
			cancel()
		})
	}, r
}

func (g *globals) cmdAttach(c *cli.Context) error {
	lab, err := g.withLab(c, 1, "nslab attach LAB [--script FILE]", true)
	if err != nil {
		return err
	}
	ctx, cancel, r := routedSignalContext()
	defer cancel()
	f := c.String("script")
	piped := f == "" && !isTerminal(os.Stdin)
	if piped {
		// Lines piped in are a script: `echo 'reach h1 h2' | nslab attach lan`.
		f = "-"
	}
	if f != "" {
		s, err := parseScriptFile(f)
		if s == nil {
			return err
		}
		if piped && len(s.Lines) == 0 {
			return topo.BadInput(errors.New("the prompt needs a terminal, and stdin gave no script lines (pipe lines in, or give --script FILE)"))
		}
		res, err := g.runScript(ctx, c, lab, s)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			writeJSON(g.stdout, map[string]any{"lab": lab.Name(), "script": res})
		}
		return scriptFailed(res)
	}
	return g.prompt(ctx, lab, r)
}
