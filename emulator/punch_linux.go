package emulator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nslab/nslab/topo"
)

// Punch runs a UDP hole punch between hosts a and b, in process, as P2P
// software (STUN, ICE) does:
//
//  1. Each peer opens one UDP socket in its node and learns its mapped
//     address and port from the echo service of the rendezvous node
//     (o.Via), through every NAT on the way.
//  2. The two learned endpoints are exchanged inside this process, not
//     over the lab network (the signalling channel of real software).
//  3. Both peers send probes to each other's learned endpoint from that
//     same socket, o.Rounds rounds o.Interval apart: at once, or o.First
//     first. A peer that receives a probe answers to the address it came
//     from and sends its later rounds there too (a peer-reflexive
//     candidate, as ICE does).
//
// The result is Direct when each peer received the other's probes. Bad
// input (a node that is not a host, a twice, a rendezvous without an echo
// service or that a peer cannot reach) is an error for which IsBadInput
// is true; nothing is left running either way.
func (l *Lab) Punch(ctx context.Context, a, b string, o PunchOptions) (PunchResult, error) {
	res := PunchResult{A: PunchSide{Node: a}, B: PunchSide{Node: b}, Started: o.First}
	rv, err := l.punchCheck(a, b, &o)
	if err != nil {
		return res, err
	}
	o = o.withDefaults()
	res.Via, res.Rendezvous = o.Via, rv
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()

	nodes := [2]string{a, b}
	var socks [2]*net.UDPConn
	defer func() {
		for _, s := range socks {
			if s != nil {
				s.Close()
			}
		}
	}()
	for i, n := range nodes {
		if socks[i], err = l.ListenUDP(n, netip.AddrPort{}); err != nil {
			return res, fmt.Errorf("punch: %w", err)
		}
	}
	var nonce [6]byte
	rand.Read(nonce[:])
	p := &puncher{nodes: nodes, nonce: hex.EncodeToString(nonce[:]), rv: rv, socks: socks, events: make(chan punchEvent, 16), done: make(chan struct{})}
	var wg sync.WaitGroup
	for i := range socks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.read(i)
		}()
	}
	// Stop the readers (closing the sockets ends their reads) before
	// returning: nothing of a punch outlives it.
	defer func() {
		close(p.done)
		for i, s := range socks {
			s.Close()
			socks[i] = nil
		}
		wg.Wait()
	}()

	// 1. Learn the mapped endpoints from the rendezvous.
	learned, err := p.learn(ctx, o.Interval)
	if err != nil {
		var missing []string
		for i, n := range nodes {
			if !learned[i].IsValid() {
				missing = append(missing, fmt.Sprintf("%q", n))
			}
		}
		if ctx.Err() != nil && len(missing) > 0 {
			if parent := context.Cause(ctx); errors.Is(parent, context.Canceled) {
				return res, fmt.Errorf("punch %s <-> %s: %w", a, b, parent)
			}
			return res, topo.BadInput(fmt.Errorf("punch: the echo service of %q (%s, udp) does not answer node %s within %s: is it reachable from both peers, and running?",
				o.Via, rv, strings.Join(missing, " nor "), o.Timeout))
		}
		if topo.IsBadInput(err) {
			return res, err
		}
		return res, fmt.Errorf("punch %s <-> %s: %w", a, b, err)
	}
	for i, s := range [2]*PunchSide{&res.A, &res.B} {
		s.Learned = learned[i]
		s.Local = localOf(socks[i].LocalAddr(), nodes[i], l, rv)
	}

	// 2. and 3. Exchange the endpoints and punch.
	var start [2]time.Duration
	switch o.First {
	case a:
		start[1] = o.Interval / 2
	case b:
		start[0] = o.Interval / 2
	}
	out := p.punch(ctx, [2][]netip.AddrPort{{learned[1]}, {learned[0]}}, start, o)
	res.Direct = out.received[0] && out.received[1]
	res.A.Received, res.B.Received = out.received[0], out.received[1]
	res.A.Seen, res.B.Seen = out.seen[0], out.seen[1]
	if out.first >= 0 {
		res.First = nodes[out.first]
	}
	res.Rounds = out.rounds
	res.Elapsed = time.Since(t0)
	if err := context.Cause(ctx); err != nil && errors.Is(err, context.Canceled) {
		return res, fmt.Errorf("punch %s <-> %s: %w", a, b, err)
	}
	return res, nil
}

