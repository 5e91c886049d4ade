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

// A switch of more than 1,000 ports is a chain of bridges of up to 498
// ports each (see topo.Trunk), each joined to the one before.
func TestBigSwitchTrunks(t *testing.T) {
	for _, tc := range []struct {
		ports, trunks int
	}{
		{1, 0}, {1000, 0}, {1001, 2}, {1494, 2}, {1495, 3}, {10000, 20},
	} {
		top, err := topo.Generate("single,"+strconv.Itoa(tc.ports), "")
		require.NoError(t, err)
		p, err := topo.Resolve(top)
		require.NoError(t, err, "%d ports", tc.ports)
		s1 := p.Node("s1")
		require.Len(t, s1.Trunks, tc.trunks, "%d ports", tc.ports)
		per := map[int]int{}
		for _, i := range s1.Ifaces {
			per[i.Master]++
		}
		if tc.trunks == 0 {
			require.Equal(t, map[int]int{2: tc.ports}, per)
			continue
		}
		seen := map[int]bool{}
		prev := 2
		for _, tr := range s1.Trunks {
			require.Equal(t, prev, tr.UpMaster, "a chain")
			prev = tr.Index
			for _, x := range []int{tr.Index, tr.UpIndex, tr.DownIndex} {
				require.False(t, seen[x])
				seen[x] = true
			}
		}
		total := 0
		for m, n := range per {
			require.LessOrEqual(t, n, 498, "%d ports: bridge %d", tc.ports, m)
			require.Positive(t, n)
			total += n
		}
		require.Equal(t, tc.ports, total)
		require.Len(t, per, tc.trunks+1)
	}
	_, err := topo.Generate("single,10001", "")
	require.ErrorContains(t, err, "at most 10000 hosts on one switch")
}

// A start command longer than the kernel takes in one argument is refused
// at validation, not half-way through a build.
func TestKernelLimitsAtValidation(t *testing.T) {
	top := topo.NewBuilder("long").Host("h1").Topology()
	top.Nodes[0].Start = []string{"echo " + strings.Repeat("x", 128<<10)}
	_, err := topo.Resolve(top)
	require.ErrorContains(t, err, "start command 1 is 131077 bytes, and the kernel takes at most 131071 in one argument")
	require.Less(t, len(err.Error()), 400, "the message does not quote the command")
}

// The pairs joining a big switch's bridges take the largest MTU of its
// links, so that no frame a port takes is dropped between bridges.
func TestBigSwitchTrunkMTU(t *testing.T) {
	top, err := topo.Generate("single,1001", "")
	require.NoError(t, err)
	top.Links[7].MTU = 9000
	p, err := topo.Resolve(top)
	require.NoError(t, err)
	for _, tr := range p.Node("s1").Trunks {
		require.Equal(t, 9000, tr.MTU, tr.Bridge)
	}
}
