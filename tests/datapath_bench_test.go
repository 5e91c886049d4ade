package tests

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/nslab/nslab/internal/netns"
	"github.com/nslab/nslab/internal/rtnl"
	"github.com/vishvananda/netlink"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// Two-port switches three ways (issue 18 point 3, measured without
// changing the engine): N switches built in throwaway namespaces (held by
// file descriptor, never pinned), each between two hosts, then released
// all at once as Down releases a lab's namespaces, and the kernel's work
// after that waited for. A switch is made of
//
//	bridge  a Linux bridge in a namespace of its own, as the engine builds
//	        one today (multicast snooping off, fixed MAC, IPv6 off in the
//	        switch's namespace, ports joined while it is down)
//	wire    the two veth ends in a namespace of their own, joined by a tc
//	        mirred redirect each way: an ingress qdisc on each port and a
//	        u32 match-all filter whose action redirects to the other
//	        port's egress (mirred is built in on this kernel; gact and
//	        matchall are not)
//	direct  no switch: one veth between the two hosts
//
// Metrics (medians; N = 100 switches):
//
//	build-ms     the N switches and their 2N hosts built (namespaces,
//	             veths, ports up, one address per host) and every veth end
//	             up (operstate, as the engine waits for), on two workers
//	release-ms   every descriptor of the namespaces closed (what Down does)
//	gone-ms      from the release until the kernel has removed every
//	             interface (sysfs back to its count): the background work
//	per-switch-ms (build + gone) / N
//	netns-ms     the slowest creation of an unrelated namespace while the
//	             kernel was at it (one every 20 ms): what another program
//	             on the machine waits for
//	cycle-ms     back to back, b.N cycles of build then release, each at
//	             once after the last: the median cycle
//	drain-ms     after the last of those, until the interfaces are gone
//
// Before timing, each isolated build is checked: a ping from the first
// switch's first host to its second host, and the same on the last switch.

const twoPortSwitches = 100

type twoPortKind string

const (
	twoPortBridge twoPortKind = "bridge"
	twoPortWire   twoPortKind = "wire"
	twoPortDirect twoPortKind = "direct"
	// twoPortNone is a switch namespace whose two ports nothing joins: no
	// packet may cross it (the test that the wire is what forwards).
	twoPortNone twoPortKind = "none"
)

func BenchmarkTwoPortSwitchBridge(b *testing.B) { benchTwoPort(b, twoPortBridge) }
func BenchmarkTwoPortSwitchWire(b *testing.B)   { benchTwoPort(b, twoPortWire) }
func BenchmarkTwoPortSwitchDirect(b *testing.B) { benchTwoPort(b, twoPortDirect) }

// TestTwoPortSwitches checks what the benchmarks build: a ping crosses
// each kind of switch, and none crosses two ports that nothing joins.
func TestTwoPortSwitches(t *testing.T) {
	for _, tc := range []struct {
		kind    twoPortKind
		forward bool
	}{
		{twoPortBridge, true},
		{twoPortWire, true},
		{twoPortDirect, true},
		{twoPortNone, false},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			sw, err := buildTwoPort(tc.kind)
			if err != nil {
				t.Fatal(err)
			}
			defer sw.release()
			if err := sw.ready(time.Now().Add(10 * time.Second)); err != nil {
				t.Fatal(err)
			}
			err = pingThrough(sw, time.Second)
			if tc.forward && err != nil {
				t.Fatalf("no ping across a %s switch: %v", tc.kind, err)
			}
			if !tc.forward && err == nil {
				t.Fatalf("a ping crossed two ports that nothing joins")
			}
		})
	}
}

// Interface indexes, chosen so that no veth end has its peer's index (the
// kernel delays the carrier of such a veth by up to a second).
const (
	tpBridge = 2
	tpPortA  = 10
	tpPortB  = 11
	tpHostA  = 20
	tpHostB  = 21
)

// twoPort is one switch and its two hosts: the namespaces, and the
// sockets opened in them (which also hold them).
type twoPort struct {
	a, b, s    *netns.NS
	ca, cb, cs *rtnl.Conn
	hs         *netlink.Handle // tc, in the switch's namespace (wire)
}

func (t *twoPort) release() {
	t.ca.Close()
	t.cb.Close()
	t.cs.Close()
	if t.hs != nil {
		t.hs.Close()
	}
	for _, ns := range []*netns.NS{t.a, t.b, t.s} {
		ns.Close()
	}
}

// newHost makes a host's namespace and its route socket.
func newHost() (*netns.NS, *rtnl.Conn, error) {
	var c *rtnl.Conn
	ns, err := netns.New(func() (err error) {
		c, err = rtnl.Open()
		return err
	})
	if err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("host namespace: %w", err)
	}
	return ns, c, nil
}

