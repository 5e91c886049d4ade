//go:build linux && netem

package selftest

import (
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// newNS creates a network namespace on a throwaway locked thread (the
// thread is never unlocked, so it dies with the goroutine) and returns it
// open; it disappears when closed, as nothing else refers to it.
func newNS(t *testing.T) netns.NsHandle {
	t.Helper()
	type res struct {
		ns  netns.NsHandle
		err error
	}
	c := make(chan res, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			c <- res{err: err}
			return
		}
		fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		c <- res{netns.NsHandle(fd), err}
	}()
	r := <-c
	if r.err != nil {
		t.Fatalf("new network namespace: %v", r.err)
	}
	t.Cleanup(func() { r.ns.Close() })
	return r.ns
}

// inNS runs fn on a fresh locked thread inside ns, to open a socket there
// (a socket keeps its namespace); the thread is unlocked only if switching
// back succeeded, otherwise it dies with the goroutine.
func inNS(ns netns.NsHandle, fn func() error) error {
	c := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			c <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			c <- err
			return
		}
		err = fn()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		c <- err
	}()
	return <-c
}

func handle(t *testing.T, ns netns.NsHandle) *netlink.Handle {
	t.Helper()
	// NETLINK_ROUTE only: the guest kernel has xfrm and nfnetlink as modules
	// that nothing loads, and asking for them fails the handle.
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatalf("netlink handle: %v", err)
	}
	t.Cleanup(h.Close)
	return h
}

// up brings lo and the named link up, with the address.
func up(t *testing.T, h *netlink.Handle, name, cidr string) netlink.Link {
	t.Helper()
	for _, n := range []string{"lo", name} {
		l, err := h.LinkByName(n)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if err := h.LinkSetUp(l); err != nil {
			t.Fatalf("%s up: %v", n, err)
		}
	}
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	addr, err := netlink.ParseAddr(cidr)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.AddrAdd(l, addr); err != nil {
		t.Fatalf("%s address %s: %v", name, cidr, err)
	}
	return l
}

// waitUp waits until the link is operationally up: a fresh veth drops what
// it is given until then (both ends must be up).
func waitUp(t *testing.T, h *netlink.Handle, name string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		l, err := h.LinkByName(name)
		if err == nil && l.Attrs().OperState == netlink.OperUp {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not operationally up after 5 s (err %v)", name, err)
		}
	}
}

func udp(t *testing.T, ns netns.NsHandle, addr string) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	err := inNS(ns, func() (err error) {
		c, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
		return err
	})
	if err != nil {
		t.Fatalf("udp socket %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// probe sends n numbered datagrams one after the other and returns the
// round-trip times of those echoed within a second.
func probe(t *testing.T, c *net.UDPConn, to *net.UDPAddr, n int) []time.Duration {
	t.Helper()
	var rtts []time.Duration
	buf := make([]byte, 64)
	for i := range n {
		t0 := time.Now()
		if _, err := c.WriteToUDP([]byte{byte(i)}, to); err != nil {
			t.Fatalf("send: %v", err)
		}
		c.SetReadDeadline(t0.Add(time.Second))
		for {
			m, _, err := c.ReadFromUDP(buf)
			if err != nil {
				break // lost
			}
			if m == 1 && buf[0] == byte(i) {
				rtts = append(rtts, time.Since(t0))
				break
			}
		}
	}
	return rtts
}

// TestNetemDelay: two namespaces joined by a veth pair, netem delay 50ms on
// the egress of one end, and a UDP echo across: every probe comes back and
// the fastest takes 50 to 52 ms (the bound issue 13 sets inside a VM; 51.1
// to 51.3 ms was measured there, 50.1 natively).
func TestNetemDelay(t *testing.T) {
	const delay = 50 * time.Millisecond
	a, b := newNS(t), newNS(t)
	ha, hb := handle(t, a), handle(t, b)
	attrs := netlink.NewLinkAttrs()
	attrs.Name = "va"
	if err := ha.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: "vb", PeerNamespace: netlink.NsFd(b)}); err != nil {
		t.Fatalf("veth va/vb: %v", err)
	}
	va := up(t, ha, "va", "10.99.0.1/24")
	up(t, hb, "vb", "10.99.0.2/24")
	waitUp(t, ha, "va")
	waitUp(t, hb, "vb")

	var wg sync.WaitGroup
	t.Cleanup(wg.Wait) // cleanups run last first: after the sockets are closed
	srv := udp(t, b, "10.99.0.2:7")
	wg.Add(1)
	go func() { // echo
		defer wg.Done()
		buf := make([]byte, 64)
		for {
			n, from, err := srv.ReadFromUDP(buf)
			if err != nil {
				return
			}
			srv.WriteToUDP(buf[:n], from)
		}
	}()
	cli := udp(t, a, "10.99.0.1:0")
	to := net.UDPAddrFromAddrPort(netip.MustParseAddrPort("10.99.0.2:7"))

	// Resolve ARP before netem delays it too, or the first probe pays twice.
	if got := probe(t, cli, to, 3); len(got) != 3 {
		t.Fatalf("before netem: %d of 3 probes answered", len(got))
	}
	q := netlink.NewNetem(netlink.QdiscAttrs{LinkIndex: va.Attrs().Index, Handle: netlink.MakeHandle(1, 0), Parent: netlink.HANDLE_ROOT},
		netlink.NetemQdiscAttrs{Latency: uint32(delay / time.Microsecond)})
	if err := ha.QdiscAdd(q); err != nil {
		t.Fatalf("netem qdisc on va: %v (this kernel has no sch_netem? run it through tests/netemvm)", err)
	}
	qs, err := ha.QdiscList(va)
	if err != nil {
		t.Fatalf("qdiscs of va: %v", err)
	}
	// A netem read back gives its latency in the kernel's ticks, not in µs.
	ticks := uint32(float64(delay/time.Microsecond) * netlink.TickInUsec())
	if len(qs) != 1 || qs[0].Type() != "netem" || qs[0].(*netlink.Netem).Latency != ticks {
		t.Fatalf("qdiscs of va: want one netem with latency %v (%d ticks), got %+v", delay, ticks, qs)
	}

	const n = 20
	rtts := probe(t, cli, to, n)
	if len(rtts) != n {
		t.Fatalf("with netem delay %v: %d of %d probes answered", delay, len(rtts), n)
	}
	slices.Sort(rtts)
	t.Logf("netem delay %v: RTT min %v, median %v over %d probes", delay, rtts[0], rtts[n/2], n)
	if rtts[0] < delay || rtts[0] > delay+2*time.Millisecond {
		t.Errorf("minimum RTT %v: want between %v and %v", rtts[0], delay, delay+2*time.Millisecond)
	}
}
