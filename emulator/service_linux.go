package emulator

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/nslab/nslab/topo"
	"golang.org/x/sys/unix"
)

// inNode runs fn on a locked thread inside the node's network namespace
// and switches back; sockets fn opens stay in the node's namespace and
// can be used from any goroutine afterwards.
func (l *Lab) inNode(node string, fn func() error) error {
	h, err := l.node(node)
	if err != nil {
		return err
	}
	return h.do(fn)
}

const (
	probeHello = "nslab-probe\n"
	echoPrefix = "nslab-echo "
)

// Service is nslab's built-in echo service running in a node: to every
// probe (UDP datagram or TCP connection) it answers with the source
// address and port it saw, so a prober learns its mapped address behind
// NATs. It runs in this process; Close stops it.
type Service struct {
	Node  string
	Proto string
	Port  int
	// Seen, if set before traffic arrives, is called with every source.
	Seen func(netip.AddrPort)

	mu     sync.Mutex
	closer func() error
	wg     sync.WaitGroup
}

// Serve starts the echo service in node, on all of its addresses:
// proto "udp" or "tcp", port 1-65535.
func (l *Lab) Serve(node, proto string, port int) (*Service, error) {
	if port < 1 || port > 65535 {
		return nil, topo.BadInput(fmt.Errorf("serve: port %d is outside 1-65535", port))
	}
	if n := l.Plan.Node(node); n != nil && n.Kind == topo.KindSwitch {
		return nil, topo.BadInput(fmt.Errorf("node %q is a switch: it has no address to serve on", node))
	}
	switch proto {
	case "udp", "tcp":
	default:
		return nil, topo.BadInput(fmt.Errorf("serve: protocol %q is not udp or tcp", proto))
	}
	s, err := listenEcho(proto, port, func(fn func() error) error { return l.inNode(node, fn) })
	if err != nil {
		return nil, fmt.Errorf("serve %s %d in node %q: %w", proto, port, node, err)
	}
	s.Node = node
	return s, nil
}

// listenEcho opens the echo service's sockets through open (which runs
// its function in the namespace to serve in) and starts answering.
func listenEcho(proto string, port int, open func(func() error) error) (*Service, error) {
	s := &Service{Proto: proto, Port: port}
	switch proto {
	case "udp":
		// One socket per family, each answering from the address the probe
		// was sent to (IP_PKTINFO): a node with several addresses must not
		// answer from another one.
		var conns []*net.UDPConn
		err := open(func() error {
			for _, nw := range []string{"udp4", "udp6"} {
				pc, err := net.ListenUDP(nw, &net.UDPAddr{Port: port})
				if err != nil {
					if nw == "udp6" && errors.Is(err, unix.EAFNOSUPPORT) {
						continue
					}
					return err
				}
				conns = append(conns, pc)
			}
			return nil
		})
		if err != nil {
			for _, pc := range conns {
				pc.Close()
			}
			return nil, err
		}
		s.closer = func() error {
			var errs []error
			for _, pc := range conns {
				errs = append(errs, pc.Close())
			}
			return errors.Join(errs...)
		}
		for _, pc := range conns {
			s.wg.Add(1)
			go s.udpLoop(pc)
		}
	case "tcp":
		var ln *net.TCPListener
		err := open(func() (err error) {
			ln, err = net.ListenTCP("tcp", &net.TCPAddr{Port: port})
			return err
		})
		if err != nil {
			return nil, err
		}
		s.closer = ln.Close
		s.wg.Add(1)
		go s.tcpLoop(ln)
	default:
		return nil, topo.BadInput(fmt.Errorf("serve: protocol %q is not udp or tcp", proto))
	}
	return s, nil
}

// Close stops the service and waits for it.
func (s *Service) Close() error {
	s.mu.Lock()
	c := s.closer
	s.closer = nil
	s.mu.Unlock()
	if c == nil {
		return nil
	}
	err := c()
	s.wg.Wait()
	return err
}