func buildTwoPort(kind twoPortKind) (_ *twoPort, err error) {
	t := &twoPort{}
	defer func() {
		if err != nil {
			t.release()
		}
	}()
	if t.a, t.ca, err = newHost(); err != nil {
		return nil, err
	}
	if t.b, t.cb, err = newHost(); err != nil {
		return nil, err
	}
	if kind == twoPortDirect {
		if err := t.ca.VethAdd(rtnl.VethEnd{Name: "eth0", Index: tpHostA, MTU: 1500},
			rtnl.VethEnd{Name: "eth0", Index: tpHostB, MTU: 1500, NsFd: t.b.Fd()}); err != nil {
			return nil, fmt.Errorf("direct veth: %w", err)
		}
	} else {
		t.s, err = netns.New(func() (err error) {
			// As the engine's switch namespace: its ports need no IPv6.
			if err := os.WriteFile("/proc/sys/net/ipv6/conf/default/disable_ipv6", []byte("1"), 0); err != nil {
				return err
			}
			if t.cs, err = rtnl.Open(); err != nil {
				return err
			}
			if kind == twoPortWire {
				t.hs, err = netlink.NewHandle(unix.NETLINK_ROUTE)
			}
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("switch namespace: %w", err)
		}
		master := 0
		if kind == twoPortBridge {
			if err := t.cs.BridgeAdd("br0", tpBridge, net.HardwareAddr{0x02, 0, 0, 0, 0, 1}); err != nil {
				return nil, fmt.Errorf("bridge: %w", err)
			}
			master = tpBridge
		}
		for _, p := range []struct {
			port, host int
			ns         *netns.NS
		}{{tpPortA, tpHostA, t.a}, {tpPortB, tpHostB, t.b}} {
			if err := t.cs.VethAdd(rtnl.VethEnd{Name: fmt.Sprintf("p%d", p.port), Index: p.port, MTU: 1500, Master: master},
				rtnl.VethEnd{Name: "eth0", Index: p.host, MTU: 1500, NsFd: p.ns.Fd()}); err != nil {
				return nil, fmt.Errorf("port %d: %w", p.port, err)
			}
			if err := t.cs.LinkSetUp(p.port, true); err != nil {
				return nil, fmt.Errorf("port %d up: %w", p.port, err)
			}
		}
		switch kind {
		case twoPortBridge:
			if err := t.cs.LinkSetUp(tpBridge, true); err != nil {
				return nil, fmt.Errorf("bridge up: %w", err)
			}
		case twoPortWire:
			if err := wire(t.hs, tpPortA, tpPortB); err != nil {
				return nil, err
			}
		}
	}
	for _, h := range []struct {
		c     *rtnl.Conn
		index int
		addr  string
	}{{t.ca, tpHostA, "10.0.0.1/24"}, {t.cb, tpHostB, "10.0.0.2/24"}} {
		if err := h.c.LinkSetUp(1, true); err != nil {
			return nil, fmt.Errorf("lo up: %w", err)
		}
		if err := h.c.LinkSetUpNoIPv6(h.index); err != nil {
			return nil, fmt.Errorf("eth0 up: %w", err)
		}
		if err := h.c.AddrAdd(h.index, netip.MustParsePrefix(h.addr)); err != nil {
			return nil, fmt.Errorf("address %s: %w", h.addr, err)
		}
	}
	return t, nil
}

// ready waits, as the engine's readiness phase does, until every veth end
// is up (operstate UP: its peer is up too, and a bridge has enabled its
// port): packets sent before that can be lost.
func (t *twoPort) ready(deadline time.Time) error {
	ctx := context.Background()
	if t.s != nil {
		for _, p := range []int{tpPortA, tpPortB} {
			if err := t.cs.WaitOperUp(ctx, p, deadline); err != nil {
				return err
			}
		}
	}
	if err := t.ca.WaitOperUp(ctx, tpHostA, deadline); err != nil {
		return err
	}
	return t.cb.WaitOperUp(ctx, tpHostB, deadline)
}

// wire joins two interfaces with a tc mirred redirect each way: `tc qdisc
// add dev A ingress; tc filter add dev A ingress u32 match u32 0 0 action
// mirred egress redirect dev B`, and the same from B to A.
func wire(h *netlink.Handle, a, b int) error {
	for _, d := range [][2]int{{a, b}, {b, a}} {
		q := &netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: d[0], Parent: netlink.HANDLE_INGRESS, Handle: netlink.MakeHandle(0xffff, 0)}}
		if err := h.QdiscAdd(q); err != nil {
			return fmt.Errorf("ingress qdisc on %d: %w", d[0], err)
		}
		f := &netlink.U32{
			FilterAttrs: netlink.FilterAttrs{LinkIndex: d[0], Parent: netlink.MakeHandle(0xffff, 0), Priority: 1, Protocol: unix.ETH_P_ALL},
			Actions: []netlink.Action{&netlink.MirredAction{
				ActionAttrs:  netlink.ActionAttrs{Action: netlink.TC_ACT_STOLEN},
				MirredAction: netlink.TCA_EGRESS_REDIR,
				Ifindex:      d[1],
			}},
		}
		if err := h.FilterAdd(f); err != nil {
			return fmt.Errorf("mirred redirect %d -> %d: %w", d[0], d[1], err)
		}
	}
	return nil
}

