package emulator

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"

	"github.com/nslab/nslab/internal/netns"
	"github.com/nslab/nslab/internal/rtnl"
	"github.com/nslab/nslab/topo"
	"github.com/vishvananda/netlink"
)

// nodeHandle is the engine's handle on one node: its network namespace
// and a route netlink connection opened inside it. It is the one way to
// reach a node: the build configures the node through it, programs are
// started inside its namespace (exec, services), probes and the echo
// service open their sockets there (do), status and the neighbour sweeps
// read through it, NAT commits its nftables through it, and link
// impairments and capture are to do the same.
//
// A lab built by this process makes its handles as it makes the nodes; a
// lab from Open opens each on first use, from the node's pinned namespace
// (Lab.node).
type nodeHandle struct {
	node *topo.Node
	ns   *netns.NS  // nil once released (releaseNamespace): see namespace
	rt   *rtnl.Conn // made with the namespace, or opened on first use
	// path is where the namespace is pinned, from which withNamespace
	// opens it again once released, and id its identity then.
	path, id string
	nsMu     sync.Mutex

	// opened says the handle was opened from the namespace's path, which
	// another process may have unpinned since (its lab torn down).
	opened bool
	// mu is held for reading while the handle is in use, and for writing
	// to close it, so that no descriptor is closed (and its number taken
	// by another file) under a user.
	mu     sync.RWMutex
	rtOnce sync.Mutex
	closed bool
}

var errNodeClosed = errors.New("the node's handle is closed")

// withNamespace runs fn with the node's namespace. If the builder
// released it (releaseNamespace), it is opened again from its pinned path
// for this one use, checked to be the same namespace, and closed after,
// so that a lean lab keeps to one descriptor per node. Call it with h.mu
// held for reading (or from the builder, which owns its handles).
func (h *nodeHandle) withNamespace(fn func(ns *netns.NS) error) error {
	h.nsMu.Lock()
	ns := h.ns
	h.nsMu.Unlock()
	if ns != nil {
		return fn(ns)
	}
	ns, err := netns.Open(h.path)
	if err != nil {
		return fmt.Errorf("open namespace of node %q: %w", h.node.Name, err)
	}
	defer ns.Close()
	if id, err := ns.ID(); err != nil || id != h.id {
		return fmt.Errorf("namespace %s of node %q is no longer the one nslab made (it was replaced)", h.path, h.node.Name)
	}
	return fn(ns)
}

// releaseNamespace closes the namespace's descriptor, to be opened again
// for each later use (withNamespace): the builder of a lab with more
// nodes than it may hold two descriptors for (raiseFileLimit) keeps only
// each node's netlink socket once the namespaces are pinned and cabled.
func (h *nodeHandle) releaseNamespace() {
	h.nsMu.Lock()
	defer h.nsMu.Unlock()
	if h.path == "" || h.ns == nil {
		return
	}
	id, err := h.ns.ID()
	if err != nil {
		return // kept: it cannot be told again
	}
	h.id = id
	h.ns.Close()
	h.ns = nil
}

// do runs fn inside the node's namespace (netns.NS.Do).
func (h *nodeHandle) do(fn func() error) error {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		return errNodeClosed
	}
	return h.withNamespace(func(ns *netns.NS) error { return ns.Do(fn) })
}

// discard runs fn on a thread that is discarded afterwards (netns.Discard),
// with the node's namespace at hand to enter.
func (h *nodeHandle) discard(fn func(ns *netns.NS) error) error {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		return errNodeClosed
	}
	return h.withNamespace(func(ns *netns.NS) error {
		return netns.Discard(func() error { return fn(ns) })
	})
}

// route runs fn with the node's route netlink connection, opening it on
// first use.
func (h *nodeHandle) route(fn func(c *rtnl.Conn) error) error {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		return errNodeClosed
	}
	h.rtOnce.Lock()
	if h.rt == nil {
		var rt *rtnl.Conn
		err := h.withNamespace(func(ns *netns.NS) (err error) {
			rt, err = rtnl.Dial(ns)
			return err
		})
		if err != nil {
			h.rtOnce.Unlock()
			return fmt.Errorf("netlink socket in node %q: %w", h.node.Name, err)
		}
		h.rt = rt
	}
	rt := h.rt
	h.rtOnce.Unlock()
	return fn(rt)
}

