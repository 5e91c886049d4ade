package tests

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/topo"
	"github.com/stretchr/testify/require"
)

// TestGeneratedFabricsPingAll builds the routed generators' labs and
// probes every pair: the fat-tree's static two-level routes, and the ring's
// and the mesh's automatic routes, carry every node's first address to
// every other across their loops (with no spanning tree: they are routed).
func TestGeneratedFabricsPingAll(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		spec  string
		nodes int
	}{
		{"fattree,4", 36},
		{"ring,5", 10},
		{"mesh,4", 8},
	} {
		t.Run(c.spec, func(t *testing.T) {
			top, err := topo.Generate(c.spec, uniqueName(strings.Replace(c.spec, ",", "", 1)))
			require.NoError(t, err)
			lab := startLab(t, top, emulator.Options{})
			m, err := lab.PingAll(context.Background(), nil, emulator.PingOptions{})
			require.NoError(t, err)
			probes, ok := m.Counts()
			require.Equal(t, c.nodes*(c.nodes-1), probes)
			require.Equal(t, probes, ok, "every pair answers:\n%s", m)
		})
	}
}

// TestGeneratedFatTree16 checks the 1,024-host fat-tree without building
// it: generated, resolved and written as TOML in well under a second or two
// (the build is measured in docs/performance.md).
func TestGeneratedFatTree16(t *testing.T) {
	t.Parallel()
	start := time.Now()
	top, err := topo.Generate("fattree,16", "")
	require.NoError(t, err)
	plan, err := topo.Resolve(top)
	require.NoError(t, err)
	_, err = top.TOML()
	require.NoError(t, err)
	require.Less(t, time.Since(start), 5*time.Second)
	kinds := map[topo.Kind]int{}
	for _, n := range plan.Nodes {
		kinds[n.Kind]++
	}
	require.Equal(t, map[topo.Kind]int{topo.KindHost: 1024, topo.KindRouter: 320}, kinds)
	require.Len(t, plan.Links, 3*1024)
}

// TestCLIGenerate: nslab generate writes a file that validates and builds
// as --topo does; a spec out of its limits is bad input (exit 2) and
// nothing is made.
func TestCLIGenerate(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "ring.toml")
	name := uniqueName("genring")
	out, errs, code := cli(t, "", "generate", "ring,4", "--name", name, "-o", file)
	require.Equal(t, 0, code, errs)
	require.Equal(t, file+": lab "+name+": 8 nodes (4 hosts, 4 routers), 8 links, 8 segments\n", out)
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	require.Contains(t, string(data), "routing = 'auto'")

	out, errs, code = cli(t, "", "validate", file)
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "is valid")
	out, errs, code = cli(t, "", "run", file, "--test", "pingall")
	require.Equal(t, 0, code, errs+out)
	require.Contains(t, out, "(56/56 received)")

	stdout, _, code := cli(t, "", "generate", "fattree,2")
	require.Equal(t, 0, code)
	require.Contains(t, stdout, "name = 'fattree-2'")

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"generate", "fattree,3"}, "fattree,3: k must be even"},
		{[]string{"generate", "mesh,40", "-o", file + ".no"}, "mesh,40: at most 32 routers"},
		{[]string{"generate"}, "usage: nslab generate SPEC"},
		{[]string{"generate", "ring,3", "--name", "Bad_Name"}, "--name: lab name"},
		{[]string{"run", "--topo", "ring,2", "--name", name}, "ring,2: a ring has at least 3 routers"},
		{[]string{"up", "--topo", "fattree,64", "--name", name}, "fattree,64: k is at most 32"},
		{[]string{"up", "--topo", "single,2", "--datapath", "epbf", "--name", name}, `--datapath: unknown datapath "epbf" (known: bridge, ebpf)`},
		{[]string{"up", "--topo", "single,70", "--datapath", "ebpf", "--name", name}, `70 ports: a switch with datapath "ebpf" takes at most 64`},
	} {
		_, errs, code := cli(t, "", c.args...)
		require.Equal(t, 2, code, "%v: %s", c.args, errs)
		require.Contains(t, errs, c.want, c.args)
	}
	_, err = os.Stat(file + ".no")
	require.True(t, os.IsNotExist(err), "no file written for a bad spec")
	_, err = os.Stat(filepath.Join(stateDir(), name))
	require.True(t, os.IsNotExist(err), "no lab record left")
	ents, err := os.ReadDir(netnsDir())
	if err == nil {
		for _, e := range ents {
			require.False(t, strings.HasPrefix(e.Name(), name), "namespace %s left", e.Name())
		}
	}
}
