package topo_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/nslab/nslab/topo"
	"github.com/stretchr/testify/require"
)

// Inputs that would cost too much are refused at once, as bad input.
func TestLoadFileRefuses(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	big := filepath.Join(dir, "big.toml")
	f, err := os.Create(big)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(topo.MaxFileSize+1)) // sparse: costs no disk
	f.Close()
	for _, tc := range []struct{ path, want string }{
		{"/dev/zero", "not a regular file"},
		{fifo, "not a regular file"}, // no writer: a blocking open would hang here
		{dir, "is a directory"},
		{big, "over the limit of 64 MiB"},
		{filepath.Join(dir, "none.toml"), "no such file"},
	} {
		_, err := topo.LoadFile(tc.path)
		require.ErrorContains(t, err, tc.want, tc.path)
	}
}

// A switch with more ports than a Linux bridge takes, and a start command
// longer than the kernel takes in one argument, are refused at validation,
// not half-way through a build.
func TestKernelLimitsAtValidation(t *testing.T) {
	b := topo.NewBuilder("wide").Switch("s1")
	for i := 0; i < 1024; i++ {
		h := "h" + strconv.Itoa(i)
		b.Host(h).Link(h, "s1")
	}
	_, err := topo.Resolve(b.Topology())
	require.ErrorContains(t, err, `node "s1": switch has 1024 ports, and a Linux bridge takes at most 1023`)

	_, err = topo.Generate("single,1024", "")
	require.ErrorContains(t, err, "at most 1023 hosts on one switch")
	_, err = topo.Generate("single,1023", "")
	require.NoError(t, err)

	top := topo.NewBuilder("long").Host("h1").Topology()
	top.Nodes[0].Start = []string{"echo " + strings.Repeat("x", 128<<10)}
	_, err = topo.Resolve(top)
	require.ErrorContains(t, err, "start command 1 is 131077 bytes, and the kernel takes at most 131071 in one argument")
	require.Less(t, len(err.Error()), 400, "the message does not quote the command")
}
