package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nslab/nslab/internal/netns"
	"github.com/nslab/nslab/internal/rootless"
	"github.com/stretchr/testify/require"
)

// Without root (docs/rootless.md): the tests run as root and run nslab and
// Go tests as ordinary users, uid 65534 and 65533, each with a HOME and an
// XDG_RUNTIME_DIR of its own.

// rootOnlyUsers is why these tests are root-only: the rootless run's user
// namespace maps one user alone (to root), so it cannot become another.
const rootOnlyUsers = "it runs nslab as ordinary users (uid 65534, 65533) through SysProcAttr.Credential, and the rootless run's user namespace maps one user alone"

// rlUser is an ordinary user for a test.
type rlUser struct {
	uid     int
	home    string
	runtime string // XDG_RUNTIME_DIR
}

func newRLUser(t *testing.T, uid int) *rlUser {
	t.Helper()
	base, err := os.MkdirTemp("", "nslab-rl-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(base) })
	require.NoError(t, os.Chmod(base, 0o755))
	u := &rlUser{uid: uid, home: filepath.Join(base, "home"), runtime: filepath.Join(base, "run")}
	for _, d := range []string{u.home, u.runtime} {
		require.NoError(t, os.Mkdir(d, 0o700))
		require.NoError(t, os.Chown(d, uid, uid))
	}
	return u
}

// dir is the user's nslab directory.
func (u *rlUser) dir() string { return filepath.Join(u.runtime, "nslab") }

func (u *rlUser) env(extra ...string) []string {
	var env []string
	for _, e := range os.Environ() {
		k, _, _ := strings.Cut(e, "=")
		if k == "HOME" || k == "XDG_RUNTIME_DIR" || strings.HasPrefix(k, "NSLAB_") || k == "GOFLAGS" {
			continue
		}
		env = append(env, e)
	}
	return append(append(env, "HOME="+u.home, "XDG_RUNTIME_DIR="+u.runtime), extra...)
}

func (u *rlUser) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = u.env()
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u.uid), Gid: uint32(u.uid)}}
	return cmd
}

// cleanOnExit removes the user's lab when the test ends, whatever
// happened (nslab clean is idempotent).
func (u *rlUser) cleanOnExit(t *testing.T, lab string) {
	t.Cleanup(func() { u.cli(t, "clean", lab) })
}

// cli runs nslab as the user.
func (u *rlUser) cli(t testing.TB, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := u.command(nslabBin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return o.String(), e.String(), ee.ExitCode()
	}
	require.NoError(t, err)
	return o.String(), e.String(), 0
}

// keeperRecord reads the user's keeper record of lab.
func (u *rlUser) keeperRecord(t testing.TB, lab string) rootless.Record {
	t.Helper()
	data, err := os.ReadFile(rootless.RecordPath(u.dir(), lab))
	require.NoError(t, err)
	var r rootless.Record
	require.NoError(t, json.Unmarshal(data, &r))
	return r
}

// requireKeeperGone waits for the keeper files of lab to go.
func (u *rlUser) requireKeeperGone(t testing.TB, lab string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, e1 := os.Lstat(rootless.SockPath(u.dir(), lab))
		_, e2 := os.Lstat(rootless.RecordPath(u.dir(), lab))
		if os.IsNotExist(e1) && os.IsNotExist(e2) {
			return
		}
		require.True(t, time.Now().Before(deadline), "the keeper files of %s are still there", lab)
		time.Sleep(10 * time.Millisecond)
	}
}

// inUserNS lists the processes (of any user) in the user namespace id.
func inUserNS(id string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || strings.Contains(string(stat), ") Z ") {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat(fmt.Sprintf("/proc/%d/ns/user", pid), &st) == nil && fmt.Sprintf("%d:%d", st.Dev, st.Ino) == id {
			pids = append(pids, pid)
		}
	}
	return pids
}

// requireNothingOnMachine checks that lab left nothing in the machine's
// own namespace directory, state directory and interfaces.
func requireNothingOnMachine(t *testing.T, lab string) {
	t.Helper()
	for _, dir := range []string{"/run/netns", "/run/nslab"} {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			require.False(t, strings.HasPrefix(e.Name(), lab), "%s/%s", dir, e.Name())
		}
	}
}

