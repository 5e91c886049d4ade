package rtnl

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/nslab/nslab/internal/netns"
	"github.com/nslab/nslab/topo"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Conn is a route netlink socket bound to one network namespace (it was
// opened inside it). Its requests are the few the engine sends on its hot
// path, each one message with the interface index already known, so no
// lookup is needed first (vishvananda/netlink's helpers look links up by
// name and set a master in a second call). Requests from several
// goroutines take turns on the socket.
type Conn struct {
	sh nl.SocketHandle
}

// New wraps a route netlink socket opened inside its namespace.
func New(s *nl.NetlinkSocket) *Conn {
	return &Conn{sh: nl.SocketHandle{Socket: s}}
}

// Open opens a connection in the calling thread's namespace: call it
// inside netns.New's setup or netns.NS.Do.
func Open() (*Conn, error) {
	s, err := nl.GetNetlinkSocketAt(vnetns.None(), vnetns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		return nil, err
	}
	return New(s), nil
}

// Dial opens a connection in the namespace ns.
func Dial(ns *netns.NS) (*Conn, error) {
	var c *Conn
	err := ns.Do(func() (err error) {
		c, err = Open()
		return err
	})
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// NewHandle opens vishvananda/netlink's Handle in the namespace ns (route
// netlink only), for the listings and lookups this package does not
// encode itself.
func NewHandle(ns *netns.NS) (*netlink.Handle, error) {
	var h *netlink.Handle
	err := ns.Do(func() (err error) {
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		if h != nil {
			h.Close()
		}
		return nil, err
	}
	return h, nil
}

// Close closes the socket; a nil Conn is fine.
func (c *Conn) Close() {
	if c != nil && c.sh.Socket != nil {
		c.sh.Socket.Close()
	}
}

func (c *Conn) do(req *nl.NetlinkRequest) error {
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: &c.sh}
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

const newFlags = unix.NLM_F_CREATE | unix.NLM_F_EXCL | unix.NLM_F_ACK

// LinkSetUp brings an interface up: `ip link set dev IF up`.
func (c *Conn) LinkSetUp(index int, up bool) error {
	req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(index)
	msg.Change = unix.IFF_UP
	if up {
		msg.Flags = unix.IFF_UP
	}
	req.AddData(msg)
	return c.do(req)
}

// LinkSetUpNoIPv6 brings an interface up with IPv6 address generation off
// in the same message: `ip link set dev IF addrgenmode none up`. Without a
// link-local address the interface sends no duplicate-address probes and
// no router solicitations, which on a big bridge are flooded to every
// port. The kernel refuses this attribute in a creating message, and
// applies it after the flags in a setting one, so it is sent just before
// the first "up".
func (c *Conn) LinkSetUpNoIPv6(index int) error {
	req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(index)
	req.AddData(msg)
	spec := nl.NewRtAttr(unix.IFLA_AF_SPEC, nil)
	inet6 := spec.AddRtAttr(unix.AF_INET6, nil)
	inet6.AddRtAttr(unix.IFLA_INET6_ADDR_GEN_MODE, []byte{1 /* IN6_ADDR_GEN_MODE_NONE */})
	req.AddData(spec)
	if err := c.do(req); err != nil {
		return fmt.Errorf("set addrgenmode none: %w", err)
	}
	return c.LinkSetUp(index, true)
}

// LinkSetMasterUp makes an interface a bridge port and brings it up, in
// one message: `ip link set IF master BR up`.
func (c *Conn) LinkSetMasterUp(index, master int) error {
	req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(index)
	msg.Flags, msg.Change = unix.IFF_UP, unix.IFF_UP
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.IFLA_MASTER, nl.Uint32Attr(uint32(master))))
	return c.do(req)
}

// BridgeAdd creates a bridge, down, with multicast snooping off and a
// fixed MAC: `ip link add NAME index IDX address MAC type bridge
// mcast_snooping 0`. A bridge whose MAC was not set recomputes it from its
// ports each time one joins, which walks every port.
func (c *Conn) BridgeAdd(name string, index int, mac net.HardwareAddr) error {
	req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, newFlags)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(index)
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(name)))
	if mac != nil {
		req.AddData(nl.NewRtAttr(unix.IFLA_ADDRESS, mac))
	}
	info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("bridge"))
	data := info.AddRtAttr(nl.IFLA_INFO_DATA, nil)
	data.AddRtAttr(nl.IFLA_BR_MCAST_SNOOPING, []byte{0})
	req.AddData(info)
	return c.do(req)
}

