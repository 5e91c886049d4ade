package emulator

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nslab/nslab/internal/rtnl"
	"github.com/nslab/nslab/topo"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// icmpConn is a raw ICMP socket opened inside a node's namespace. Sockets
// keep the namespace they were created in, so after opening it is used from
// any goroutine: probes cost microseconds, not a fork of ping.
type icmpConn struct {
	c  *net.IPConn
	v6 bool
	id uint16
}

// openICMP opens a raw ICMP socket (IPv4 or IPv6) in the node's namespace.
func openICMP(h *nodeHandle, v6 bool) (*icmpConn, error) {
	fd := -1
	err := h.do(func() error {
		var serr error
		if v6 {
			fd, serr = unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.IPPROTO_ICMPV6)
		} else {
			fd, serr = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.IPPROTO_ICMP)
		}
		if serr != nil {
			fd = -1
			return fmt.Errorf("open raw ICMP socket (needs CAP_NET_RAW): %w", serr)
		}
		return nil
	})
	if err != nil {
		if fd >= 0 {
			unix.Close(fd) // opened, but the thread could not switch back
		}
		return nil, err
	}
	if !v6 {
		// Let only echo replies through: ICMP_FILTER blocks the types whose
		// bit is set.
		unix.SetsockoptInt(fd, unix.SOL_RAW, 1 /* ICMP_FILTER */, ^1)
	}
	f := os.NewFile(uintptr(fd), "icmp")
	pc, err := net.FilePacketConn(f)
	f.Close()
	if err != nil {
		return nil, err
	}
	return &icmpConn{c: pc.(*net.IPConn), v6: v6, id: uint16(rand.Uint32())}, nil
}

func (c *icmpConn) Close() { c.c.Close() }

func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// send sends one echo request with the given sequence number.
func (c *icmpConn) send(dst netip.Addr, seq uint16) error {
	b := make([]byte, 64)
	b[0] = 8 // echo request
	if c.v6 {
		b[0] = 128
	}
	binary.BigEndian.PutUint16(b[4:], c.id)
	binary.BigEndian.PutUint16(b[6:], seq)
	binary.BigEndian.PutUint64(b[8:], uint64(time.Now().UnixNano()))
	if !c.v6 {
		binary.BigEndian.PutUint16(b[2:], checksum(b))
	} // the kernel fills in the ICMPv6 checksum
	_, err := c.c.WriteToIP(b, &net.IPAddr{IP: dst.AsSlice()})
	return err
}

type reply struct {
	seq  uint16
	from netip.Addr
	at   time.Time
}

// recv returns the next echo reply with our identifier, until deadline.
func (c *icmpConn) recv(deadline time.Time) (reply, error) {
	buf := make([]byte, 1500)
	c.c.SetReadDeadline(deadline)
	for {
		n, from, err := c.c.ReadFromIP(buf)
		if err != nil {
			return reply{}, err
		}
		at := time.Now()
		b := buf[:n]
		if !c.v6 {
			if n < 20 {
				continue
			}
			hl := int(b[0]&0x0f) * 4
			if n < hl+8 {
				continue
			}
			b = b[hl:]
			if b[0] != 0 {
				continue
			}
		} else if n < 8 || b[0] != 129 {
			continue
		}
		if binary.BigEndian.Uint16(b[4:]) != c.id {
			continue
		}
		a, _ := netip.AddrFromSlice(from.IP)
		return reply{seq: binary.BigEndian.Uint16(b[6:]), from: a.Unmap(), at: at}, nil
	}
}

// pingTarget picks the address to ping and the family.
func (l *Lab) pingTarget(from, to string, o PingOptions) (src, dst *topo.Node, target netip.Addr, err error) {
	src, dst = l.Plan.Node(from), l.Plan.Node(to)
	for _, x := range []struct {
		name string
		n    *topo.Node
	}{{from, src}, {to, dst}} {
		if x.n == nil && (x.name != "" || !o.Target.IsValid() || x.n == src) {
			return nil, nil, target, l.Plan.UnknownNode(x.name)
		}
	}
	if src.Kind == topo.KindSwitch {
		return nil, nil, target, topo.BadInput(fmt.Errorf("node %q is a switch: it has no address to probe from", from))
	}
	if o.Target.IsValid() {
		return src, dst, o.Target, nil
	}
	if dst.Kind == topo.KindSwitch {
		return nil, nil, target, topo.BadInput(fmt.Errorf("node %q is a switch: it has no address to probe", to))
	}
	fams := []int{4, 6}
	if o.Family != 0 {
		fams = []int{o.Family}
	}
	for _, f := range fams {
		_, okS := src.FirstAddr(f)
		a, okD := dst.FirstAddr(f)
		if okS && okD {
			return src, dst, a, nil
		}
	}
	return nil, nil, target, topo.BadInput(fmt.Errorf("nodes %q and %q have no address family in common to probe", from, to))
}

