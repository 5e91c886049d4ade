package emulator

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nslab/nslab/capture"
	"github.com/nslab/nslab/internal/netns"
	"github.com/nslab/nslab/topo"
	"golang.org/x/sys/unix"
)

// CaptureOptions are a capture's settings.
type CaptureOptions struct {
	// Filter is in tcpdump's language (package capture); node names stand
	// for their addresses. "" captures everything.
	Filter string
	// Count stops the capture after this many packets (0: no limit).
	Count int
	// SnapLen and BufferSize are the sockets' (package capture's defaults
	// if 0).
	SnapLen, BufferSize int
}

// Capture is a capture of some of a lab's interfaces: one AF_PACKET
// socket per interface, each opened inside its node through the node's
// handle, with the filter attached. Run or Start it into a Sink; Close
// it when done.
type Capture struct {
	// Interfaces are the captured interfaces, "node:iface", in the order
	// of their pcapng interface ids.
	Interfaces []capture.Interface
	sources    []*capture.Source
	opts       CaptureOptions
	lab        string
	// pins are the captured nodes' handles and where their namespaces are
	// pinned: a capture ends when the lab is taken down under it.
	pins []capturePin

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
	res    capture.Result
	err    error
}

// CaptureTargets resolves "node" (every interface of the node) and
// "node:iface" into the lab's interfaces, as "node:iface". Unknown nodes
// and interfaces are bad input, named with the closest known names.
func (l *Lab) CaptureTargets(targets []string) ([]string, error) {
	return CaptureTargets(l.Plan, targets)
}

// CaptureTargets is Lab.CaptureTargets against a plan, with no lab up: for
// checking a script or a topology before anything is built.
func CaptureTargets(plan *topo.Plan, targets []string) ([]string, error) {
	if len(targets) == 0 {
		return nil, topo.BadInput(errors.New("name what to capture: NODE (all its interfaces) or NODE:IFACE"))
	}
	var out []string
	seen := map[string]bool{}
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, t := range targets {
		node, iface, _ := strings.Cut(t, ":")
		n := plan.Node(node)
		if n == nil {
			return nil, plan.UnknownNode(node)
		}
		names := captureIfaces(n)
		if iface == "" {
			if len(names) == 0 {
				return nil, topo.BadInput(fmt.Errorf("node %q has no interface to capture", node))
			}
			for _, i := range names {
				add(node + ":" + i)
			}
			continue
		}
		found := false
		for _, i := range names {
			found = found || i == iface
		}
		if !found {
			return nil, topo.BadInput(fmt.Errorf("node %q has no interface %q (it has: %s)", node, iface, strings.Join(names, ", ")))
		}
		add(node + ":" + iface)
	}
	return out, nil
}

// captureIfaces are the interfaces of a node a capture can name: its
// cables' ends, and a switch's bridge.
func captureIfaces(n *topo.Node) []string {
	var names []string
	for _, i := range n.Ifaces {
		names = append(names, i.Name)
	}
	if n.Bridge != "" {
		names = append(names, n.Bridge)
	}
	return names
}

// CaptureFilter compiles a filter for the lab: a node's name stands for
// its addresses. A filter that does not compile is bad input, with its
// column.
func (l *Lab) CaptureFilter(expr string) (*capture.Filter, error) {
	return CompileFilter(l.Plan, expr)
}

// CompileFilter compiles a filter against a plan, with no lab up: for
// checking a script or a topology before anything is built.
func CompileFilter(plan *topo.Plan, expr string) (*capture.Filter, error) {
	f, err := capture.Compile(expr, capture.FilterOptions{Resolve: func(name string) ([]netip.Addr, bool) {
		n := plan.Node(name)
		if n == nil {
			return nil, false
		}
		var as []netip.Addr
		for _, i := range n.Ifaces {
			for _, a := range i.Addrs {
				as = append(as, a.Addr())
			}
		}
		return as, true
	}})
	if err != nil {
		return nil, topo.BadInput(err)
	}
	return f, nil
}

// OpenCapture checks the targets and the filter, then opens one socket per
// interface inside its node: once it returns, every packet the filter
// takes is queued for the capture. Nothing is read until Run or Start.
// Bad targets or filters are bad input, and nothing is opened.
func (l *Lab) OpenCapture(targets []string, o CaptureOptions) (*Capture, error) {
	names, err := l.CaptureTargets(targets)
	if err != nil {
		return nil, err
	}
	var f *capture.Filter
	if o.Filter != "" {
		if f, err = l.CaptureFilter(o.Filter); err != nil {
			return nil, err
		}
	}
	c := &Capture{opts: o, lab: l.Plan.Lab}
	pinned := map[string]bool{}
	for _, name := range names {
		node, iface, _ := strings.Cut(name, ":")
		h, err := l.node(node)
		if err != nil {
			c.Close()
			return nil, err
		}
		src, err := capture.Open(h.do, iface, capture.Options{Filter: f, SnapLen: o.SnapLen, BufferSize: o.BufferSize})
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("node %q: %w", node, err)
		}
		c.sources = append(c.sources, src)
		if !pinned[node] {
			pinned[node] = true
			c.pins = append(c.pins, capturePin{h, filepath.Join(l.Record.NetnsDir, h.node.Namespace)})
		}
		c.Interfaces = append(c.Interfaces, capture.Interface{
			Name:        name,
			Description: fmt.Sprintf("lab %s, node %s (namespace %s), interface %s", l.Plan.Lab, node, h.node.Namespace, iface),
			Filter:      o.Filter,
			SnapLen:     o.SnapLen,
		})
	}
	return c, nil
}

