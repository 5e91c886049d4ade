package impair

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// A test lab: two throwaway network namespaces joined by one veth pair,
// built through netlink handles, with static neighbour entries (so no
// ARP crosses a lossy link while counting), removed by t.Cleanup.
//
//	ns a: "va" 10.13.0.1/24  <->  ns b: "vb" 10.13.0.2/24
type vethLab struct {
	a, b   netns.NsHandle
	ha, hb *netlink.Handle
	ia, ib int // ifindex of va (in a) and vb (in b)
}

var (
	labAddrA = netip.MustParseAddr("10.13.0.1")
	labAddrB = netip.MustParseAddr("10.13.0.2")
)

func newVethLab(t testing.TB) *vethLab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("these tests build network namespaces: run them as root")
	}
	l := &vethLab{a: -1, b: -1}
	var err error
	if l.a, err = tcThrowawayNetns(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.a.Close() })
	if l.b, err = tcThrowawayNetns(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.b.Close() })
	if l.ha, err = netlink.NewHandleAt(l.a, unix.NETLINK_ROUTE); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.ha.Close)
	if l.hb, err = netlink.NewHandleAt(l.b, unix.NETLINK_ROUTE); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.hb.Close)

	la := netlink.NewLinkAttrs()
	la.Name = "va"
	if err := l.ha.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "vb", PeerNamespace: netlink.NsFd(l.b)}); err != nil {
		t.Fatalf("add veth pair: %v", err)
	}
	type end struct {
		h    *netlink.Handle
		name string
		addr netip.Addr
		idx  *int
	}
	ends := []end{{l.ha, "va", labAddrA, &l.ia}, {l.hb, "vb", labAddrB, &l.ib}}
	macs := make([]net.HardwareAddr, 2)
	for i, e := range ends {
		lo, err := e.h.LinkByName("lo")
		if err != nil {
			t.Fatal(err)
		}
		if err := e.h.LinkSetUp(lo); err != nil {
			t.Fatal(err)
		}
		ln, err := e.h.LinkByName(e.name)
		if err != nil {
			t.Fatal(err)
		}
		*e.idx = ln.Attrs().Index
		macs[i] = ln.Attrs().HardwareAddr
		if err := e.h.AddrAdd(ln, &netlink.Addr{IPNet: &net.IPNet{IP: e.addr.AsSlice(), Mask: net.CIDRMask(24, 32)}}); err != nil {
			t.Fatal(err)
		}
		if err := e.h.LinkSetUp(ln); err != nil {
			t.Fatal(err)
		}
	}
	for i, e := range ends {
		peer := ends[1-i]
		n := &netlink.Neigh{LinkIndex: *e.idx, Family: unix.AF_INET, State: netlink.NUD_PERMANENT, IP: peer.addr.AsSlice(), HardwareAddr: macs[1-i]}
		if err := e.h.NeighAdd(n); err != nil {
			t.Fatalf("static neighbour on %s: %v", e.name, err)
		}
	}
	// A fresh veth drops what it is given until both ends are
	// operationally up (pitfalls.md).
	deadline := time.Now().Add(5 * time.Second)
	for _, e := range ends {
		for {
			ln, err := e.h.LinkByIndex(*e.idx)
			if err == nil && ln.Attrs().OperState == netlink.OperUp {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not operationally up after 5 s", e.name)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return l
}

// inNetns runs fn on a fresh thread switched into ns; the thread is
// unlocked only if switching back succeeded.
func inNetns(ns netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			if netns.Set(orig) == nil {
				runtime.UnlockOSThread()
			}
			errc <- err
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, err)
			return // stays locked: the runtime discards the thread
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// udpIn opens a UDP socket in ns, with a large receive buffer so that a
// burst of probes is not lost to the socket.
func udpIn(t testing.TB, ns netns.NsHandle, addr netip.Addr) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	err := inNetns(ns, func() error {
		var err error
		c, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
		return err
	})
	if err != nil {
		t.Fatalf("udp socket in namespace: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	rc.Control(func(fd uintptr) {
		unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20)
	})
	return c
}

