package capture

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// DefaultBufferSize is the kernel buffer of a capture socket, set with
// SO_RCVBUFFORCE (the machine's rmem_max does not cap it): 4 MiB, twice
// tcpdump's default.
const DefaultBufferSize = 4 << 20

// Options are a Source's settings.
type Options struct {
	// Filter is attached to the socket; nil captures every packet.
	Filter *Filter
	// SnapLen bounds the bytes kept of each packet (DefaultSnapLen if 0).
	SnapLen int
	// BufferSize is the socket's receive buffer (DefaultBufferSize if 0).
	BufferSize int
}

// Source is an AF_PACKET socket bound to one interface of a node: it
// receives what the interface sends and receives, as the kernel's filter
// lets through, with the kernel's receive timestamps.
type Source struct {
	iface string
	f     *os.File
	rc    interface {
		Read(func(fd uintptr) bool) error
		Control(func(fd uintptr)) error
	}
	snap int

	mu       sync.Mutex
	stopping bool
	total    Stats // the counters read so far (reading resets the kernel's)
	oob      []byte
}

var acceptNone = []bpf.RawInstruction{{Op: 0x06, K: 0}} // ret #0

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// Open opens a capture socket on interface iface of a node. enter runs a
// function inside the node's namespace (the engine's node handle does: the
// socket is made there, and keeps the namespace); nil opens it in the
// calling thread's. The socket receives nothing until its filter is
// attached and it is bound, so the filter sees every packet it queues.
func Open(enter func(func() error) error, iface string, o Options) (*Source, error) {
	if o.SnapLen == 0 {
		o.SnapLen = DefaultSnapLen
	}
	if o.BufferSize == 0 {
		o.BufferSize = DefaultBufferSize
	}
	fd := -1
	mk := func() (err error) {
		// Protocol 0: no packet until bind names ETH_P_ALL.
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
		return err
	}
	var err error
	if enter != nil {
		err = enter(mk)
	} else {
		err = mk()
	}
	if err != nil {
		return nil, fmt.Errorf("capture on %s: packet socket: %w", iface, err)
	}
	fail := func(what string, err error) (*Source, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("capture on %s: %s: %w", iface, what, err)
	}
	ifr, err := unix.NewIfreq(iface)
	if err != nil {
		return fail("interface name", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		if errors.Is(err, unix.ENODEV) {
			return fail("no such interface in the node", err)
		}
		return fail("interface index", err)
	}
	index := int(ifr.Uint32())
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, o.BufferSize); err != nil {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, o.BufferSize); err != nil {
			return fail("receive buffer", err)
		}
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		return fail("nanosecond timestamps (SO_TIMESTAMPNS)", err)
	}
	// Each packet's length on the wire, which a short snap length cuts.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
		return fail("PACKET_AUXDATA", err)
	}
	if o.Filter != nil || o.SnapLen < DefaultSnapLen {
		prog, err := o.Filter.rawSnap(o.SnapLen)
		if err != nil {
			return fail("filter", err)
		}
		if err := attach(fd, prog); err != nil {
			return fail("attach filter", err)
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: index}); err != nil {
		return fail("bind", err)
	}
	f := os.NewFile(uintptr(fd), "capture "+iface)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("capture on %s: %w", iface, err)
	}
	return &Source{iface: iface, f: f, rc: rc, snap: o.SnapLen, oob: make([]byte, unix.CmsgSpace(int(unsafe.Sizeof(unix.Timespec{})))+unix.CmsgSpace(int(unsafe.Sizeof(unix.TpacketAuxdata{}))))}, nil
}

func attach(fd int, prog []bpf.RawInstruction) error {
	fs := make([]unix.SockFilter, len(prog))
	for i, ins := range prog {
		fs[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(fs)), Filter: &fs[0]})
}

