package impair

import (
	"errors"
	"fmt"
	"math/bits"
	"reflect"
	"unsafe"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// The handles nslab gives its qdiscs. A root qdisc whose major is one of
// these is nslab's; any other root qdisc with a handle was set by someone
// else and is left alone. The netem qdisc's major also records which
// jitter distribution it was given: the kernel keeps the table but never
// reports it, so Read learns it from the handle.
const (
	tcShaperMajor = 0x51ab // tbf or htb at the root; htb's one class is 51ab:1
	tcPfifoMajor  = 0x51ac // the queue under the shaper, in packets
	tcBfifoMajor  = 0x51ad // the queue under the shaper, in bytes
	tcNetemMajor  = 0x51b0 // netem at the root; +1 normal, +2 pareto, +3 paretonormal

	tcNetemChildMajor = 0x51b4 // netem under the shaper; +1, +2, +3 likewise
)

// tcTickNs is the length of the packet scheduler's tick, in which tc's
// older fields count time (PSCHED_SHIFT 6 in every kernel since 2.6.31;
// /proc/net/psched says 00000040).
const tcTickNs = 64

// tcConn sends tc requests over the route socket of a netlink.Handle, so
// that they reach the namespace the handle was opened in.
//
// vishvananda/netlink cannot say everything netem can (its Netem has no
// jitter distribution table, no Gilbert-Elliott loss model, no 64-bit
// delay, and its dump drops them), and it offers no way to send a message
// of one's own through a Handle. So tcConnOf reaches the Handle's socket
// map by reflection. The field's type is checked first: if a later
// version of the library changes it, every call fails with an error that
// says so, and TestApplyReadRoundTrip fails; nothing is guessed.
type tcConn struct {
	socks map[int]*nl.SocketHandle
}

func tcConnOf(h *netlink.Handle) (tcConn, error) {
	if h == nil {
		return tcConn{}, errors.New("no netlink handle")
	}
	v := reflect.ValueOf(h).Elem().FieldByName("sockets")
	if !v.IsValid() || v.Type() != reflect.TypeOf(map[int]*nl.SocketHandle(nil)) {
		return tcConn{}, errors.New("vishvananda/netlink's Handle no longer keeps its sockets as this package expects; impair cannot send tc messages through it")
	}
	m := *(*map[int]*nl.SocketHandle)(unsafe.Pointer(v.UnsafeAddr()))
	s := m[unix.NETLINK_ROUTE]
	if s == nil || s.Socket == nil {
		return tcConn{}, errors.New("the netlink handle has no route socket: open it with netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)")
	}
	return tcConn{socks: map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: s}}, nil
}

// tcQdisc is a qdisc as sent and as dumped.
type tcQdisc struct {
	kind           string
	handle, parent uint32
	options        []byte // what follows the TCA_OPTIONS header (sent and received)
}

func (c tcConn) request(proto, flags int) *nl.NetlinkRequest {
	req := nl.NewNetlinkRequest(proto, flags)
	req.Sockets = c.socks
	return req
}

// qdiscModify sends RTM_NEWQDISC (flags: NLM_F_CREATE|NLM_F_REPLACE for
// `tc qdisc replace`, 0 for `tc qdisc change`, NLM_F_CREATE|NLM_F_EXCL
// for `tc qdisc add`).
func (c tcConn) qdiscModify(ifindex, cmd, flags int, q tcQdisc) error {
	req := c.request(cmd, flags|unix.NLM_F_ACK)
	req.AddData(&nl.TcMsg{Family: nl.FAMILY_ALL, Ifindex: int32(ifindex), Handle: q.handle, Parent: q.parent})
	req.AddData(nl.NewRtAttr(nl.TCA_KIND, nl.ZeroTerminated(q.kind)))
	if q.options != nil {
		req.AddData(nl.NewRtAttr(nl.TCA_OPTIONS, q.options))
	}
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

func (c tcConn) qdiscDelete(ifindex int, handle, parent uint32) error {
	req := c.request(unix.RTM_DELQDISC, unix.NLM_F_ACK)
	req.AddData(&nl.TcMsg{Family: nl.FAMILY_ALL, Ifindex: int32(ifindex), Handle: handle, Parent: parent})
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

// qdiscs dumps the qdiscs of one interface.
func (c tcConn) qdiscs(ifindex int) ([]tcQdisc, error) {
	var msgs [][]byte
	var err error
	for try := 0; try < 5; try++ {
		req := c.request(unix.RTM_GETQDISC, unix.NLM_F_DUMP)
		req.AddData(&nl.TcMsg{Family: nl.FAMILY_ALL, Ifindex: int32(ifindex)})
		msgs, err = req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWQDISC)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	var out []tcQdisc
	for _, m := range msgs {
		if len(m) < nl.SizeofTcMsg {
			continue
		}
		msg := nl.DeserializeTcMsg(m)
		if int(msg.Ifindex) != ifindex {
			continue
		}
		attrs, err := nl.ParseRouteAttr(m[nl.SizeofTcMsg:])
		if err != nil {
			return nil, fmt.Errorf("parse qdisc dump: %w", err)
		}
		q := tcQdisc{handle: msg.Handle, parent: msg.Parent}
		for _, a := range attrs {
			switch a.Attr.Type {
			case nl.TCA_KIND:
				q.kind = unix.ByteSliceToString(a.Value)
			case nl.TCA_OPTIONS:
				q.options = a.Value
			}
		}
		out = append(out, q)
	}
	return out, nil
}

// tcTicks is how many scheduler ticks it takes to send n bytes at rate
// bytes a second, rounded.
func tcTicks(n uint32, rate uint64) uint32 {
	if rate == 0 {
		return 0
	}
	t := tcMulDivRound(uint64(n), 1e9, rate*tcTickNs)
	if t > 1<<32-1 {
		t = 1<<32 - 1
	}
	return uint32(t)
}

// tcTicksBytes is how many bytes are sent in t ticks at rate bytes a
// second, rounded.
func tcTicksBytes(t uint32, rate uint64) uint32 {
	b := tcMulDivRound(uint64(t)*tcTickNs, rate, 1e9)
	if b > 1<<32-1 {
		b = 1<<32 - 1
	}
	return uint32(b)
}

// tcMulDivRound is a*b/c rounded to the nearest, without overflow.
func tcMulDivRound(a, b, c uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	lo, carry := bits.Add64(lo, c/2, 0)
	hi += carry
	if hi >= c {
		return 1<<64 - 1
	}
	q, _ := bits.Div64(hi, lo, c)
	return q
}