// oneWay sends n numbered datagrams from a to b, interval apart, and
// returns how many distinct ones arrived, how many arrived in all
// (duplicates included), and how many arrived after a later one
// (reordered).
func (l *vethLab) oneWay(t testing.TB, n int, interval time.Duration) (distinct, total, reordered int) {
	t.Helper()
	rx := udpIn(t, l.b, labAddrB)
	tx := udpIn(t, l.a, labAddrA)
	dst := rx.LocalAddr().(*net.UDPAddr)
	seen := make(map[uint32]bool)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64)
		highest := -1
		for {
			rx.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			m, err := rx.Read(buf)
			if err != nil {
				return
			}
			if m != 8 || binary.BigEndian.Uint32(buf[4:]) != 0x51ab51ab {
				continue
			}
			s := binary.BigEndian.Uint32(buf)
			total++
			seen[s] = true
			if int(s) < highest {
				reordered++
			} else {
				highest = int(s)
			}
		}
	}()
	msg := make([]byte, 8)
	binary.BigEndian.PutUint32(msg[4:], 0x51ab51ab)
	next := time.Now()
	for i := 0; i < n; i++ {
		binary.BigEndian.PutUint32(msg, uint32(i))
		if _, err := tx.WriteToUDP(msg, dst); err != nil && !errors.Is(err, syscall.ENOBUFS) {
			t.Fatalf("send probe %d: %v", i, err)
		}
		if interval > 0 {
			next = next.Add(interval)
			time.Sleep(time.Until(next))
		}
	}
	<-done
	return len(seen), total, reordered
}

// lossRuns sends n numbered datagrams from a to b and returns how many
// were lost and in how many runs of consecutive losses.
func (l *vethLab) lossRuns(t testing.TB, n int) (lost, runs int) {
	t.Helper()
	rx := udpIn(t, l.b, labAddrB)
	tx := udpIn(t, l.a, labAddrA)
	seen := make([]bool, n)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 16)
		for {
			rx.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			m, err := rx.Read(buf)
			if err != nil {
				return
			}
			if i := int(binary.BigEndian.Uint32(buf)); m == 4 && i < n {
				seen[i] = true
			}
		}
	}()
	dst := rx.LocalAddr().(*net.UDPAddr)
	msg := make([]byte, 4)
	for i := 0; i < n; i++ {
		binary.BigEndian.PutUint32(msg, uint32(i))
		if _, err := tx.WriteToUDP(msg, dst); err != nil && !errors.Is(err, syscall.ENOBUFS) {
			t.Fatalf("send probe %d: %v", i, err)
		}
	}
	<-done
	for i, s := range seen {
		if !s {
			lost++
			if i == 0 || seen[i-1] {
				runs++
			}
		}
	}
	return lost, runs
}

// echo starts a UDP echo server in b and returns a client socket in a
// and the server's address.
func (l *vethLab) echo(t testing.TB) (*net.UDPConn, *net.UDPAddr) {
	t.Helper()
	srv := udpIn(t, l.b, labAddrB)
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := srv.ReadFromUDP(buf)
			if err != nil {
				return
			}
			srv.WriteToUDP(buf[:n], from)
		}
	}()
	return udpIn(t, l.a, labAddrA), srv.LocalAddr().(*net.UDPAddr)
}

// rtts sends n echo probes, interval apart, and returns the round-trip
// times of those answered within a second of the last, in milliseconds.
func rtts(t testing.TB, cli *net.UDPConn, dst *net.UDPAddr, n int, interval time.Duration) []float64 {
	t.Helper()
	sent := make([]time.Time, n)
	got := make([]float64, n)
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64)
		for {
			cli.SetReadDeadline(time.Now().Add(time.Second + time.Duration(n)*interval))
			m, err := cli.Read(buf)
			now := time.Now()
			if err != nil {
				return
			}
			if m != 8 || binary.BigEndian.Uint32(buf[4:]) != 0xec40ec40 {
				continue
			}
			i := binary.BigEndian.Uint32(buf)
			mu.Lock()
			if int(i) < n && got[i] == 0 && !sent[i].IsZero() {
				got[i] = float64(now.Sub(sent[i]).Nanoseconds()) / 1e6
			}
			all := true
			for _, g := range got {
				all = all && g != 0
			}
			mu.Unlock()
			if all {
				return
			}
		}
	}()
	msg := make([]byte, 8)
	binary.BigEndian.PutUint32(msg[4:], 0xec40ec40)
	for i := 0; i < n; i++ {
		binary.BigEndian.PutUint32(msg, uint32(i))
		mu.Lock()
		sent[i] = time.Now()
		mu.Unlock()
		if _, err := cli.WriteToUDP(msg, dst); err != nil && !errors.Is(err, syscall.ENOBUFS) {
			t.Fatalf("send probe %d: %v", i, err)
		}
		time.Sleep(interval)
	}
	<-done
	var out []float64
	for _, g := range got {
		if g != 0 {
			out = append(out, g)
		}
	}
	return out
}