// VethEnd is one end of a veth pair to create.
type VethEnd struct {
	Name   string
	Index  int // 0: the kernel chooses
	MAC    net.HardwareAddr
	MTU    int
	Master int // bridge index, for the local end only
	Group  uint32
	Up     bool
	NsFd   int // for the peer: the namespace it is created in
}

// VethAdd creates a veth pair in one message, the peer straight in its
// namespace: `ip link add L type veth peer name P netns NS`. The peer must
// be created down (the kernel refuses a peer created up).
//
// Both ends get one transmit and one receive queue (`numtxqueues 1
// numrxqueues 1`): the kernel otherwise gives a veth one of each per
// possible CPU, and every queue is a directory of files in sysfs made at
// creation and removed at deletion. A veth without XDP hands packets to
// the receiving CPU's backlog whatever its queues, so a lab loses nothing;
// linear,100 and single,1000 came up 15-20% faster.
func (c *Conn) VethAdd(local, peer VethEnd) error {
	req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, newFlags)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(local.Index)
	if local.Up {
		msg.Flags, msg.Change = unix.IFF_UP, unix.IFF_UP
	}
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(local.Name)))
	if local.MTU > 0 {
		req.AddData(nl.NewRtAttr(unix.IFLA_MTU, nl.Uint32Attr(uint32(local.MTU))))
	}
	if local.MAC != nil {
		req.AddData(nl.NewRtAttr(unix.IFLA_ADDRESS, local.MAC))
	}
	if local.Master > 0 {
		req.AddData(nl.NewRtAttr(unix.IFLA_MASTER, nl.Uint32Attr(uint32(local.Master))))
	}
	if local.Group != 0 {
		req.AddData(nl.NewRtAttr(unix.IFLA_GROUP, nl.Uint32Attr(local.Group)))
	}
	req.AddData(nl.NewRtAttr(unix.IFLA_NUM_TX_QUEUES, nl.Uint32Attr(1)))
	req.AddData(nl.NewRtAttr(unix.IFLA_NUM_RX_QUEUES, nl.Uint32Attr(1)))
	info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("veth"))
	data := info.AddRtAttr(nl.IFLA_INFO_DATA, nil)
	pa := data.AddRtAttr(nl.VETH_INFO_PEER, nil)
	pm := nl.NewIfInfomsgChild(pa, unix.AF_UNSPEC)
	pm.Index = int32(peer.Index)
	pa.AddRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(peer.Name))
	if peer.MTU > 0 {
		pa.AddRtAttr(unix.IFLA_MTU, nl.Uint32Attr(uint32(peer.MTU)))
	}
	if peer.MAC != nil {
		pa.AddRtAttr(unix.IFLA_ADDRESS, peer.MAC)
	}
	if peer.Group != 0 {
		pa.AddRtAttr(unix.IFLA_GROUP, nl.Uint32Attr(peer.Group))
	}
	pa.AddRtAttr(unix.IFLA_NUM_TX_QUEUES, nl.Uint32Attr(1))
	pa.AddRtAttr(unix.IFLA_NUM_RX_QUEUES, nl.Uint32Attr(1))
	pa.AddRtAttr(unix.IFLA_NET_NS_FD, nl.Uint32Attr(uint32(peer.NsFd)))
	req.AddData(info)
	return c.do(req)
}

// AddrAdd adds an address: `ip addr add PREFIX dev IF [nodad]`.
func (c *Conn) AddrAdd(index int, p netip.Prefix) error {
	req := nl.NewNetlinkRequest(unix.RTM_NEWADDR, newFlags)
	fam := unix.AF_INET
	if p.Addr().Is6() {
		fam = unix.AF_INET6
	}
	msg := nl.NewIfAddrmsg(fam)
	msg.Index = uint32(index)
	msg.Prefixlen = uint8(p.Bits())
	if fam == unix.AF_INET6 {
		// Duplicate detection is pointless in a lab whose addresses were
		// checked at validation, and it keeps the address tentative.
		msg.Flags = unix.IFA_F_NODAD
	}
	req.AddData(msg)
	a := p.Addr().AsSlice()
	req.AddData(nl.NewRtAttr(unix.IFA_LOCAL, a))
	req.AddData(nl.NewRtAttr(unix.IFA_ADDRESS, a))
	if fam == unix.AF_INET {
		if brd := topo.LastAddr(p); p.Bits() < 31 {
			req.AddData(nl.NewRtAttr(unix.IFA_BROADCAST, brd.AsSlice()))
		}
	}
	return c.do(req)
}

