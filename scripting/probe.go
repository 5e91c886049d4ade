package scripting

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nslab/nslab/emulator"
)

// probeCommands are `serve`, `tcp` and `udp`: echo services and probes of
// them, for ports, firewalls and port forwards.
func probeCommands() []*Command {
	serve := &Command{
		Name: "serve", Usage: "serve NODE tcp|udp PORT", MinArgs: 3, MaxArgs: 3,
		Summary: "start nslab's echo service in NODE for the rest of the script",
		Help: `The echo service answers each TCP connection or UDP datagram with the
source address and port it saw. It runs in process until the script (or
the prompt) ends. ` + "`tcp`" + ` and ` + "`udp`" + ` probe it.`,
		Validate: func(v *Validator, ln *Line, args []string) error {
			return v.all(v.Source(args[0]), validProto(args[1]), validPort(args[2]))
		},
		Run: func(ctx context.Context, s *Session, ln *Line, args []string) (Outcome, error) {
			port, _ := strconv.Atoi(args[2])
			svc, err := s.Lab.Serve(args[0], args[1], port)
			if err != nil {
				return Outcome{}, err
			}
			s.services = append(s.services, svc)
			return Outcome{Said: fmt.Sprintf("echo service on %s %s/%d", args[0], args[1], port)}, nil
		},
	}
	tcp := &Command{
		Name: "tcp", Usage: "tcp A TARGET", Check: true, MinArgs: 2, MaxArgs: 2,
		Summary: "A connects over TCP to whatever listens at TARGET",
		Help: `TARGET is NODE:PORT or ADDRESS:PORT. Holds when the TCP handshake from node A
completes: a program listens there and nothing on the way stops it. A
refused, reset, unreachable or unanswered connection does not hold. No
service is started: the check tests what is there. When nslab's echo
service serves TARGET (a ` + "`serve`" + ` line before, or the node's echo ports), its
answer tells the source address it saw: a port forward or a NAT on the
way shows there. ` + "`!tcp A TARGET`" + ` holds when no connection is made.`,
		Validate: func(v *Validator, ln *Line, args []string) error {
			return v.all(v.Source(args[0]), v.target(args[1]))
		},
		Run: func(ctx context.Context, s *Session, ln *Line, args []string) (Outcome, error) {
			return s.probe(ctx, "tcp", args[0], args[1])
		},
	}
	udp := &Command{
		Name: "udp", Usage: "udp A TARGET", Check: true, MinArgs: 2, MaxArgs: 2,
		Summary: "A gets an answer over UDP from nslab's echo service at TARGET",
		Help: `TARGET is NODE:PORT or ADDRESS:PORT. UDP has no handshake: a datagram that
nothing answers looks the same as one that was dropped. So the check sends
nslab's probe and holds when nslab's echo service answers, telling the
source it saw. For NODE:PORT the echo service must be there (a
` + "`serve NODE udp PORT`" + ` line before, or the node's echo ports), else the
line fails, '!' or not. ADDRESS:PORT is sent to as is (a port forward, a service of
` + "`nslab serve`" + `). ` + "`!udp A TARGET`" + ` holds when no answer comes.`,
		Validate: func(v *Validator, ln *Line, args []string) error {
			return v.all(v.Source(args[0]), v.target(args[1]))
		},
		Run: func(ctx context.Context, s *Session, ln *Line, args []string) (Outcome, error) {
			return s.probe(ctx, "udp", args[0], args[1])
		},
	}
	return []*Command{serve, tcp, udp}
}

func validProto(p string) error {
	if p != "tcp" && p != "udp" {
		return fmt.Errorf("protocol %q is not tcp or udp", p)
	}
	return nil
}

func validPort(p string) error {
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not a number in 1-65535", p)
	}
	return nil
}

// target checks NODE:PORT or ADDRESS:PORT.
func (v *Validator) target(t string) error {
	if _, err := netip.ParseAddrPort(t); err == nil {
		return nil
	}
	node, port, ok := strings.Cut(t, ":")
	if !ok {
		return fmt.Errorf("target %q: write NODE:PORT or ADDRESS:PORT", t)
	}
	return v.all(v.Source(node), validPort(port))
}