// pingThrough sends one ICMP echo from host a of the switch to host b
// (10.0.0.2) on a raw socket opened in a's namespace, and waits for the
// reply: ARP and ICMP both cross the switch.
func pingThrough(t *twoPort, timeout time.Duration) error {
	var c net.PacketConn
	if err := t.a.Do(func() (err error) {
		c, err = net.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	}); err != nil {
		return fmt.Errorf("icmp socket: %w", err)
	}
	defer c.Close()
	id := os.Getpid() & 0xffff
	msg, err := (&icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: 1, Data: []byte("nslab")}}).Marshal(nil)
	if err != nil {
		return err
	}
	dst := &net.IPAddr{IP: net.IPv4(10, 0, 0, 2)}
	deadline := time.Now().Add(timeout)
	c.SetDeadline(deadline)
	if _, err := c.WriteTo(msg, dst); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return fmt.Errorf("no reply from 10.0.0.2: %w", err)
		}
		m, err := icmp.ParseMessage(1, buf[:n])
		if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); ok && e.ID == id && from.String() == "10.0.0.2" {
			return nil
		}
	}
}

// buildTwoPorts builds n switches on two workers; on error, what was
// built is released.
func buildTwoPorts(kind twoPortKind, n int) ([]*twoPort, error) {
	sw := make([]*twoPort, n)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 2 {
				if sw[i], errs[w] = buildTwoPort(kind); errs[w] != nil {
					errs[w] = fmt.Errorf("%s switch %d: %w", kind, i, errs[w])
					return
				}
			}
			deadline := time.Now().Add(10 * time.Second)
			for i := w; i < n; i += 2 {
				if errs[w] = sw[i].ready(deadline); errs[w] != nil {
					errs[w] = fmt.Errorf("%s switch %d: %w", kind, i, errs[w])
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		releaseTwoPorts(sw)
		return nil, err
	}
	return sw, nil
}

func releaseTwoPorts(sw []*twoPort) {
	for _, t := range sw {
		if t != nil {
			t.release()
		}
	}
}

// worstNetns creates and closes a namespace every 20 ms until stop is
// closed and reports the slowest creation.
func worstNetns(stop <-chan struct{}) <-chan time.Duration {
	out := make(chan time.Duration, 1)
	go func() {
		var worst time.Duration
		for {
			t0 := time.Now()
			if ns, err := netns.New(nil); err == nil {
				ns.Close()
			}
			worst = max(worst, time.Since(t0))
			select {
			case <-stop:
				out <- worst
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return out
}

func benchTwoPort(b *testing.B, kind twoPortKind) {
	const n = twoPortSwitches
	base, err := netnsObjects()
	if err != nil {
		b.Fatal(err)
	}
	var builds, releases, gones, perSwitch, worst []time.Duration
	for i := 0; i < b.N; i++ {
		waitNetnsObjects(b, base)
		sysfs, err := slabObjects("kernfs_node_cache")
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		sw, err := buildTwoPorts(kind, n)
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		for _, j := range []int{0, n - 1} {
			if err := pingThrough(sw[j], 3*time.Second); err != nil {
				releaseTwoPorts(sw)
				b.Fatalf("%s switch %d: %v", kind, j, err)
			}
		}
		stop := make(chan struct{})
		probe := worstNetns(stop)
		t2 := time.Now()
		releaseTwoPorts(sw)
		t3 := time.Now()
		waitSysfsGone(b, sysfs)
		t4 := time.Now()
		close(stop)
		worst = append(worst, <-probe)
		builds, releases, gones = append(builds, t1.Sub(t0)), append(releases, t3.Sub(t2)), append(gones, t4.Sub(t2))
		perSwitch = append(perSwitch, (t1.Sub(t0)+t4.Sub(t2))/n)
	}
	waitNetnsObjects(b, base)
	sysfs, err := slabObjects("kernfs_node_cache")
	if err != nil {
		b.Fatal(err)
	}
	cycles := make([]time.Duration, 0, b.N)
	start := time.Now()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		sw, err := buildTwoPorts(kind, n)
		if err != nil {
			b.Fatal(err)
		}
		releaseTwoPorts(sw)
		cycles = append(cycles, time.Since(t0))
	}
	loop := time.Since(start)
	waitSysfsGone(b, sysfs)
	drain := time.Since(start) - loop
	waitNetnsObjects(b, base)
	b.ReportMetric(medianMS(builds), "build-ms")
	b.ReportMetric(medianMS(releases), "release-ms")
	b.ReportMetric(medianMS(gones), "gone-ms")
	b.ReportMetric(medianMS(perSwitch), "per-switch-ms")
	b.ReportMetric(medianMS(worst), "netns-ms")
	b.ReportMetric(medianMS(cycles), "cycle-ms")
	b.ReportMetric(float64(drain.Microseconds())/1000, "drain-ms")
}
