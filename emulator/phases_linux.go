package emulator

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/nslab/nslab/internal/netns"
	"github.com/nslab/nslab/internal/rtnl"
	"github.com/nslab/nslab/topo"
)

// The phases of a build, in order (see phases).

// namespaces makes every node's namespace, each created, configured by
// sysctl and given a netlink socket on one visit of a locked thread, and
// each switch's bridge, kept down until every port has joined. Pinning
// the namespaces in NetnsDir takes the mount lock, not rtnl, so it runs
// beside the rest on a goroutine of its own, until readiness waits for
// it.
//
// Namespaces, bridges and links are made in one pipeline. Namespace
// setup runs mostly outside the kernel's rtnl lock, link creation almost
// wholly inside it: two workers make namespaces, and one more makes each
// link as soon as both its ends exist (the links phase waits for it).
// Links made by two workers only had one of them spin on rtnl; as a
// pipeline, linear,100 comes up about 10% sooner, single,1000 no slower.
func (b *builder) namespaces(ctx context.Context) error {
	p, o, l := b.plan, b.opts, b.lab
	b.forwarding = forwardingOn()
	b.startPins()

	nodeIdx := make(map[string]int, len(p.Nodes))
	for i, n := range p.Nodes {
		nodeIdx[n.Name] = i
	}
	linksOf := make([][]int, len(p.Nodes))
	for k, lk := range p.Links {
		ia, ib := nodeIdx[lk.A.Node], nodeIdx[lk.B.Node]
		linksOf[ia] = append(linksOf[ia], k)
		linksOf[ib] = append(linksOf[ib], k)
	}
	b.index = nodeIdx
	if l.lean {
		b.pending = make([]atomic.Int32, len(p.Nodes))
		for i := range p.Nodes {
			b.pending[i].Store(int32(len(linksOf[i]) + 1)) // its links and its pin
		}
	}
	ends := make([]atomic.Int32, len(p.Links)) // ends whose node is ready
	ready := make(chan int, len(p.Links))      // links whose two ends are
	b.pipeline, b.cancelPipeline = context.WithCancel(ctx)
	b.linkErr = make(chan error, 1)
	go b.linkWorker(ready)

	mk := func(i int) (*nodeHandle, error) {
		n := p.Nodes[i]
		ns, rt, err := newNetns(nodeSysctls(n, b.forwarding))
		if err != nil {
			return nil, fmt.Errorf("create namespace for node %q: %w", n.Name, err)
		}
		h := &nodeHandle{node: n, ns: ns, rt: rt, path: filepath.Join(o.NetnsDir, n.Namespace)}
		b.handles[i] = h
		l.mu.Lock()
		l.nodes[n.Name] = h
		l.mu.Unlock()
		b.progress.step()
		b.pins <- h
		return h, nil
	}
	// In a lean build, the nodes that many links meet (switches, routers)
	// are made first: a host's namespace descriptor is then released as
	// soon as its links are made, whatever the order of the file (hosts
	// written before their switch would all wait for it, holding theirs).
	order := make([]int, len(p.Nodes))
	for i := range order {
		order[i] = i
	}
	if l.lean {
		slices.SortStableFunc(order, func(a, b int) int {
			return cmp.Compare(kindRank(p.Nodes[a].Kind), kindRank(p.Nodes[b].Kind))
		})
	}
	err := parallel(b.pipeline, len(p.Nodes), o.Workers, func(k int) error {
		i := order[k]
		h, err := mk(i)
		if err != nil {
			return err
		}
		if h.node.Kind == topo.KindSwitch && h.node.Bridge != "" {
			if err := addBridges(h, p.Lab); err != nil {
				return err
			}
		}
		for _, k := range linksOf[i] {
			if ends[k].Add(1) == 2 {
				ready <- k
			}
		}
		return nil
	})
	if err == nil {
		return nil
	}
	// Never return before the link worker has stopped: a rollback must
	// not race with a link still being made. Report what failed first: a
	// link whose failure cancelled the namespace workers, or else theirs.
	b.cancelPipeline()
	if lerr := b.waitLinks(); lerr != nil && errors.Is(err, context.Canceled) && ctx.Err() == nil {
		return lerr
	}
	return err
}

// kindRank orders node kinds for a lean build: switches, then routers and
// other nodes, then hosts.
func kindRank(k topo.Kind) int {
	switch k {
	case topo.KindSwitch:
		return 0
	case topo.KindHost:
		return 2
	}
	return 1
}

// waitLinks waits until the link worker has stopped, and returns its
// failure.
func (b *builder) waitLinks() error {
	b.linkOnce.Do(func() { b.linkResult = <-b.linkErr })
	return b.linkResult
}

// linkWorker makes each link whose two ends exist (their indexes come on
// ready), until every link is made, one fails (which cancels the
// pipeline), or the pipeline is cancelled. It reports on b.linkErr.
func (b *builder) linkWorker(ready <-chan int) {
	p, l := b.plan, b.lab
	for range p.Links {
		select {
		case k := <-ready:
			if b.pipeline.Err() != nil {
				b.linkErr <- nil // cancelled: the namespace side reports it
				return
			}
			if err := l.addLink(p.Links[k]); err != nil {
				b.cancelPipeline()
				b.linkErr <- err
				return
			}
			b.used(p.Links[k].A.Node)
			b.used(p.Links[k].B.Node)
			b.progress.step()
		case <-b.pipeline.Done():
			b.linkErr <- nil // the namespace side has the error
			return
		}
	}
	b.linkErr <- nil
}