type capturePin struct {
	h    *nodeHandle
	path string
}

// labGone says whether a captured node's namespace is no longer the one
// pinned under its name: the lab was taken down (perhaps built again).
// Its sockets keep the old namespace alive, and would wait for packets that
// never come.
func (c *Capture) labGone() bool {
	for _, p := range c.pins {
		p.h.mu.RLock()
		ok := !p.h.closed
		if ok {
			ok = p.h.withNamespace(func(ns *netns.NS) error {
				if !ns.PinnedAt(p.path) {
					return errors.New("replaced")
				}
				return nil
			}) == nil
		}
		p.h.mu.RUnlock()
		if !ok {
			return true
		}
	}
	return false
}

// goneWithin waits up to d for the lab to be gone: a teardown removes
// interfaces before it unpins namespaces.
func (c *Capture) goneWithin(d time.Duration) bool {
	for end := time.Now().Add(d); ; time.Sleep(20 * time.Millisecond) {
		if c.labGone() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
	}
}

// captureWatch is how often a capture checks that its lab is still up.
const captureWatch = 200 * time.Millisecond

// Run reads the capture into sink until ctx is done, Count packets are
// written or the lab is taken down (an error), then closes sink with the
// kernel's counters.
func (c *Capture) Run(ctx context.Context, sink capture.Sink) (capture.Result, error) {
	readers := make([]capture.Reader, len(c.sources))
	for i, s := range c.sources {
		readers[i] = s
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var gone atomic.Bool
	go func() {
		t := time.NewTicker(captureWatch)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if c.labGone() {
					gone.Store(true)
					cancel()
					return
				}
			}
		}
	}()
	res, err := capture.Run(ctx, readers, sink, capture.RunOptions{Count: c.opts.Count, SnapLen: c.opts.SnapLen})
	if gone.Load() || (errors.Is(err, unix.ENETDOWN) && c.goneWithin(2*time.Second)) {
		// The interfaces went with their lab: that, not the read, is news.
		return res, fmt.Errorf("lab %q was taken down: the capture ended", c.lab)
	}
	if err != nil {
		var names []string
		for _, i := range c.Interfaces {
			names = append(names, i.Name)
		}
		err = fmt.Errorf("capture of %s: %w", strings.Join(names, ", "), err)
	}
	return res, err
}

// Start runs the capture in the background until Stop (or Count).
func (c *Capture) Start(sink capture.Sink) {
	ctx, cancel := context.WithCancel(context.Background())
	c.mu.Lock()
	c.cancel, c.done = cancel, make(chan struct{})
	c.mu.Unlock()
	go func() {
		res, err := c.Run(ctx, sink)
		c.mu.Lock()
		c.res, c.err = res, err
		c.mu.Unlock()
		close(c.done)
	}()
}

// Stop ends a capture started with Start: what the sockets had queued is
// written, the sink closed, and the sockets closed. It returns what Run
// returned.
func (c *Capture) Stop() (capture.Result, error) {
	c.mu.Lock()
	cancel, done := c.cancel, c.done
	c.mu.Unlock()
	if cancel == nil {
		return capture.Result{}, errors.New("capture was not started")
	}
	cancel()
	<-done
	c.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.res, c.err
}

// Close closes the sockets.
func (c *Capture) Close() error {
	var errs []error
	for _, s := range c.sources {
		if err := s.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	c.sources = nil
	return errors.Join(errs...)
}

// CheckCapture checks a topology's [capture] table against its plan: the
// interfaces, the filter, the directory (it must exist and be writable).
// Problems are bad input, placed at their keys' file:line:col. A plan
// without the table has none.
func CheckCapture(plan *topo.Plan) error {
	t := plan.Topology
	if t == nil || t.Capture == nil {
		return nil
	}
	spec := t.Capture
	var ps topo.Problems
	if spec.Dir == "" {
		ps = append(ps, t.CaptureProblem("dir", "give the directory of the capture file (it is written as DIR/%s.pcapng)", plan.Lab))
	} else if err := writableDir(spec.Dir); err != nil {
		ps = append(ps, t.CaptureProblem("dir", "%v", err))
	}
	if len(spec.Interfaces) == 0 {
		ps = append(ps, t.CaptureProblem("interfaces", `name the interfaces to capture: "node" (all of its interfaces) or "node:iface"`))
	}
	for i, s := range spec.Interfaces {
		if _, err := CaptureTargets(plan, []string{s}); err != nil {
			ps = append(ps, t.CaptureProblem(fmt.Sprintf("interfaces[%d]", i), "%v", err))
		}
	}
	if spec.Filter != "" {
		if _, err := CompileFilter(plan, spec.Filter); err != nil {
			ps = append(ps, t.CaptureProblem("filter", "%v", err))
		}
	}
	if spec.SnapLen < 0 {
		ps = append(ps, t.CaptureProblem("snaplen", "give a number of bytes above zero (0 or none: all of each packet)"))
	}
	if len(ps) > 0 {
		return ps
	}
	return nil
}

// CaptureFile is where a plan's [capture] is written: DIR/LAB.pcapng.
func CaptureFile(plan *topo.Plan) string {
	return filepath.Join(plan.Topology.Capture.Dir, plan.Lab+".pcapng")
}

// writableDir fails unless dir is a directory this process can write in.
func writableDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("directory %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if err := unix.Access(dir, unix.W_OK); err != nil {
		return fmt.Errorf("directory %s cannot be written: %w", dir, err)
	}
	return nil
}
