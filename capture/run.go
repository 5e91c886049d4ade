package capture

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// Reader is one interface's source of packets: a Source on Linux.
type Reader interface {
	// ReadPacket reads the next packet into buf, blocking until one
	// comes; io.EOF after Stop, once the packets queued before it are read.
	ReadPacket(buf []byte) (Packet, error)
	// Stop makes ReadPacket return what is queued, then io.EOF.
	Stop()
	// Stats reads the kernel's counters.
	Stats() (Stats, error)
}

// RunOptions bound a capture.
type RunOptions struct {
	// Count stops the capture after this many packets (0: no limit).
	Count int
	// SnapLen is the size of each read buffer (DefaultSnapLen if 0).
	SnapLen int
}

// Result is what a capture saw: the packets written to the sink, and
// each interface's kernel counters.
type Result struct {
	Packets int
	Stats   []Stats
}

// Received is the packets the filters accepted, on all interfaces.
func (r Result) Received() uint64 {
	var n uint64
	for _, s := range r.Stats {
		n += s.Received
	}
	return n
}

// Dropped is the packets the kernel dropped, on all interfaces.
func (r Result) Dropped() uint64 {
	var n uint64
	for _, s := range r.Stats {
		n += s.Dropped
	}
	return n
}

// String is the closing report, as tcpdump's.
func (r Result) String() string {
	return fmt.Sprintf("%d %s captured, %d received by filter, %d dropped by kernel",
		r.Packets, plural(r.Packets, "packet"), r.Received(), r.Dropped())
}

func plural(n int, w string) string {
	if n == 1 {
		return w
	}
	return w + "s"
}

// orderWindow is how long packets from several interfaces are held to be
// written in the order of their timestamps: the readers of different
// interfaces are goroutines that the scheduler may run a little late.
const orderWindow = 20 * time.Millisecond

// Run reads every reader into sink until ctx is done, Count packets are
// written, or a reader or the sink fails; then it stops the readers,
// writes what they had queued, and closes the sink with their counters.
// Packets of reader i carry Iface i. With several readers, packets are
// held for a few milliseconds and written in the order of their kernel
// timestamps, as from one socket. The readers are the caller's to close.
func Run(ctx context.Context, readers []Reader, sink Sink, o RunOptions) (Result, error) {
	snap := o.SnapLen
	if snap == 0 {
		snap = DefaultSnapLen
	}
	var (
		mu      sync.Mutex // held to write to sink, count, and order
		res     Result
		firstMu sync.Mutex
		first   error
		once    sync.Once
	)
	stopAll := func() {
		once.Do(func() {
			for _, r := range readers {
				r.Stop()
			}
		})
	}
	fail := func(err error) {
		firstMu.Lock()
		if first == nil {
			first = err
		}
		firstMu.Unlock()
		stopAll()
	}
	// write writes one packet, mu held; past Count it drops it.
	write := func(p Packet) error {
		if o.Count > 0 && res.Packets >= o.Count {
			return nil
		}
		if err := sink.WritePacket(p); err != nil {
			return err
		}
		res.Packets++
		if o.Count > 0 && res.Packets >= o.Count {
			stopAll()
		}
		return nil
	}
	var ord *orderer
	if len(readers) > 1 {
		ord = &orderer{write: write}
	}
	stopCtx := context.AfterFunc(ctx, stopAll)
	defer stopCtx()
	tickDone := make(chan struct{})
	tickStop := make(chan struct{})
	if ord != nil {
		go func() {
			defer close(tickDone)
			t := time.NewTicker(orderWindow / 4)
			defer t.Stop()
			for {
				select {
				case <-tickStop:
					return
				case <-t.C:
					mu.Lock()
					err := ord.flush(time.Now().Add(-orderWindow))
					mu.Unlock()
					if err != nil {
						fail(err)
					}
				}
			}
		}()
	} else {
		close(tickDone)
	}
	var wg sync.WaitGroup
	for i, r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, snap)
			for {
				p, err := r.ReadPacket(buf)
				if errors.Is(err, io.EOF) {
					return
				}
				if err != nil {
					fail(fmt.Errorf("read interface %d: %w", i, err))
					return
				}
				p.Iface = i
				mu.Lock()
				if ord != nil {
					ord.push(p)
				} else {
					err = write(p)
				}
				mu.Unlock()
				if err != nil {
					fail(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(tickStop)
	<-tickDone
	if ord != nil {
		mu.Lock()
		if err := ord.flush(time.Time{}); err != nil {
			fail(err)
		}
		mu.Unlock()
	}
	res.Stats = make([]Stats, len(readers))
	for i, r := range readers {
		s, err := r.Stats()
		if err != nil && first == nil {
			first = fmt.Errorf("statistics of interface %d: %w", i, err)
		}
		res.Stats[i] = s
	}
	if err := sink.Close(res.Stats); err != nil && first == nil {
		first = err
	}
	return res, first
}

// orderer holds packets of several interfaces and writes them in the
// order of their timestamps (then of their arrival).
type orderer struct {
	h     packetHeap
	seq   uint64
	write func(Packet) error
}

type heldPacket struct {
	p   Packet
	seq uint64
}

type packetHeap []heldPacket

func (h packetHeap) Len() int { return len(h) }
func (h packetHeap) Less(i, j int) bool {
	if !h[i].p.Time.Equal(h[j].p.Time) {
		return h[i].p.Time.Before(h[j].p.Time)
	}
	return h[i].seq < h[j].seq
}
func (h packetHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *packetHeap) Push(x any)   { *h = append(*h, x.(heldPacket)) }
func (h *packetHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// push holds a copy of p (its data is the reader's buffer).
func (o *orderer) push(p Packet) {
	p.Data = append([]byte(nil), p.Data...)
	o.seq++
	heap.Push(&o.h, heldPacket{p, o.seq})
}

// flush writes the packets stamped at or before until (all of them for
// the zero time), oldest first.
func (o *orderer) flush(until time.Time) error {
	for o.h.Len() > 0 && (until.IsZero() || !o.h[0].p.Time.After(until)) {
		hp := heap.Pop(&o.h).(heldPacket)
		if err := o.write(hp.p); err != nil {
			return err
		}
	}
	return nil
}

// Until is a context that ends after d (no limit if d is 0), or with ctx.
func Until(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}