// punchCheck checks the peers and options and picks the rendezvous; it
// returns the echo service's address.
func (l *Lab) punchCheck(a, b string, o *PunchOptions) (netip.AddrPort, error) {
	var none netip.AddrPort
	for _, name := range []string{a, b} {
		n := l.Plan.Node(name)
		if n == nil {
			return none, fmt.Errorf("punch: %w", l.Plan.UnknownNode(name))
		}
		if n.Kind != topo.KindHost {
			return none, topo.BadInput(fmt.Errorf("punch: node %q is a %s, not a host: punch between the hosts behind the gateways", name, n.Kind))
		}
	}
	if a == b {
		return none, topo.BadInput(fmt.Errorf("punch: node %q given twice: a hole punch needs two different hosts", a))
	}
	if o.First != "" && o.First != a && o.First != b {
		return none, topo.BadInput(fmt.Errorf("punch: the peer to send first, %q, is neither %q nor %q", o.First, a, b))
	}
	switch {
	case o.Rounds < 0:
		return none, topo.BadInput(fmt.Errorf("punch: rounds %d is negative", o.Rounds))
	case o.Interval < 0:
		return none, topo.BadInput(fmt.Errorf("punch: interval %s is negative", o.Interval))
	case o.Timeout < 0:
		return none, topo.BadInput(fmt.Errorf("punch: timeout %s is negative", o.Timeout))
	case o.Port < 0 || o.Port > 65535:
		return none, topo.BadInput(fmt.Errorf("punch: echo port %d is outside 1-65535", o.Port))
	}
	if o.Via == "" {
		var echo []string
		for _, n := range l.Plan.Nodes {
			if len(n.Echo) > 0 {
				echo = append(echo, n.Name)
			}
		}
		switch len(echo) {
		case 0:
			return none, topo.BadInput(fmt.Errorf("punch: no node of lab %q runs an echo service to meet at: add echo = [%d] to a node outside the NATs, or name one with via", l.Plan.Lab, topo.DefaultEchoPort))
		case 1:
			o.Via = echo[0]
		default:
			return none, topo.BadInput(fmt.Errorf("punch: nodes %s run echo services: say which to meet at (via)", strings.Join(echo, ", ")))
		}
	}
	v := l.Plan.Node(o.Via)
	switch {
	case v == nil:
		return none, topo.BadInput(fmt.Errorf("punch: lab %q has no node %q to meet at%s", l.Plan.Lab, o.Via, topo.Suggest(o.Via, l.Plan.NodeNames())))
	case o.Via == a || o.Via == b:
		return none, topo.BadInput(fmt.Errorf("punch: the rendezvous %q is one of the peers: meet at a third node", o.Via))
	case v.Kind == topo.KindSwitch:
		return none, topo.BadInput(fmt.Errorf("punch: node %q is a switch: it has no address to meet at", o.Via))
	case o.Port == 0 && len(v.Echo) == 0:
		return none, topo.BadInput(fmt.Errorf("punch: node %q runs no echo service: add echo = [%d] to it in the topology (or give the port of one started with nslab serve)", o.Via, topo.DefaultEchoPort))
	case o.Port == 0:
		o.Port = v.Echo[0]
	}
	rv, err := l.AddrOf(o.Via, 4, o.Port)
	if err != nil {
		return none, fmt.Errorf("punch: rendezvous: %w", err)
	}
	return rv, nil
}

// puncher is the state of one punch shared by its reader goroutines.
type puncher struct {
	nodes  [2]string
	nonce  string
	rv     netip.AddrPort
	socks  [2]*net.UDPConn
	events chan punchEvent
	done   chan struct{}
}

// punchEvent is a datagram one side's socket received.
type punchEvent struct {
	side    int // the receiving side
	from    netip.AddrPort
	learned netip.AddrPort // an answer of the echo service
	peer    int            // for a probe: the sending side
	ack     bool           // the probe answers one
}

const punchPrefix = "nslab-punch "

