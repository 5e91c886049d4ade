package capture

import (
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

// Run reads every reader into sink until ctx is done, Count packets are
// written, or a reader or the sink fails; then it stops the readers,
// writes what they had queued, and closes the sink with their counters.
// Packets of reader i carry Iface i. The readers are the caller's to close.
func Run(ctx context.Context, readers []Reader, sink Sink, o RunOptions) (Result, error) {
	snap := o.SnapLen
	if snap == 0 {
		snap = DefaultSnapLen
	}
	var (
		mu      sync.Mutex
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
	stopCtx := context.AfterFunc(ctx, stopAll)
	defer stopCtx()
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
				if o.Count > 0 && res.Packets >= o.Count {
					mu.Unlock()
					stopAll()
					continue // drain what is queued, unwritten
				}
				err = sink.WritePacket(p)
				if err == nil {
					res.Packets++
				}
				done := o.Count > 0 && res.Packets >= o.Count
				mu.Unlock()
				if err != nil {
					fail(err)
					return
				}
				if done {
					stopAll()
				}
			}
		}()
	}
	wg.Wait()
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

// Until is a context that ends after d (no limit if d is 0), or with ctx.
func Until(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}