// Ping sends ICMP echo requests from one node to another, in process:
// the socket is opened inside the source node's namespace and no ping
// binary is needed.
func (l *Lab) Ping(ctx context.Context, from, to string, o PingOptions) (PingResult, error) {
	o = o.withDefaults()
	_, _, target, err := l.pingTarget(from, to, o)
	if err != nil {
		return PingResult{}, err
	}
	h, err := l.node(from)
	if err != nil {
		return PingResult{}, err
	}
	l.icmp.mu.Lock()
	l.icmp.disabled = !l.owned
	l.icmp.mu.Unlock()
	c, err := l.icmp.get(from, h, target.Is6())
	if err != nil {
		return PingResult{}, fmt.Errorf("ping from node %q: %w", from, err)
	}
	defer l.icmp.put(from, c)
	return c.ping(ctx, from, to, target, o)
}

// icmpPool keeps the ICMP sockets of finished pings, per node and family,
// so that the next ping from the node does not open one again (which
// costs a namespace switch). A socket is used by one ping at a time; the
// pool is emptied when the lab goes down.
type icmpPool struct {
	mu       sync.Mutex
	idle     map[string][]*icmpConn
	done     bool
	disabled bool // no pooling: every ping opens and closes its socket
}

func poolKey(node string, v6 bool) string { return fmt.Sprintf("%s/%v", node, v6) }

func (p *icmpPool) get(node string, h *nodeHandle, v6 bool) (*icmpConn, error) {
	p.mu.Lock()
	k := poolKey(node, v6)
	if n := len(p.idle[k]); n > 0 && !p.done {
		c := p.idle[k][n-1]
		p.idle[k] = p.idle[k][:n-1]
		p.mu.Unlock()
		c.drain()
		return c, nil
	}
	p.mu.Unlock()
	return openICMP(h, v6)
}

func (p *icmpPool) put(node string, c *icmpConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.disabled || p.done || len(p.idle[poolKey(node, c.v6)]) >= 4 {
		c.Close()
		return
	}
	if p.idle == nil {
		p.idle = map[string][]*icmpConn{}
	}
	c.id++ // a new identifier: late replies to the last ping are not taken for this one's
	p.idle[poolKey(node, c.v6)] = append(p.idle[poolKey(node, c.v6)], c)
}

func (p *icmpPool) close() {
	p.mu.Lock()
	p.done = true
	p.mu.Unlock()
	p.closeIdle()
}

// closeIdle closes the idle sockets; the pool stays usable.
func (p *icmpPool) closeIdle() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, cs := range p.idle {
		for _, c := range cs {
			c.Close()
		}
	}
	p.idle = nil
}

// drain drops whatever arrived on the socket while it was idle.
func (c *icmpConn) drain() {
	c.c.SetReadDeadline(time.Now())
	buf := make([]byte, 1500)
	for {
		if _, _, err := c.c.ReadFromIP(buf); err != nil {
			return
		}
	}
}

