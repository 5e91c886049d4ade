package emulator

import (
	"cmp"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// Options are the settings of the engine. The zero value is ready to use:
// every field has a default.
type Options struct {
	// NetnsDir is where named network namespaces are pinned, as
	// `ip netns` expects (default $NSLAB_NETNS_DIR, else "/run/netns").
	NetnsDir string
	// StateDir holds one directory per lab: its ownership record, journal,
	// hosts file, mount namespace and logs (default $NSLAB_STATE_DIR, else
	// "/run/nslab"). Without root, nslabtest.Main and the CLI set both
	// variables to a tmpfs of the user's own mount namespace
	// (docs/rootless.md).
	StateDir string
	// HostNetns is the path of the network namespace that a topology's
	// host attachment goes to. Empty means the namespace nslab runs in;
	// tests point it at a throwaway namespace.
	HostNetns string
	// Workers bounds how many kernel steps of one kind run at once
	// (default 2: the kernel's rtnl lock serializes most of the work, so
	// more buy little). While namespaces are made, one more goroutine
	// makes the links whose ends exist.
	Workers int
	// Logger receives debug and progress messages (default: discarded).
	Logger *slog.Logger
	// Progress, if set, is called as the build (and the teardown) goes
	// on: one call at a time, with Done never going back, from the
	// engine's workers (so it must not block for long).
	Progress func(Progress)
	// ReadyTimeout bounds the wait for every interface to be up (default
	// 10s and 5ms a node).
	ReadyTimeout time.Duration
	// NoEtc skips the lab's mount namespace, its /etc/hosts and per-node
	// hostnames: commands then run with the machine's own.
	NoEtc bool
	// Held says the lab lives only as long as the process that builds it
	// (`nslab run`, a Go test), which tears it down before it ends. It is
	// written in the record, so that nslab status shows such a lab as
	// orphaned once that process is gone without having torn it down
	// (kill -9).
	Held bool
}

func (o Options) withDefaults() Options {
	if o.NetnsDir == "" {
		o.NetnsDir = cmp.Or(os.Getenv("NSLAB_NETNS_DIR"), "/run/netns")
	}
	if o.StateDir == "" {
		o.StateDir = cmp.Or(os.Getenv("NSLAB_STATE_DIR"), "/run/nslab")
	}
	if o.Workers <= 0 {
		o.Workers = 2
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 10 * time.Second
	}
	// Absolute and clean, as a record must name them (ReadRecord refuses
	// anything else): "/tmp/x/netns/" or "netns" would make a lab no
	// command could remove.
	o.NetnsDir, o.StateDir = absClean(o.NetnsDir), absClean(o.StateDir)
	if o.HostNetns != "" {
		o.HostNetns = absClean(o.HostNetns)
	}
	return o
}

// absClean makes p absolute and clean (it stays as it is if the working
// directory cannot be read).
func absClean(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return filepath.Clean(p)
}

// Progress reports how far a build has got.
type Progress struct {
	Phase string // "namespaces", "links", "addresses", "ready", ...
	Done  int    // steps done in all phases
	Total int    // steps in all phases
}

// progress counts steps and reports them. Reports are made one at a
// time (under mu), with Done never going back, although the steps are
// counted by several workers at once.
type progress struct {
	fn       func(Progress)
	total    int
	done     atomic.Int64
	mu       sync.Mutex
	phase    string
	reported int
}

func (p *progress) setPhase(name string) {
	if p.fn == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.phase = name
	p.report(int(p.done.Load()))
}

func (p *progress) step() {
	d := p.done.Add(1)
	if p.fn == nil || d%16 != 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.report(int(d))
}

// report calls fn with mu held.
func (p *progress) report(done int) {
	p.reported = max(p.reported, done)
	p.fn(Progress{Phase: p.phase, Done: p.reported, Total: p.total})
}

// parallel runs fn(0..n-1) on at most workers goroutines. It stops handing
// out work at the first error or when ctx is done, and returns that error.
func parallel(ctx context.Context, n, workers int, fn func(i int) error) error {
	if n == 0 {
		return ctx.Err()
	}
	workers = min(workers, n)
	var next atomic.Int64
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	stop := make(chan struct{})
	fail := func(err error) {
		once.Do(func() { first = err; close(stop) })
	}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					fail(ctx.Err())
					return
				default:
				}
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					fail(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}
