package tests

import (
	"context"
	"fmt"
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
			base, err := netnsObjects()
			require.NoError(t, err)
			defer waitNetnsObjects(t, base)
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
			// Three echo requests a pair, 300 ms apart: on a segment of
			// 10,000 hosts an ARP request is 10,000 copies, and twenty
			// hosts resolving each other at once wait for the kernel's
			// second ARP try (a second later) as on a busy real LAN.
			m, err := lab.PingAll(ctx, tc.sample(plan), emulator.PingOptions{Count: 3, Interval: 300 * time.Millisecond, Timeout: 2 * time.Second})
			require.NoError(t, err)
			probes, ok := m.Counts()
			require.Equal(t, probes, ok, "every pair of the sample answers")
			lost := 0
			for i := range m.Results {
				for _, r := range m.Results[i] {
					if r != nil {
						lost += r.Sent - r.Received
					}
				}
			}
			t.Logf("%s: %d pairs answered, %d of %d echo requests lost", tc.spec, ok, lost, 3*probes)
			t1 := time.Now()
			downed = true
			require.NoError(t, lab.Down())
			t.Logf("%s: up %v, down %v", tc.spec, up.Round(time.Millisecond), time.Since(t1).Round(time.Millisecond))
			left, _ := filepath.Glob("/run/netns/" + name + ".*")
			require.Empty(t, left)
			ents, _ := os.ReadDir("/run/nslab")
			for _, e := range ents {
				require.False(t, strings.HasPrefix(e.Name(), name), "left %s", e.Name())
			}
		})
	}
}