// read turns the datagrams of one side's socket into events until the
// socket is closed.
func (p *puncher) read(side int) {
	buf := make([]byte, 512)
	for {
		n, from, err := p.socks[side].ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		ev := punchEvent{side: side, from: from, peer: -1}
		msg := string(buf[:n])
		if from == p.rv {
			var r ProbeResult
			if parseEcho(&r, msg) != nil {
				continue
			}
			ev.learned = r.Observed
		} else {
			f := strings.Fields(strings.TrimPrefix(msg, punchPrefix))
			if !strings.HasPrefix(msg, punchPrefix) || len(f) != 3 || f[0] != p.nonce {
				continue // not ours: an old punch, or something else
			}
			switch f[1] {
			case "a":
				ev.peer = 0
			case "b":
				ev.peer = 1
			}
			if ev.peer != 1-side {
				continue
			}
			ev.ack = f[2] == "ack"
		}
		select {
		case p.events <- ev:
		case <-p.done:
			return
		}
	}
}

// learn asks the rendezvous for each side's mapped endpoint, again every
// interval, until both answered.
func (p *puncher) learn(ctx context.Context, interval time.Duration) ([2]netip.AddrPort, error) {
	var learned [2]netip.AddrPort
	ask := func() error {
		for i, s := range p.socks {
			if learned[i].IsValid() {
				continue
			}
			if _, err := s.WriteToUDPAddrPort([]byte(probeHello), p.rv); err != nil {
				return topo.BadInput(fmt.Errorf("punch: node %q cannot reach the rendezvous's echo service at %s: %w", p.nodes[i], p.rv, err))
			}
		}
		return nil
	}
	if err := ask(); err != nil {
		return learned, err
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for !learned[0].IsValid() || !learned[1].IsValid() {
		select {
		case <-ctx.Done():
			return learned, ctx.Err()
		case <-tick.C:
			if err := ask(); err != nil {
				return learned, err
			}
		case ev := <-p.events:
			if ev.learned.IsValid() && !learned[ev.side].IsValid() {
				learned[ev.side] = ev.learned
			}
		}
	}
	return learned, nil
}

type punchOutcome struct {
	received [2]bool
	seen     [2]netip.AddrPort // side i as the other side saw it
	first    int               // the side whose probe got through first, or -1
	rounds   int
}

// punch sends each side's rounds to its targets (starting at start[side])
// and answers what arrives, until both sides have received or the rounds
// are over and two more intervals passed.
func (p *puncher) punch(ctx context.Context, targets [2][]netip.AddrPort, start [2]time.Duration, o PunchOptions) punchOutcome {
	out := punchOutcome{first: -1}
	names := [2]string{"a", "b"}
	send := func(side int, to netip.AddrPort, ack bool) {
		kind := "probe"
		if ack {
			kind = "ack"
		}
		// A send can fail (an ICMP error of an earlier probe); the next
		// round tries again.
		p.socks[side].WriteToUDPAddrPort([]byte(punchPrefix+p.nonce+" "+names[side]+" "+kind), to)
	}
	t0 := time.Now()
	var sent [2]int
	next := func(side int) time.Time { return t0.Add(start[side] + time.Duration(sent[side])*o.Interval) }
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		now := time.Now()
		for side := range 2 {
			for sent[side] < o.Rounds && !next(side).After(now) {
				for _, to := range targets[side] {
					send(side, to, false)
				}
				sent[side]++
			}
		}
		out.rounds = max(sent[0], sent[1])
		if out.received[0] && out.received[1] {
			return out
		}
		wake := t0.Add(max(start[0], start[1]) + time.Duration(o.Rounds+1)*o.Interval) // the end
		for side := range 2 {
			if sent[side] < o.Rounds && next(side).Before(wake) {
				wake = next(side)
			}
		}
		if !wake.After(now) {
			return out
		}
		timer.Reset(wake.Sub(now))
		select {
		case <-ctx.Done():
			return out
		case <-timer.C:
		case ev := <-p.events:
			if ev.peer < 0 {
				continue // a late answer of the rendezvous
			}
			if !out.received[ev.side] {
				out.received[ev.side] = true
				out.seen[ev.peer] = ev.from
				if out.first < 0 {
					out.first = ev.peer
				}
			}
			if !ev.ack {
				send(ev.side, ev.from, true)
			}
			if !slices.Contains(targets[ev.side], ev.from) {
				targets[ev.side] = append(targets[ev.side], ev.from) // peer-reflexive
			}
		}
	}
}
