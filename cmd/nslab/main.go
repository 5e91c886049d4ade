// Command nslab builds network labs out of Linux namespaces, veth pairs
// and bridges, from a TOML file or a built-in generator, and runs commands
// and probes inside them. Run `nslab --help` for the tour.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/topo"
)

// Exit codes.
const (
	exitOK       = 0
	exitFailed   = 1 // a check failed, or the machine refused
	exitBadInput = 2 // the file, the flags or the names given are wrong
)

// checkFailed is returned when the lab ran but a check did not pass.
type checkFailed struct{ msg string }

func (e *checkFailed) Error() string { return e.msg }

// exitStatus carries an exit code of its own, as shells use them: 127 for
// a program that is not found, 126 for one that cannot be executed, so
// that a program's own exit 2 stays distinct from nslab's bad input.
type exitStatus struct {
	code int
	err  error
}

func (e *exitStatus) Error() string { return e.err.Error() }
func (e *exitStatus) Unwrap() error { return e.err }

// The main goroutine keeps the main thread to itself, so that no
// goroutine that switches namespaces ever runs there: a thread left in a
// node's namespace is retired by the runtime, but the main thread cannot
// be, and /proc/self/... reads would then describe the node.
func init() { runtime.LockOSThread() }

func main() {
	if code, ok := emulator.Dispatch(); ok {
		os.Exit(code)
	}
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr *os.File) int {
	// SIGPIPE is caught and dropped (the channel is never read; Notify
	// never blocks): a write to a closed pipe, stdout included, returns
	// EPIPE instead of killing nslab mid-teardown. Programs nslab starts
	// get the default action back at exec.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	app := newApp(stdout, stderr)
	err := app.Run(permuteArgs(app, args))
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "nslab: %v\n", err)
	var cf *checkFailed
	var es *exitStatus
	switch {
	case errors.As(err, &es):
		return es.code
	case errors.As(err, &cf):
		return exitFailed
	case topo.IsBadInput(err):
		return exitBadInput
	}
	return exitFailed
}