// RouteAdd adds a route: `ip route add DST via VIA dev IF`.
func (c *Conn) RouteAdd(dst netip.Prefix, via netip.Addr, index int) error {
	req := nl.NewNetlinkRequest(unix.RTM_NEWROUTE, newFlags)
	msg := nl.NewRtMsg()
	msg.Family = unix.AF_INET
	if dst.Addr().Is6() {
		msg.Family = unix.AF_INET6
	}
	msg.Dst_len = uint8(dst.Bits())
	if !via.IsValid() {
		msg.Scope = unix.RT_SCOPE_LINK
	}
	req.AddData(msg)
	if dst.Bits() > 0 {
		req.AddData(nl.NewRtAttr(unix.RTA_DST, dst.Addr().AsSlice()))
	}
	if via.IsValid() {
		req.AddData(nl.NewRtAttr(unix.RTA_GATEWAY, via.AsSlice()))
	}
	if index > 0 {
		req.AddData(nl.NewRtAttr(unix.RTA_OIF, nl.Uint32Attr(uint32(index))))
	}
	return c.do(req)
}

// LinkGet returns the interface with the given index.
func (c *Conn) LinkGet(index int) (netlink.Link, error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(index)
	req.AddData(msg)
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: &c.sh}
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
	if err != nil {
		return nil, err
	}
	if len(msgs) == 0 {
		return nil, errors.New("no answer")
	}
	return netlink.LinkDeserialize(nil, msgs[0])
}

// WaitOperUp waits until the interface's operational state is up: a veth
// whose peer is up. The first packets sent before that can be lost. It
// gives up at deadline, or when ctx is done (returning ctx's error).
func (c *Conn) WaitOperUp(ctx context.Context, index int, deadline time.Time) error {
	for delay := 50 * time.Microsecond; ; delay = min(delay*2, 20*time.Millisecond) {
		l, err := c.LinkGet(index)
		if err != nil {
			return err
		}
		if l.Attrs().OperState == netlink.OperUp {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("interface %q is still %s", l.Attrs().Name, l.Attrs().OperState)
		}
		if err := sleep(ctx, delay); err != nil {
			return err
		}
	}
}

// LinkDump lists the namespace's interfaces.
func (c *Conn) LinkDump() ([]netlink.Link, error) {
	for try := 0; ; try++ {
		req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_DUMP)
		req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
		req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: &c.sh}
		msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
		if errors.Is(err, netlink.ErrDumpInterrupted) && try < 5 {
			continue
		}
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			return nil, err
		}
		out := make([]netlink.Link, 0, len(msgs))
		for _, m := range msgs {
			if l, err := netlink.LinkDeserialize(nil, m); err == nil {
				out = append(out, l)
			}
		}
		return out, nil
	}
}

// PortStates lists the operational state of every bridge port of the
// namespace, by interface index: `bridge link show`, an RTM_GETLINK dump
// of family AF_BRIDGE. The bridge answers it for its ports without the
// link's peer namespace (IFLA_LINK_NETNSID), which an AF_UNSPEC dump
// adds to every veth whose peer is in another namespace: the kernel
// finds that namespace's id by walking the namespace's whole table of
// peer ids (__peernet2id, a linear scan), so on a switch of N ports an
// AF_UNSPEC dump costs N * N/2 steps, 10,000 ports 50 million.
func (c *Conn) PortStates() (map[int]uint8, error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_DUMP)
	req.AddData(nl.NewIfInfomsg(unix.AF_BRIDGE))
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: &c.sh}
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
	if err != nil {
		return nil, err
	}
	out := make(map[int]uint8, len(msgs))
	for _, m := range msgs {
		if len(m) < unix.SizeofIfInfomsg {
			continue
		}
		msg := nl.DeserializeIfInfomsg(m)
		attrs, err := nl.ParseRouteAttr(m[unix.SizeofIfInfomsg:])
		if err != nil {
			continue
		}
		for _, a := range attrs {
			if a.Attr.Type == unix.IFLA_OPERSTATE && len(a.Value) > 0 {
				out[int(msg.Index)] = a.Value[0]
			}
		}
	}
	return out, nil
}

// operStates lists the operational state of every interface of the
// namespace, by interface index (`ip link show`).
func (c *Conn) operStates() (map[int]uint8, error) {
	links, err := c.LinkDump()
	if err != nil {
		return nil, err
	}
	out := make(map[int]uint8, len(links))
	for _, l := range links {
		out[l.Attrs().Index] = uint8(l.Attrs().OperState)
	}
	return out, nil
}

