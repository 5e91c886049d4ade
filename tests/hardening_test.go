package tests

// Issue 14's attacks on races, identity and the state directory, each
// with the fix's test.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/internal/netns"
	"github.com/nslab/nslab/topo"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// labNamespaces lists the namespaces named for lab in this run's netnsDir.
func labNamespaces(lab string) []string {
	m, _ := filepath.Glob(netnsPath(lab + ".*"))
	return m
}

// clean racing up of the same name: the lab lock keeps clean from
// removing the directory of a lab being built, so every up either builds
// the whole lab or is refused, and clean leaves nothing orphaned (before
// the lock, 24 of 60 ups ended with namespaces and no state directory).
func TestCleanRacingUp(t *testing.T) {
	t.Parallel()
	name := uniqueName("race")
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			exec.Command(nslabBin, "clean", name).Run()
		}
	}()
	ups := 0
	for i := 0; i < 12; i++ {
		_, errs, code := cli(t, "", "up", "--topo", "single,20", "--name", name)
		if code == 0 {
			ups++
		} else {
			// Refused only because the lab was up (not yet cleaned).
			require.Contains(t, errs, "already up", "up %d", i)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	require.Positive(t, ups)
	_, errs, code := cli(t, "", "clean", name)
	require.Equal(t, 0, code, errs)
	require.Empty(t, labNamespaces(name), "nothing orphaned")
	_, err := os.Lstat(filepath.Join(stateDir(), name))
	require.True(t, os.IsNotExist(err))
	_, err = os.Lstat(filepath.Join(stateDir(), name+".lock"))
	require.True(t, os.IsNotExist(err), "the lock file goes with the lab")
}

// A rollback removes what the builder made even when its state directory
// vanished under it: the builder keeps its journal in memory too.
func TestRollbackWithoutStateDir(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	top := loadTopology(t, "lan.toml")
	lab := startLabIn(t, top, emulator.Options{StateDir: state})
	require.NotEmpty(t, labNamespaces(top.Name))
	dir := filepath.Join(state, top.Name)
	require.NoError(t, netns.Unpin(filepath.Join(dir, "mnt")))
	require.NoError(t, os.RemoveAll(dir), "the record is gone")
	require.NoError(t, lab.Down())
	require.Empty(t, labNamespaces(top.Name), "removed from what the builder knew")
}

// startLabIn builds top with o; the test may take it down itself (Down
// is idempotent), else it goes when the test ends.
func startLabIn(t *testing.T, top *topo.Topology, o emulator.Options) *emulator.Lab {
	t.Helper()
	plan, err := topo.Resolve(top)
	require.NoError(t, err)
	lab, err := emulator.Up(context.Background(), plan, o)
	require.NoError(t, err)
	t.Cleanup(func() { lab.Down() })
	return lab
}

// A namespace that someone else pinned under a lab's name after the lab's
// own was removed (ip netns del; ip netns add) is not the lab's: down
// leaves it, and the process inside it, alone.
func TestDownLeavesReplacedNamespace(t *testing.T) {
	t.Parallel()
	top := loadTopology(t, "lan.toml")
	lab := startLabIn(t, top, emulator.Options{})
	ns := lab.Plan.Node("h3").Namespace
	path := netnsPath(ns)
	require.NoError(t, netns.Unpin(path), "ip netns del")
	newNetns(t, ns) // ip netns add
	sleep := inNetns(path, "sleep", "300")
	require.NoError(t, sleep.Start())
	t.Cleanup(func() { sleep.Process.Kill(); sleep.Wait() })

	// Nor does any command enter it, or read it as the lab's.
	_, errs, code := cli(t, "", "exec", top.Name, "h3", "--", "true")
	require.Equal(t, 1, code, errs)
	require.Contains(t, errs, "is not the one nslab made")
	status, errs, code := cli(t, "", "status", top.Name)
	require.Equal(t, 1, code, errs)
	require.Contains(t, status, "is not the one nslab made")
	_, errs, code = cli(t, "", "exec", top.Name, "h1", "--", "true")
	require.Equal(t, 0, code, "the lab's own nodes are fine: %s", errs)

	require.NoError(t, lab.Down())
	require.True(t, netns.IsNamespaceFile(path), "someone else's namespace stays")
	require.NoError(t, sleep.Process.Signal(syscall.Signal(0)), "and the process inside it runs on")
	require.Equal(t, []string{path}, labNamespaces(top.Name), "the lab's own are gone")
}

// Namespace names are LAB.NODE: lab "X" with node "a-h1" and lab "X-a"
// with node "h1" no longer meet (with '-', both were X-a-h1).
func TestNamespaceNamesOfTwoLabsNeverMeet(t *testing.T) {
	t.Parallel()
	base := uniqueName("nm")
	one := writeTopology(t, fmt.Sprintf("name = %q\n[[nodes]]\nname = \"a-h1\"\n[[nodes]]\nname = \"s\"\nkind = \"switch\"\n[[links]]\nendpoints = [\"a-h1\", \"s\"]\n", base))
	two := writeTopology(t, fmt.Sprintf("name = %q\n[[nodes]]\nname = \"h1\"\n[[nodes]]\nname = \"s\"\nkind = \"switch\"\n[[links]]\nendpoints = [\"h1\", \"s\"]\n", base+"-a"))
	for _, f := range []string{one, two} {
		_, errs, code := cli(t, "", "up", f)
		require.Equal(t, 0, code, errs)
	}
	defer cli(t, "", "down", base)
	defer cli(t, "", "down", base+"-a")
	require.True(t, namespaceExists(base+".a-h1"))
	require.True(t, namespaceExists(base+"-a.h1"))
}

// A down killed midway leaves a record that says so: status shows the lab
// half torn down, `status LAB` fails, and clean finishes the job.
func TestInterruptedDownIsHalfTornDown(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	name := uniqueName("half")
	_, errs, code := cli(t, "", "--state-dir", state, "up", "--topo", "single,3", "--name", name)
	require.Equal(t, 0, code, errs)
	// What a down killed after its first step leaves: the record marked by
	// a process that is gone.
	dead := exec.Command("true")
	require.NoError(t, dead.Run())
	rec := filepath.Join(state, name, "record.json")
	data, err := os.ReadFile(rec)
	require.NoError(t, err)
	var r map[string]any
	require.NoError(t, json.Unmarshal(data, &r))
	r["state"], r["tear_pid"] = emulator.StateTearingDown, dead.Process.Pid
	data, _ = json.Marshal(r)
	require.NoError(t, os.WriteFile(rec, data, 0o644))

	out, errs, code := cli(t, "", "--state-dir", state, "status")
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "half torn down")
	require.Contains(t, out, "run nslab clean "+name)
	_, errs, code = cli(t, "", "--state-dir", state, "status", name)
	require.Equal(t, 1, code)
	require.Contains(t, errs, "half torn down, not up")
	_, errs, code = cli(t, "", "--state-dir", state, "clean", name)
	require.Equal(t, 0, code, errs)
	require.Empty(t, labNamespaces(name))
}

