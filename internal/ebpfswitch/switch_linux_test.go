package ebpfswitch

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/nslab/nslab/internal/netns"
	"github.com/nslab/nslab/internal/rtnl"
	"github.com/nslab/nslab/topo"
	"github.com/vishvananda/netlink"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// node is a namespace of the test's own (held by its descriptor, never
// pinned) with its sockets.
type node struct {
	ns *netns.NS
	rt *rtnl.Conn
	h  *netlink.Handle
}

func newNode(t *testing.T) *node {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("these tests build network namespaces: run them as root")
	}
	n := &node{}
	var err error
	n.ns, err = netns.New(func() (err error) {
		if n.rt, err = rtnl.Open(); err != nil {
			return err
		}
		n.h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.rt.Close()
		n.h.Close()
		n.ns.Close()
	})
	return n
}

// lab is one eBPF switch and its hosts, host i at 10.0.0.(i+1) behind
// port index 10+i.
type lab struct {
	sw    *Switches
	s     *node
	hosts []*node
	macs  [][6]byte
}

const swID = 7

func newLab(t *testing.T, hosts int) *lab {
	t.Helper()
	return newLabSized(t, hosts, Size{})
}

func newLabSized(t *testing.T, hosts int, size Size) *lab {
	t.Helper()
	sw, err := Load(size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sw.Close)
	l := &lab{sw: sw, s: newNode(t)}
	var ports []int
	for i := range hosts {
		h := newNode(t)
		l.hosts = append(l.hosts, h)
		port, idx := 10+i, 20+i
		mac := [6]byte{0x02, 0, 0, 0, 0, byte(i + 1)}
		l.macs = append(l.macs, mac)
		if err := l.s.rt.VethAdd(rtnl.VethEnd{Name: fmt.Sprintf("p%d", i), Index: port, MTU: 1500},
			rtnl.VethEnd{Name: "eth0", Index: idx, MTU: 1500, MAC: net.HardwareAddr(mac[:]), NsFd: h.ns.Fd()}); err != nil {
			t.Fatal(err)
		}
		ports = append(ports, port)
	}
	if err := sw.Add(swID, ports); err != nil {
		t.Fatal(err)
	}
	for _, p := range ports {
		if err := sw.Attach(l.s.h, p); err != nil {
			t.Fatal(err)
		}
		if err := l.s.rt.LinkSetUpNoIPv6(p); err != nil {
			t.Fatal(err)
		}
	}
	for i, h := range l.hosts {
		if err := h.rt.LinkSetUp(1, true); err != nil {
			t.Fatal(err)
		}
		if err := h.rt.LinkSetUpNoIPv6(20 + i); err != nil {
			t.Fatal(err)
		}
		if err := h.rt.AddrAdd(20+i, netip.PrefixFrom(hostAddr(i), 24)); err != nil {
			t.Fatal(err)
		}
	}
	// Every end up (operstate), as the engine's readiness phase waits
	// for: until the kernel has activated a port's queue, which it does
	// once its peer is up, what is sent to it is dropped.
	deadline := time.Now().Add(10 * time.Second)
	for i, h := range l.hosts {
		if err := h.rt.WaitOperUp(context.Background(), 20+i, deadline); err != nil {
			t.Fatal(err)
		}
		if err := l.s.rt.WaitOperUp(context.Background(), 10+i, deadline); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

func hostAddr(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}) }

// ping sends one ICMP echo from host from to host to and waits for the
// reply.
func (l *lab) ping(from, to int, seq int) error {
	var c net.PacketConn
	if err := l.hosts[from].ns.Do(func() (err error) {
		c, err = net.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	}); err != nil {
		return err
	}
	defer c.Close()
	id := (os.Getpid() + from) & 0xffff
	msg, _ := (&icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("nslab")}}).Marshal(nil)
	dst := hostAddr(to).String()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.WriteTo(msg, &net.IPAddr{IP: net.ParseIP(dst)}); err != nil {
		return err
	}
	buf := make([]byte, 1500)
	for {
		n, peer, err := c.ReadFrom(buf)
		if err != nil {
			return fmt.Errorf("no reply from %s: %w", dst, err)
		}
		m, err := icmp.ParseMessage(1, buf[:n])
		if err != nil || m.Type != ipv4.ICMPTypeEchoReply || peer.String() != dst {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); ok && e.ID == id && e.Seq == seq {
			return nil
		}
	}
}