// WaitAllUp waits until every port of a switch is operationally up, until
// deadline or ctx is done. It reads the ports' states from the bridge
// (PortStates), one dump a try; a switch without a bridge (datapath
// "ebpf", whose ports have no master) from a dump of its links.
func (c *Conn) WaitAllUp(ctx context.Context, n *topo.Node, deadline time.Time) error {
	dump := c.PortStates
	if n.Bridge == "" {
		dump = c.operStates
	}
	for delay := 100 * time.Microsecond; ; delay = min(delay*2, 20*time.Millisecond) {
		states, err := RetryDump(dump)
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			return err // interrupted five times (links changing meanwhile): try again below
		}
		var down []string
		for _, i := range n.Ifaces {
			if states[i.Index] != uint8(netlink.OperUp) {
				down = append(down, i.Name)
			}
		}
		if len(down) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d ports still down: %s", len(down), strings.Join(down[:min(len(down), 5)], ", "))
		}
		if err := sleep(ctx, delay); err != nil {
			return err
		}
	}
}

// PortGroup is the interface group of every switch port nslab makes:
// `ip -n NS link show group 1853058146` lists them.
const PortGroup = 0x6e736c62 // "nslb"

// ipv6Groups lists the IPv6 multicast groups each interface has joined
// (`ip -6 maddr`).
func (c *Conn) ipv6Groups() (map[int]map[netip.Addr]bool, error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETMULTICAST, unix.NLM_F_DUMP)
	req.AddData(nl.NewIfAddrmsg(unix.AF_INET6))
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: &c.sh}
	msgs, err := req.Execute(unix.NETLINK_ROUTE, 0) // replies are typed RTM_GETMULTICAST or RTM_NEWMULTICAST, by kernel
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, err
	}
	out := map[int]map[netip.Addr]bool{}
	for _, m := range msgs {
		if len(m) < unix.SizeofIfAddrmsg {
			continue
		}
		msg := nl.DeserializeIfAddrmsg(m)
		attrs, err := nl.ParseRouteAttr(m[unix.SizeofIfAddrmsg:])
		if err != nil {
			continue
		}
		for _, a := range attrs {
			if a.Attr.Type != unix.IFA_MULTICAST {
				continue
			}
			if addr, ok := netip.AddrFromSlice(a.Value); ok {
				if out[int(msg.Index)] == nil {
					out[int(msg.Index)] = map[netip.Addr]bool{}
				}
				out[int(msg.Index)][addr] = true
			}
		}
	}
	return out, nil
}

// solicitedNode is the multicast group neighbour discovery asks for a:
// ff02::1:ffXX:XXXX.
func solicitedNode(a netip.Addr) netip.Addr {
	b := a.As16()
	g := [16]byte{0xff, 0x02, 10: 0, 11: 1, 12: 0xff, 13: b[13], 14: b[14], 15: b[15]}
	return netip.AddrFrom16(g)
}

// ipv6Addr is one IPv6 address of the namespace, as `ip -6 addr` lists it.
type ipv6Addr struct {
	index int
	addr  netip.Addr
	flags uint32 // IFA_F_*
}

// ipv6Addrs lists the namespace's IPv6 addresses with their flags.
func (c *Conn) ipv6Addrs() ([]ipv6Addr, error) {
	msgs, err := RetryDump(func() ([][]byte, error) {
		req := nl.NewNetlinkRequest(unix.RTM_GETADDR, unix.NLM_F_DUMP)
		req.AddData(nl.NewIfAddrmsg(unix.AF_INET6))
		req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: &c.sh}
		return req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWADDR)
	})
	if err != nil {
		return nil, err
	}
	var out []ipv6Addr
	for _, m := range msgs {
		if len(m) < unix.SizeofIfAddrmsg {
			continue
		}
		msg := nl.DeserializeIfAddrmsg(m)
		if msg.Family != unix.AF_INET6 {
			continue
		}
		attrs, err := nl.ParseRouteAttr(m[unix.SizeofIfAddrmsg:])
		if err != nil {
			continue
		}
		a := ipv6Addr{index: int(msg.Index), flags: uint32(msg.Flags)}
		for _, at := range attrs {
			switch at.Attr.Type {
			case unix.IFA_ADDRESS:
				a.addr, _ = netip.AddrFromSlice(at.Value)
			case unix.IFA_FLAGS: // all 32 bits of the flags, when present
				if len(at.Value) >= 4 {
					a.flags = nl.NativeEndian().Uint32(at.Value[:4])
				}
			}
		}
		if a.addr.IsValid() {
			out = append(out, a)
		}
	}
	return out, nil
}

