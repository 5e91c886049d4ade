package tests

import (
	"context"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/topo"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLANTopology(t *testing.T) {
	t.Parallel()
	lab := startLab(t, loadTopology(t, "lan.toml"), emulator.Options{})
	for _, n := range []string{"s1", "h1", "h2", "h3"} {
		assert.True(t, namespaceExists(lab.Name()+"."+n), "namespace of %s is visible to ip netns", n)
	}
	m, err := lab.PingAll(context.Background(), nil, emulator.PingOptions{})
	require.NoError(t, err)
	probes, ok := m.Counts()
	require.Equal(t, 6, probes)
	require.Equal(t, 6, ok, "every pair of the LAN answers")
	r := m.Get("h1", "h3")
	require.Equal(t, "10.0.0.3", r.Target.String())
	require.Equal(t, "10.0.0.3", r.Responder.String())
}

func TestDirectTopology(t *testing.T) {
	t.Parallel()
	lab := startLab(t, loadTopology(t, "direct.toml"), emulator.Options{})
	reach(t, lab, "red", "blue", true)
	reach(t, lab, "blue", "red", true)
	res, err := lab.Exec(context.Background(), "red", "ip", "-o", "addr", "show", "dev", "veth-red")
	require.NoError(t, err)
	require.Contains(t, string(res.Stdout), "192.168.15.1/24")
}

func TestRoutedTopology(t *testing.T) {
	t.Parallel()
	lab := startLab(t, loadTopology(t, "routed.toml"), emulator.Options{})
	// Across both routers, in both directions, with no route written.
	reach(t, lab, "h1", "h3", true)
	reach(t, lab, "h4", "h2", true)
	reach(t, lab, "h1", "r2", true)
	res, err := lab.Exec(context.Background(), "h1", "ip", "route")
	require.NoError(t, err)
	require.Contains(t, string(res.Stdout), "10.2.0.0/24 via 10.1.0.1")
	res, err = lab.Exec(context.Background(), "r1", "cat", "/proc/sys/net/ipv4/ip_forward")
	require.NoError(t, err)
	require.Equal(t, "1", strings.TrimSpace(string(res.Stdout)), "a router forwards")
	res, err = lab.Exec(context.Background(), "h1", "cat", "/proc/sys/net/ipv4/ip_forward")
	require.NoError(t, err)
	require.Equal(t, "0", strings.TrimSpace(string(res.Stdout)), "a host does not")
}

// Without routes (static routing, none written) the LANs do not reach
// each other, though each LAN works and each router reaches its neighbour.
func TestNoRouteNoReach(t *testing.T) {
	t.Parallel()
	top := loadTopology(t, "routed.toml")
	top.Routing = "static"
	lab := startLab(t, top, emulator.Options{})
	reach(t, lab, "h1", "h2", true)
	reach(t, lab, "h1", "r1", true)
	reach(t, lab, "r1", "r2", true)
	reach(t, lab, "h1", "h3", false)
	reach(t, lab, "h3", "h1", false)
}

// red has a route only to its own subnet: it cannot reach green, two hops
// away through blue, a host that does not forward.
func TestNoForwardThroughHost(t *testing.T) {
	t.Parallel()
	b := topo.NewBuilder(uniqueName("chain")).Host("red").Host("blue").Host("green")
	b.Link("red", "blue").Link("blue", "green")
	lab := startLab(t, b.Topology(), emulator.Options{})
	reach(t, lab, "red", "blue", true)
	reach(t, lab, "blue", "green", true)
	reach(t, lab, "red", "green", false)
}

// A chain of five routers: automatic routing writes every route.
func TestRouterChainAutoRoutes(t *testing.T) {
	t.Parallel()
	b := topo.NewBuilder(uniqueName("chain5")).AutoRoutes().Host("left").Host("right")
	for i := 1; i <= 5; i++ {
		b.Router("r" + strconv.Itoa(i))
	}
	b.Link("left", "r1")
	for i := 1; i < 5; i++ {
		b.Link("r"+strconv.Itoa(i), "r"+strconv.Itoa(i+1))
	}
	b.Link("r5", "right")
	lab := startLab(t, b.Topology(), emulator.Options{})
	reach(t, lab, "left", "right", true)
	reach(t, lab, "right", "left", true)
	reach(t, lab, "left", "r4", true)
}

func TestIPv6(t *testing.T) {
	t.Parallel()
	top := &topo.Topology{
		Name:       uniqueName("v6"),
		Addressing: topo.Addressing{IPv6: "fd00:1::/48"},
		Nodes:      []topo.NodeSpec{{Name: "s1", Kind: topo.KindSwitch}, {Name: "a"}, {Name: "b"}},
		Links:      []topo.LinkSpec{{Endpoints: []string{"a", "s1"}}, {Endpoints: []string{"b", "s1"}}},
	}
	lab := startLab(t, top, emulator.Options{})
	r, err := lab.Ping(context.Background(), "a", "b", emulator.PingOptions{Family: 6, Count: 2})
	require.NoError(t, err)
	require.True(t, r.OK(), r.String())
	require.True(t, r.Target.Is6())
	r, err = lab.Ping(context.Background(), "a", "b", emulator.PingOptions{Family: 4, Count: 1})
	require.NoError(t, err)
	require.True(t, r.OK(), r.String())
}