// received is how many frames host i's interface has taken in.
func (l *lab) received(t *testing.T, i int) uint64 {
	t.Helper()
	lk, err := l.hosts[i].h.LinkByIndex(20 + i)
	if err != nil {
		t.Fatal(err)
	}
	return lk.Attrs().Statistics.RxPackets
}

// The switch forwards between every pair of hosts (ARP broadcasts
// flooded, the replies unicast), learns each host's MAC at its port, and
// then sends unicast frames to that port alone: a third host sees none of
// a hundred pings between two others.
func TestLearningSwitch(t *testing.T) {
	l := newLab(t, 3)
	for _, p := range [][2]int{{0, 1}, {0, 2}, {1, 2}, {2, 0}} {
		if err := l.ping(p[0], p[1], 1); err != nil {
			t.Fatalf("ping %d -> %d: %v", p[0], p[1], err)
		}
	}
	for i, mac := range l.macs {
		port, err := l.sw.Learnt(swID, mac)
		if err != nil || port != 10+i {
			t.Errorf("host %d's MAC learnt at port %d (%v), want %d", i, port, err, 10+i)
		}
	}
	before := l.received(t, 2)
	for seq := 2; seq < 102; seq++ {
		if err := l.ping(0, 1, seq); err != nil {
			t.Fatalf("ping %d: %v", seq, err)
		}
	}
	if got := l.received(t, 2) - before; got > 2 {
		t.Errorf("host 2 received %d frames during 100 pings between hosts 0 and 1: unicast was flooded", got)
	}
}

// A switch whose MAC table is full still forwards: what it could not
// learn it floods (a table of one MAC: host 0's is learnt, host 1's is
// not, so host 0's pings to host 1 reach host 2 too, and still answer).
func TestFullMACTableFloods(t *testing.T) {
	l := newLabSized(t, 3, Size{MACs: 1})
	if err := l.ping(0, 1, 1); err != nil {
		t.Fatalf("ping 0 -> 1: %v", err)
	}
	if port, err := l.sw.Learnt(swID, l.macs[0]); err != nil || port != 10 {
		t.Fatalf("host 0's MAC learnt at port %d (%v), want 10", port, err)
	}
	if port, err := l.sw.Learnt(swID, l.macs[1]); err != nil || port != 0 {
		t.Fatalf("host 1's MAC learnt at port %d (%v) in a table of one", port, err)
	}
	before := l.received(t, 2)
	for seq := 2; seq < 22; seq++ {
		if err := l.ping(0, 1, seq); err != nil {
			t.Fatalf("ping %d: %v", seq, err)
		}
	}
	if got := l.received(t, 2) - before; got < 20 {
		t.Errorf("host 2 received %d frames during 20 pings from host 0 to host 1, want the 20 requests flooded", got)
	}
}

// A frame to a MAC nobody has shown yet is flooded to every other port,
// never back to the one it came by.
func TestFloodUnknown(t *testing.T) {
	l := newLab(t, 3)
	rx := []uint64{l.received(t, 0), l.received(t, 1), l.received(t, 2)}
	// A frame from host 0 to a MAC nothing has: an ARP reply, sent
	// without a request (a raw frame on host 0's interface).
	var fd int
	if err := l.hosts[0].ns.Do(func() (err error) {
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	frame := make([]byte, 60)
	copy(frame, []byte{0x02, 0xaa, 0, 0, 0, 0x99}) // destination: unknown
	copy(frame[6:], l.macs[0][:])
	frame[12], frame[13] = 0x08, 0x06
	if err := unix.Sendto(fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: 20, Halen: 6}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	for i, want := range []uint64{0, 1, 1} {
		if got := l.received(t, i) - rx[i]; got != want {
			t.Errorf("host %d received %d frames of the flood, want %d", i, got, want)
		}
	}
}

func TestTooManyPorts(t *testing.T) {
	sw, err := Load(Size{})
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Close()
	ports := make([]int, MaxPorts+1)
	for i := range ports {
		ports[i] = 100 + i
	}
	if err := sw.Add(1, ports); err == nil {
		t.Errorf("a switch of %d ports was accepted", len(ports))
	}
}

// The model refuses what the program cannot flood.
func TestModelAgreesOnMaxPorts(t *testing.T) {
	if topo.MaxEBPFSwitchPorts != MaxPorts {
		t.Errorf("topo.MaxEBPFSwitchPorts = %d, ebpfswitch.MaxPorts = %d", topo.MaxEBPFSwitchPorts, MaxPorts)
	}
}
