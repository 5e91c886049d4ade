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
	"strings"
	"sync"
	"time"

	"github.com/nslab/nslab/impair"
	"github.com/nslab/nslab/internal/ebpfswitch"
	"github.com/nslab/nslab/internal/netns"
	"github.com/nslab/nslab/internal/proc"
	"github.com/nslab/nslab/internal/rtnl"
	"github.com/nslab/nslab/topo"
	"golang.org/x/sys/unix"
)

// Lab is a running lab: the plan it was built from and one handle per
// node. Get one from Up (built by this process, which makes the handles
// as it makes the nodes) or Open (from the record of a lab that is up,
// whose handles are opened on first use).
type Lab struct {
	Plan   *topo.Plan
	Record *Record

	opts    Options
	dir     string
	journal *journal // nil for a lab from Open
	mu      sync.Mutex
	nodes   map[string]*nodeHandle // by node name (see Lab.node)
	procs   []*exec.Cmd            // started by this process, reaped at Down
	done    bool                   // torn down
	// icmp keeps ping sockets between pings, for labs this process built
	// (and so will tear down, closing them); a lab from Open has none.
	icmp  icmpPool
	owned bool
	// kernel is what the kernel can do for link impairments, found once:
	// at Up when the plan has impairments, else at the first change.
	kernel *impair.Kernel
	// ebpf is the eBPF switch program while the lab is built, for a plan
	// with switches of the "ebpf" datapath (see ebpfswitch_linux.go).
	ebpf *ebpfswitch.Switches
	// loss is the loss program the lab's interfaces share where the
	// kernel has no netem (loaded on first use, released at Down/Close).
	loss impair.LossPrograms
	// lean says the builder keeps one descriptor per node, not two
	// (raiseFileLimit).
	lean bool
	// ids are the namespaces' identities from the journal, by name, read
	// on first use by a lab from Open (checkIdentity; under mu).
	ids map[string]string
}

// Up builds the lab described by plan and returns it running. If anything
// fails, or ctx is cancelled, everything done so far is removed again (the
// phases started are undone, see phases) and the error names the object
// that failed.
func Up(ctx context.Context, plan *topo.Plan, opts Options) (*Lab, error) {
	if opts.ReadyTimeout <= 0 {
		// 10 s, and 5 ms more a node: a big lab's ports come up as the
		// kernel gets to their link events, later still while it is
		// dismantling an earlier lab (single,1000 back to back once
		// waited past 10 s for 449 ports).
		opts.ReadyTimeout = 10*time.Second + time.Duration(len(plan.Nodes))*5*time.Millisecond
	}
	opts = opts.withDefaults()
	if _, child := os.LookupEnv(echoEnv); child {
		// Started as a node's echo service but past Dispatch: a program
		// that never called it would otherwise build labs from inside a
		// lab, each starting the next.
		return nil, fmt.Errorf("lab %q: this process was started as nslab's echo service: %w", plan.Lab, errNoDispatch)
	}
	lean, err := raiseFileLimit(len(plan.Nodes))
	if err != nil {
		return nil, fmt.Errorf("lab %q: %w", plan.Lab, err)
	}
	// What the kernel cannot do is refused before anything is built.
	k, err := checkImpairments(plan)
	if err != nil {
		return nil, err
	}
	sw, err := loadEBPFSwitches(plan, k)
	if err != nil {
		return nil, err
	}
	// The filters hold the program once attached: the lab lets go of it
	// when the build ends, whichever way.
	defer sw.Close()
	l := &Lab{Plan: plan, opts: opts, dir: labDir(opts.StateDir, plan.Lab), nodes: map[string]*nodeHandle{}, owned: true, kernel: k, lean: lean, ebpf: sw}
	lock, err := l.claim()
	if err != nil {
		leaveStateDir(opts.StateDir)
		return nil, err
	}
	// The lab's lock is held for the whole build and its rollback.
	started, err := l.build(ctx, phases)
	if err != nil {
		opts.Logger.Debug("build failed, rolling back", "lab", plan.Lab, "err", err)
		if rerr := l.teardown(phases[:started], true); rerr != nil {
			err = fmt.Errorf("%w (and rollback: %v)", err, rerr)
		}
		lock.release()
		leaveStateDir(opts.StateDir)
		return nil, err
	}
	lock.release()
	return l, nil
}

// claim takes the lab's lock and makes its state directory, refusing a
// lab that exists. It returns with the lock held.
func (l *Lab) claim() (*labLock, error) {
	o := l.opts
	// Checked before it is mounted on: a directory nslab refuses gets no
	// mount either.
	if err := os.MkdirAll(o.NetnsDir, 0o755); err != nil {
		return nil, fmt.Errorf("prepare namespace directory: %w", err)
	}
	if err := checkDir(o.NetnsDir); err != nil {
		return nil, fmt.Errorf("namespace directory: %w", err)
	}
	if _, err := netns.EnsureMountDir(o.NetnsDir, unix.MS_SHARED); err != nil {
		return nil, fmt.Errorf("prepare namespace directory: %w", err)
	}
	done, err := enterStateDir(o.StateDir)
	if err != nil {
		return nil, err
	}
	defer done()
	lock, err := lockLab(o.StateDir, l.Plan.Lab, lockWait)
	if err != nil {
		return nil, err
	}
	if err := os.Mkdir(l.dir, 0o755); err != nil {
		lock.release()
		if errors.Is(err, os.ErrExist) {
			return nil, topo.BadInput(existsError(o.StateDir, l.Plan.Lab))
		}
		return nil, fmt.Errorf("create lab record: %w", err)
	}
	l.Record = &Record{Version: recordVersion, Lab: l.Plan.Lab, State: StateBuilding, PID: os.Getpid(),
		PIDStart: selfStart(), Held: o.Held, Created: time.Now().UTC(), NetnsDir: o.NetnsDir, HostNetns: o.HostNetns, Topology: l.Plan.Topology}
	if err = writeRecord(l.dir, l.Record); err == nil {
		l.journal, err = openJournal(l.dir)
	}
	if err != nil {
		os.RemoveAll(l.dir)
		lock.release()
		return nil, fmt.Errorf("write lab record: %w", err)
	}
	return lock, nil
}