// go test as an ordinary user: nslabtest.Main runs the tests in a user
// namespace of their own; parallel tests, cleanups, the NAT classifier,
// hole punching, the examples and the helpers' own tests all pass, none
// skipped.
func TestRootlessGoTest(t *testing.T) {
	rootOnly(t, rootOnlyUsers)
	t.Parallel()
	_, here, _, _ := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(here))
	bin, err := os.MkdirTemp("", "nslab-rl-bin-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(bin) })
	require.NoError(t, os.Chmod(bin, 0o755))
	u := newRLUser(t, 65534)
	for _, pkg := range []string{"tests/rootlessmain", "tests/nslabtestmain", "emulator/nslabtest"} {
		t.Run(strings.ReplaceAll(pkg, "/", "_"), func(t *testing.T) {
			exe := filepath.Join(bin, strings.ReplaceAll(pkg, "/", "_")+".test")
			build := exec.Command("go", "test", "-c", "-o", exe, "./"+pkg)
			build.Dir = root
			out, err := build.CombinedOutput()
			require.NoError(t, err, string(out))
			cmd := u.command(exe, "-test.count=1", "-test.v")
			cmd.Dir = filepath.Join(root, pkg)
			cmd.Env = u.env("NSLAB_EXPECT_ROOTLESS=1", "NSLAB_EXPECT_UID=65534", "NSLAB_EXPECT_MACHINE_NETNS="+startNetns)
			out, err = cmd.CombinedOutput()
			require.NoError(t, err, string(out))
			require.Contains(t, string(out), "\nPASS\n")
			require.NotContains(t, string(out), "SKIP")
			require.Greater(t, strings.Count(string(out), "--- PASS"), 1, string(out))
		})
	}
	// The tmpfs was the tests' own: nothing of theirs is left outside.
	ents, err := os.ReadDir(u.dir())
	require.NoError(t, err)
	for _, e := range ents {
		require.Equal(t, "mnt", e.Name())
	}
	left, _ := os.ReadDir(filepath.Join(u.dir(), "mnt"))
	require.Empty(t, left)
}

// A lab's whole life through the CLI as an ordinary user: up leaves a
// keeper; status, exec, ping, pingall reach the lab through it; nothing
// is in the machine's own namespaces; down removes the lab and the
// keeper ends.
func TestRootlessCLILifecycle(t *testing.T) {
	rootOnly(t, rootOnlyUsers)
	t.Parallel()
	u := newRLUser(t, 65534)
	name := uniqueName("rl")
	u.cleanOnExit(t, name)
	out, errs, code := u.cli(t, "up", "../topologies/lan.toml", "--name", name)
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "lab "+name+": ")
	rec := u.keeperRecord(t, name)
	require.NotEmpty(t, inUserNS(rec.UserNS))

	out, errs, code = u.cli(t, "status")
	require.Equal(t, 0, code, errs)
	require.Regexp(t, name+` +up +\d+`, out)
	out, errs, code = u.cli(t, "status", name)
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "lab "+name+" (up)")
	// Tab completes the user's labs and their nodes.
	out, _, _ = u.cli(t, "__complete", "exec", "")
	require.Contains(t, out, name+"\tup, ")
	out, _, _ = u.cli(t, "__complete", "exec", name, "")
	require.Contains(t, out, "h1\thost\n")
	out, errs, code = u.cli(t, "exec", name, "h1", "--", "hostname")
	require.Equal(t, 0, code, errs)
	require.Equal(t, "h1\n", out)
	_, _, code = u.cli(t, "exec", name, "h1", "--", "sh", "-c", "exit 3")
	require.Equal(t, 3, code, "the command's exit code passes through")
	_, _, code = u.cli(t, "exec", name, "h1", "--", "nslab-no-such-program")
	require.Equal(t, 127, code)
	out, errs, code = u.cli(t, "ping", name, "h1", "h2")
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "3/3 replies")
	_, errs, code = u.cli(t, "pingall", name)
	require.Equal(t, 0, code, errs)
	requireNothingOnMachine(t, name)
	require.False(t, namespaceExists(name+".h1"))

	// A shell on a terminal gets a terminal of the lab's own, as its
	// controlling one: job control works ("script" gives the CLI a
	// pseudo-terminal).
	if _, err := exec.LookPath("script"); err != nil {
		t.Fatal("this test needs `script` (util-linux) for a pseudo-terminal")
	}
	sh := u.command("script", "-qec", nslabBin+" shell "+name+" h1", "/dev/null")
	sh.Env = append(sh.Env, "SHELL=/bin/sh")
	sh.Stdin = strings.NewReader("sleep 0.2; tty; sleep 9 & jobs; exit 5\n")
	shOut, err := sh.CombinedOutput()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, string(shOut))
	require.Equal(t, 5, ee.ExitCode(), string(shOut))
	require.Contains(t, string(shOut), "/dev/pts/")
	require.Contains(t, string(shOut), "Running")
	require.NotContains(t, string(shOut), "job control turned off")

	// Bad input is still bad input, with nothing made.
	_, errs, code = u.cli(t, "exec", "nosuchlab", "h1", "--", "true")
	require.Equal(t, 2, code)
	require.Contains(t, errs, `no lab "nosuchlab"; labs up: `+name)

	out, errs, code = u.cli(t, "down", name)
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "lab "+name+" torn down")
	u.requireKeeperGone(t, name)
	require.Eventually(t, func() bool { return len(inUserNS(rec.UserNS)) == 0 }, 5*time.Second, 10*time.Millisecond, "the user namespace ended")
	out, _, _ = u.cli(t, "status")
	require.Equal(t, "no labs are up\n", out)
}

