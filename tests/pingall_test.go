package tests

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/topo"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPingAllWaves runs a matrix that needs more neighbour entries than it
// may add at once (the kernel's table is shared by the whole machine), so
// it runs in waves: every pair is still probed, the lab never holds more
// entries than allowed, and every entry a wave added is gone afterwards.
func TestPingAllWaves(t *testing.T) {
	t.Parallel()
	top, err := topo.Generate("single,24", uniqueName("waves"))
	require.NoError(t, err)
	lab := startLab(t, top, emulator.Options{})
	var hosts []string
	for _, n := range lab.Plan.Nodes {
		if n.Kind == topo.KindHost {
			hosts = append(hosts, n.Name)
		}
	}
	entries := func() int {
		total := 0
		for _, h := range hosts {
			ns, err := lab.Neighbours(h)
			require.NoError(t, err)
			total += len(ns)
		}
		return total
	}
	require.Zero(t, entries(), "a new lab has no neighbour entries")

	// One source alone needs an entry for every other node and one at
	// each of them: with less room than that, PingAll says so and probes
	// nothing (rather than report the pairs the kernel dropped as down).
	_, err = lab.PingAll(context.Background(), nil, emulator.PingOptions{NeighbourRoom: 40})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "needs room for 46 neighbour entries")
	assert.Contains(t, err.Error(), "raise that limit")
	require.Zero(t, entries(), "nothing was probed")

	const room = 150 // 24 hosts need 552 in one wave
	var peak atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			if n := int64(entries()); n > peak.Load() {
				peak.Store(n)
			}
		}
	}()
	m, err := lab.PingAll(context.Background(), nil, emulator.PingOptions{NeighbourRoom: room})
	close(done)
	wg.Wait()
	require.NoError(t, err)
	probes, ok := m.Counts()
	assert.Equal(t, 24*23, probes)
	assert.Equal(t, 24*23, ok, "every pair answered:\n%s", m)
	assert.LessOrEqual(t, peak.Load(), int64(room), "entries held at once")
	assert.Greater(t, peak.Load(), int64(0), "the sampler saw the waves' entries")
	assert.Zero(t, entries(), "every entry the waves added was removed")
}