// transfers runs one TCP transfer of this package's tests at a time:
// the tests run in parallel, and on a machine of two cores two transfers
// (or a transfer and the race detector) starve each other's reader.
var transfers sync.Mutex

// goodput runs a TCP transfer from a to b and returns what the receiver
// got, in bits a second, over the window that starts skip after its
// first byte (slow start and the shaper's first burst left out).
func (l *vethLab) goodput(t testing.TB, skip, window time.Duration) float64 {
	t.Helper()
	transfers.Lock()
	defer transfers.Unlock()
	var ln net.Listener
	err := inNetns(l.b, func() error {
		var err error
		ln, err = net.Listen("tcp4", netip.AddrPortFrom(labAddrB, 0).String())
		return err
	})
	if err != nil {
		t.Fatalf("listen in b: %v", err)
	}
	defer ln.Close()
	var conn net.Conn
	err = inNetns(l.a, func() error {
		var err error
		conn, err = net.DialTimeout("tcp4", ln.Addr().String(), 5*time.Second)
		return err
	})
	if err != nil {
		t.Fatalf("connect from a: %v", err)
	}
	defer conn.Close()
	go func() {
		buf := make([]byte, 64<<10)
		for {
			if _, err := conn.Write(buf); err != nil {
				return
			}
		}
	}()
	rc, err := ln.Accept()
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	defer rc.Close()
	buf := make([]byte, 256<<10)
	if _, err := io.ReadFull(rc, buf[:1]); err != nil {
		t.Fatalf("first byte: %v", err)
	}
	start := time.Now().Add(skip)
	end := start.Add(window)
	var counted int64
	var first, last time.Time
	rc.SetReadDeadline(end.Add(5 * time.Second))
	for {
		n, err := rc.Read(buf)
		now := time.Now()
		if err != nil {
			t.Fatalf("transfer: %v", err)
		}
		if now.Before(start) {
			continue
		}
		if first.IsZero() {
			first = now // bytes of this read arrived before now: not counted
		} else {
			counted += int64(n)
			last = now
		}
		if now.After(end) {
			break
		}
	}
	return float64(counted) * 8 / last.Sub(first).Seconds()
}

// noNetem is the kernel k as Apply sees it when told there is no netem
// (whatever the real kernel has): loss through eBPF.
func noNetem(k Kernel) Kernel { k.Netem = false; return k }

func detect(t testing.TB) Kernel {
	t.Helper()
	k, err := DetectKernel()
	if err != nil {
		t.Fatalf("DetectKernel: %v", err)
	}
	return k
}

func sameDir(a, b Direction) bool {
	am, bm := a.LossModel, b.LossModel
	a.LossModel, b.LossModel = nil, nil
	if a != b || (am == nil) != (bm == nil) {
		return false
	}
	return am == nil || *am == *bm
}

func sigma(p float64, n int) float64 { return math.Sqrt(p * (1 - p) / float64(n)) }

func stats(x []float64) (min, med, mean, sd float64) {
	s := append([]float64(nil), x...)
	sort.Float64s(s)
	for _, v := range s {
		mean += v
	}
	mean /= float64(len(s))
	for _, v := range s {
		sd += (v - mean) * (v - mean)
	}
	sd = math.Sqrt(sd / float64(len(s)))
	return s[0], s[len(s)/2], mean, sd
}

func fmtStats(x []float64) string {
	min, med, mean, sd := stats(x)
	return fmt.Sprintf("n=%d min=%.2f med=%.2f mean=%.2f sd=%.2f ms", len(x), min, med, mean, sd)
}
