package tests

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/internal/netns"
	"github.com/nslab/nslab/internal/rtnl"
	"github.com/nslab/nslab/topo"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
)

// A switch of more than 1,000 ports is a chain of bridges (topo.Trunk):
// hosts on the first and last bridges reach each other and the hosts
// whose ports were made first (whose copies of a flood a single big
// bridge dropped), and no host sampled drops a packet.
func TestBigSwitchIsAChainOfBridges(t *testing.T) {
	t.Parallel()
	top, err := topo.Generate("single,1100", uniqueName("bigsw"))
	require.NoError(t, err)
	lab := startLab(t, top, emulator.Options{})
	ctx := context.Background()
	for _, pair := range [][2]string{{"h1", "h2"}, {"h1", "h1100"}, {"h1100", "h2"}, {"h600", "h3"}, {"h1099", "h499"}} {
		res, err := lab.Ping(ctx, pair[0], pair[1], emulator.PingOptions{Count: 2})
		require.NoError(t, err, "%s -> %s", pair[0], pair[1])
		require.Positive(t, res.Received, "%s -> %s", pair[0], pair[1])
	}

	s1, err := vnetns.GetFromPath(netnsPath(lab.Plan.Node("s1").Namespace))
	require.NoError(t, err)
	defer s1.Close()
	h, err := netlink.NewHandleAt(s1)
	require.NoError(t, err)
	defer h.Close()
	links, err := h.LinkList()
	require.NoError(t, err)
	var bridges []string
	for _, l := range links {
		if l.Type() == "bridge" {
			bridges = append(bridges, l.Attrs().Name)
		}
	}
	require.ElementsMatch(t, []string{"s1", "trunk1", "trunk2"}, bridges)

	// A big switch's floods reach the hosts through their own rings:
	// TSO off on its ports, GRO on the hosts' ends (floodToRings).
	for _, h := range []string{"h1", "h1100"} {
		sw, err := rtnl.Dial(mustOpen(t, lab.Plan.Node("s1").Namespace))
		require.NoError(t, err)
		tso, err := sw.Offload(h, rtnl.OffloadTSO)
		sw.Close()
		require.NoError(t, err)
		require.False(t, tso, "port %s", h)
		c, err := rtnl.Dial(mustOpen(t, lab.Plan.Node(h).Namespace))
		require.NoError(t, err)
		gro, err := c.Offload("eth0", rtnl.OffloadGRO)
		c.Close()
		require.NoError(t, err)
		require.True(t, gro, "%s:eth0", h)
	}

	for i := 1; i <= 1100; i += 99 {
		ns, err := vnetns.GetFromPath(netnsPath(lab.Plan.Node(fmt.Sprintf("h%d", i)).Namespace))
		require.NoError(t, err)
		hh, err := netlink.NewHandleAt(ns)
		ns.Close()
		require.NoError(t, err)
		l, err := hh.LinkByName("eth0")
		hh.Close()
		require.NoError(t, err)
		require.Zero(t, l.Attrs().Statistics.RxDropped, "h%d dropped packets", i)
	}
}

// mustOpen opens a namespace of this run (netnsDir), closed when the test ends.
func mustOpen(t *testing.T, name string) *netns.NS {
	t.Helper()
	ns, err := netns.Open(netnsPath(name))
	require.NoError(t, err)
	t.Cleanup(func() { ns.Close() })
	return ns
}

// A lab with more nodes than the process may hold two descriptors for
// (a namespace and a netlink socket each) is built lean: each namespace's
// descriptor is released once it is pinned and cabled. single,1500 needs
// 3,512 open files; under a limit of 3,100 (and a hard limit nslab cannot
// raise: only root with CAP_SYS_RESOURCE can) it is built lean and works,
// and under 2,000 it is refused before anything is built.
func TestLeanBuildUnderFileLimit(t *testing.T) {
	t.Parallel()
	name := uniqueName("lean")
	run := func(limit int, stdin string) (string, string, int) {
		// Without CAP_SYS_RESOURCE, as in a container, the hard limit
		// stays where ulimit puts it.
		cmd := exec.Command("setpriv", "--bounding-set=-sys_resource", "sh", "-c",
			fmt.Sprintf("ulimit -n %d && exec %s run --topo single,1500 --name %s --script -", limit, nslabBin, name))
		cmd.Stdin = strings.NewReader(stdin)
		var o, e strings.Builder
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else {
			require.NoError(t, err)
		}
		return o.String(), e.String(), code
	}
	out, errs, code := run(3100, "reach h1 h1500\nreach h1500 h2\n")
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "2 of 2 checks passed")
	_, errs, code = run(2000, "")
	require.Equal(t, 1, code)
	require.Contains(t, errs, "a lab of 1501 nodes holds at least 3037 open files")
	require.Empty(t, labNamespaces(name))
}