// `status LAB` fails when a node cannot be read.
func TestStatusFailsOnBrokenNode(t *testing.T) {
	t.Parallel()
	name := uniqueName("broken")
	_, errs, code := cli(t, "", "up", "--topo", "single,2", "--name", name)
	require.Equal(t, 0, code, errs)
	defer cli(t, "", "clean", name)
	require.NoError(t, netns.Unpin(netnsPath(name+".h2")))
	out, errs, code := cli(t, "", "status", name)
	require.Equal(t, 1, code, out)
	require.Contains(t, errs, "1 node could not be read (h2)")
}

// The state directory, a lab's directory and its files are trusted only
// when they are no symbolic link, belong to the user running nslab and
// are writable by no one else; a record may name only absolute, clean,
// trusted directories. Each refusal removes nothing.
func TestStateDirTrust(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// plant prepares state (a state directory) around a victim file
		// and returns the lab name to clean.
		plant func(t *testing.T, state, victim string) string
		want  string
	}{
		{"state dir is a symlink", func(t *testing.T, state, victim string) string {
			real := t.TempDir()
			require.NoError(t, os.Mkdir(filepath.Join(real, "x"), 0o755))
			require.NoError(t, os.Symlink(filepath.Dir(victim), filepath.Join(real, "x", "v")))
			require.NoError(t, os.Remove(state))
			require.NoError(t, os.Symlink(real, state))
			return "x"
		}, "it is a symbolic link"},
		{"lab dir is a symlink", func(t *testing.T, state, victim string) string {
			require.NoError(t, os.Symlink(filepath.Dir(victim), filepath.Join(state, "x")))
			return "x"
		}, "it is a symbolic link"},
		{"state dir writable by others", func(t *testing.T, state, victim string) string {
			require.NoError(t, os.Mkdir(filepath.Join(state, "x"), 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(state, "x", "journal"), []byte("netns "+filepath.Base(victim)+"\n"), 0o644))
			require.NoError(t, os.Chmod(state, 0o777))
			return "x"
		}, "writable by its group or others"},
		{"state dir owned by someone else", func(t *testing.T, state, victim string) string {
			require.NoError(t, os.Mkdir(filepath.Join(state, "x"), 0o755))
			if rootlessRun() {
				// The user namespace maps no other uid to give it to:
				// a directory of the machine's root, which it shows as
				// owned by the overflow uid 65534, is mounted on it.
				var st unix.Stat_t
				require.NoError(t, unix.Stat("/usr", &st))
				require.EqualValues(t, 65534, st.Uid)
				require.NoError(t, unix.Mount("/usr", state, "", unix.MS_BIND, ""))
				t.Cleanup(func() { unix.Unmount(state, unix.MNT_DETACH) })
				return "x"
			}
			require.NoError(t, os.Chown(state, 65534, 65534))
			return "x"
		}, "owned by uid 65534"},
		{"record names another netns dir", func(t *testing.T, state, victim string) string {
			dir := filepath.Join(state, "x")
			require.NoError(t, os.Mkdir(dir, 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(dir, "record.json"), []byte(`{"lab":"x","state":"up","netns_dir":"`+filepath.Dir(victim)+`/../`+filepath.Base(filepath.Dir(victim))+`"}`), 0o644))
			require.NoError(t, os.WriteFile(filepath.Join(dir, "journal"), []byte("netns "+filepath.Base(victim)+"\n"), 0o644))
			return "x"
		}, "absolute, clean path"},
		{"journal is a symlink", func(t *testing.T, state, victim string) string {
			dir := filepath.Join(state, "x")
			require.NoError(t, os.Mkdir(dir, 0o755))
			require.NoError(t, os.Symlink(victim, filepath.Join(dir, "journal")))
			return "x"
		}, "it is a symbolic link"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := filepath.Join(t.TempDir(), "state")
			require.NoError(t, os.Mkdir(state, 0o755))
			victim := filepath.Join(t.TempDir(), "precious")
			require.NoError(t, os.WriteFile(victim, []byte("keep"), 0o644))
			lab := tc.plant(t, state, victim)
			_, errs, code := cli(t, "", "--state-dir", state, "clean", lab)
			require.Equal(t, 1, code, errs)
			require.Contains(t, errs, tc.want)
			data, err := os.ReadFile(victim)
			require.NoError(t, err, "the victim is untouched")
			require.Equal(t, "keep", string(data))
			_, errs, code = cli(t, "", "--state-dir", state, "status")
			if tc.name != "lab dir is a symlink" && tc.name != "record names another netns dir" && tc.name != "journal is a symlink" {
				require.Equal(t, 1, code, "status refuses the state directory too: %s", errs)
				require.Contains(t, errs, tc.want)
			}
		})
	}
}

