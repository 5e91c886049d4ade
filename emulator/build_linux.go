package emulator

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nslab/nslab/topo"
)

// A build is a list of phases, run in order by Lab.build. Each phase
// makes one part of the lab and records every kernel object it makes in
// the lab's journal (one line per object, written before or as the object
// is made), and knows how to remove what it made from those lines alone.
// Up rolls back a failed build by undoing the phases it started, in
// reverse order; Down and Clean undo them all, in the same way, for a lab
// that is up or was left half-built by a builder that died. There is no
// other cleanup code: what a phase's undo does not remove is not removed.
//
// Most objects need no undo of their own: they live in a node's namespace
// (interfaces, addresses, routes, bridges, nftables tables) and go with
// it when the namespaces phase releases the namespaces, all at once,
// which is also the fastest way to remove them (see removeLab).
//
// To add a phase, add an entry to phases at its place in the order:
//
//   - build makes its objects, writing each to the journal (b.lab.journal)
//     under a kind of its own, listed in kinds;
//   - undo, if its objects do not go with the namespaces, removes them
//     from its journal entries (it is given only those, and may read the
//     undoer's view of the whole lab: its namespaces, their processes'
//     inodes, the host namespace). It must be idempotent and must work on
//     a lab whose builder was killed at any point of build.
//
// Nothing else changes: a failed Up, Down and `nslab clean` all run the
// new undo. For example, link impairments would be a phase after
// "routes" whose build sets qdiscs through each node's handle and whose
// undo is nil (the qdiscs are on the lab's interfaces and go with its
// namespaces; a journal kind "impair NODE IFACE" would still let status
// and clean report them); a packet capture would be a phase after
// "readiness" that journals "capture PID FILE" for each capture process
// and whose undo stops those processes (the namespaces phase's undo does
// too, but only for processes inside the lab's namespaces) and leaves
// the files for the user.
type phase struct {
	name string
	// progress is the Progress.Phase reported as the phase starts, or "".
	progress func(b *builder) string
	build    func(b *builder, ctx context.Context) error
	// kinds are the journal entries the phase writes.
	kinds []string
	undo  func(u *undoer, entries []journalEntry) error
}

// phases is the build, in order. Namespaces and links are made as one
// pipeline: the namespaces phase starts the link worker, which makes
// each link as soon as both its ends exist, and the links phase waits for
// it (see docs/performance.md).
var phases = []phase{
	{name: "namespaces", progress: label("namespaces"), build: (*builder).namespaces,
		kinds: []string{jNetns, jTry, jPinFile}, undo: undoNamespaces},
	{name: "links", progress: linksLabel, build: (*builder).links,
		kinds: []string{jHostLink}, undo: undoHostLinks},
	// Switches of the "ebpf" datapath: the program on their ports, which
	// goes with them (no undo).
	{name: "ebpf switches", build: (*builder).ebpfSwitches},
	{name: "addresses", progress: label("addresses"), build: (*builder).addresses},
	{name: "routes", build: (*builder).routes},
	{name: "nftables", build: (*builder).nftables, kinds: []string{jNft}}, // the tables go with the namespaces
	{name: "bridges up", progress: label("ready"), build: (*builder).bridgesUp},
	{name: "host link", build: (*builder).hostLink},
	// Link impairments: qdiscs on each direction's sending end, which go
	// with the interfaces (no undo).
	{name: "impairments", build: (*builder).impairments},
	{name: "readiness", build: (*builder).readiness},
	{name: "hosts files", progress: etcLabel, build: (*builder).hostsFiles,
		kinds: []string{jMountNS}, undo: undoHostsFiles},
	{name: "services", build: (*builder).services,
		kinds: []string{jProc}, undo: undoProcesses},
	{name: "record", build: (*builder).record},
}

func label(s string) func(*builder) string { return func(*builder) string { return s } }

// builder is the state of one build, shared by its phases.
type builder struct {
	lab        *Lab
	plan       *topo.Plan
	opts       Options
	progress   *progress
	forwarding []string      // forwarding settings new namespaces inherit
	handles    []*nodeHandle // by node index, as the namespaces phase makes them
	switches   []int         // indexes of the switches

	// The namespace-and-link pipeline, started by the namespaces phase.
	pipeline       context.Context
	cancelPipeline context.CancelFunc
	linkErr        chan error // the link worker's result
	linkOnce       sync.Once
	linkResult     error
	pins           chan *nodeHandle
	pinErr         chan error
	pinOnce        sync.Once
	pinResult      error
	// In a lean build (Lab.lean), pending counts what each node's
	// namespace descriptor is still needed for (its pin and its links);
	// at zero it is released.
	pending []atomic.Int32
	index   map[string]int // node index by name
}

func newBuilder(l *Lab) *builder {
	p := l.Plan
	var nonSwitch int
	b := &builder{lab: l, plan: p, opts: l.opts, handles: make([]*nodeHandle, len(p.Nodes))}
	for i, n := range p.Nodes {
		if n.Kind == topo.KindSwitch {
			b.switches = append(b.switches, i)
		} else {
			nonSwitch++
		}
	}
	b.progress = &progress{fn: l.opts.Progress, total: len(p.Nodes)*2 + len(p.Links) + nonSwitch}
	return b
}

// finish stops and waits for what phases left running in the background
// (the link worker, the pins): a rollback must not race with them.
func (b *builder) finish() {
	if b.cancelPipeline != nil {
		b.cancelPipeline()
		b.waitLinks()
	}
	if b.pins != nil {
		b.waitPins()
	}
}

// build runs the phases of list (phases, but for tests) in order,
// reporting progress, and returns how many were started: on failure, the
// last of those failed, and Up undoes them all.
func (l *Lab) build(ctx context.Context, list []phase) (started int, err error) {
	b := newBuilder(l)
	defer b.finish()
	o := l.opts
	start := time.Now()
	for i, ph := range list {
		if err := ctx.Err(); err != nil {
			return i, err
		}
		if ph.progress != nil {
			if name := ph.progress(b); name != "" {
				b.progress.setPhase(name)
			}
		}
		t0 := time.Now()
		if err := ph.build(b, ctx); err != nil {
			return i + 1, err
		}
		o.Logger.Debug("phase done", "lab", l.Plan.Lab, "phase", ph.name, "took", time.Since(t0))
	}
	b.progress.setPhase("up")
	o.Logger.Debug("lab up", "lab", l.Plan.Lab, "took", time.Since(start))
	return len(list), nil
}
