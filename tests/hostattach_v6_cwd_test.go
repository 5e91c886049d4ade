package tests

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/topo"
	"github.com/stretchr/testify/require"
)

// standInHost makes a throwaway network namespace that stands in for the
// machine's own in a test of the host attachment, and returns its path.
func standInHost(t *testing.T) string {
	t.Helper()
	return newNetns(t, uniqueName("nslab-host"))
}

// Issue 12, item 4: a lab with a host attachment is brought up again at
// once after Down, with the same interface name in the host namespace,
// several times back to back. Down must return only once the host's end
// is gone, so that the next Up can take the name again.
func TestHostAttachmentUpDownCycles(t *testing.T) {
	t.Parallel()
	hostPath := standInHost(t)
	ifname := "nt" + tag + "c"
	require.LessOrEqual(t, len(ifname), 15)
	top := loadTopology(t, "lan.toml")
	top.Host = &topo.HostSpec{Node: "s1", Interface: ifname, Addresses: []string{"10.0.0.100/24"}}
	plan, err := topo.Resolve(top)
	require.NoError(t, err)
	for i := 0; i < 5; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		lab, err := emulator.Up(ctx, plan, emulator.Options{HostNetns: hostPath})
		cancel()
		require.NoError(t, err, "up #%d", i+1)
		require.NoError(t, lab.Down(), "down #%d", i+1)
		// The name is free the moment Down returns.
		out, err := inNetns(hostPath, "ip", "-o", "link", "show", "dev", ifname).CombinedOutput()
		require.Error(t, err, "after down #%d the host's end %q is still there: %s", i+1, ifname, strings.TrimSpace(string(out)))
	}
}

// An interface of the host attachment's name that is not a lab's end on
// its way out is not ours: Up fails at once with an error that says so,
// rolls back, and leaves that interface as it was.
func TestHostAttachmentNameTaken(t *testing.T) {
	t.Parallel()
	hostPath := standInHost(t)
	ifname := "nt" + tag + "t"
	out, err := inNetns(hostPath, "ip", "link", "add", ifname, "type", "veth", "peer", "name", ifname+"p").CombinedOutput()
	require.NoError(t, err, string(out))
	top := loadTopology(t, "lan.toml")
	top.Host = &topo.HostSpec{Node: "s1", Interface: ifname, Addresses: []string{"10.0.0.100/24"}}
	plan, err := topo.Resolve(top)
	require.NoError(t, err)
	t0 := time.Now()
	lab, err := emulator.Up(context.Background(), plan, emulator.Options{HostNetns: hostPath})
	if lab != nil {
		lab.Down()
	}
	require.Error(t, err)
	require.Contains(t, err.Error(), `add veth "`+ifname+`" to the host`)
	require.Contains(t, err.Error(), "already exists in the host namespace (not ours")
	require.Less(t, time.Since(t0), time.Second, "a name that is not on its way out is not waited for")
	out, err = inNetns(hostPath, "ip", "-o", "link", "show", "dev", ifname).CombinedOutput()
	require.NoError(t, err, "the interface that was there is left alone: %s", out)
	require.False(t, namespaceExists(top.Name+"-s1"), "the build was rolled back")
}

// loadTestdata reads a file from tests/testdata/ and renames the lab
// after prefix.
func loadTestdata(t testing.TB, file, prefix string) *topo.Topology {
	t.Helper()
	top, err := topo.LoadFile(filepath.Join("testdata", file))
	require.NoError(t, err)
	top.Name = uniqueName(prefix)
	return top
}