// The state directory's bind mount, made by nslab, goes with the last lab
// in it, also when up is refused.
func TestStateDirMountGoesWithLastLab(t *testing.T) {
	t.Parallel()
	state := filepath.Join(t.TempDir(), "state")
	name := uniqueName("mnt")
	mounted := func() bool {
		data, _ := os.ReadFile("/proc/self/mountinfo")
		for _, line := range strings.Split(string(data), "\n") {
			if f := strings.Fields(line); len(f) > 4 && f[4] == state {
				return true
			}
		}
		return false
	}
	_, errs, code := cli(t, "", "--state-dir", state, "up", "--topo", "single,2", "--name", name)
	require.Equal(t, 0, code, errs)
	require.True(t, mounted(), "a private mount while a lab is in it")
	_, errs, code = cli(t, "", "--state-dir", state, "up", "--topo", "single,2", "--name", name)
	require.Equal(t, 2, code, errs)
	require.True(t, mounted(), "a refused up leaves the other lab's mount")
	_, errs, code = cli(t, "", "--state-dir", state, "down", name)
	require.Equal(t, 0, code, errs)
	require.False(t, mounted(), "gone with the last lab")

	// A refused up on its own: a namespace of the lab's name is someone
	// else's.
	foreign := netnsPath(name + ".h2")
	require.NoError(t, os.WriteFile(foreign, nil, 0o444))
	defer os.Remove(foreign)
	_, errs, code = cli(t, "", "--state-dir", state, "up", "--topo", "single,2", "--name", name)
	require.NotEqual(t, 0, code)
	require.Contains(t, errs, "not ours")
	require.False(t, mounted(), "a refused up leaves no mount")
	var st unix.Stat_t
	require.NoError(t, unix.Stat(foreign, &st), "and leaves the other's name alone")
}

