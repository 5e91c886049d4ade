package capture

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeReader gives its packets, then waits for Stop.
type fakeReader struct {
	mu      sync.Mutex
	pkts    []Packet
	stopped chan struct{}
	once    sync.Once
	delay   time.Duration
}

func newFake(delay time.Duration, times ...time.Time) *fakeReader {
	r := &fakeReader{stopped: make(chan struct{}), delay: delay}
	for _, t := range times {
		r.pkts = append(r.pkts, Packet{Time: t, Data: packets["udp4"], Length: len(packets["udp4"])})
	}
	return r
}

func (r *fakeReader) ReadPacket(buf []byte) (Packet, error) {
	r.mu.Lock()
	if len(r.pkts) > 0 {
		p := r.pkts[0]
		r.pkts = r.pkts[1:]
		r.mu.Unlock()
		time.Sleep(r.delay)
		p.Data = buf[:copy(buf, p.Data)]
		return p, nil
	}
	r.mu.Unlock()
	<-r.stopped
	return Packet{}, io.EOF
}

func (r *fakeReader) Stop()                 { r.once.Do(func() { close(r.stopped) }) }
func (r *fakeReader) Stats() (Stats, error) { return Stats{Received: 3, Dropped: 1}, nil }

type recordSink struct {
	got    []Packet
	closed []Stats
	failAt int
}

func (s *recordSink) WritePacket(p Packet) error {
	if s.failAt > 0 && len(s.got)+1 == s.failAt {
		return errors.New("disk full")
	}
	p.Data = append([]byte(nil), p.Data...)
	s.got = append(s.got, p)
	return nil
}

func (s *recordSink) Close(st []Stats) error { s.closed = st; return nil }

// Packets of several interfaces come out in the order of their
// timestamps, even when one interface's reader runs late; Count stops the
// capture; the sink is closed with every interface's counters.
func TestRunOrdersAndCounts(t *testing.T) {
	for _, tc := range []struct {
		name  string
		count int
		want  []int // interfaces, in the order written
	}{
		{"all", 0, []int{1, 0, 1, 0, 1, 0}},
		{"count", 4, []int{1, 0, 1, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t0 := time.Now()
			at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
			late := newFake(2*time.Millisecond, at(2), at(4), at(6)) // interface 0, read late
			early := newFake(0, at(1), at(3), at(5))
			var s recordSink
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			res, err := Run(ctx, []Reader{late, early}, &s, RunOptions{Count: tc.count})
			require.NoError(t, err)
			var ifaces []int
			for i, p := range s.got {
				ifaces = append(ifaces, p.Iface)
				if i > 0 {
					require.False(t, p.Time.Before(s.got[i-1].Time), "in time order")
				}
			}
			require.Equal(t, tc.want, ifaces)
			require.Equal(t, len(tc.want), res.Packets)
			require.Equal(t, []Stats{{3, 1}, {3, 1}}, s.closed)
			require.Equal(t, uint64(2), res.Dropped())
			require.Equal(t, "4 packets captured, 6 received by filter, 2 dropped by kernel", Result{Packets: 4, Stats: s.closed}.String())
		})
	}
}

// A sink that fails ends the capture with its error.
func TestRunSinkFails(t *testing.T) {
	for _, n := range []int{1, 2} {
		var times []time.Time
		for i := 0; i < 3; i++ {
			times = append(times, time.Now())
		}
		readers := []Reader{newFake(0, times...)}
		if n == 2 {
			readers = append(readers, newFake(0, times...))
		}
		s := recordSink{failAt: 2}
		res, err := Run(context.Background(), readers, &s, RunOptions{})
		require.ErrorContains(t, err, "disk full")
		require.Equal(t, 1, res.Packets)
	}
}
