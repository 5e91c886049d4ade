package tests

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/topo"
	"github.com/stretchr/testify/require"
)

// A build cancelled at the start of any phase rolls back every phase it
// started and nothing else is needed: no namespace, no state directory,
// no host end, no process and no mount is left. The lab has a part for
// every phase: NAT gateways (nftables), switches (bridges), a host
// attachment, an echo service and a start command (services), hostnames
// and the hosts file. Not cancelled, the same lab comes up.
func TestCancelAtEachPhaseRollsBack(t *testing.T) {
	t.Parallel()
	for i, at := range []string{"namespaces", "links", "addresses", "ready", "etc", "never"} {
		t.Run(at, func(t *testing.T) {
			t.Parallel()
			hostPath := standInHost(t)
			top := loadTopology(t, "p2p.toml")
			ifname := fmt.Sprintf("nt%sp%d", tag, i)
			top.Host = &topo.HostSpec{Node: "internet", Interface: ifname, Addresses: []string{"203.0.113.100/24"}}
			for j := range top.Nodes {
				if top.Nodes[j].Name == "bob" {
					top.Nodes[j].Start = []string{"sleep 60"}
				}
			}
			plan, err := topo.Resolve(top)
			require.NoError(t, err)

			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var seen []string
			opts := emulator.Options{HostNetns: hostPath, Progress: func(p emulator.Progress) {
				if len(seen) == 0 || seen[len(seen)-1] != p.Phase {
					seen = append(seen, p.Phase)
				}
				if p.Phase == at {
					cancel()
				}
			}}
			lab, err := emulator.Up(ctx, plan, opts)
			if at == "never" {
				require.NoError(t, err)
				require.Equal(t, []string{"namespaces", "links", "addresses", "ready", "etc", "up"}, seen, "the progress phases, in order")
				reach(t, lab, "alice", "rendezvous", true)
				require.NoError(t, lab.Down())
			} else {
				if err == nil {
					lab.Down()
				}
				require.ErrorIs(t, err, context.Canceled, "cancelled at %q", at)
			}

			ents, _ := os.ReadDir(netnsDir())
			for _, e := range ents {
				require.False(t, strings.HasPrefix(e.Name(), top.Name+"."), "left behind: namespace %s", e.Name())
			}
			_, err = os.Stat(filepath.Join(stateDir(), top.Name))
			require.True(t, os.IsNotExist(err), "left behind: the lab's state directory")
			out, err := inNetns(hostPath, "ip", "-o", "link", "show", "dev", ifname).CombinedOutput()
			require.Error(t, err, "left behind: the host end %s", out)
			mounts, err := os.ReadFile("/proc/thread-self/mountinfo")
			require.NoError(t, err)
			require.NotContains(t, string(mounts), top.Name, "left behind: a mount")
			procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
			for _, p := range procs {
				data, _ := os.ReadFile(p)
				require.False(t, bytes.Contains(data, []byte(top.Name)), "left behind: process %s: %q", p, data)
			}
		})
	}
}

// The engine calls Options.Progress one call at a time, with Done never
// going back, although its workers count the steps at once: building
// (two workers) and tearing down (sixteen namespaces released at once).
func TestProgressOneCallAtATime(t *testing.T) {
	t.Parallel()
	plan, err := topo.Generate("single,80", uniqueName("prog"))
	require.NoError(t, err)
	resolved, err := topo.Resolve(plan)
	require.NoError(t, err)
	var inside, overlaps atomic.Int32
	var calls, backwards int
	last := -1
	phases := map[string]bool{}
	opts := emulator.Options{Progress: func(p emulator.Progress) {
		if inside.Add(1) > 1 {
			overlaps.Add(1)
		}
		time.Sleep(200 * time.Microsecond) // long enough for another worker to come in
		calls++
		if p.Done < last {
			backwards++
		}
		last = p.Done
		phases[p.Phase] = true
		inside.Add(-1)
	}}
	lab, err := emulator.Up(context.Background(), resolved, opts)
	require.NoError(t, err)
	last = -1
	require.NoError(t, lab.Down())
	require.Zero(t, overlaps.Load(), "calls overlapped")
	require.Zero(t, backwards, "Done went back")
	require.Greater(t, calls, 10)
	require.True(t, phases["links"] && phases["namespaces"], "phases reported: %v", phases)
}
