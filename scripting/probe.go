package scripting

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"

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
	cmds := []*Command{serve}
	for _, proto := range []string{"tcp", "udp"} {
		cmds = append(cmds, &Command{
			Name: proto, Usage: proto + " A TARGET", Check: true, MinArgs: 2, MaxArgs: 2,
			Summary: "A gets an answer from the echo service at TARGET over " + strings.ToUpper(proto),
			Help: `TARGET is NODE:PORT or ADDRESS:PORT. For NODE:PORT with no service started by
` + "`serve`" + ` there, one is started for the check. The answer tells the source
address B saw, shown after the check: a port forward or a NAT on the way
shows there. ` + "`!" + proto + " A TARGET`" + ` holds when no answer comes.`,
			Validate: func(v *Validator, ln *Line, args []string) error {
				return v.all(v.Source(args[0]), v.target(args[1]))
			},
			Run: func(ctx context.Context, s *Session, ln *Line, args []string) (Outcome, error) {
				return s.probe(ctx, proto, args[0], args[1])
			},
		})
	}
	return cmds
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

func (s *Session) probe(ctx context.Context, proto, from, target string) (Outcome, error) {
	o := Outcome{Want: from + " to get an answer from " + target + " over " + proto, WantNot: from + " to get no answer from " + target + " over " + proto}
	to, err := netip.ParseAddrPort(target)
	if err != nil {
		node, p, _ := strings.Cut(target, ":")
		port, _ := strconv.Atoi(p)
		if to, err = s.Lab.AddrOf(node, 4, port); err != nil {
			if to, err = s.Lab.AddrOf(node, 6, port); err != nil {
				return o, err
			}
		}
		if !s.serving(node, proto, port) {
			svc, err := s.Lab.Serve(node, proto, port)
			if err != nil {
				return o, err
			}
			defer svc.Close()
		}
	}
	r, err := s.Lab.Probe(ctx, from, to, proto, emulator.ProbeOptions{Timeout: s.Timeout})
	switch {
	case ctx.Err() != nil:
		return o, ctx.Err()
	case noAnswer(err):
		o.Said = err.Error()
		return o, nil
	case err != nil:
		return o, err // not an answer either way: the line fails
	}
	o.Held = true
	o.Said = fmt.Sprintf("%s answered; it saw %s (sent from %s)", to, r.Observed, r.Local)
	return o, nil
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

// Close stops the echo services the session started.
func (s *Session) Close() error {
	var first error
	for _, svc := range s.services {
		if err := svc.Close(); err != nil && first == nil {
			first = err
		}
	}
	s.services = nil
	return first
}
