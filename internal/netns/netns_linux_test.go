package netns

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: makes network namespaces (the integration tests run as root)")
	}
}

// threadNS is the calling thread's network namespace, as the link
// /proc/thread-self/ns/net reads ("net:[INODE]").
func threadNS(t *testing.T) string {
	t.Helper()
	s, err := os.Readlink("/proc/thread-self/ns/net")
	require.NoError(t, err)
	return s
}

// nsOf is the namespace of ns as a thread inside it reads it.
func nsOf(t *testing.T, ns *NS) string {
	t.Helper()
	var inside string
	require.NoError(t, ns.Do(func() error {
		var err error
		inside, err = os.Readlink("/proc/thread-self/ns/net")
		return err
	}))
	return inside
}

// New makes a namespace of its own and runs setup inside it; Do runs
// inside it and leaves the calling thread where it was; Discard's thread
// never comes back.
func TestNewDoDiscard(t *testing.T) {
	needRoot(t)
	outside := threadNS(t)
	var inSetup string
	ns, err := New(func() error {
		var err error
		inSetup, err = os.Readlink("/proc/thread-self/ns/net")
		return err
	})
	require.NoError(t, err)
	defer ns.Close()
	require.NotEqual(t, outside, inSetup, "setup runs in the new namespace")
	require.Equal(t, outside, threadNS(t), "the caller's thread did not move")

	var inDo string
	require.NoError(t, ns.Do(func() error {
		var err error
		inDo, err = os.Readlink("/proc/thread-self/ns/net")
		return err
	}))
	require.Equal(t, inSetup, inDo)
	require.Equal(t, "", ns.Path(), "not pinned")

	var inDiscard string
	require.NoError(t, Discard(func() error {
		if err := ns.Set(); err != nil {
			return err
		}
		var err error
		inDiscard, err = os.Readlink("/proc/thread-self/ns/net")
		return err
	}))
	require.Equal(t, inSetup, inDiscard)
	require.Equal(t, outside, threadNS(t))

	require.NoError(t, ns.Close())
	require.NoError(t, ns.Close(), "closing twice does nothing")
	require.ErrorContains(t, ns.Do(func() error { return nil }), "closed")
	require.ErrorContains(t, ns.Set(), "closed")
}

// A failing setup is New's error, and no namespace is left open.
func TestNewSetupFails(t *testing.T) {
	needRoot(t)
	ns, err := New(func() error { return unix.EPERM })
	require.ErrorIs(t, err, unix.EPERM)
	require.Nil(t, ns)
}

// A pinned namespace is found by path, is the same namespace, and is gone
// from its path once unpinned.
func TestPinOpenUnpin(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	mounted, err := EnsureMountDir(dir, unix.MS_PRIVATE)
	require.NoError(t, err)
	require.True(t, mounted, "a temporary directory is no mount point of its own")
	t.Cleanup(func() { UnmountDir(dir) })
	mounted, err = EnsureMountDir(dir, unix.MS_PRIVATE)
	require.NoError(t, err)
	require.False(t, mounted, "a mount point already: nothing more to do")

	ns, err := New(nil)
	require.NoError(t, err)
	defer ns.Close()
	var steps []PinStep
	p := &Pinner{Journal: func(s PinStep, arg string) error { steps = append(steps, s); return nil }}
	path := filepath.Join(dir, "a")
	require.NoError(t, ns.Pin(p, path))
	require.ErrorIs(t, p.Pin(ns.Fd(), path), os.ErrExist, "a name is never taken over")
	p.Close()
	require.Equal(t, []PinStep{PinTry, PinFile, Pinned, PinTry}, steps)
	require.Equal(t, path, ns.Path())
	require.True(t, IsNamespaceFile(path))
	require.True(t, ns.PinnedAt(path))

	opened, err := Open(path)
	require.NoError(t, err)
	defer opened.Close()
	require.Equal(t, path, opened.Path())
	require.Equal(t, nsOf(t, ns), nsOf(t, opened))
	ino, err := Inode(path)
	require.NoError(t, err)
	require.Contains(t, nsOf(t, ns), ":["+strconv.FormatUint(ino, 10)+"]")

	require.NoError(t, Unpin(path))
	require.NoError(t, Unpin(path), "a missing path is not an error")
	require.False(t, IsNamespaceFile(path))
	require.False(t, ns.PinnedAt(path))
	_, err = Open(path)
	require.ErrorIs(t, err, os.ErrNotExist)
}

// Only a link to a recorded unnamed file counts as ours.
func TestIsPinFile(t *testing.T) {
	dir := t.TempDir()
	ids := map[string]bool{}
	p := &Pinner{Journal: func(s PinStep, arg string) error {
		if s == PinFile {
			ids[arg] = true
		}
		return nil
	}}
	defer p.Close()
	ours := filepath.Join(dir, "ours")
	require.NoError(t, p.mountPoint(ours))
	other := filepath.Join(dir, "other")
	require.NoError(t, os.WriteFile(other, nil, 0o444))
	require.True(t, IsPinFile(ours, ids))
	require.False(t, IsPinFile(other, ids))
	require.False(t, IsPinFile(filepath.Join(dir, "missing"), ids))
	require.False(t, IsPinFile(dir, ids), "a directory is not a pin file")
}

// The main thread never enters a namespace, though a test binary (unlike
// nslab's main) does not lock its main goroutine to it: the runtime cannot
// discard that thread, and /proc/self describes it.
func TestMainThreadNeverEnters(t *testing.T) {
	needRoot(t)
	self := func() string {
		s, err := os.Readlink("/proc/self/ns/net")
		require.NoError(t, err)
		return s
	}
	before := self()
	ns, err := New(nil)
	require.NoError(t, err)
	defer ns.Close()
	for i := 0; i < 300; i++ {
		require.NoError(t, Discard(ns.Set))
		require.NoError(t, ns.Do(func() error { return nil }))
	}
	require.Equal(t, before, self(), "the main thread is still where the process started")
}

// A namespace's identity is never another's: the kernel reuses a freed
// namespace's inode number for the next one (`ip netns del X; ip netns
// add X` got the same), but the identity includes the nsfs inode's
// change time, which a new namespace's inode does not share.
func TestIDNeverReused(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	mounted, err := EnsureMountDir(dir, unix.MS_SHARED)
	require.NoError(t, err)
	if mounted {
		t.Cleanup(func() { UnmountDir(dir) })
	}
	path := filepath.Join(dir, "x")
	seen := map[string]bool{}
	inodes := map[uint64]int{}
	reused := 0
	for i := 0; i < 12; i++ {
		ns, err := New(nil)
		require.NoError(t, err)
		require.NoError(t, Pin(ns.Fd(), path))
		id, err := ID(path)
		require.NoError(t, err)
		own, err := ns.ID()
		require.NoError(t, err)
		require.Equal(t, own, id, "the path and the descriptor agree")
		require.False(t, seen[id], "identity %s seen before", id)
		seen[id] = true
		ino, err := Inode(path)
		require.NoError(t, err)
		if inodes[ino]++; inodes[ino] > 1 {
			reused++
		}
		require.NoError(t, Unpin(path))
		require.NoError(t, ns.Close())
		time.Sleep(50 * time.Millisecond) // let the kernel free it
	}
	t.Logf("%d of 12 namespaces got an inode number used before", reused)
}