func selfStart() uint64 {
	st, _ := proc.StartTime(os.Getpid())
	return st
}

func existsError(stateDir, lab string) error {
	r, err := ReadRecord(stateDir, lab)
	var unsafe *UnsafeError
	switch {
	case errors.As(err, &unsafe):
		return err
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
func builderAlive(r *Record) bool { return alive(r.PID, r.PIDStart) }

// alive reports whether process pid runs and started at start (so is not
// a reused PID, nor a zombie).
func alive(pid int, start uint64) bool { return proc.Alive(pid, start) }

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
		local.Master, local.Group = a.Master, rtnl.PortGroup
	}
	peer := rtnl.VethEnd{Name: b.Name, Index: b.Index, MAC: b.MAC, MTU: k.MTU, NsFd: hb.ns.Fd()}
	if b.Port {
		peer.Group = rtnl.PortGroup
	}
	if err := ha.rt.VethAdd(local, peer); err != nil {
		return fmt.Errorf("add veth %q to node %q (peer %q in node %q): %w", a.Name, a.Node, b.Name, b.Node, err)
	}
	if b.Port { // a link between two switches
		if err := hb.rt.LinkSetMasterUp(b.Index, b.Master); err != nil {
			return fmt.Errorf("attach %q to bridge of switch %q: %w", b.Name, b.Node, err)
		}
	}
	for _, e := range [][2]*nodeHandle{{ha, hb}, {hb, ha}} {
		if err := floodToRings(e[0], e[1], k); err != nil {
			return err
		}
	}
	// The ends that are not ports come up now rather than in the
	// addresses phase: a veth end created down has a link event queued
	// (its carrier set off at creation) that the kernel's link watcher
	// handles only once the end is up or a second has passed, 100 a
	// second; meanwhile each run of the watcher for the ports made
	// meanwhile walks that whole queue, under rtnl (a 10,000-host build
	// left thousands there for the whole links phase).
	for _, e := range []struct {
		h   *nodeHandle
		end *topo.Iface
	}{{ha, a}, {hb, b}} {
		if e.end.Port {
			continue
		}
		if err := bringUp(e.h, e.end); err != nil {
			return fmt.Errorf("set %q of node %q up: %w", e.end.Name, e.end.Node, err)
		}
	}
	return nil
}

// bringUp sets a host's or router's interface up, with IPv6 address
// generation off unless it has IPv6 addresses.
func bringUp(h *nodeHandle, i *topo.Iface) error {
	if i.HasFamily(6) {
		return h.rt.LinkSetUp(i.Index, true)
	}
	return h.rt.LinkSetUpNoIPv6(i.Index)
}

// ringPorts is the size past which a switch's floods go to rings: two
// floods of a bridge of more ports than half the backlog overflow it.
const ringPorts = 500

// floodToRings makes a big switch's floods reach the far end of a port
// without the CPU's backlog, when sw is a switch of more than ringPorts
// ports (or of more than one bridge, topo.Trunk) and the link k joins it
// to far: a bridge's flood queues a
// copy per port at once on the backlog (net.core.netdev_max_backlog,
// 1,000), so that floods of several hosts at once on a 10,000-port switch
// were dropped (a sampled pingall of 20 hosts of single,3000: 300 of 380
// pairs answered). With GRO on the far end, a veth takes what its peer
// sends into a ring of the far end's own (its NAPI), as long as the
// sending end has no TSO (veth_skb_is_eligible_for_gro): so TSO is off on
// the switch's port (a TCP stream through it is segmented by the kernel
// at the port) and GRO on the far end (`ethtool -K PORT tso off`,
// `ethtool -K IF gro on`). With it, 380 of 380.
func floodToRings(sw, far *nodeHandle, k *topo.Link) error {
	if sw.node.Kind != topo.KindSwitch || (len(sw.node.Trunks) == 0 && len(sw.node.Ifaces) <= ringPorts) {
		return nil
	}
	port, end := k.A, k.B
	if port.Node != sw.node.Name {
		port, end = end, port
	}
	if err := sw.rt.SetOffload(port.Name, rtnl.OffloadTSO, false); err != nil {
		return fmt.Errorf("port %q of switch %q: %w", port.Name, sw.node.Name, err)
	}
	if err := far.rt.SetOffload(end.Name, rtnl.OffloadGRO, true); err != nil {
		return fmt.Errorf("interface %q of node %q: %w", end.Name, far.node.Name, err)
	}
	return nil
}

// Name returns the lab's name.
func (l *Lab) Name() string { return l.Plan.Lab }

// Dir returns the lab's state directory.
func (l *Lab) Dir() string { return l.dir }

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