// A keeper killed with kill -9: its lab's processes (here the echo
// service) keep the user namespace alive; commands say so, status shows it
// orphaned, and clean stops every process of that user namespace (found
// by its identity) and removes the keeper's files.
func TestRootlessCleanAfterKill9(t *testing.T) {
	rootOnly(t, rootOnlyUsers)
	t.Parallel()
	u := newRLUser(t, 65534)
	name := uniqueName("rlk")
	u.cleanOnExit(t, name)
	_, errs, code := u.cli(t, "up", "../topologies/p2p.toml", "--name", name)
	require.Equal(t, 0, code, errs)
	rec := u.keeperRecord(t, name)
	require.NoError(t, syscall.Kill(rec.PID, syscall.SIGKILL))
	require.Eventually(t, func() bool {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", rec.PID))
		return err != nil || strings.Contains(string(stat), ") Z ")
	}, 5*time.Second, 10*time.Millisecond)
	require.NotEmpty(t, inUserNS(rec.UserNS), "the echo service holds the user namespace")

	_, errs, code = u.cli(t, "exec", name, "alice", "--", "true")
	require.Equal(t, 1, code)
	require.Contains(t, errs, "its keeper is gone (killed?): remove what is left with `nslab clean "+name+"`")
	out, _, code := u.cli(t, "status")
	require.Equal(t, 0, code)
	require.Regexp(t, name+` +orphaned`, out)

	out, errs, code = u.cli(t, "clean", name)
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "lab "+name+" cleaned (its keeper was gone;")
	require.Empty(t, inUserNS(rec.UserNS), "nothing is left in the user namespace")
	u.requireKeeperGone(t, name)
	out, _, code = u.cli(t, "clean", name)
	require.Equal(t, 0, code)
	require.Equal(t, "no lab "+name+": nothing to clean\n", out)
	requireNothingOnMachine(t, name)
}

// Two users' labs of one name are two labs that never meet; one user
// cannot reach the other's, and root is refused by a user's keeper.
func TestRootlessTwoUsers(t *testing.T) {
	rootOnly(t, rootOnlyUsers)
	t.Parallel()
	a, b := newRLUser(t, 65534), newRLUser(t, 65533)
	name := uniqueName("rlu")
	for _, u := range []*rlUser{a, b} {
		u.cleanOnExit(t, name)
		_, errs, code := u.cli(t, "up", "--topo", "single,2", "--name", name)
		require.Equal(t, 0, code, errs)
	}
	ra, rb := a.keeperRecord(t, name), b.keeperRecord(t, name)
	require.NotEqual(t, ra.UserNS, rb.UserNS)
	// Each user's commands reach that user's lab, as root of its own
	// user namespace.
	for _, u := range []*rlUser{a, b} {
		out, errs, code := u.cli(t, "exec", name, "h1", "--", "cat", "/proc/self/uid_map")
		require.Equal(t, 0, code, errs)
		require.Regexp(t, fmt.Sprintf(`^ +0 +%d +1\n$`, u.uid), out)
	}
	// b with a's XDG_RUNTIME_DIR (as sudo -u keeps it): not b's, so b's
	// labs are in /tmp/nslab-65533, and a's stay out of reach.
	cmd := b.command(nslabBin, "status", name)
	cmd.Env = append(b.env(), "XDG_RUNTIME_DIR="+a.runtime, "TMPDIR="+b.home)
	o, _ := cmd.CombinedOutput()
	require.NotContains(t, string(o), "lab "+name+" (up)")
	require.Contains(t, string(o), `no lab "`+name+`"`)
	require.DirExists(t, filepath.Join(b.home, "nslab-65533"))
	// b at a's socket itself: a's directory is closed to b.
	_, err := os.Stat(a.dir())
	require.NoError(t, err)
	cmd = b.command("cat", rootless.SockPath(a.dir(), name))
	o, _ = cmd.CombinedOutput()
	require.Contains(t, string(o), "Permission denied")
	// Root, at a's socket: the keeper refuses (root is not the user it
	// maps to root).
	_, err = rootless.Forward(a.dir(), name, rootless.Request{Args: []string{"nslab", "status"}, Dir: "/"}, os.Stdin, os.Stdout, os.Stderr)
	require.ErrorContains(t, err, "this lab belongs to another user")

	for _, u := range []*rlUser{a, b} {
		_, errs, code := u.cli(t, "down", name)
		require.Equal(t, 0, code, errs)
		u.requireKeeperGone(t, name)
	}
}