// startPins starts the goroutine that pins each namespace the
// namespaces phase makes, journaling each pin (netns.Pinner).
func (b *builder) startPins() {
	b.pins = make(chan *nodeHandle, len(b.plan.Nodes))
	b.pinErr = make(chan error, 1)
	go func() {
		var first error
		pinner := &netns.Pinner{Journal: b.lab.journal.pinStep}
		defer pinner.Close()
		for h := range b.pins {
			if first != nil {
				continue
			}
			if err := h.ns.Pin(pinner, filepath.Join(b.opts.NetnsDir, h.node.Namespace)); err != nil {
				if errors.Is(err, os.ErrExist) {
					err = fmt.Errorf("a namespace named %q already exists (not ours: nslab leaves it alone)", h.node.Namespace)
				}
				first = fmt.Errorf("add namespace for node %q: %w", h.node.Name, err)
				continue
			}
			b.used(h.node.Name)
			b.progress.step()
		}
		b.pinErr <- first
	}()
}

// used notes that the namespace descriptor of node was used for one more
// of its pin and links; in a lean build, the last releases it.
func (b *builder) used(node string) {
	if b.pending == nil {
		return
	}
	i := b.index[node]
	if b.pending[i].Add(-1) == 0 {
		b.handles[i].releaseNamespace()
	}
}

// waitPins waits until every namespace made is pinned, and returns the
// first failure.
func (b *builder) waitPins() error {
	b.pinOnce.Do(func() {
		close(b.pins)
		b.pinResult = <-b.pinErr
	})
	return b.pinResult
}