// probe runs `tcp` and `udp`: a connection to whatever listens (tcp), or
// a probe of nslab's echo service (udp, and tcp where one is known to
// serve). It never starts a service.
func (s *Session) probe(ctx context.Context, proto, from, target string) (Outcome, error) {
	to, node, err := s.probeTarget(target)
	if err != nil {
		return Outcome{}, err
	}
	echo := s.echoAt(node, to, proto)
	o := Outcome{Want: from + " to connect to " + target + " over tcp", WantNot: from + " not to connect to " + target + " over tcp"}
	if proto == "udp" || echo {
		o = Outcome{Want: from + " to get an answer from the echo service at " + target + " over " + proto, WantNot: from + " to get no answer from the echo service at " + target + " over " + proto}
	}
	if proto == "udp" && node != "" && !echo {
		port := to.Port()
		return o, fmt.Errorf("no echo service of nslab's at %s: UDP has no handshake, so only nslab's echo service can answer a udp check; start one with `serve %s udp %d` before this line, or add echo = [%d] to node %q (for a service started elsewhere, as by nslab serve, name its address: udp %s %s)",
			target, node, port, port, node, from, to)
	}
	r, err := s.Lab.Probe(ctx, from, to, proto, emulator.ProbeOptions{Timeout: s.Timeout, Connect: proto == "tcp" && !echo})
	switch {
	case ctx.Err() != nil:
		return o, ctx.Err()
	case noAnswer(err) && proto == "udp":
		o.Said = err.Error() + " (UDP has no handshake: the datagram may have been dropped on the way, or nothing there answers nslab's probe)"
		return o, nil
	case noAnswer(err) && !r.Local.IsValid():
		o.Said = fmt.Sprintf("%s -> %s: %s", from, to, whyNoConnection(err, to, s.Timeout))
		return o, nil
	case noAnswer(err):
		o.Said = fmt.Sprintf("%s -> %s: connected, but no answer from the echo service: %v", from, to, err)
		return o, nil
	case err != nil:
		return o, err // not an answer either way: the line fails
	}
	o.Held = true
	if !echo && proto == "tcp" {
		o.Said = fmt.Sprintf("%s -> %s: connected (the TCP handshake completed, from %s)", from, to, r.Local)
		return o, nil
	}
	o.Said = fmt.Sprintf("%s answered; it saw %s (sent from %s)", to, r.Observed, r.Local)
	return o, nil
}

// probeTarget reads NODE:PORT (node is then set) or ADDRESS:PORT.
func (s *Session) probeTarget(target string) (to netip.AddrPort, node string, err error) {
	if to, err := netip.ParseAddrPort(target); err == nil {
		return to, "", nil
	}
	node, p, _ := strings.Cut(target, ":")
	port, _ := strconv.Atoi(p)
	if to, err = s.Lab.AddrOf(node, 4, port); err != nil {
		if to, err = s.Lab.AddrOf(node, 6, port); err != nil {
			return to, node, err
		}
	}
	return to, node, nil
}

// echoAt tells whether nslab's echo service is known to serve proto at
// the target: started by `serve` in this session, or one of the node's
// echo ports (which serve UDP and TCP). For ADDRESS:PORT, the node that
// has the address counts.
func (s *Session) echoAt(node string, to netip.AddrPort, proto string) bool {
	port := int(to.Port())
	if node == "" {
		for _, n := range s.Plan.Nodes {
			for _, i := range n.Ifaces {
				for _, a := range i.Addrs {
					if a.Addr() == to.Addr() {
						node = n.Name
					}
				}
			}
		}
	}
	n := s.Plan.Node(node)
	return n != nil && (s.serving(node, proto, port) || slices.Contains(n.Echo, port))
}

// whyNoConnection says in words why a TCP connection was not made.
func whyNoConnection(err error, to netip.AddrPort, timeout time.Duration) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused: nothing listens on port " + strconv.Itoa(int(to.Port())) + " there, or a firewall rejects it"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable: no route"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "host unreachable: no route, or no neighbour answered"
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Sprintf("no answer to the handshake within %s: dropped on the way, or nobody there", timeout)
	}
	return err.Error()
}

// noAnswer tells whether a probe's error means that no answer came: a
// timeout, a refused or reset connection, an unreachable network or host.
// Any other error says nothing about reachability.
func noAnswer(err error) bool {
	var ne net.Error
	return err != nil && (errors.As(err, &ne) && ne.Timeout() ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EHOSTUNREACH))
}

func (s *Session) serving(node, proto string, port int) bool {
	for _, svc := range s.services {
		if svc.Node == node && svc.Proto == proto && svc.Port == port {
			return true
		}
	}
	return false
}

// Close stops the echo services and the captures the session started.
func (s *Session) Close() error {
	first := s.closeCaptures()
	for _, svc := range s.services {
		if err := svc.Close(); err != nil && first == nil {
			first = err
		}
	}
	s.services = nil
	return first
}