// nslab run as an ordinary user: the lab lives and dies in a user
// namespace of its own and leaves nothing on the machine or in the
// user's directory; a host attachment is refused (it needs root).
func TestRootlessRun(t *testing.T) {
	rootOnly(t, rootOnlyUsers)
	t.Parallel()
	u := newRLUser(t, 65534)
	name := uniqueName("rlr")
	linksBefore := links()
	out, errs, code := u.cli(t, "run", "--topo", "single,3", "--name", name)
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "6/6 received")
	require.Contains(t, out, "lab "+name+" torn down")
	u.requireKeeperGone(t, name)
	requireNothingOnMachine(t, name)
	for _, l := range links() {
		require.Contains(t, linksBefore, l, "a link appeared on the machine")
	}
	// Back to back under one name, as a loop of tests does: each run
	// gets a keeper, also while the last one is ending.
	for range 5 {
		_, errs, code := u.cli(t, "run", "--topo", "single,2", "--name", name, "--test", "none")
		require.Equal(t, 0, code, errs)
	}
	u.requireKeeperGone(t, name)
	ents, _ := os.ReadDir(u.dir())
	for _, e := range ents {
		require.Equal(t, "mnt", e.Name())
	}

	file := filepath.Join(u.home, "host.toml")
	require.NoError(t, os.WriteFile(file, []byte("name = \"h\"\n[[nodes]]\nname = \"s1\"\nkind = \"switch\"\n[[nodes]]\nname = \"a\"\n[[links]]\nendpoints = [\"a\", \"s1\"]\n[host]\nnode = \"s1\"\ninterface = \"nslabrl0\"\n"), 0o644))
	_, errs, code = u.cli(t, "run", file)
	require.Equal(t, 1, code, errs)
	require.Contains(t, errs, `lab "h": a host attachment needs root`)
}

// links are the names of the machine's own interfaces.
func links() []string {
	ents, _ := os.ReadDir("/sys/class/net")
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// --rootless makes root run as an ordinary user does: the lab is not in
// /run/nslab.
func TestRootlessFlagForRoot(t *testing.T) {
	rootOnly(t, "it tests root's own --rootless (in the rootless run, nslab is root of a user namespace already)")
	t.Parallel()
	u := newRLUser(t, 0)
	name := uniqueName("rlf")
	cmd := exec.Command(nslabBin, "--rootless", "run", "--topo", "single,2", "--name", name, "--script", "-")
	cmd.Env = u.env()
	cmd.Stdin = strings.NewReader("h1 cat /proc/self/uid_map\n")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	require.Regexp(t, `0 +0 +1\b`, string(out), "a user namespace mapping root alone")
	requireNothingOnMachine(t, name)
}

// Where the machine forbids user namespaces, nslab says which setting
// does, in one line, and builds nothing. Here the limit is set to 0 in a
// user namespace made for the test (the limit is per user namespace), so
// the machine's own setting is left alone; inside it, nslab runs as uid
// 65534.
func TestRootlessForbidden(t *testing.T) {
	rootOnly(t, "it makes a user namespace mapping uids 0 to 65535, to set user.max_user_namespaces = 0 there and run nslab as uid 65534")
	t.Parallel()
	u := newRLUser(t, 65534)
	for _, args := range [][]string{{"run", "--topo", "single,2"}, {"up", "--topo", "single,2", "--name", uniqueName("rlz")}} {
		script := "echo 0 > /proc/sys/user/max_user_namespaces && exec setpriv --reuid=65534 --regid=65534 --clear-groups " + nslabBin + " " + strings.Join(args, " ")
		cmd := exec.Command("sh", "-c", script)
		cmd.Env = u.env()
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Cloneflags:                 syscall.CLONE_NEWUSER,
			UidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 65536}},
			GidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 65536}},
			GidMappingsEnableSetgroups: true,
		}
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee, string(out))
		require.Equal(t, 1, ee.ExitCode(), string(out))
		require.Equal(t, "nslab: nslab without root needs a user namespace, which this machine forbids (sysctl user.max_user_namespaces = 0): run as root, or allow them (docs/rootless.md)\n", string(out))
	}
	ents, _ := os.ReadDir(u.dir())
	require.Empty(t, ents, "nothing made")
}