func (c *icmpConn) ping(ctx context.Context, from, to string, target netip.Addr, o PingOptions) (PingResult, error) {
	res := PingResult{From: from, To: to, Target: target}
	sent := map[uint16]time.Time{}
	unsent := 0
	for i := 0; i < o.Count; i++ {
		if i > 0 && o.Interval > 0 {
			select {
			case <-ctx.Done():
				return res, ctx.Err()
			case <-time.After(o.Interval):
			}
		}
		seq := uint16(i + 1)
		sent[seq] = time.Now()
		if err := c.send(target, seq); err != nil {
			// No route and the like: the probe was made and failed.
			res.Sent++
			unsent++
			continue
		}
		res.Sent++
		// With an interval, collect this reply before the next request.
		if o.Interval > 0 {
			c.collect(&res, sent, time.Now().Add(o.Interval), 1)
		}
	}
	deadline := time.Now().Add(o.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if unsent < res.Sent { // when nothing left, no reply can come
		c.collect(&res, sent, deadline, res.Sent-res.Received)
	}
	res.finish()
	return res, nil
}

// collect reads replies until want more arrived or deadline passed.
func (c *icmpConn) collect(res *PingResult, sent map[uint16]time.Time, deadline time.Time, want int) {
	for got := 0; got < want; {
		r, err := c.recv(deadline)
		if err != nil {
			return
		}
		t0, ok := sent[r.seq]
		if !ok {
			continue
		}
		delete(sent, r.seq)
		res.Received++
		res.RTTs = append(res.RTTs, r.at.Sub(t0))
		res.Responder = r.from
		got++
	}
}

// PingAll probes every ordered pair of nodes (all hosts and routers when
// nodes is empty) concurrently, one echo request per pair by default, and
// returns the matrix.
func (l *Lab) PingAll(ctx context.Context, nodes []string, o PingOptions) (*Matrix, error) {
	o = o.withDefaults()
	if len(nodes) == 0 {
		for _, n := range l.Plan.Nodes {
			if n.Kind != topo.KindSwitch {
				nodes = append(nodes, n.Name)
			}
		}
	}
	m := &Matrix{Nodes: nodes, Results: make([][]*PingResult, len(nodes))}
	for i, a := range nodes {
		m.Results[i] = make([]*PingResult, len(nodes))
		for j, b := range nodes {
			if i == j {
				continue
			}
			if _, _, _, err := l.pingTarget(a, b, o); err != nil {
				return nil, err
			}
		}
	}
	// Every pair that talks needs a neighbour entry at both ends, and the
	// kernel's neighbour table is shared by all namespaces of the machine
	// (net.ipv4.neigh.default.gc_thresh3, 1024 by default): past it, new
	// entries fail and packets are dropped. So a big matrix runs in waves
	// of sources, each followed by removing the entries it made.
	//
	// Within a wave, each source a probes the nodes after it, and they
	// probe a back a moment later: a's ARP request has taught each of
	// them a's address by then, so a pair costs one broadcast, not two
	// sent at once. (Back probes start when the forward ones are done, or
	// after reverseDelay, whichever is first: a pair that does not answer
	// costs that delay, not a second timeout.)
	n := len(nodes)
	room := o.NeighbourRoom
	if room <= 0 {
		limit, used := neighBudget()
		room = limit - used - 64
	}
	if n > 1 && room < 2*(n-1) {
		return nil, fmt.Errorf("a matrix of %d nodes needs room for %d neighbour entries at once, and the machine's neighbour table has room for %d (net.ipv4.neigh.default.gc_thresh3 is machine-wide): raise that limit, or probe fewer nodes", n, 2*(n-1), max(room, 0))
	}
	plan := pingWaves(n, room)
	var sw *neighSweeper
	if len(plan) > 1 {
		var err error
		if sw, err = l.newNeighSweeper(nodes); err != nil {
			return nil, err
		}
	}
	done := 0
	for _, w := range plan {
		first, last := w[0], w[1]
		forwardDone := make(chan struct{})
		backErr := make(chan error, 1)
		go func() {
			select {
			case <-forwardDone:
			case <-time.After(reverseDelay):
			case <-ctx.Done():
			}
			backErr <- parallel(ctx, n-first-1, 64, func(k int) error {
				b := first + 1 + k
				return l.pingFrom(ctx, m, b, span(first, min(b, last)), o)
			})
		}()
		err := parallel(ctx, last-first, 8, func(k int) error {
			a := first + k
			return l.pingFrom(ctx, m, a, span(a+1, n), o)
		})
		close(forwardDone)
		if berr := <-backErr; err == nil {
			err = berr
		}
		if err == nil && o.Progress != nil {
			for a := first; a < last; a++ {
				done += 2 * (n - a - 1)
			}
			o.Progress(done, n*(n-1))
		}
		if sw != nil {
			if serr := sw.sweep(); serr != nil && err == nil {
				err = serr
			}
		}
		if err != nil {
			return nil, err
		}
	}
	return m, nil
}

// reverseDelay is how long PingAll's back probes wait for the forward ones
// of their wave at most: long enough for an ARP exchange on a lab link.
const reverseDelay = 20 * time.Millisecond

// neighBudget reads the machine-wide neighbour table limit and how many
// entries are in use (IPv4; the IPv6 table has the same default limit).
func neighBudget() (limit, used int) {
	limit = 1024
	if data, err := os.ReadFile("/proc/sys/net/ipv4/neigh/default/gc_thresh3"); err == nil {
		if v, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil {
			limit = v
		}
	}
	if data, err := os.ReadFile("/proc/net/stat/arp_cache"); err == nil {
		lines := strings.Split(string(data), "\n")
		if len(lines) > 1 {
			if f := strings.Fields(lines[1]); len(f) > 0 {
				if v, err := strconv.ParseInt(f[0], 16, 64); err == nil {
					used = int(v)
				}
			}
		}
	}
	return limit, used
}

// neighSweeper removes the neighbour entries that probe waves add to some
// nodes: it lists each node's entries once before the first wave, and
// after each wave deletes every entry that was not there then
// (`ip neigh del`), all of a node's in one write.
type neighSweeper struct {
	nodes  []*nodeHandle
	before []map[string]bool
}

func neighKey(n *netlink.Neigh) string { return fmt.Sprintf("%d/%s", n.LinkIndex, n.IP) }

func (l *Lab) newNeighSweeper(nodes []string) (*neighSweeper, error) {
	s := &neighSweeper{}
	for _, name := range nodes {
		h, err := l.node(name)
		if err != nil {
			return nil, err
		}
		s.nodes = append(s.nodes, h)
		var list []*netlink.Neigh
		err = h.route(func(c *rtnl.Conn) (err error) {
			list, err = c.NeighDump()
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("list neighbours of node %q: %w", name, err)
		}
		have := make(map[string]bool, len(list))
		for _, n := range list {
			have[neighKey(n)] = true
		}
		s.before = append(s.before, have)
	}
	return s, nil
}

// sweep deletes the entries added since the sweeper was made.
func (s *neighSweeper) sweep() error {
	var errs []error // a node that fails does not keep the others' entries
	for i, h := range s.nodes {
		name := h.node.Name
		err := h.route(func(c *rtnl.Conn) error {
			list, err := c.NeighDump()
			if err != nil {
				return fmt.Errorf("list neighbours of node %q: %w", name, err)
			}
			var del []*netlink.Neigh
			for _, n := range list {
				if !s.before[i][neighKey(n)] && n.State&netlink.NUD_PERMANENT == 0 {
					del = append(del, n)
				}
			}
			if err := c.NeighDel(del); err != nil {
				return fmt.Errorf("delete neighbours of node %q: %w", name, err)
			}
			return nil
		})
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// pingFrom probes from m.Nodes[i] to every other node at once, on one
// socket per family, telling replies apart by sequence number.
func (l *Lab) pingFrom(ctx context.Context, m *Matrix, i int, targets []int, o PingOptions) error {
	if len(targets) == 0 {
		return nil
	}
	from := m.Nodes[i]
	h, err := l.node(from)
	if err != nil {
		return err
	}
	conns := map[bool]*icmpConn{}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	var mu sync.Mutex
	bySeq := map[*icmpConn]map[uint16]*PingResult{}
	sentAt := map[*icmpConn]map[uint16]time.Time{}
	seq := uint16(0)
	for round := 0; round < o.Count; round++ {
		for _, j := range targets {
			to := m.Nodes[j]
			_, _, target, _ := l.pingTarget(from, to, o)
			c := conns[target.Is6()]
			if c == nil {
				if c, err = openICMP(h, target.Is6()); err != nil {
					return fmt.Errorf("ping from node %q: %w", from, err)
				}
				conns[target.Is6()] = c
				bySeq[c] = map[uint16]*PingResult{}
				sentAt[c] = map[uint16]time.Time{}
			}
			r := m.Results[i][j]
			if r == nil {
				r = &PingResult{From: from, To: to, Target: target}
				m.Results[i][j] = r
			}
			seq++
			mu.Lock()
			bySeq[c][seq] = r
			sentAt[c][seq] = time.Now()
			mu.Unlock()
			r.Sent++
			c.send(target, seq)
		}
		if o.Interval > 0 && round+1 < o.Count {
			time.Sleep(o.Interval)
		}
	}
	deadline := time.Now().Add(o.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func(c *icmpConn) {
			defer wg.Done()
			for len(sentAt[c]) > 0 {
				rep, err := c.recv(deadline)
				if err != nil {
					if errors.Is(err, os.ErrDeadlineExceeded) {
						return
					}
					return
				}
				mu.Lock()
				t0, ok := sentAt[c][rep.seq]
				r := bySeq[c][rep.seq]
				delete(sentAt[c], rep.seq)
				mu.Unlock()
				if !ok {
					continue
				}
				r.Received++
				r.RTTs = append(r.RTTs, rep.at.Sub(t0))
				r.Responder = rep.from
			}
		}(c)
	}
	wg.Wait()
	for _, j := range targets {
		if r := m.Results[i][j]; r != nil {
			r.finish()
		}
	}
	return nil
}

// span returns the indexes from lo up to, not including, hi.
func span(lo, hi int) []int {
	var s []int
	for i := lo; i < hi; i++ {
		s = append(s, i)
	}
	return s
}
