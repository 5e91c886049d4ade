package emulator

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nslab/nslab/internal/netns"
	"github.com/nslab/nslab/internal/rtnl"
	"github.com/nslab/nslab/topo"
	"golang.org/x/sys/unix"
)

// Lab is a running lab: the plan it was built from and a handle bundle per
// node. Get one from Up (build) or Open (a lab another process built).
type Lab struct {
	Plan   *topo.Plan
	Record *Record

	opts  Options
	dir   string
	jr    *journal
	mu    sync.Mutex
	nodes map[string]*nodeHandle
	procs []*exec.Cmd
	done  bool
	// icmp keeps ping sockets between pings, for labs this process built
	// (and so will tear down, closing them); a lab from Open has none.
	icmp  icmpPool
	owned bool
}

// Up builds the lab described by plan and returns it running. If anything
// fails, or ctx is cancelled, everything done so far is removed again and
// the error names the object that failed.
func Up(ctx context.Context, plan *topo.Plan, opts Options) (*Lab, error) {
	opts = opts.withDefaults()
	l := &Lab{Plan: plan, opts: opts, dir: labDir(opts.StateDir, plan.Lab), nodes: map[string]*nodeHandle{}, owned: true}
	if err := l.claim(); err != nil {
		return nil, err
	}
	err := l.build(ctx)
	if err != nil {
		opts.Logger.Debug("build failed, rolling back", "lab", plan.Lab, "err", err)
		if rerr := l.teardown(); rerr != nil {
			err = fmt.Errorf("%w (and rollback: %v)", err, rerr)
		}
		return nil, err
	}
	return l, nil
}

// claim makes the lab's state directory, refusing a lab that exists.
func (l *Lab) claim() error {
	o := l.opts
	if err := netns.EnsureMountDir(o.NetnsDir, unix.MS_SHARED); err != nil {
		return fmt.Errorf("prepare namespace directory: %w", err)
	}
	if err := netns.EnsureMountDir(o.StateDir, unix.MS_PRIVATE); err != nil {
		return fmt.Errorf("prepare state directory: %w", err)
	}
	if err := os.Mkdir(l.dir, 0o755); err != nil {
		if errors.Is(err, os.ErrExist) {
			return topo.BadInput(existsError(o.StateDir, l.Plan.Lab))
		}
		return fmt.Errorf("create lab record: %w", err)
	}
	l.Record = &Record{Version: 1, Lab: l.Plan.Lab, State: StateBuilding, PID: os.Getpid(),
		PIDStart: selfStart(), Held: o.Held, Created: time.Now().UTC(), NetnsDir: o.NetnsDir, HostNetns: o.HostNetns, Topology: l.Plan.Topology}
	var err error
	if err = writeRecord(l.dir, l.Record); err == nil {
		l.jr, err = openJournal(l.dir)
	}
	if err != nil {
		os.RemoveAll(l.dir)
		return fmt.Errorf("write lab record: %w", err)
	}
	return nil
}

func selfStart() uint64 {
	st, _ := procStart(os.Getpid())
	return st
}

func existsError(stateDir, lab string) error {
	r, err := ReadRecord(stateDir, lab)
	switch {
	case err == nil && r.State == StateUp:
		return fmt.Errorf("lab %q is already up (stop it with `nslab down %s`, or pick another name)", lab, lab)
	case err == nil && builderAlive(r):
		return fmt.Errorf("lab %q is being built by process %d", lab, r.PID)
	default:
		return fmt.Errorf("lab %q was left half-built; remove it with `nslab clean %s`", lab, lab)
	}
}

// builderAlive reports whether the process that wrote r still runs: the
// same PID with the same start time (a reused PID does not count).
func builderAlive(r *Record) bool {
	if r.PID <= 0 || unix.Kill(r.PID, 0) != nil {
		return false
	}
	st, err := procStart(r.PID)
	return err == nil && st == r.PIDStart
}

