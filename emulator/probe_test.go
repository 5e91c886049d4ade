package emulator

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPingWaves(t *testing.T) {
	for _, tc := range []struct {
		n, room int
		waves   int // expected number of waves; -1: do not check
	}{
		{n: 0, room: 100, waves: 0},
		{n: 1, room: 0, waves: 1},
		{n: 2, room: 2, waves: 1},
		{n: 2, room: 1, waves: 2},
		{n: 50, room: 1 << 20, waves: 1},
		{n: 50, room: 2450, waves: 1},
		{n: 50, room: 2449, waves: -1},
		{n: 50, room: 960, waves: -1}, // what gc_thresh3 = 1024 leaves
		{n: 50, room: 10, waves: 49},  // one source per wave, two at the end
		{n: 1000, room: 960, waves: -1},
	} {
		t.Run(fmt.Sprintf("n=%d,room=%d", tc.n, tc.room), func(t *testing.T) {
			w := pingWaves(tc.n, tc.room)
			if tc.waves >= 0 {
				assert.Len(t, w, tc.waves)
			}
			next := 0
			for _, wave := range w {
				require.Equal(t, next, wave[0], "waves are contiguous")
				require.Greater(t, wave[1], wave[0], "no empty wave")
				entries := 0
				for a := wave[0]; a < wave[1]; a++ {
					entries += 2 * (tc.n - 1 - a) // a's entries for later nodes, theirs for a
				}
				if wave[1]-wave[0] > 1 { // one source alone may exceed the room
					assert.LessOrEqual(t, entries, tc.room, "wave %v adds %d entries", wave, entries)
				}
				next = wave[1]
			}
			assert.Equal(t, tc.n, next, "every source is in a wave")
		})
	}
}
