package emulator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/nslab/nslab/topo"
	"golang.org/x/sys/unix"
)

// NATBehaviour is what a classification observed on the path from an
// inside node to an outside node, in RFC 4787 terms (UDP).
type NATBehaviour struct {
	Mapping          topo.Behaviour `json:"mapping"`   // EndpointIndependent, AddressDependent or AddressAndPortDependent
	Filtering        topo.Behaviour `json:"filtering"` // the same three
	PortPreservation bool           `json:"port_preservation"`
	Mapped           netip.AddrPort `json:"mapped"` // the first mapping seen
	Local            netip.AddrPort `json:"local"`  // the inside socket
}

func (b NATBehaviour) String() string {
	return fmt.Sprintf("mapping %s, filtering %s, port preservation %v (%s seen as %s)", b.Mapping, b.Filtering, b.PortPreservation, b.Local, b.Mapped)
}

// ErrNoNAT is returned by ClassifyNAT when nothing translates the path.
var ErrNoNAT = errors.New("no NAT on the path: the far side sees the inside address itself")

// ClassifyNAT runs RFC 4787's probe table on the path from inside to
// outside (UDP, in process): one inside socket sends to two ports of one
// outside address and to a second outside address (mapping), then
// unsolicited packets go to its mapping from a new port of a contacted
// address and from an address never contacted (filtering). The outside
// node needs three IPv4 addresses; it returns ErrNoNAT when the outside
// sees the inside address unchanged.
func (l *Lab) ClassifyNAT(ctx context.Context, inside, outside string) (NATBehaviour, error) {
	var b NATBehaviour
	in, out := l.Plan.Node(inside), l.Plan.Node(outside)
	for _, x := range []struct {
		name string
		n    *topo.Node
	}{{inside, in}, {outside, out}} {
		if x.n == nil {
			return b, l.Plan.UnknownNode(x.name)
		}
		if x.n.Kind == topo.KindSwitch {
			return b, topo.BadInput(fmt.Errorf("node %q is a switch: it has no address to probe with", x.name))
		}
	}
	var addrs []netip.Addr
	for _, i := range out.Ifaces {
		for _, a := range i.Addrs {
			if a.Addr().Is4() {
				addrs = append(addrs, a.Addr())
			}
		}
	}
	if len(addrs) < 3 {
		return b, topo.BadInput(fmt.Errorf("classify: outside node %q needs three IPv4 addresses (it has %d): give its link more addresses", outside, len(addrs)))
	}
	sock, err := l.ListenUDP(inside, netip.AddrPort{})
	if err != nil {
		return b, err
	}
	defer sock.Close()
	var closers []*net.UDPConn
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	listen := func(a netip.Addr, port uint16) (*net.UDPConn, error) {
		c, err := l.ListenUDP(outside, netip.AddrPortFrom(a, port))
		if err == nil {
			closers = append(closers, c)
		}
		return c, err
	}
	const p1, p2, p3 = 34781, 34782, 34783
	a1, err := listen(addrs[0], p1)
	if err != nil {
		return b, err
	}
	a2, err := listen(addrs[0], p2)
	if err != nil {
		return b, err
	}
	b1, err := listen(addrs[1], p1)
	if err != nil {
		return b, err
	}
	deadline := func() time.Time {
		d := time.Now().Add(time.Second)
		if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
			d = cd
		}
		return d
	}
	mapped := func(dst *net.UDPConn) (netip.AddrPort, error) {
		to := dst.LocalAddr().(*net.UDPAddr).AddrPort()
		if _, err := sock.WriteToUDPAddrPort([]byte("nslab-classify"), to); err != nil {
			return netip.AddrPort{}, fmt.Errorf("classify: send from %q to %s: %w", inside, to, err)
		}
		dst.SetReadDeadline(deadline())
		buf := make([]byte, 64)
		_, from, err := dst.ReadFromUDPAddrPort(buf)
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("classify: %q does not reach %s: %w", inside, to, err)
		}
		return netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), nil
	}
	m1, err := mapped(a1)
	if err != nil {
		return b, err
	}
	b.Mapped = m1
	b.Local = localOf(sock.LocalAddr(), inside, l, a1.LocalAddr().(*net.UDPAddr).AddrPort())
	if m1.Addr() == b.Local.Addr() {
		return b, topo.BadInput(fmt.Errorf("classify %s -> %s: %w", inside, outside, ErrNoNAT))
	}
	m2, err := mapped(a2)
	if err != nil {
		return b, err
	}
	m3, err := mapped(b1)
	if err != nil {
		return b, err
	}
	switch {
	case m1 == m2 && m2 == m3:
		b.Mapping = topo.EndpointIndependent
	case m1 == m2:
		b.Mapping = topo.AddressDependent
	default:
		b.Mapping = topo.AddressAndPortDependent
	}
	b.PortPreservation = m1.Port() == b.Local.Port()

	arrives := func(from *net.UDPConn) bool { return delivered(from, m1, sock, "nslab-unsolicited") }
	newAddr, err := listen(addrs[2], p1)
	if err != nil {
		return b, err
	}
	newPort, err := listen(addrs[0], p3)
	if err != nil {
		return b, err
	}
	switch {
	case arrives(newAddr):
		b.Filtering = topo.EndpointIndependent
	case arrives(newPort):
		b.Filtering = topo.AddressDependent
	default:
		b.Filtering = topo.AddressAndPortDependent
	}
	return b, nil
}

// delivered sends marker from one socket to addr and reports whether it
// reaches the socket to within 300 ms (other datagrams are skipped).
func delivered(from *net.UDPConn, addr netip.AddrPort, to *net.UDPConn, marker string) bool {
	if _, err := from.WriteToUDPAddrPort([]byte(marker), addr); err != nil {
		return false
	}
	to.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	buf := make([]byte, 64)
	for {
		n, _, err := to.ReadFromUDPAddrPort(buf)
		if err != nil {
			return false
		}
		if string(buf[:n]) == marker {
			return true
		}
	}
}

// Hairpins reports whether a UDP packet from node other to the mapping of
// a socket in node inside (its mapping as outside sees it) comes back in
// through the gateway: whether the gateway hairpins.
func (l *Lab) Hairpins(ctx context.Context, inside, other, outside string) (bool, error) {
	b, err := l.ClassifyNAT(ctx, inside, outside)
	if err != nil {
		return false, err
	}
	// The port ClassifyNAT's socket had: it is free once the last read
	// of that socket has returned (Go's poller holds the descriptor open
	// until then), which may be a moment after its Close: wait for it,
	// briefly.
	var sock *net.UDPConn
	for wait := time.Now().Add(time.Second); ; {
		sock, err = l.ListenUDP(inside, netip.AddrPortFrom(netip.Addr{}, b.Local.Port()))
		if !errors.Is(err, unix.EADDRINUSE) || time.Now().After(wait) || ctx.Err() != nil {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err != nil {
		return false, err
	}
	defer sock.Close()
	// Renew the mapping from this socket, then send to it from other.
	target, err := l.AddrOf(outside, 4, 34790)
	if err != nil {
		return false, err
	}
	sock.WriteToUDPAddrPort([]byte("nslab-renew"), target)
	peer, err := l.ListenUDP(other, netip.AddrPort{})
	if err != nil {
		return false, err
	}
	defer peer.Close()
	return delivered(peer, b.Mapped, sock, "nslab-hairpin"), nil
}