func (s *Service) udpLoop(pc *net.UDPConn) {
	defer s.wg.Done()
	v6 := pc.LocalAddr().(*net.UDPAddr).IP.To4() == nil
	if rc, err := pc.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) {
			if v6 {
				unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
			} else {
				unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
			}
		})
	}
	buf := make([]byte, 512)
	oob := make([]byte, 256)
	for {
		n, oobn, _, from, err := pc.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			return
		}
		if string(buf[:n]) != probeHello {
			continue
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		if s.Seen != nil {
			s.Seen(from)
		}
		pc.WriteMsgUDPAddrPort([]byte(echoPrefix+from.String()+"\n"), replyFrom(oob[:oobn]), from)
	}
}

// replyFrom turns the destination address of a received datagram into the
// control message that sends the answer from that same address.
func replyFrom(oob []byte) []byte {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	for _, m := range msgs {
		switch {
		case m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_PKTINFO && len(m.Data) >= unix.SizeofInet4Pktinfo:
			var in unix.Inet4Pktinfo
			copy((*[unix.SizeofInet4Pktinfo]byte)(unsafe.Pointer(&in))[:], m.Data)
			out := unix.Inet4Pktinfo{Spec_dst: in.Addr}
			return unix.PktInfo4(&out)
		case m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_PKTINFO && len(m.Data) >= unix.SizeofInet6Pktinfo:
			var in unix.Inet6Pktinfo
			copy((*[unix.SizeofInet6Pktinfo]byte)(unsafe.Pointer(&in))[:], m.Data)
			out := unix.Inet6Pktinfo{Addr: in.Addr}
			return unix.PktInfo6(&out)
		}
	}
	return nil
}

func (s *Service) tcpLoop(ln *net.TCPListener) {
	defer s.wg.Done()
	for {
		c, err := ln.AcceptTCP()
		if err != nil {
			return
		}
		from := c.RemoteAddr().(*net.TCPAddr).AddrPort()
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		if s.Seen != nil {
			s.Seen(from)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte(echoPrefix + from.String() + "\n"))
		c.Close()
	}
}

// ProbeOptions tune a probe. The zero value probes from a port the kernel
// chooses and waits one second.
type ProbeOptions struct {
	// FromPort is the local port to probe from (0: any).
	FromPort int
	// Timeout bounds the wait for the answer (default 1s).
	Timeout time.Duration
	// Connect, for TCP, ends the probe once the handshake completes,
	// without waiting for an echo service's answer: a check of whatever
	// listens at the target. Observed stays zero.
	Connect bool
}

// ProbeResult is what a probe saw.
type ProbeResult struct {
	From  string         `json:"from"`
	Proto string         `json:"proto"`
	Local netip.AddrPort `json:"local"` // the probing socket's own address
	To    netip.AddrPort `json:"to"`    // where the probe went
	// Observed is the source address and port the echo service saw: the
	// prober's mapped address when a NAT is on the way.
	Observed netip.AddrPort `json:"observed"`
	RTT      time.Duration  `json:"rtt_ns"`
}

// Translated reports whether a NAT changed the source on the way.
func (r ProbeResult) Translated() bool { return r.Observed != r.Local }

func (r ProbeResult) String() string {
	return fmt.Sprintf("%s -> %s (%s): the far side saw %s (local %s, rtt %s)", r.From, r.To, r.Proto, r.Observed, r.Local, fmtDur(r.RTT))
}

