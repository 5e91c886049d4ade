package tests

import (
	"context"
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
	// The entries are counted after each wave, before PingAll removes
	// them: no probe is in flight then, so the count is the wave's peak
	// (entries only grow during a wave). A sampler running beside the
	// waves would add one host's count from a wave to another's from the
	// next, and see more than was ever held at once.
	var peaks []int
	var last int
	m, err := lab.PingAll(context.Background(), nil, emulator.PingOptions{NeighbourRoom: room, Progress: func(done, total int) {
		assert.Equal(t, 24*23, total)
		assert.Greater(t, done, last, "progress grows")
		last = done
		peaks = append(peaks, entries())
	}})
	require.NoError(t, err)
	probes, ok := m.Counts()
	assert.Equal(t, 24*23, probes)
	assert.Equal(t, 24*23, ok, "every pair answered:\n%s", m)
	assert.Equal(t, 24*23, last, "the last wave reports every probe done")
	assert.Greater(t, len(peaks), 3, "the matrix ran in waves: %v", peaks)
	for i, p := range peaks {
		assert.LessOrEqual(t, p, room, "entries held by wave %d", i)
		assert.Greater(t, p, 0, "wave %d added entries", i)
	}
	assert.Zero(t, entries(), "every entry the waves added was removed")
}