// Inside a node /sys is a sysfs of the node's network namespace, as with
// `ip netns exec`, for exec and for start commands alike: the node's
// interfaces only, and a write changes the node's lo, not the machine's.
// (The write is to ifalias: tx_queue_len through sysfs needs the
// machine's CAP_NET_ADMIN, which the rootless run does not have.)
func TestNodeSysfsIsTheNodes(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "start")
	name := uniqueName("sysfs")
	f := writeTopology(t, fmt.Sprintf("name = %q\n[[nodes]]\nname = \"a\"\nstart = [\"sh -c 'ls /sys/class/net > %s'\"]\n[[nodes]]\nname = \"b\"\n[[links]]\nendpoints = [\"a\", \"b\"]\n", name, out))
	_, errs, code := cli(t, "", "up", f)
	require.Equal(t, 0, code, errs)
	defer cli(t, "", "down", name)
	before, err := os.ReadFile("/sys/class/net/lo/ifalias")
	require.NoError(t, err)

	list, errs, code := cli(t, "", "exec", name, "a", "--", "ls", "/sys/class/net")
	require.Equal(t, 0, code, errs)
	require.Equal(t, "eth0\nlo\n", list)
	got, errs, code := cli(t, "", "exec", name, "a", "--", "sh", "-c", "echo nslab-node > /sys/class/net/lo/ifalias; cat /sys/class/net/lo/ifalias")
	require.Equal(t, 0, code, errs)
	require.Equal(t, "nslab-node\n", got, "the node's lo changed")
	after, err := os.ReadFile("/sys/class/net/lo/ifalias")
	require.NoError(t, err)
	require.Equal(t, string(before), string(after), "the machine's lo did not")
	require.Eventually(t, func() bool {
		data, _ := os.ReadFile(out)
		return string(data) == "eth0\nlo\n"
	}, 5*time.Second, 10*time.Millisecond, "a start command sees the node's /sys")
}

// A Lab whose lab was cleaned and built again by another process since
// does not remove the new one when it goes down: the record on disk is
// not its own, so it removes only what it made (nothing is left of it).
func TestStaleLabDownLeavesNewLab(t *testing.T) {
	t.Parallel()
	top := loadTopology(t, "lan.toml")
	old := startLabIn(t, top, emulator.Options{})
	_, errs, code := cli(t, "", "clean", top.Name)
	require.Equal(t, 0, code, errs)
	f := writeTopology(t, strings.Replace(mustRead(t, "../topologies/lan.toml"), `name = "lan"`, fmt.Sprintf("name = %q", top.Name), 1))
	_, errs, code = cli(t, "", "up", f)
	require.Equal(t, 0, code, errs)
	defer cli(t, "", "down", top.Name)

	require.NoError(t, old.Down())
	require.Len(t, labNamespaces(top.Name), 4, "the new lab's namespaces stay")
	out, errs, code := cli(t, "", "status", top.Name)
	require.Equal(t, 0, code, "%s%s", out, errs)
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(data)
}

// Directories given with a trailing slash or as relative paths are made
// absolute and clean before they are recorded: the lab goes down as any
// other (a record must name absolute, clean paths).
func TestDirectoriesRecordedClean(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	name := uniqueName("dirs")
	state, nsdir := filepath.Join(dir, "state")+"/", filepath.Join(dir, "netns")+"//"
	t.Cleanup(func() { netns.UnmountDir(filepath.Join(dir, "netns")) }) // a shared mount, as ip netns leaves it
	_, errs, code := cli(t, "", "--state-dir", state, "--netns-dir", nsdir, "up", "--topo", "single,2", "--name", name)
	require.Equal(t, 0, code, errs)
	_, errs, code = cli(t, "", "--state-dir", state, "--netns-dir", nsdir, "down", name)
	require.Equal(t, 0, code, errs)
	left, _ := filepath.Glob(filepath.Join(dir, "netns", "*"))
	require.Empty(t, left)
}