// links waits for the link worker to have made every link, then makes
// the host attachment's pair, its end in the lab created like a link's,
// the host's straight in the host namespace.
func (b *builder) links(ctx context.Context) error {
	if err := b.waitLinks(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	b.opts.Logger.Debug("namespaces and links ready", "lab", b.plan.Lab, "nodes", len(b.plan.Nodes), "links", len(b.plan.Links))
	if b.plan.Host != nil {
		return b.lab.addHostLink()
	}
	return nil
}

func linksLabel(b *builder) string {
	if len(b.plan.Links) > 0 {
		return "links" // the links left once every namespace exists
	}
	return ""
}

// addresses brings every host's and router's loopback and interfaces up
// with their addresses. A switch's ports were created up, in the bridge.
func (b *builder) addresses(ctx context.Context) error {
	return b.eachNode(ctx, func(h *nodeHandle) error {
		if h.node.Kind == topo.KindSwitch {
			return nil
		}
		err := configureAddresses(h)
		b.progress.step()
		return err
	})
}

// routes adds every host's and router's routes.
func (b *builder) routes(ctx context.Context) error {
	return b.eachNode(ctx, func(h *nodeHandle) error {
		if h.node.Kind == topo.KindSwitch {
			return nil
		}
		return configureRoutes(h)
	})
}

// nftables writes the NAT and firewall of each node that has them, in
// one transaction per node.
func (b *builder) nftables(ctx context.Context) error {
	return b.eachNode(ctx, func(h *nodeHandle) error {
		if h.node.NAT == nil && h.node.Firewall == nil {
			return nil
		}
		if err := b.lab.journal.add(jNft, h.node.Name+" "+nftTable(b.plan.Lab)); err != nil {
			return err
		}
		return b.lab.applyNftables(h)
	})
}

// eachNode runs fn for every node on the build's workers.
func (b *builder) eachNode(ctx context.Context, fn func(h *nodeHandle) error) error {
	return parallel(ctx, len(b.handles), b.opts.Workers, func(i int) error { return fn(b.handles[i]) })
}

// addBridges makes a switch's bridge (`ip link add S type bridge`), and,
// for a switch with more ports than one bridge serves well, its further
// bridges, each joined to the one before by a veth pair in the switch's
// namespace (topo.Trunk). They are made before any host's port, so that
// each bridge floods them last.
func addBridges(h *nodeHandle, lab string) error {
	n := h.node
	if err := h.rt.BridgeAdd(n.Bridge, 2, bridgeMAC(lab, n.Name)); err != nil {
		return fmt.Errorf("add bridge %q to switch %q: %w", n.Bridge, n.Name, err)
	}
	for _, t := range n.Trunks {
		if err := h.rt.BridgeAdd(t.Bridge, t.Index, bridgeMAC(lab, n.Name+"/"+t.Bridge)); err != nil {
			return fmt.Errorf("add bridge %q to switch %q: %w", t.Bridge, n.Name, err)
		}
		down := rtnl.VethEnd{Name: t.Down, Index: t.DownIndex, Master: t.Index, MTU: t.MTU, Up: true}
		up := rtnl.VethEnd{Name: t.Up, Index: t.UpIndex, MTU: t.MTU, NsFd: h.ns.Fd()}
		if err := h.rt.VethAdd(down, up); err != nil {
			return fmt.Errorf("join bridge %q to the one before in switch %q: %w", t.Bridge, n.Name, err)
		}
		if err := h.rt.LinkSetMasterUp(t.UpIndex, t.UpMaster); err != nil {
			return fmt.Errorf("join bridge %q to the one before in switch %q: %w", t.Bridge, n.Name, err)
		}
	}
	return nil
}

// bridgesUp sets every switch's bridges up, now that their ports have
// joined.
func (b *builder) bridgesUp(ctx context.Context) error {
	for _, i := range b.switches {
		h := b.handles[i]
		if h.node.Bridge == "" {
			continue // an eBPF switch: no bridge
		}
		if err := h.rt.LinkSetUp(2, true); err != nil {
			return fmt.Errorf("set bridge %q of switch %q up: %w", h.node.Bridge, h.node.Name, err)
		}
		for _, t := range h.node.Trunks {
			if err := h.rt.LinkSetUp(t.Index, true); err != nil {
				return fmt.Errorf("set bridge %q of switch %q up: %w", t.Bridge, h.node.Name, err)
			}
		}
	}
	return nil
}

// hostLink sets the host's end of the host attachment up, with its
// addresses and routes.
func (b *builder) hostLink(ctx context.Context) error {
	if b.plan.Host == nil {
		return nil
	}
	return b.lab.configureHost()
}

// readiness waits for every interface to be up (the first packets on a
// veth whose peer is not up yet are lost), for IPv6 to be ready where a
// node has it, and for every namespace to be pinned.
//
// A switch port and its peer get their carrier in the same kernel step,
// so one dump per switch covers both ends; other interfaces
// (point-to-point links) are asked for one by one.
func (b *builder) readiness(ctx context.Context) error {
	deadline := time.Now().Add(b.opts.ReadyTimeout)
	if err := b.eachNode(ctx, func(h *nodeHandle) error {
		if h.node.Kind == topo.KindSwitch {
			if err := h.rt.WaitAllUp(ctx, h.node, deadline); err != nil {
				return fmt.Errorf("wait for ports of switch %q: %w", h.node.Name, err)
			}
			return nil
		}
		for _, ifc := range h.node.Ifaces {
			if ifc.Peer != nil && ifc.Peer.Port {
				continue
			}
			if err := h.rt.WaitOperUp(ctx, ifc.Index, deadline); err != nil {
				return fmt.Errorf("wait for interface %q of node %q: %w", ifc.Name, h.node.Name, err)
			}
		}
		if h.node.IPv6 {
			if err := h.rt.WaitIPv6Ready(ctx, h.node, deadline); err != nil {
				return fmt.Errorf("node %q: %w", h.node.Name, err)
			}
		}
		return nil
	}); err != nil {
		return err
	}
	return b.waitPins()
}

// hostsFiles writes the lab's /etc/hosts and gives the nodes their
// hostnames (makeEtc), unless Options.NoEtc.
func (b *builder) hostsFiles(ctx context.Context) error {
	if b.opts.NoEtc {
		return nil
	}
	return b.lab.makeEtc()
}

func etcLabel(b *builder) string {
	if b.opts.NoEtc {
		return ""
	}
	return "etc"
}

// services starts the nodes' echo services and start commands.
func (b *builder) services(ctx context.Context) error {
	return b.lab.startServices(ctx)
}

// record writes the lab's record as up.
func (b *builder) record(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l := b.lab
	l.Record.State = StateUp
	if err := writeRecord(l.dir, l.Record); err != nil {
		return fmt.Errorf("write lab record: %w", err)
	}
	return nil
}

// configureAddresses brings a host's or router's loopback and interfaces
// up with their addresses.
func configureAddresses(h *nodeHandle) error {
	n := h.node
	if err := h.rt.LinkSetUp(1, true); err != nil {
		return fmt.Errorf("set lo of node %q up: %w", n.Name, err)
	}
	for _, i := range n.Ifaces {
		// A link's ends came up as it was made (addLink); the lab's end
		// of the host attachment comes up here.
		if i.Peer == nil || i.Peer.Node == "" {
			if err := bringUp(h, i); err != nil {
				return fmt.Errorf("set %q of node %q up: %w", i.Name, n.Name, err)
			}
		}
		for _, a := range i.Addrs {
			if err := h.rt.AddrAdd(i.Index, a); err != nil {
				return fmt.Errorf("add address %s to %q of node %q: %w", a, i.Name, n.Name, err)
			}
		}
	}
	return nil
}

// configureRoutes adds a host's or router's routes.
func configureRoutes(h *nodeHandle) error {
	n := h.node
	for _, r := range n.Routes {
		idx := 0
		if r.Dev != "" {
			idx = n.Iface(r.Dev).Index
		}
		if err := h.rt.RouteAdd(r.Dst, r.Via, idx); err != nil {
			return fmt.Errorf("add route %s to node %q: %w", r, n.Name, err)
		}
	}
	return nil
}