// WaitIPv6Ready waits until IPv6 works on every interface of the node that
// has IPv6 addresses, as `up` promises:
//   - it has its link-local address (made by the kernel once the link has
//     its carrier): a router solicits the neighbours of the packets it
//     forwards from that address;
//   - no address is tentative (duplicate address detection is off, see
//     the engine's nodeSysctls; the kernel still clears the flag from a
//     work queue);
//   - every address can be found by neighbour discovery: the kernel joins
//     an address's solicited-node group from a work queue after the
//     address is added, and until then neighbour solicitations for it are
//     dropped (the first ping then waits a second for the retransmission).
//
// It gives up at deadline, or when ctx is done.
func (c *Conn) WaitIPv6Ready(ctx context.Context, n *topo.Node, deadline time.Time) error {
	want := map[int]string{}
	for _, i := range n.Ifaces {
		if i.HasFamily(6) { // has IPv6
			want[i.Index] = i.Name
		}
	}
	for delay := 100 * time.Microsecond; ; delay = min(delay*2, 20*time.Millisecond) {
		groups, err := c.ipv6Groups()
		if err != nil {
			return err
		}
		addrs, err := c.ipv6Addrs()
		if err != nil {
			return err
		}
		have := map[int]map[netip.Addr]bool{}
		linkLocal := map[int]bool{}
		var missing []string
		for _, a := range addrs {
			name, ok := want[a.index]
			if !ok {
				continue
			}
			if a.flags&unix.IFA_F_DADFAILED != 0 {
				return fmt.Errorf("IPv6 address %s of %q failed duplicate address detection", a.addr, name)
			}
			if have[a.index] == nil {
				have[a.index] = map[netip.Addr]bool{}
			}
			have[a.index][a.addr] = true
			if a.addr.IsLinkLocalUnicast() {
				linkLocal[a.index] = true
			}
			switch {
			case a.flags&unix.IFA_F_TENTATIVE != 0:
				missing = append(missing, a.addr.String()+" (tentative)")
			case !groups[a.index][solicitedNode(a.addr)]:
				missing = append(missing, a.addr.String())
			}
		}
		for _, i := range n.Ifaces {
			if _, ok := want[i.Index]; !ok {
				continue
			}
			if !linkLocal[i.Index] {
				missing = append(missing, "a link-local address on "+i.Name)
			}
			for _, a := range i.Addrs {
				if a.Addr().Is6() && !have[i.Index][a.Addr()] {
					missing = append(missing, a.Addr().String())
				}
			}
		}
		if len(missing) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("IPv6 is not ready for neighbour discovery: %s", strings.Join(missing[:min(len(missing), 5)], ", "))
		}
		if err := sleep(ctx, delay); err != nil {
			return err
		}
	}
}

// NeighDump lists the namespace's neighbour entries, IPv4 and IPv6:
// `ip neigh show`. A dump the kernel keeps interrupting is an error: a
// partial list could make a sweep take an entry for a new one.
func (c *Conn) NeighDump() ([]*netlink.Neigh, error) {
	msgs, err := RetryDump(func() ([][]byte, error) {
		req := nl.NewNetlinkRequest(unix.RTM_GETNEIGH, unix.NLM_F_DUMP)
		req.AddData(&netlink.Ndmsg{Family: unix.AF_UNSPEC})
		req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: &c.sh}
		return req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWNEIGH)
	})
	if err != nil {
		return nil, err
	}
	out := make([]*netlink.Neigh, 0, len(msgs))
	for _, m := range msgs {
		if n, err := netlink.NeighDeserialize(m); err == nil {
			out = append(out, n)
		}
	}
	return out, nil
}