// procStart returns the start time of a process, in clock ticks after boot.
func procStart(pid int) (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("bad stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, errors.New("bad stat")
	}
	return strconv.ParseUint(f[19], 10, 64)
}

func (l *Lab) build(ctx context.Context) error {
	p, o := l.Plan, l.opts
	var nonSwitch int
	for _, n := range p.Nodes {
		if n.Kind != topo.KindSwitch {
			nonSwitch++
		}
	}
	pr := &progress{fn: o.Progress, total: len(p.Nodes)*2 + len(p.Links) + nonSwitch}
	forwarding := forwardingOn()
	start := time.Now()

	// 1. Namespaces, each created, configured by sysctl and given a netlink
	// socket on one visit of a locked thread. Pinning them in NetnsDir
	// takes the mount lock, not rtnl, so it runs beside the rest.
	pr.setPhase("namespaces")
	pins := make(chan *nodeHandle, len(p.Nodes))
	pinErr := make(chan error, 1)
	go func() {
		var first error
		pn := &netns.Pinner{Journal: l.jr.pinStep}
		defer pn.Close()
		for h := range pins {
			if first != nil {
				continue
			}
			if err := h.ns.Pin(pn, filepath.Join(o.NetnsDir, h.node.Namespace)); err != nil {
				if errors.Is(err, os.ErrExist) {
					err = fmt.Errorf("a namespace named %q already exists (not ours: nslab leaves it alone)", h.node.Namespace)
				}
				first = fmt.Errorf("add namespace for node %q: %w", h.node.Name, err)
			}
			pr.step()
		}
		pinErr <- first
	}()
	phase := time.Now()
	logPhase := func(name string) {
		o.Logger.Debug("phase done", "lab", p.Lab, "phase", name, "took", time.Since(phase))
		phase = time.Now()
	}
	handles := make([]*nodeHandle, len(p.Nodes))
	var switches []int
	for i, n := range p.Nodes {
		if n.Kind == topo.KindSwitch {
			switches = append(switches, i)
		}
	}
	mk := func(i int) (*nodeHandle, error) {
		n := p.Nodes[i]
		ns, rt, err := newNetns(nodeSysctls(n, forwarding))
		if err != nil {
			return nil, fmt.Errorf("create namespace for node %q: %w", n.Name, err)
		}
		h := &nodeHandle{node: n, ns: ns, rt: rt}
		handles[i] = h
		l.mu.Lock()
		l.nodes[n.Name] = h
		l.mu.Unlock()
		pr.step()
		pins <- h
		return h, nil
	}
	// The pins finish in the background while links are made; never return
	// (and so never roll back) before they are done.
	var pinOnce sync.Once
	var perr error
	waitPins := func() error {
		pinOnce.Do(func() {
			close(pins)
			perr = <-pinErr
		})
		return perr
	}
	defer waitPins()

	// 2. Namespaces, bridges and links in one pipeline. Namespace setup
	// runs mostly outside the kernel's rtnl lock, link creation almost
	// wholly inside it: two workers make namespaces (and a switch's
	// bridge, kept down until every port has joined), and one more makes
	// each link as soon as both its ends exist. Links made by two workers
	// only had one of them spin on rtnl; as a pipeline, linear,100 comes
	// up about 10% sooner, single,1000 no slower.
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
	ends := make([]atomic.Int32, len(p.Links)) // ends whose node is ready
	ready := make(chan int, len(p.Links))      // links whose two ends are
	pctx, pcancel := context.WithCancel(ctx)
	defer pcancel()
	linkErr := make(chan error, 1)
	go func() {
		for range p.Links {
			select {
			case k := <-ready:
				if pctx.Err() != nil {
					linkErr <- nil // cancelled: the namespace side reports it
					return
				}
				if err := l.addLink(p.Links[k]); err != nil {
					pcancel()
					linkErr <- err
					return
				}
				pr.step()
			case <-pctx.Done():
				linkErr <- nil // the namespace side has the error
				return
			}
		}
		linkErr <- nil
	}()
	nsErr := parallel(pctx, len(p.Nodes), o.Workers, func(i int) error {
		h, err := mk(i)
		if err != nil {
			return err
		}
		if h.node.Kind == topo.KindSwitch {
			if err := h.rt.BridgeAdd(h.node.Bridge, 2, bridgeMAC(p.Lab, h.node.Name)); err != nil {
				return fmt.Errorf("add bridge %q to switch %q: %w", h.node.Bridge, h.node.Name, err)
			}
		}
		for _, k := range linksOf[i] {
			if ends[k].Add(1) == 2 {
				ready <- k
			}
		}
		return nil
	})
	if nsErr != nil {
		pcancel()
	} else if len(p.Links) > 0 {
		pr.setPhase("links") // the links left once every namespace exists
	}
	// Never return before the link worker has stopped: a rollback must
	// not race with a link still being made. Report what failed first: a
	// link whose failure cancelled the namespace workers, or else theirs.
	lerr := <-linkErr
	switch {
	case lerr != nil && (nsErr == nil || errors.Is(nsErr, context.Canceled) && ctx.Err() == nil):
		return lerr
	case nsErr != nil:
		return nsErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	o.Logger.Debug("namespaces and links ready", "lab", p.Lab, "nodes", len(p.Nodes), "links", len(p.Links), "took", time.Since(start))
	logPhase("namespaces and links")
	if p.Host != nil {
		if err := l.addHostLink(); err != nil {
			return err
		}
		logPhase("host link")
	}

	// 3. Every host and router: loopback and interfaces up, addresses, routes.
	pr.setPhase("addresses")
	if err := parallel(ctx, len(handles), o.Workers, func(i int) error {
		h := handles[i]
		if h.node.Kind == topo.KindSwitch {
			return nil // its ports were created up, in the bridge
		}
		err := l.configureNode(h)
		if err == nil && (h.node.NAT != nil || h.node.Firewall != nil) {
			if err = l.jr.add(jNft, h.node.Name+" "+nftTable(p.Lab)); err == nil {
				err = l.applyNftables(h)
			}
		}
		pr.step()
		return err
	}); err != nil {
		return err
	}

	logPhase("addresses")
	// 4. Bridges up, then wait for every interface to be up: the first
	// packets on a veth whose peer is not up yet are lost.
	pr.setPhase("ready")
	for _, i := range switches {
		h := handles[i]
		if err := h.rt.LinkSetUp(2, true); err != nil {
			return fmt.Errorf("set bridge %q of switch %q up: %w", h.node.Bridge, h.node.Name, err)
		}
	}
	if p.Host != nil {
		if err := l.configureHost(); err != nil {
			return err
		}
	}
	// A switch port and its peer get their carrier in the same kernel
	// step, so one dump per switch covers both ends; other interfaces
	// (point-to-point links) are asked for one by one.
	deadline := time.Now().Add(o.ReadyTimeout)
	if err := parallel(ctx, len(handles), o.Workers, func(i int) error {
		h := handles[i]
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

	logPhase("ready")
	if err := waitPins(); err != nil {
		return err
	}
	logPhase("pins")
	// 5. /etc/hosts and hostnames, then the nodes' own services.
	if !o.NoEtc {
		pr.setPhase("etc")
		if err := l.makeEtc(); err != nil {
			return err
		}
	}
	logPhase("etc")
	if err := l.startServices(ctx); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	l.Record.State = StateUp
	if err := writeRecord(l.dir, l.Record); err != nil {
		return fmt.Errorf("write lab record: %w", err)
	}
	pr.setPhase("up")
	o.Logger.Debug("lab up", "lab", p.Lab, "took", time.Since(start))
	return nil
}

// nodeSysctls are the settings written in a node's namespace at creation,
// before any interface exists, so that they are the defaults of its
// interfaces.
func nodeSysctls(n *topo.Node, inherited []string) []topo.Sysctl {
	var s []topo.Sysctl
	switch {
	case n.Kind == topo.KindSwitch:
		// Bridge ports need no IPv6: without it no duplicate-address
		// detection or router solicitation is flooded to every port.
		// Only "default" is needed: every interface of the switch but lo
		// is created after this write.
		s = append(s, topo.Sysctl{Key: "net.ipv6.conf.default.disable_ipv6", Value: "1"})
	}
	// Hosts and routers need no setting here: interfaces without IPv6
	// addresses get IPv6 address generation turned off as they come up
	// (writing /proc/sys in each of many namespaces costs more: the
	// kernel's sysctl lookups grow with the number of namespaces).
	if n.IPv6 && n.Kind != topo.KindSwitch {
		// No duplicate address detection, for the link-local addresses
		// too (the written ones are added "nodad"): before any interface
		// exists, so that none is ever tentative. A router sends the
		// neighbour solicitations for packets it forwards from its
		// link-local address, and sends none while that is tentative: the
		// first packet across a router waited a second for DAD, each
		// router once. The kernel skips DAD only when both "all" and the
		// interface's value are 0.
		s = append(s, topo.Sysctl{Key: "net.ipv6.conf.all.accept_dad", Value: "0"}, topo.Sysctl{Key: "net.ipv6.conf.default.accept_dad", Value: "0"})
	}
	if n.Kind == topo.KindRouter {
		s = append(s, topo.Sysctl{Key: "net.ipv4.ip_forward", Value: "1"}, topo.Sysctl{Key: "net.ipv6.conf.all.forwarding", Value: "1"})
	} else if n.Kind == topo.KindHost {
		// A new namespace copies its IPv4 settings (and, on some machines,
		// its IPv6 ones) from the machine's: where the machine forwards, a
		// host would too. Only then is it worth a write.
		for _, f := range inherited {
			s = append(s, topo.Sysctl{Key: f, Value: "0"})
		}
	}
	return append(s, n.Sysctls...)
}

// forwardingOn lists the forwarding settings that are on in the namespace
// nslab runs in, and that new namespaces may therefore inherit.
func forwardingOn() []string {
	var on []string
	for _, k := range []string{"net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"} {
		data, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(k, ".", "/"))
		if err == nil && strings.TrimSpace(string(data)) != "0" {
			on = append(on, k)
		}
	}
	return on
}

func (l *Lab) handle(name string) *nodeHandle {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.nodes[name]
}

// addLink creates one veth pair.
func (l *Lab) addLink(k *topo.Link) error {
	a, b := k.A, k.B
	if b.Port && !a.Port {
		a, b = b, a // create from the switch: its end gets the master at once
	}
	ha, hb := l.handle(a.Node), l.handle(b.Node)
	local := rtnl.VethEnd{Name: a.Name, Index: a.Index, MAC: a.MAC, MTU: k.MTU, Up: a.Port}
	if a.Port {
		local.Master, local.Group = 2, rtnl.PortGroup
	}
	peer := rtnl.VethEnd{Name: b.Name, Index: b.Index, MAC: b.MAC, MTU: k.MTU, NsFd: hb.ns.Fd()}
	if b.Port {
		peer.Group = rtnl.PortGroup
	}
	if err := ha.rt.VethAdd(local, peer); err != nil {
		return fmt.Errorf("add veth %q to node %q (peer %q in node %q): %w", a.Name, a.Node, b.Name, b.Node, err)
	}
	if b.Port { // a link between two switches
		if err := hb.rt.LinkSetMasterUp(b.Index, 2); err != nil {
			return fmt.Errorf("attach %q to bridge of switch %q: %w", b.Name, b.Node, err)
		}
	}
	return nil
}

func (l *Lab) configureNode(h *nodeHandle) error {
	n := h.node
	if err := h.rt.LinkSetUp(1, true); err != nil {
		return fmt.Errorf("set lo of node %q up: %w", n.Name, err)
	}
	for _, i := range n.Ifaces {
		up := h.rt.LinkSetUpNoIPv6
		if i.HasFamily(6) {
			up = func(index int) error { return h.rt.LinkSetUp(index, true) }
		}
		if err := up(i.Index); err != nil {
			return fmt.Errorf("set %q of node %q up: %w", i.Name, n.Name, err)
		}
		for _, a := range i.Addrs {
			if err := h.rt.AddrAdd(i.Index, a); err != nil {
				return fmt.Errorf("add address %s to %q of node %q: %w", a, i.Name, n.Name, err)
			}
		}
	}
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

// Name returns the lab's name.
func (l *Lab) Name() string { return l.Plan.Lab }

// Dir returns the lab's state directory.
func (l *Lab) Dir() string { return l.dir }

// Down tears the lab down: it stops every process inside the lab's
// namespaces and removes exactly the objects its record lists. Calling it
// again does nothing.
func (l *Lab) Down() error {
	return l.teardown()
}

func (l *Lab) teardown() error {
	l.mu.Lock()
	if l.done {
		l.mu.Unlock()
		return nil
	}
	l.done = true
	nodes := l.nodes
	l.nodes = map[string]*nodeHandle{}
	procs := l.procs
	l.mu.Unlock()
	l.icmp.close()
	l.jr.close()
	// Our own sockets and descriptors keep namespaces alive: close them.
	for _, h := range nodes {
		h.close()
	}
	err := removeLab(l.opts, l.Plan.Lab)
	for _, c := range procs {
		c.Wait() // reap what we started; removeLab killed it
	}
	return err
}

func prefixIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// bridgeMAC derives a stable, locally administered unicast MAC for a
// switch's bridge from the lab and switch names.
func bridgeMAC(lab, node string) net.HardwareAddr {
	h := fnv.New64a()
	h.Write([]byte(lab + "\x00" + node))
	sum := h.Sum64()
	mac := make(net.HardwareAddr, 6)
	for i := range mac {
		mac[i] = byte(sum >> (8 * i))
	}
	mac[0] = mac[0]&0xfc | 0x02 // locally administered, unicast
	return mac
}

// BuilderAlive reports whether the process that built the lab of r still
// runs (the same PID with the same start time).
func (r *Record) BuilderAlive() bool { return builderAlive(r) }

// newNetns creates a node's network namespace, writes sysctls inside it and
// opens a route netlink socket in it, all from one visit of a locked thread
// (`ip netns add` + `ip netns exec NS sysctl ...`). Nothing is mounted yet:
// the namespace disappears if it is closed before it is pinned.
func newNetns(sysctls []topo.Sysctl) (*netns.NS, *rtnl.Conn, error) {
	var rt *rtnl.Conn
	ns, err := netns.New(func() error {
		if err := writeSysctls(sysctls); err != nil {
			return err
		}
		var err error
		rt, err = rtnl.Open()
		return err
	})
	if err != nil {
		rt.Close()
		return nil, nil, err
	}
	return ns, rt, nil
}

// writeSysctls writes settings in the calling thread's network namespace:
// /proc/sys/net is resolved by the namespace of the thread that opens it.
func writeSysctls(ss []topo.Sysctl) error {
	for _, s := range ss {
		path := "/proc/sys/" + strings.ReplaceAll(s.Key, ".", "/")
		if strings.Contains(s.Key, "/") {
			path = "/proc/sys/" + s.Key
		}
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("sysctl %s: this kernel has no such setting", s.Key)
			}
			return fmt.Errorf("sysctl %s: %w", s.Key, err)
		}
		_, err = f.WriteString(s.Value)
		f.Close()
		if err != nil {
			return fmt.Errorf("sysctl %s = %q: %w", s.Key, s.Value, err)
		}
	}
	return nil
}

// pinStep records a namespace Pinner's steps in the journal.
func (j *journal) pinStep(step netns.PinStep, arg string) error {
	switch step {
	case netns.PinFile:
		return j.add(jPinFile, arg)
	case netns.PinTry:
		return j.add(jTry, arg)
	case netns.Pinned:
		return j.add(jNetns, arg)
	}
	return fmt.Errorf("unknown pin step %d", step)
}