// ReadPacket reads the next packet into buf. It is meant for one goroutine
// at a time.
func (s *Source) ReadPacket(buf []byte) (Packet, error) {
	if len(buf) > s.snap {
		buf = buf[:s.snap]
	}
	var (
		p    Packet
		rerr error
		got  bool
	)
	recv := func(fd uintptr) bool {
		n, oobn, flags, from, err := unix.Recvmsg(int(fd), buf, s.oob, unix.MSG_TRUNC)
		if err == unix.EAGAIN || err == unix.EINTR {
			return false
		}
		if err != nil {
			rerr = err
			return true
		}
		got = true
		p.Length = n
		p.Data = buf[:min(n, len(buf))]
		_ = flags
		if ll, ok := from.(*unix.SockaddrLinklayer); ok {
			p.Outgoing = ll.Pkttype == unix.PACKET_OUTGOING
		}
		p.Time, p.Length = control(s.oob[:oobn], n)
		return true
	}
	s.mu.Lock()
	stopping := s.stopping
	s.mu.Unlock()
	if !stopping {
		err := s.rc.Read(recv)
		if err == nil {
			if rerr != nil {
				return Packet{}, fmt.Errorf("capture on %s: %w", s.iface, rerr)
			}
			return p, nil
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return Packet{}, fmt.Errorf("capture on %s: %w", s.iface, err)
		}
	}
	// Stopped: what is queued, then EOF.
	if err := s.rc.Control(func(fd uintptr) { recv(fd) }); err != nil {
		return Packet{}, io.EOF
	}
	if rerr != nil {
		return Packet{}, fmt.Errorf("capture on %s: %w", s.iface, rerr)
	}
	if !got {
		return Packet{}, io.EOF
	}
	return p, nil
}

// control reads SCM_TIMESTAMPNS, the kernel's timestamp (a packet without
// one gets the time it was read), and PACKET_AUXDATA's length on the wire
// (n, what was queued, without it).
func control(oob []byte, n int) (t time.Time, length int) {
	length = n
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Now(), length
	}
	for _, m := range msgs {
		switch {
		case m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= int(unsafe.Sizeof(unix.Timespec{})):
			ts := (*unix.Timespec)(unsafe.Pointer(&m.Data[0]))
			t = time.Unix(ts.Sec, ts.Nsec)
		case m.Header.Level == unix.SOL_PACKET && m.Header.Type == unix.PACKET_AUXDATA && len(m.Data) >= int(unsafe.Sizeof(unix.TpacketAuxdata{})):
			aux := (*unix.TpacketAuxdata)(unsafe.Pointer(&m.Data[0]))
			length = max(int(aux.Len), n)
		}
	}
	if t.IsZero() {
		t = time.Now()
	}
	return t, length
}

// Stop ends the capture: a filter that takes nothing replaces the
// socket's, so nothing more is queued, and ReadPacket returns what was
// queued before, then io.EOF.
func (s *Source) Stop() {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		return
	}
	s.stopping = true
	s.mu.Unlock()
	s.rc.Control(func(fd uintptr) { attach(int(fd), acceptNone) })
	s.f.SetReadDeadline(time.Unix(1, 0))
}

// Stats reads the kernel's counters (PACKET_STATISTICS) since the socket
// was opened: the packets the filter accepted, and those dropped because
// the buffer was full.
func (s *Source) Stats() (Stats, error) {
	var st *unix.TpacketStats
	var gerr error
	err := s.rc.Control(func(fd uintptr) {
		st, gerr = unix.GetsockoptTpacketStats(int(fd), unix.SOL_PACKET, unix.PACKET_STATISTICS)
	})
	if err == nil {
		err = gerr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		return s.total, fmt.Errorf("capture on %s: PACKET_STATISTICS: %w", s.iface, err)
	}
	// tp_packets counts the dropped packets too.
	s.total.Received += uint64(st.Packets)
	s.total.Dropped += uint64(st.Drops)
	return s.total, nil
}

// Close closes the socket.
func (s *Source) Close() error { return s.f.Close() }
