package emulator

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// iperfConnectTimeout bounds the TCP handshake (and the wait for it).
const iperfConnectTimeout = 3 * time.Second

// udpDrain is how long the UDP receiver waits for more datagrams after the
// last one, once the sender has finished: the queues on the way empty.
const udpDrain = 250 * time.Millisecond

// Iperf measures the throughput from one node to another, in process as
// the other probes are: a receiver listens on to's first address of the
// family (as Ping picks it), a sender in from sends to it for o.Duration,
// and the receiver counts what arrives. TCP reports the retransmissions
// and round-trip time the sender's kernel counted (TCP_INFO); UDP sends at
// o.Rate and reports loss and RFC 3550 jitter. Both sockets are opened
// inside their node's namespace, through the node's handle; no iperf
// binary is needed. An error says the probe could not run (bad input, a
// node that cannot be reached: the TCP connection refused or timed out);
// a UDP probe whose datagrams all got lost is a result with no bytes.
func (l *Lab) Iperf(ctx context.Context, from, to string, o IperfOptions) (IperfResult, error) {
	o, err := o.withDefaults()
	if err != nil {
		return IperfResult{}, err
	}
	_, _, target, err := l.pingTarget(from, to, PingOptions{Family: o.Family})
	if err != nil {
		return IperfResult{}, err
	}
	src, err := l.node(from)
	if err != nil {
		return IperfResult{}, err
	}
	dst, err := l.node(to)
	if err != nil {
		return IperfResult{}, err
	}
	res := IperfResult{From: from, To: to, Proto: o.Proto}
	if o.Proto == "udp" {
		err = iperfUDP(ctx, src, dst, target, o, &res)
	} else {
		err = iperfTCP(ctx, src, dst, target, o, &res)
	}
	if err != nil {
		return res, fmt.Errorf("iperf %s from node %q to node %q (%s): %w", o.Proto, from, to, res.Target, err)
	}
	if res.Duration > 0 {
		res.Goodput = float64(res.Bytes) * 8 / res.Duration.Seconds()
	}
	return res, nil
}

// closeOnDone closes every closer when ctx is done, until stop is called.
func closeOnDone(ctx context.Context, closers ...interface{ Close() error }) (stop func() bool) {
	return context.AfterFunc(ctx, func() {
		for _, c := range closers {
			c.Close()
		}
	})
}