func TestExecHostnameHostsAndExitCode(t *testing.T) {
	t.Parallel()
	hostsBefore, err := os.ReadFile("/etc/hosts")
	require.NoError(t, err)
	lab := startLab(t, loadTopology(t, "lan.toml"), emulator.Options{})
	ctx := context.Background()

	res, err := lab.Exec(ctx, "h2", "hostname")
	require.NoError(t, err)
	require.Equal(t, "h2", strings.TrimSpace(string(res.Stdout)))

	res, err = lab.Exec(ctx, "h1", "getent", "hosts", "h3")
	require.NoError(t, err)
	require.Equal(t, 0, res.ExitCode, string(res.Stderr))
	require.Contains(t, string(res.Stdout), "10.0.0.3")

	res, err = lab.Exec(ctx, "h1", "sh", "-c", "echo out; echo err >&2; exit 7")
	require.NoError(t, err)
	require.Equal(t, 7, res.ExitCode)
	require.Equal(t, "out\n", string(res.Stdout))
	require.Equal(t, "err\n", string(res.Stderr))

	// stdin and the environment go through.
	cmd := exec.Command("sh", "-c", "cat; echo $NSLAB_TEST_VAR")
	cmd.Stdin = strings.NewReader("from stdin\n")
	cmd.Env = append(os.Environ(), "NSLAB_TEST_VAR=passed")
	var out strings.Builder
	cmd.Stdout = &out
	require.NoError(t, lab.Start("h3", cmd))
	require.NoError(t, cmd.Wait())
	require.Equal(t, "from stdin\npassed\n", out.String())

	// The machine's own files are untouched, and its hostname too.
	hostsAfter, err := os.ReadFile("/etc/hosts")
	require.NoError(t, err)
	require.Equal(t, string(hostsBefore), string(hostsAfter))
	me, _ := os.Hostname()
	require.NotEqual(t, "h2", me)

	_, err = lab.Exec(ctx, "nosuch", "true")
	require.Error(t, err)
	require.True(t, topo.IsBadInput(err))
	require.Contains(t, err.Error(), `no node "nosuch"`)
}

func TestSysctlsAndStartCommands(t *testing.T) {
	t.Parallel()
	marker := "nslab-test-marker-" + tag + "-start"
	top := &topo.Topology{
		Name: uniqueName("svc"),
		Nodes: []topo.NodeSpec{
			{Name: "a", Sysctls: map[string]string{"net.ipv4.conf.all.rp_filter": "2"},
				Start: []string{"sleep 1000; echo " + marker}},
			{Name: "b"},
		},
		Links: []topo.LinkSpec{{Endpoints: []string{"a", "b"}}},
	}
	plan, err := topo.Resolve(top)
	require.NoError(t, err)
	lab, err := emulator.Up(context.Background(), plan, emulator.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { lab.Down() }) // on failure; Down is idempotent

	res, err := lab.Exec(context.Background(), "a", "cat", "/proc/sys/net/ipv4/conf/all/rp_filter")
	require.NoError(t, err)
	require.Equal(t, "2", strings.TrimSpace(string(res.Stdout)))
	res, err = lab.Exec(context.Background(), "b", "cat", "/proc/sys/net/ipv4/conf/all/rp_filter")
	require.NoError(t, err)
	require.NotEqual(t, "2", strings.TrimSpace(string(res.Stdout)), "sysctls are per node")

	var pids []int
	require.Eventually(t, func() bool { pids = processesWith(marker); return len(pids) == 1 }, 2*time.Second, 5*time.Millisecond, "the service runs")
	netns, err := os.Readlink("/proc/" + strconv.Itoa(pids[0]) + "/ns/net")
	require.NoError(t, err)
	require.NotEqual(t, startNetns, netns, "the service runs inside the node, not where the tests run")

	require.NoError(t, lab.Down())
	require.Empty(t, processesWith(marker), "teardown stops the service")
}

