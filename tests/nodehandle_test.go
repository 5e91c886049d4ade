package tests

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nslab/nslab/emulator"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// namespaceFds counts the descriptors this process holds of each
// namespace, by the namespace's inode.
func namespaceFds(t *testing.T) map[uint64]int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	out := map[uint64]int{}
	for _, e := range ents {
		p := filepath.Join("/proc/self/fd", e.Name())
		var fs unix.Statfs_t
		var st unix.Stat_t
		if unix.Statfs(p, &fs) == nil && fs.Type == unix.NSFS_MAGIC && unix.Stat(p, &st) == nil {
			out[st.Ino]++
		}
	}
	return out
}

// A lab from Open reaches its nodes through one handle per node, opened on
// first use and kept: exec, ping, status, neighbours and set-link all work
// through it, and Close gives back every descriptor. Once the lab is taken
// down by its builder, the opened lab no longer reaches the nodes (as when
// it kept nothing): its handles of the old namespaces are dropped, not
// used on a lab that is gone.
func TestOpenedLabNodeHandles(t *testing.T) {
	top := loadTopology(t, "lan.toml")
	built := startLab(t, top, emulator.Options{})

	before := namespaceFds(t)
	lab, err := emulator.Open(top.Name, emulator.Options{})
	require.NoError(t, err)
	require.Equal(t, before, namespaceFds(t), "Open itself opens no namespace")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := lab.Exec(ctx, "h1", "hostname")
	require.NoError(t, err)
	require.Equal(t, "h1", strings.TrimSpace(string(res.Stdout)))
	reach(t, lab, "h1", "h2", true)
	st, err := lab.Status()
	require.NoError(t, err)
	for _, n := range st.Nodes {
		require.Empty(t, n.Error, "node %s", n.Name)
	}
	_, err = lab.Neighbours("h1")
	require.NoError(t, err)
	_, err = lab.SetLink("h3", "s1", false)
	require.NoError(t, err)
	reach(t, lab, "h1", "h3", false)
	_, err = lab.SetLink("h3", "s1", true)
	require.NoError(t, err)

	held := namespaceFds(t)
	nodes := len(lab.Plan.Nodes)
	opened := 0
	for k, n := range held {
		opened += n - before[k]
	}
	require.Equal(t, nodes, opened, "one namespace descriptor per node, kept between calls")
	// Used again: still one handle per node.
	_, err = lab.Exec(ctx, "h1", "true")
	require.NoError(t, err)
	require.Equal(t, held, namespaceFds(t))

	require.NoError(t, lab.Close())
	require.Equal(t, before, namespaceFds(t), "Close gives every descriptor back")

	// Taken down behind the opened lab's back: the opened lab fails as
	// it did when it kept nothing, and holds nothing of the old lab.
	reach(t, lab, "h1", "h2", true)
	require.NoError(t, built.Down())
	_, err = lab.Exec(ctx, "h1", "true")
	require.ErrorContains(t, err, `node "h1"`)
	_, err = lab.Ping(ctx, "h2", "h1", emulator.PingOptions{})
	require.Error(t, err)
	require.Eventually(t, func() bool {
		now := namespaceFds(t)
		for k, n := range now {
			if n > before[k] {
				return false
			}
		}
		return true
	}, 3*time.Second, 10*time.Millisecond, "no descriptor of the old lab's namespaces is kept")
	require.NoError(t, lab.Close())
}

// A lab torn down by Down refuses further work on its nodes.
func TestDownLabRefusesNodes(t *testing.T) {
	t.Parallel()
	top := loadTopology(t, "lan.toml")
	lab := startLab(t, top, emulator.Options{})
	require.NoError(t, lab.Down())
	_, err := lab.Exec(context.Background(), "h1", "true")
	require.ErrorContains(t, err, "is down")
	require.NoError(t, lab.Down(), "twice is fine")
}
