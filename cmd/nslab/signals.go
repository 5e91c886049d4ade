package main

// This file: how a command ends: signals, a stdout that went away, terminals.

import (
	"context"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// endSignals are the signals that end nslab short of kill -9: each one
// cancels the command's context, so that a build rolls back and a `run`
// lab is torn down. SIGHUP is a closed terminal. SIGPIPE is not one of
// them: main catches and drops it, so that a write to a stdout whose
// reader went away (`nslab run ... | head -1`) fails with EPIPE, which
// the watched writer of `run` turns into a teardown, while a probe's
// write to a closed socket stays that probe's error.
var endSignals = []os.Signal{os.Interrupt, syscall.SIGTERM, syscall.SIGHUP}

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