// NeighDel deletes neighbour entries (`ip neigh del IP dev IF` for each),
// many messages to one write: the kernel handles a write's messages before
// the call returns, and answers only those that failed (no ACK is asked
// for). Each write's answers are read back at once, so none is left on the
// socket for a later request to mistake for its own. An entry already gone
// is not an error.
func (c *Conn) NeighDel(ns []*netlink.Neigh) error {
	// Sent and read here, not through a request: take the socket, as
	// requests do, so that no answer of another's is read as ours.
	c.sh.Socket.Lock()
	defer c.sh.Socket.Unlock()
	fd := c.sh.Socket.GetFd()
	// Failure answers without a copy of the request: 36 bytes each.
	unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
	var buf []byte
	rb := make([]byte, 64<<10)
	var first error
	flush := func() {
		if len(buf) == 0 {
			return
		}
		err := unix.Sendto(fd, buf, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		buf = buf[:0]
		if err != nil && first == nil {
			first = err
		}
		// Read back what failed, without waiting: every answer is queued.
		for {
			nr, _, err := unix.Recvfrom(fd, rb, unix.MSG_DONTWAIT)
			if err != nil {
				if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) && first == nil {
					first = err // ENOBUFS: answers were lost; a later sweep retries
				}
				if errors.Is(err, unix.EINTR) {
					continue
				}
				return
			}
			msgs, err := syscall.ParseNetlinkMessage(rb[:nr])
			if err != nil {
				continue
			}
			for _, m := range msgs {
				if m.Header.Type != unix.NLMSG_ERROR || len(m.Data) < 4 {
					continue
				}
				errno := syscall.Errno(-int32(nl.NativeEndian().Uint32(m.Data[:4])))
				if errno != 0 && errno != unix.ENOENT && first == nil {
					first = errno
				}
			}
		}
	}
	for _, n := range ns {
		fam, ip := n.Family, n.IP.To16()
		if fam == unix.AF_INET {
			ip = n.IP.To4()
		}
		if ip == nil || (fam != unix.AF_INET && fam != unix.AF_INET6) {
			continue
		}
		req := nl.NewNetlinkRequest(unix.RTM_DELNEIGH, 0)
		req.AddData(&netlink.Ndmsg{Family: uint8(fam), Index: uint32(n.LinkIndex)})
		req.AddData(nl.NewRtAttr(netlink.NDA_DST, ip))
		buf = append(buf, req.Serialize()...)
		if len(buf) > 16<<10 {
			flush()
		}
	}
	flush()
	return first
}

// sleep waits for d, or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// RetryDump retries a netlink dump the kernel interrupted because the
// table changed under it (vishvananda/netlink returns ErrDumpInterrupted
// with partial data).
func RetryDump[T any](f func() (T, error)) (T, error) {
	var v T
	var err error
	for i := 0; i < 5; i++ {
		v, err = f()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return v, err
		}
	}
	return v, err
}

// Offload is a device feature SetOffload turns on or off.
type Offload uint32

// The legacy ethtool commands that set one feature (linux/ethtool.h);
// each one's get command is one less.
const (
	OffloadTSO Offload = 0x1f // ETHTOOL_STSO: TCP segmentation offload
	OffloadGRO Offload = 0x2c // ETHTOOL_SGRO: generic receive offload
)

// SetOffload turns a feature of the interface called name on or off, as
// `ethtool -K NAME tso|gro on|off` does: the SIOCETHTOOL ioctl, sent on
// this netlink socket (an ioctl on any socket reaches the devices of the
// socket's namespace), so that no other socket is opened in the node.
func (c *Conn) SetOffload(name string, f Offload, on bool) error {
	v := uint32(0)
	if on {
		v = 1
	}
	_, err := c.ethtool(name, uint32(f), v)
	return err
}

// Offload reports whether the feature is on (`ethtool -k NAME`).
func (c *Conn) Offload(name string, f Offload) (bool, error) {
	v, err := c.ethtool(name, uint32(f)-1, 0)
	return v != 0, err
}

// ethtool sends one struct ethtool_value command and returns its data.
func (c *Conn) ethtool(name string, cmd, data uint32) (uint32, error) {
	if len(name) >= unix.IFNAMSIZ {
		return 0, fmt.Errorf("interface name %q is too long", name)
	}
	// struct ethtool_value { __u32 cmd; __u32 data; }, and struct ifreq:
	// the name, then ifr_data at offset 16, an unsafe.Pointer so that the
	// runtime knows the value is referenced.
	val := &[2]uint32{cmd, data}
	ifr := &struct {
		name [unix.IFNAMSIZ]byte
		data unsafe.Pointer
		_    [16]byte
	}{data: unsafe.Pointer(val)}
	copy(ifr.name[:], name)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(c.sh.Socket.GetFd()), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(ifr)))
	runtime.KeepAlive(ifr)
	if errno != 0 {
		return 0, fmt.Errorf("ethtool %s: %w", name, errno)
	}
	return val[1], nil
}
