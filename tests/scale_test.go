package tests

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/topo"
	"github.com/stretchr/testify/require"
)

// The big labs of issue 18: single,10000 (a switch of 10,000 ports, a
// chain of 21 bridges) and a k = 16 fat-tree (1,024 hosts, 320 routers)
// come up, answer a sampled pingall across the whole lab, and go away
// leaving nothing. Not parallel: each is most of the machine for a while.
func TestBigLabs(t *testing.T) {
	for _, tc := range []struct {
		spec   string
		sample func(p *topo.Plan) []string
	}{
		{"single,10000", func(*topo.Plan) []string {
			var s []string
			for i := 1; i <= 10000; i += 555 {
				s = append(s, fmt.Sprintf("h%d", i))
			}
			return append(s, "h10000")
		}},
		{"fattree,16", func(*topo.Plan) []string {
			var s []string
			for i := 1; i <= 1024; i += 73 {
				s = append(s, fmt.Sprintf("h%d", i))
			}
			return append(s, "h1024")
		}},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			// The kernel dismantles a big lab's namespaces for seconds after
			// Down returns, slowing every namespace made meanwhile: wait for
			// it, so that the tests after this one do not pay for it.
			// The kernel's count needs root to read: the rootless run
			// cannot wait, and make test-rootless runs this test last,
			// by itself (tests/rootless.sh).
			if base, err := netnsObjects(); !rootlessRun() || !errors.Is(err, fs.ErrPermission) {
				require.NoError(t, err)
				defer waitNetnsObjects(t, base)
			}
			name := uniqueName("big")
			top, err := topo.Generate(tc.spec, name)
			require.NoError(t, err)
			plan, err := topo.Resolve(top)
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			t0 := time.Now()
			lab, err := emulator.Up(ctx, plan, emulator.Options{})
			require.NoError(t, err)
			up := time.Since(t0)
			downed := false
			defer func() {
				if !downed {
					lab.Down()
				}
			}()
			// Every ordered pair of the sample, one pair at a time, two
			// echo requests each: on a segment of 10,000 hosts an ARP
			// request is 10,000 copies, and PingAll's concurrent floods
			// outran the CPU when other tests ran beside this one
			// (135 of 380 pairs in one CI run, all of them alone).
			sample := tc.sample(plan)
			pairs, answered, lost := 0, 0, 0
			for _, a := range sample {
				for _, b := range sample {
					if a == b {
						continue
					}
					r, err := lab.Ping(ctx, a, b, emulator.PingOptions{Count: 2, Interval: 20 * time.Millisecond, Timeout: 3 * time.Second})
					require.NoError(t, err)
					pairs++
					if r.Received > 0 {
						answered++
					}
					lost += r.Sent - r.Received
				}
			}
			t.Logf("%s: %d of %d pairs answered, %d of %d echo requests lost", tc.spec, answered, pairs, lost, 2*pairs)
			require.Equal(t, pairs, answered, "every pair of the sample answers")
			t1 := time.Now()
			downed = true
			require.NoError(t, lab.Down())
			t.Logf("%s: up %v, down %v", tc.spec, up.Round(time.Millisecond), time.Since(t1).Round(time.Millisecond))
			left, _ := filepath.Glob(netnsPath(name + ".*"))
			require.Empty(t, left)
			ents, _ := os.ReadDir(stateDir())
			for _, e := range ents {
				require.False(t, strings.HasPrefix(e.Name(), name), "left %s", e.Name())
			}
		})
	}
}