func processesWith(marker string) []int {
	var pids []int
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		data, _ := os.ReadFile(p)
		if strings.Contains(string(data), marker) {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			if pid != os.Getpid() {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// The host attachment puts one end in the "host" namespace; a throwaway
// namespace stands in for the machine's own.
func TestHostAttachment(t *testing.T) {
	t.Parallel()
	hostPath := standInHost(t)
	ifname := "nt" + tag
	require.LessOrEqual(t, len(ifname), 15)

	top := loadTopology(t, "lan.toml")
	top.Host = &topo.HostSpec{Node: "s1", Interface: ifname, Addresses: []string{"10.0.0.100/24"}}
	lab := startLab(t, top, emulator.Options{HostNetns: hostPath})

	out, err := inNetns(hostPath, "ip", "-o", "addr", "show", "dev", ifname).CombinedOutput()
	require.NoError(t, err, string(out))
	require.Contains(t, string(out), "10.0.0.100/24")
	// Nothing appeared in the real host namespace, nor where the tests
	// run (in the rootless run, the user namespace's own).
	_, err = os.Stat("/sys/class/net/" + ifname)
	require.True(t, os.IsNotExist(err), "the attachment went to the stand-in namespace only")
	_, err = net.InterfaceByName(ifname)
	require.Error(t, err, "the attachment went to the stand-in namespace only")

	r, err := lab.Ping(context.Background(), "h2", "", emulator.PingOptions{Target: netip.MustParseAddr("10.0.0.100"), Count: 2})
	require.NoError(t, err)
	require.True(t, r.OK(), r.String())

	require.NoError(t, lab.Down())
	require.Eventually(t, func() bool {
		return inNetns(hostPath, "ip", "link", "show", ifname).Run() != nil
	}, 5*time.Second, 10*time.Millisecond, "the host end goes with the lab")
}

func TestSecondLabWithSameNameRefused(t *testing.T) {
	t.Parallel()
	top := loadTopology(t, "direct.toml")
	lab := startLab(t, top, emulator.Options{})
	plan, err := topo.Resolve(top)
	require.NoError(t, err)
	_, err = emulator.Up(context.Background(), plan, emulator.Options{})
	require.Error(t, err)
	require.Contains(t, err.Error(), "is already up")
	require.True(t, topo.IsBadInput(err))
	reach(t, lab, "red", "blue", true) // the first lab is untouched
}

// Two labs with the same topology and different names run side by side.
func TestParallelLabs(t *testing.T) {
	t.Parallel()
	a := startLab(t, loadTopology(t, "lan.toml"), emulator.Options{})
	b := startLab(t, loadTopology(t, "lan.toml"), emulator.Options{})
	reach(t, a, "h1", "h2", true)
	reach(t, b, "h1", "h2", true)
	require.NoError(t, b.Down())
	reach(t, a, "h1", "h3", true)
}

// A name already taken in the kernel makes the build fail half-way: the
// error names the object, everything built is rolled back, and the
// namespace that was not ours is left alone.
func TestRollbackOnKernelError(t *testing.T) {
	t.Parallel()
	top := loadTopology(t, "lan.toml")
	foreign := top.Name + ".h2"
	newNetns(t, foreign)

	plan, err := topo.Resolve(top)
	require.NoError(t, err)
	_, err = emulator.Up(context.Background(), plan, emulator.Options{})
	require.Error(t, err)
	require.Contains(t, err.Error(), `node "h2"`)
	require.Contains(t, err.Error(), "already exists")
	for _, n := range []string{"s1", "h1", "h3"} {
		require.False(t, namespaceExists(top.Name+"."+n), "rolled back: %s", n)
	}
	require.True(t, namespaceExists(foreign), "not ours: untouched")
	_, err = os.Stat(filepath.Join(stateDir(), top.Name))
	require.True(t, os.IsNotExist(err), "no record left")
}

// TestLinkFailureRollsBack makes the kernel refuse one link in the middle
// of a build (a name it rejects, put in the plan after validation): the
// error names the link, and everything built so far is gone.
func TestLinkFailureRollsBack(t *testing.T) {
	t.Parallel()
	top, err := topo.Generate("single,60", uniqueName("linkfail"))
	require.NoError(t, err)
	plan, err := topo.Resolve(top)
	require.NoError(t, err)
	bad := plan.Links[40]
	bad.B.Name = "bad/name" // the host's end; the kernel refuses a '/' in a name
	lab, err := emulator.Up(context.Background(), plan, emulator.Options{})
	if err == nil {
		lab.Down()
	}
	require.Error(t, err)
	assert.Contains(t, err.Error(), `add veth`)
	assert.Contains(t, err.Error(), `"bad/name"`)
	assert.Contains(t, err.Error(), "invalid argument")
	ents, _ := os.ReadDir(netnsDir())
	for _, e := range ents {
		assert.False(t, strings.HasPrefix(e.Name(), top.Name+"."), "left behind: %s", e.Name())
	}
	_, err = os.Stat(filepath.Join(stateDir(), top.Name))
	assert.True(t, os.IsNotExist(err), "no record left")
}

func TestCancelRollsBack(t *testing.T) {
	t.Parallel()
	top, err := topo.Generate("single,200", uniqueName("cancel"))
	require.NoError(t, err)
	plan, err := topo.Resolve(top)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	var once bool
	opts := emulator.Options{Progress: func(p emulator.Progress) {
		if p.Phase == "links" && !once {
			once = true
			cancel()
		}
	}}
	lab, err := emulator.Up(ctx, plan, opts)
	if err == nil {
		lab.Down()
	}
	require.ErrorIs(t, err, context.Canceled)
	ents, _ := os.ReadDir(netnsDir())
	for _, e := range ents {
		require.False(t, strings.HasPrefix(e.Name(), top.Name+"."), "left behind: %s", e.Name())
	}
}