func iperfTCP(ctx context.Context, src, dst *nodeHandle, target netip.Addr, o IperfOptions, res *IperfResult) error {
	var ln *net.TCPListener
	err := dst.do(func() (err error) {
		ln, err = net.ListenTCP("tcp", &net.TCPAddr{IP: target.AsSlice(), Port: o.Port, Zone: target.Zone()})
		return err
	})
	if err != nil {
		return fmt.Errorf("listen in node %q: %w", dst.node.Name, err)
	}
	defer ln.Close()
	res.Target = ln.Addr().(*net.TCPAddr).AddrPort()
	res.Target = netip.AddrPortFrom(res.Target.Addr().Unmap(), res.Target.Port())

	// The receiver: accept one connection, count what arrives for
	// o.Duration from then.
	type received struct {
		bytes uint64
		took  time.Duration
		err   error
	}
	got := make(chan received, 1)
	connectBy := time.Now().Add(iperfConnectTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(connectBy) {
		connectBy = d
	}
	ln.SetDeadline(connectBy)
	stopLn := closeOnDone(ctx, ln)
	defer stopLn()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ln.AcceptTCP()
		if err != nil {
			got <- received{err: fmt.Errorf("accept: %w", err)}
			return
		}
		defer c.Close()
		stop := closeOnDone(ctx, c)
		defer stop()
		start := time.Now()
		end := start.Add(o.Duration)
		c.SetReadDeadline(end)
		buf := make([]byte, 256<<10)
		var r received
		for {
			n, err := c.Read(buf)
			r.bytes += uint64(n)
			if err != nil {
				break // the deadline, or the sender gone
			}
		}
		r.took = min(time.Since(start), o.Duration)
		got <- r
	}()
	defer wg.Wait()

	var c *net.TCPConn
	err = src.do(func() error {
		d := net.Dialer{Deadline: connectBy}
		nc, err := d.DialContext(ctx, "tcp", res.Target.String())
		if err != nil {
			return err
		}
		c = nc.(*net.TCPConn)
		return nil
	})
	if err != nil {
		ln.Close() // the receiver stops waiting
		return fmt.Errorf("connect: %w", err)
	}
	defer c.Close()
	stop := closeOnDone(ctx, c)
	defer stop()

	// The sender: write until o.Duration is over. The receiver's time
	// starts a little later (when the handshake's last ACK arrives) and
	// the queues on the way hold data, so it has data to count to its end.
	c.SetWriteDeadline(time.Now().Add(o.Duration))
	buf := make([]byte, 128<<10)
	for {
		if _, err := c.Write(buf); err != nil {
			break
		}
	}
	r := <-got
	if info, err := tcpInfo(c); err == nil {
		res.Retransmits = info.Total_retrans
		res.RTT = time.Duration(info.Rtt) * time.Microsecond
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if r.err != nil {
		return r.err
	}
	res.Bytes, res.Duration = r.bytes, r.took
	return nil
}

// tcpInfo reads the kernel's TCP_INFO of a connection.
func tcpInfo(c *net.TCPConn) (*unix.TCPInfo, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var info *unix.TCPInfo
	var serr error
	if err := rc.Control(func(fd uintptr) {
		info, serr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil {
		return nil, err
	}
	return info, serr
}

// A UDP probe's datagram starts with its sequence number and the time it
// was sent, in nanoseconds since the probe began (one clock: the sender
// and the receiver are this process).
const udpHeader = 16

func iperfUDP(ctx context.Context, src, dst *nodeHandle, target netip.Addr, o IperfOptions, res *IperfResult) error {
	res.Rate = o.Rate
	var rc, sc *net.UDPConn
	err := dst.do(func() (err error) {
		rc, err = net.ListenUDP("udp", &net.UDPAddr{IP: target.AsSlice(), Port: o.Port, Zone: target.Zone()})
		return err
	})
	if err != nil {
		return fmt.Errorf("listen in node %q: %w", dst.node.Name, err)
	}
	defer rc.Close()
	la := rc.LocalAddr().(*net.UDPAddr).AddrPort()
	res.Target = netip.AddrPortFrom(la.Addr().Unmap(), la.Port())
	err = src.do(func() (err error) {
		sc, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(res.Target))
		return err
	})
	if err != nil {
		return fmt.Errorf("open a socket in node %q: %w", src.node.Name, err)
	}
	defer sc.Close()
	stop := closeOnDone(ctx, rc, sc)
	defer stop()

	t0 := time.Now()
	var sent int
	var sendErr error
	finished := make(chan struct{}) // closed when the sender is done
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(finished)
		sent, sendErr = sendUDP(ctx, sc, t0, o)
	}()

	// The receiver, here: count distinct datagrams, the payload, the
	// jitter; stop udpDrain after the last one once the sender is done.
	seen := map[uint64]bool{}
	var j jitter
	var last time.Time
	buf := make([]byte, 64<<10)
recv:
	for {
		rc.SetReadDeadline(time.Now().Add(udpDrain))
		n, err := rc.Read(buf)
		now := time.Now()
		if err != nil {
			if ctx.Err() != nil || !errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			select {
			case <-finished:
				break recv // nothing more for udpDrain, and nothing more to come
			default:
				continue // the sender is still at it (and its datagrams lost)
			}
		}
		if n < udpHeader {
			continue
		}
		seq := binary.BigEndian.Uint64(buf)
		if seen[seq] {
			continue // a duplicate
		}
		seen[seq] = true
		res.Bytes += uint64(n)
		j.add(now.Sub(t0) - time.Duration(binary.BigEndian.Uint64(buf[8:])))
		last = now
	}
	stop()
	sc.Close() // the sender stops, if the receiver ended first
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if sendErr != nil {
		return fmt.Errorf("send: %w", sendErr)
	}
	res.Sent, res.Received = sent, len(seen)
	res.Lost = max(0, sent-len(seen))
	if sent > 0 {
		res.LossPct = 100 * float64(res.Lost) / float64(sent)
	}
	res.Jitter = j.value()
	if !last.IsZero() {
		res.Duration = last.Sub(t0)
	}
	return nil
}

// sendUDP sends datagrams of UDPPayload bytes at o.Rate for o.Duration,
// paced against the clock (a late sender catches up at once).
func sendUDP(ctx context.Context, c *net.UDPConn, t0 time.Time, o IperfOptions) (int, error) {
	buf := make([]byte, UDPPayload)
	interval := time.Duration(float64(UDPPayload*8) / float64(o.Rate) * float64(time.Second))
	sent := 0
	// A sender whose own interface is the bottleneck is held back by its
	// socket's buffer (the kernel's backpressure, as for iperf): it stops
	// at the end of its time all the same.
	c.SetWriteDeadline(t0.Add(o.Duration))
	for {
		at := time.Duration(sent) * interval
		if at >= o.Duration || time.Since(t0) >= o.Duration {
			return sent, nil
		}
		if wait := at - time.Since(t0); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return sent, nil
			case <-t.C:
			}
		}
		binary.BigEndian.PutUint64(buf, uint64(sent))
		binary.BigEndian.PutUint64(buf[8:], uint64(time.Since(t0)))
		if _, err := c.Write(buf); err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded) {
				return sent, nil
			}
			if errors.Is(err, unix.ECONNREFUSED) || errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.EHOSTUNREACH) || errors.Is(err, unix.ENETUNREACH) {
				sent++ // counted as sent and lost, as iperf does
				continue
			}
			return sent, err
		}
		sent++
	}
}
