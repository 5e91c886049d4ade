// Package nslabtestmain tests nslabtest.Main as a user's test package has
// it: the package's TestMain is the one line the docs give.
package nslabtestmain

import (
	"fmt"
	"net/netip"
	"os"
	"sync"
	"testing"

	"github.com/nslab/nslab/emulator/nslabtest"
	"github.com/nslab/nslab/topo"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { nslabtest.Main(m) }

// A topology's echo ports run nslab's echo service as this test binary
// started again inside the node: Main dispatches it, so the lab comes up
// and the rendezvous tells each peer the mapping it saw (its gateway's WAN
// address), whether the punch then connects them or not.
func TestMainDispatchesTheEchoService(t *testing.T) {
	t.Parallel()
	lab := nslabtest.StartFile(t, "../../topologies/p2p.toml")
	wan := func(gw string) netip.Addr {
		for _, i := range lab.Plan().Node(gw).Ifaces {
			if i.Name == "wan" {
				return i.Addrs[0].Addr()
			}
		}
		t.Fatalf("no wan interface on %s", gw)
		return netip.Addr{}
	}
	r := lab.Punch("alice", "bob", "rendezvous")
	require.Equal(t, wan("gw-a"), r.A.Learned.Addr(), "%s", r)
	require.Equal(t, wan("gw-b"), r.B.Learned.Addr(), "%s", r)
}

// Every program run in a node enters the node's namespaces on a thread
// that the runtime then discards; Main keeps the main thread out of that,
// so /proc/self (the main thread's view) still describes the machine after
// hundreds of them.
func TestMainKeepsTheMainThread(t *testing.T) {
	t.Parallel()
	names := []string{"net", "mnt", "uts"}
	read := func() map[string]string {
		m := map[string]string{}
		for _, ns := range names {
			link, err := os.Readlink("/proc/self/ns/" + ns)
			require.NoError(t, err)
			m[ns] = link
		}
		return m
	}
	before := read()
	for _, ns := range names {
		home, err := os.Readlink("/proc/thread-self/ns/" + ns)
		require.NoError(t, err)
		require.Equal(t, home, before[ns], "the test runs where the main thread is")
	}
	lab := nslabtest.Start(t, topo.NewBuilder("mainthread").Host("a").Host("b").Link("a", "b").Topology())
	engine := lab.Engine()
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				res, err := engine.Exec(t.Context(), "a", "true")
				if err == nil && res.ExitCode != 0 {
					err = fmt.Errorf("true exited %d: %s", res.ExitCode, res.Stderr)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	lab.RequireReachable("a", "b")
	require.Equal(t, before, read(), "/proc/self is the machine's after 320 programs in node a")
}