// Issue 12, item 5: IPv6 works end to end across two routers as soon as Up
// returns, as IPv4 does. A router sends the neighbour solicitations for
// the packets it forwards from its link-local address, and sent none while
// that address was tentative: the first echo request across the two
// routers was answered after about 2 s (a second of duplicate address
// detection per router), one to the far router's address after 1 s.
func TestIPv6AcrossRoutersReadyAtUp(t *testing.T) {
	t.Parallel()
	top := loadTestdata(t, "dualstack_routers.toml", "v6routers")
	lab := startLab(t, top, emptyOpts())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The very first packet, right after Up: a1 to b1 through r1 and r2.
	b1 := netip.MustParseAddr("fd00:30:0:2::2")
	r, err := lab.Ping(ctx, "a1", "", emulator.PingOptions{Target: b1, Count: 1, Timeout: 1500 * time.Millisecond})
	require.NoError(t, err)
	require.True(t, r.OK(), "the first IPv6 echo request across two routers is answered: %s", r)
	require.Less(t, r.RTTs[0], 500*time.Millisecond,
		"answered at once, not after the routers' duplicate address detection: %s", r)

	// Every IPv6 interface has its link-local address, and no address is
	// tentative (as ip shows it, not as the engine reads it).
	for _, node := range []string{"a1", "r1", "r2", "b1"} {
		res, err := lab.Exec(ctx, node, "ip", "-6", "-o", "addr", "show")
		require.NoError(t, err)
		require.Zero(t, res.ExitCode, string(res.Stderr))
		out := string(res.Stdout)
		require.NotContains(t, out, "tentative", "node %s", node)
		for _, ifc := range lab.Plan.Node(node).Ifaces {
			require.Regexp(t, ifc.Name+`\s+inet6 fe80::\S+ scope link`, out, "node %s", node)
		}
	}
}

// Issue 12, item 6: commands in a node run where nslab runs, not in "/"
// (entering the lab's mount namespace moved them to its root): Exec and
// Start in the caller's working directory, start commands in the one
// `up` ran in, and `nslab exec` in the shell's.
func TestCommandsRunInCallersDirectory(t *testing.T) {
	t.Parallel()
	wd, err := os.Getwd()
	require.NoError(t, err)
	wd, err = filepath.EvalSymlinks(wd)
	require.NoError(t, err)
	require.NotEqual(t, "/", wd, "the test must not run in / to tell the two apart")

	out := filepath.Join(t.TempDir(), "cwd")
	top := loadTopology(t, "direct.toml")
	top.Nodes[0].Start = []string{"pwd -P > " + out + ".tmp && mv " + out + ".tmp " + out}
	lab := startLab(t, top, emptyOpts())
	node := top.Nodes[0].Name
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	res, err := lab.Exec(ctx, node, "pwd", "-P")
	require.NoError(t, err)
	require.Zero(t, res.ExitCode, string(res.Stderr))
	require.Equal(t, wd, strings.TrimSpace(string(res.Stdout)), "Lab.Exec runs in the caller's directory")

	// A relative path works as it does outside the lab.
	res, err = lab.Exec(ctx, node, "cat", "testdata/dualstack_routers.toml")
	require.NoError(t, err)
	require.Zero(t, res.ExitCode, string(res.Stderr))
	require.Contains(t, string(res.Stdout), `name = "i12dual"`)

	// cmd.Dir, when set, still wins.
	other := t.TempDir()
	cmd := exec.Command("pwd", "-P")
	cmd.Dir = other
	var buf strings.Builder
	cmd.Stdout = &buf
	require.NoError(t, lab.Start(node, cmd))
	require.NoError(t, cmd.Wait())
	other, err = filepath.EvalSymlinks(other)
	require.NoError(t, err)
	require.Equal(t, other, strings.TrimSpace(buf.String()))

	// The start command, run by Up in this process's directory.
	var got []byte
	require.Eventually(t, func() bool {
		got, err = os.ReadFile(out)
		return err == nil
	}, 5*time.Second, 10*time.Millisecond, "the start command wrote its directory")
	require.Equal(t, wd, strings.TrimSpace(string(got)), "start commands run in the directory of up")

	// The CLI: nslab exec, started in another directory, runs there.
	dir := t.TempDir()
	c := exec.Command(nslabBin, "exec", lab.Name(), node, "--", "pwd", "-P")
	c.Dir = dir
	b, err := c.CombinedOutput()
	require.NoError(t, err, string(b))
	dir, err = filepath.EvalSymlinks(dir)
	require.NoError(t, err)
	require.Equal(t, dir, strings.TrimSpace(string(b)), "nslab exec runs in the shell's directory")
}