// Probe sends one probe from node to an echo service at to (see Serve)
// and returns the source the service observed.
func (l *Lab) Probe(ctx context.Context, from string, to netip.AddrPort, proto string, o ProbeOptions) (ProbeResult, error) {
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	if n := l.Plan.Node(from); n != nil && n.Kind == topo.KindSwitch {
		return ProbeResult{}, topo.BadInput(fmt.Errorf("node %q is a switch: it has no address to probe from", from))
	}
	res := ProbeResult{From: from, Proto: proto, To: to}
	deadline := time.Now().Add(o.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	switch proto {
	case "udp":
		var pc *net.UDPConn
		err := l.inNode(from, func() (err error) {
			pc, err = net.ListenUDP("udp", &net.UDPAddr{Port: o.FromPort})
			return err
		})
		if err != nil {
			return res, fmt.Errorf("probe from node %q: %w", from, err)
		}
		defer pc.Close()
		t0 := time.Now()
		if _, err := pc.WriteToUDPAddrPort([]byte(probeHello), to); err != nil {
			return res, fmt.Errorf("probe from node %q to %s: %w", from, to, err)
		}
		res.Local = localOf(pc.LocalAddr(), from, l, to)
		pc.SetReadDeadline(deadline)
		buf := make([]byte, 512)
		for {
			n, src, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return res, fmt.Errorf("probe from node %q to %s (udp): no answer: %w", from, to, err)
			}
			if netip.AddrPortFrom(src.Addr().Unmap(), src.Port()) != to {
				continue
			}
			res.RTT = time.Since(t0)
			return res, parseEcho(&res, string(buf[:n]))
		}
	case "tcp":
		var c net.Conn
		t0 := time.Now()
		err := l.inNode(from, func() (err error) {
			d := net.Dialer{Deadline: deadline, LocalAddr: &net.TCPAddr{Port: o.FromPort}}
			c, err = d.DialContext(ctx, "tcp", to.String())
			return err
		})
		if err != nil {
			return res, fmt.Errorf("probe from node %q to %s (tcp): %w", from, to, err)
		}
		defer c.Close()
		res.Local = c.LocalAddr().(*net.TCPAddr).AddrPort()
		if o.Connect {
			res.RTT = time.Since(t0)
			return res, nil
		}
		c.SetDeadline(deadline)
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return res, fmt.Errorf("probe from node %q to %s (tcp): no answer: %w", from, to, err)
		}
		res.RTT = time.Since(t0)
		return res, parseEcho(&res, line)
	}
	return res, topo.BadInput(fmt.Errorf("probe: protocol %q is not udp or tcp", proto))
}

// localOf gives the probing socket's address; for an unbound UDP socket
// the kernel picks the source address per destination, so it is the
// source address of the route to the target.
func localOf(a net.Addr, from string, l *Lab, to netip.AddrPort) netip.AddrPort {
	ap := a.(*net.UDPAddr).AddrPort()
	if ap.Addr().IsUnspecified() {
		var src netip.Addr
		l.inNode(from, func() error {
			c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(to))
			if err == nil {
				src = c.LocalAddr().(*net.UDPAddr).AddrPort().Addr()
				c.Close()
			}
			return nil
		})
		if src.IsValid() {
			return netip.AddrPortFrom(src.Unmap(), ap.Port())
		}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func parseEcho(r *ProbeResult, line string) error {
	s, ok := strings.CutPrefix(strings.TrimSpace(line), strings.TrimSpace(echoPrefix))
	if !ok {
		return errors.New("the far side is not nslab's echo service")
	}
	ap, err := netip.ParseAddrPort(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("bad echo answer %q", line)
	}
	r.Observed = ap
	return nil
}

// AddrOf returns node's first address of the family (4 or 6) with port,
// to aim a probe at.
func (l *Lab) AddrOf(node string, family, port int) (netip.AddrPort, error) {
	n := l.Plan.Node(node)
	if n == nil {
		return netip.AddrPort{}, l.Plan.UnknownNode(node)
	}
	a, ok := n.FirstAddr(family)
	if !ok {
		return netip.AddrPort{}, topo.BadInput(fmt.Errorf("node %q has no IPv%d address", node, family))
	}
	return netip.AddrPortFrom(a, uint16(port)), nil
}

// ListenUDP opens a UDP socket inside node, bound to addr (an invalid or
// zero address means any; port 0 means any port). The socket belongs to
// the node's namespace and can be used from any goroutine; close it when
// done. It is the building block for probes of one's own.
func (l *Lab) ListenUDP(node string, addr netip.AddrPort) (*net.UDPConn, error) {
	if n := l.Plan.Node(node); n != nil && n.Kind == topo.KindSwitch {
		return nil, topo.BadInput(fmt.Errorf("node %q is a switch: it has no address", node))
	}
	var pc *net.UDPConn
	err := l.inNode(node, func() (err error) {
		ua := &net.UDPAddr{Port: int(addr.Port())}
		if addr.Addr().IsValid() {
			ua.IP = addr.Addr().AsSlice()
		}
		pc, err = net.ListenUDP("udp4", ua)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("udp socket in node %q: %w", node, err)
	}
	return pc, nil
}