// netlink runs fn with vishvananda/netlink's Handle in the node's
// namespace, for the listings rtnl does not encode (status).
func (h *nodeHandle) netlink(fn func(nh *netlink.Handle) error) error {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		return errNodeClosed
	}
	var nh *netlink.Handle
	if err := h.withNamespace(func(ns *netns.NS) (err error) {
		nh, err = rtnl.NewHandle(ns)
		return err
	}); err != nil {
		return err
	}
	defer nh.Close()
	return fn(nh)
}

// close closes the connection and the namespace, once every user is done.
func (h *nodeHandle) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	h.rt.Close()
	h.rt = nil
	h.ns.Close()
}

// node returns the handle of the named node. A lab built by this process
// has made it; a lab from Open opens it on first use and keeps it, and
// opens it again if the namespace is no longer the one pinned under the
// node's name (the lab was taken down, perhaps built again, by another
// process): then, as when nothing was kept, the node is reached by its
// name or not at all.
func (l *Lab) node(name string) (*nodeHandle, error) {
	n := l.Plan.Node(name)
	if n == nil {
		return nil, l.Plan.UnknownNode(name)
	}
	path := filepath.Join(l.Record.NetnsDir, n.Namespace)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return nil, fmt.Errorf("lab %q is down", l.Plan.Lab)
	}
	h := l.nodes[name]
	if h != nil && (!h.opened || h.ns.PinnedAt(path)) {
		return h, nil
	}
	if h != nil {
		delete(l.nodes, name)
		go h.close() // once its users are done
		l.ids = nil  // the lab may have been built again: read its journal again
	}
	ns, err := netns.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open namespace of node %q: %w", name, err)
	}
	if err := l.checkIdentity(n.Namespace, ns); err != nil {
		ns.Close()
		return nil, err
	}
	h = &nodeHandle{node: n, ns: ns, opened: true, path: path}
	l.nodes[name] = h
	return h, nil
}

// checkIdentity refuses a namespace opened by name that is not the one
// the lab's journal recorded under that name (someone removed the lab's
// and pinned another there: `ip netns del; ip netns add`), so that exec,
// status and probes never enter a namespace nslab did not make. The
// journal's identities are read once (and again when a handle finds its
// namespace replaced); a namespace the journal does not name is refused,
// but for an older nslab's record, whose journal names no identities.
func (l *Lab) checkIdentity(name string, ns *netns.NS) error {
	if l.ids == nil {
		l.ids = map[string]string{}
		ents, _ := readJournal(l.dir)
		for _, e := range ents {
			if e.kind == jNetns {
				if n, id, ok := strings.Cut(e.arg, " "); ok {
					l.ids[n] = id
				}
			}
		}
	}
	want, ok := l.ids[name]
	if !ok {
		if l.Record != nil && l.Record.Version >= recordVersion {
			return fmt.Errorf("namespace %s: the journal of lab %q has no record of it (the lab is gone or half torn down: run nslab clean %s)", name, l.Plan.Lab, l.Plan.Lab)
		}
		return nil // an older nslab's journal names namespaces only
	}
	got, err := ns.ID()
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("namespace %s is not the one nslab made for lab %q (it was replaced: %s, recorded %s); remove the lab with `nslab clean %s`", name, l.Plan.Lab, got, want, l.Plan.Lab)
	}
	return nil
}

// Close releases what this process holds open of the lab: the node
// handles (a namespace descriptor and a netlink socket each, which keep
// the namespaces alive) and idle ping sockets. The lab stays up, and a
// later call opens what it needs again. Down releases them too; a program
// that opens a lab (Open) and goes on running should Close it when done
// with it.
func (l *Lab) Close() error {
	l.mu.Lock()
	nodes := l.nodes
	l.nodes = map[string]*nodeHandle{}
	l.mu.Unlock()
	l.icmp.closeIdle()
	for _, h := range nodes {
		h.close()
	}
	return l.loss.Close()
}