// nslab run without root holds its lab through a keeper too: while it
// runs, the user's other commands reach the lab; killed with kill -9, it
// leaves nothing (its command in the keeper gets a hang-up and tears the
// lab down, and the keeper ends).
func TestRootlessRunKilled(t *testing.T) {
	rootOnly(t, rootOnlyUsers)
	t.Parallel()
	u := newRLUser(t, 65534)
	name := uniqueName("rlrk")
	u.cleanOnExit(t, name)
	run := u.command(nslabBin, "run", "--topo", "single,2", "--name", name, "--script", "-")
	run.Stdin = strings.NewReader("sleep 30s\n")
	require.NoError(t, run.Start())
	require.Eventually(t, func() bool {
		out, _, code := u.cli(t, "exec", name, "h1", "--", "hostname")
		return code == 0 && out == "h1\n"
	}, 10*time.Second, 20*time.Millisecond, "the lab of run is reached from another command")
	out, _, _ := u.cli(t, "status")
	require.Regexp(t, name+` +up`, out)
	rec := u.keeperRecord(t, name)
	require.NoError(t, run.Process.Kill())
	run.Wait()
	u.requireKeeperGone(t, name)
	require.Eventually(t, func() bool { return len(inUserNS(rec.UserNS)) == 0 }, 5*time.Second, 10*time.Millisecond, "the user namespace ended")
	out, _, _ = u.cli(t, "status")
	require.Equal(t, "no labs are up\n", out)
}

// A keeper that fails on its way up (here its tmpfs cannot be mounted:
// the user's directory has a file where it goes) says why, in one line,
// and leaves no keeper files.
func TestRootlessKeeperFailsEarly(t *testing.T) {
	rootOnly(t, rootOnlyUsers)
	t.Parallel()
	u := newRLUser(t, 65534)
	name := uniqueName("rlkf")
	_, errs, code := u.cli(t, "status") // makes the user's directory
	require.Equal(t, 0, code, errs)
	require.NoError(t, os.WriteFile(filepath.Join(u.dir(), "mnt"), nil, 0o600))
	require.NoError(t, os.Chown(filepath.Join(u.dir(), "mnt"), 65534, 65534))
	_, errs, code = u.cli(t, "up", "--topo", "single,2", "--name", name)
	require.Equal(t, 1, code, errs)
	require.Equal(t, "nslab: mount a tmpfs on "+filepath.Join(u.dir(), "mnt")+": not a directory\n", errs)
	ents, _ := os.ReadDir(u.dir())
	require.Len(t, ents, 1, "only the planted file")
}

// The check the rootless run's parent makes of the machine (leftSince in
// TestMain) reports what it must: a name with the run's tag, and a
// network namespace of a user namespace made below the checking
// process's (what an ordinary user's run can make); it leaves alone what
// was there before, other names, and a namespace of the checker's own
// user namespace (root's, seen from the machine). Checked here on a
// directory of the test's own, in both runs.
func TestLeftoverCheckOfTheMachine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "old-"+tag+"-0"), nil, 0o644))
	before := entries([]string{dir})
	pin := func(name string, ns *netns.NS) {
		p := &netns.Pinner{}
		defer p.Close()
		path := filepath.Join(dir, name)
		require.NoError(t, ns.Pin(p, path))
		t.Cleanup(func() { netns.Unpin(path) })
	}
	own, err := netns.New(nil)
	require.NoError(t, err)
	defer own.Close()
	pin("own", own)
	sleep := exec.Command("sleep", "60")
	sleep.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
	}
	require.NoError(t, sleep.Start())
	t.Cleanup(func() { sleep.Process.Kill(); sleep.Wait() })
	nested, err := netns.Open(fmt.Sprintf("/proc/%d/ns/net", sleep.Process.Pid))
	require.NoError(t, err)
	defer nested.Close()
	pin("nested", nested)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "lab-"+tag+"-1"), nil, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "other"), nil, 0o644))

	require.Equal(t, []string{
		filepath.Join(dir, "lab-"+tag+"-1"),
		filepath.Join(dir, "nested") + " (a namespace of a user namespace)",
	}, leftSince(before, []string{dir}))
}
