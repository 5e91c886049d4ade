package tests

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/impair"
	"github.com/nslab/nslab/internal/netns"
	"github.com/nslab/nslab/internal/rootless"
	"github.com/nslab/nslab/topo"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

var labSeq atomic.Int64

// tag is in the name of every lab this test process makes, so that the
// leftover check looks at this process's labs only and parallel runs of
// the suite do not disturb each other. Set by TestMain: the process's PID,
// or in the child of a rootless run its parent's (testTagEnv), so that the
// parent finds the child's names on the machine.
var tag string

// uniqueName gives a lab name no other test, parallel or in another
// process, uses at the same time.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%s-%d", prefix, tag, labSeq.Add(1))
}

// nslabBin is the CLI, built once for the suite (or NSLAB_TEST_CLI).
var nslabBin string

// Environment variables of the suite.
const (
	// prebuiltCLIEnv names a prebuilt nslab CLI for the suite (make
	// test-rootless: the user who runs it may have no Go toolchain);
	// without it TestMain builds one with go build.
	prebuiltCLIEnv = "NSLAB_TEST_CLI"
	// rootlessRunEnv is set to 1 in the rootless run (the suite run by an
	// ordinary user, in a user namespace of its own) and everything it
	// starts: rootOnly reads it.
	rootlessRunEnv = "NSLAB_TEST_ROOTLESS"
	// testTagEnv hands the parent's tag to the child of a rootless run.
	testTagEnv = "NSLAB_TEST_TAG"
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

// startNetns is the network namespace the tests run in, read before any
// lab exists (later, /proc/self/ns/net is the main thread's, which the Go
// runtime may have retired inside a node after a namespace switch).
var startNetns string

func runMain(m *testing.M) int {
	if code, ok := emulator.Dispatch(); ok {
		return code // this binary, re-executed as a helper of a lab (the echo service)
	}
	// The main thread stays with TestMain, out of the nodes (as
	// nslabtest.Main does).
	runtime.LockOSThread()
	tag = cmp.Or(os.Getenv(testTagEnv), fmt.Sprintf("t%d", os.Getpid()%1000000))
	os.Unsetenv(testTagEnv) // a test's child process (runChild) has a tag of its own
	startNetns, _ = os.Readlink("/proc/thread-self/ns/net")
	if os.Getenv("NSLAB_CHILD") == "ice-agent" {
		// TestICEAgreesWithPunch runs this binary inside a lab node as one
		// ICE agent.
		return iceAgentMain()
	}
	if os.Getenv("NSLAB_CHILD") == "not-root" {
		// TestNslabtestNotRoot runs this binary as nobody: only that test runs.
		return m.Run()
	}
	if code, ok := runRootless(); ok {
		return code
	}
	dir, err := os.MkdirTemp("", "nslab-tests-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755) // TestCompletionOfALab runs nslab as nobody
	if nslabBin = os.Getenv(prebuiltCLIEnv); nslabBin != "" {
		if nslabBin, err = filepath.Abs(nslabBin); err == nil {
			_, err = os.Stat(nslabBin)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "tests: %s: %v\n", prebuiltCLIEnv, err)
			return 1
		}
	} else {
		nslabBin = filepath.Join(dir, "nslab")
		_, here, _, _ := runtime.Caller(0)
		build := exec.Command("go", "build", "-buildvcs=auto", "-o", nslabBin, "./cmd/nslab")
		build.Dir = filepath.Dir(filepath.Dir(here))
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build nslab: %v\n%s(or name a prebuilt one in %s)\n", err, out, prebuiltCLIEnv)
			return 1
		}
	}
	code := m.Run()
	if left := leftovers(); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: the suite left things behind:\n  %s\n", strings.Join(left, "\n  "))
		return 1
	}
	return code
}

// runRootless runs the suite as nslabtest.Main does when this process
// lacks the capabilities to build labs (an ordinary user ran it) or
// NSLAB_ROOTLESS=1 asks: again, as a child in a user namespace of its own
// where the user is root, its state and named namespaces in a tmpfs of its
// own mount namespace (internal/rootless, docs/rootless.md). In that
// child it sets up and returns ok false: the tests run there, every one
// as root of the user namespace. In the parent it returns the child's
// exit code, ok true, after checking that nothing of the run appeared in
// the machine's own /run/netns, /run/nslab and interfaces.
func runRootless() (code int, ok bool) {
	if _, child, err := rootless.Setup(); child {
		if err != nil {
			fmt.Fprintf(os.Stderr, "tests: %v\n", err)
			return 1, true
		}
		return 0, false
	}
	if !rootless.Needed(emulator.MissingCapabilities(true), rootless.Forced()) {
		return 0, false
	}
	before := entries(machineDirs)
	dir, err := rootless.Dir()
	if err == nil {
		cmd := rootless.Command(dir, "/proc/self/exe", os.Args)
		cmd.Env = append(cmd.Env, testTagEnv+"="+tag, rootlessRunEnv+"=1")
		code, err = rootless.Run(cmd)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "tests: %v\n", err)
		return 1, true
	}
	if left := leftSince(before, machineDirs); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: the rootless run left things on the machine:\n  %s\n", strings.Join(left, "\n  "))
		return 1, true
	}
	return code, true
}

// rootlessRun reports whether this is the rootless run of the suite.
func rootlessRun() bool { return os.Getenv(rootlessRunEnv) == "1" }

// rootOnly skips t in the rootless run, with why: for the tests that are
// root-only by nature (they switch to other users, or reach the
// machine's own namespaces), each named in docs/rootless.md ("Tests").
// Under root they run, never skipped.
func rootOnly(t *testing.T, why string) {
	t.Helper()
	if rootlessRun() {
		t.Skip("root only: " + why)
	}
}

// netnsDir is where this run's labs pin their named namespaces, and
// stateDir where their records are: /run/netns and /run/nslab under
// root, the private tmpfs of the user namespace in the rootless run (the
// engine and the CLI read the same variables). Tests read these, never
// the machine's directories by name.
func netnsDir() string { return cmp.Or(os.Getenv(rootless.NetnsEnv), "/run/netns") }
func stateDir() string { return cmp.Or(os.Getenv(rootless.StateEnv), "/run/nslab") }

// netnsPath is the pinned namespace name of this run.
func netnsPath(name string) string { return filepath.Join(netnsDir(), name) }

// machineDirs are the machine's own namespace and state directories and
// its interfaces.
var machineDirs = []string{"/run/netns", "/run/nslab", "/sys/class/net"}

// leftovers lists what this test process's labs left behind: named
// namespaces and lab records (in this run's directories and the
// machine's), links in the namespace the tests run in and the machine's,
// and processes.
func leftovers() []string {
	dirs := append([]string{netnsDir(), stateDir()}, machineDirs...)
	slices.Sort(dirs)
	var out []string
	for _, dir := range slices.Compact(dirs) {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if strings.Contains(e.Name(), "-"+tag+"-") || strings.HasPrefix(e.Name(), "nt"+tag) {
				out = append(out, filepath.Join(dir, e.Name()))
			}
		}
	}
	ifs, _ := net.Interfaces() // the namespace the tests run in
	for _, i := range ifs {
		if strings.HasPrefix(i.Name, "nt"+tag) {
			out = append(out, "link "+i.Name)
		}
	}
	// Processes started by the suite's labs.
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		data, _ := os.ReadFile(p)
		if bytes.Contains(data, []byte("nslab-test-marker-"+tag)) {
			out = append(out, "process "+p)
		}
	}
	return out
}

// entries lists what is in dirs.
func entries(dirs []string) map[string]bool {
	objs := map[string]bool{}
	for _, dir := range dirs {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			objs[filepath.Join(dir, e.Name())] = true
		}
	}
	return objs
}

// leftSince lists what appeared in dirs since before (entries) and is
// still there, leaving out what is evidently another's: it reports the
// names with this run's tag and the network namespaces of a user
// namespace made inside this process's (what an ordinary user can make;
// root's belong to the machine's own). The parent of the rootless run, an
// ordinary user, checks the machine's directories with it: it cannot
// write there at all, and this checks that it stayed so.
func leftSince(before map[string]bool, dirs []string) []string {
	var out []string
	for obj := range entries(dirs) {
		if before[obj] {
			continue
		}
		switch {
		case strings.Contains(filepath.Base(obj), tag):
			out = append(out, obj)
		case ofUserNamespace(obj):
			out = append(out, obj+" (a namespace of a user namespace)")
		}
	}
	slices.Sort(out)
	return out
}

// ofUserNamespace reports whether the network namespace pinned at path
// belongs to a user namespace made inside this process's (the machine's
// own, for the parent of the rootless run): what an ordinary user can
// make, and root's never are.
func ofUserNamespace(path string) bool {
	if st, err := os.Lstat(path); err != nil || !st.Mode().IsRegular() {
		return false // a pinned namespace is a regular file
	}
	ns, err := os.Open(path)
	if err != nil {
		return false
	}
	defer ns.Close()
	fd, err := unix.IoctlRetInt(int(ns.Fd()), unix.NS_GET_USERNS) // EPERM: not below ours
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	var owner, mine unix.Stat_t
	return unix.Fstat(fd, &owner) == nil && unix.Stat("/proc/self/ns/user", &mine) == nil && (owner.Dev != mine.Dev || owner.Ino != mine.Ino)
}

// startLab builds top and tears it down when the test ends.
func startLab(t testing.TB, top *topo.Topology, opts emulator.Options) *emulator.Lab {
	t.Helper()
	plan, err := topo.Resolve(top)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	lab, err := emulator.Up(ctx, plan, opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, lab.Down()) })
	return lab
}

// loadTopology reads a file from topologies/ and renames the lab.
func loadTopology(t testing.TB, file string) *topo.Topology {
	t.Helper()
	top, err := topo.LoadFile(filepath.Join("..", "topologies", file)) // the package's directory, as go test runs it
	require.NoError(t, err)
	top.Name = uniqueName(strings.TrimSuffix(file, ".toml"))
	return top
}

// cli runs the nslab binary and returns its output and exit code.
func cli(t testing.TB, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(nslabBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return o.String(), e.String(), ee.ExitCode()
	}
	require.NoError(t, err)
	return o.String(), e.String(), 0
}

// namespaceExists reports whether this run has a named namespace name.
func namespaceExists(name string) bool {
	_, err := os.Stat(netnsPath(name))
	return err == nil
}

// reach asserts that from reaches to with ICMP (or not, with want false).
func reach(t testing.TB, lab *emulator.Lab, from, to string, want bool) {
	t.Helper()
	r, err := lab.Ping(context.Background(), from, to, emulator.PingOptions{Count: 2, Timeout: 300 * time.Millisecond})
	require.NoError(t, err)
	if want {
		require.True(t, r.OK(), "%s should reach %s: %s", from, to, r)
	} else {
		require.Zero(t, r.Received, "%s should not reach %s: %s", from, to, r)
	}
}

func emptyOpts() emulator.Options { return emulator.Options{} }

// requireNothingLeftOpen runs run as a subtest (where a lab is built and
// used, and torn down when the subtest ends) and then requires that the
// process has no more goroutines and file descriptors than before. Not for
// parallel tests: the counts are of the whole process.
func requireNothingLeftOpen(t *testing.T, run func(t *testing.T)) {
	t.Helper()
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		require.NoError(t, err)
		return len(ents)
	}
	runtime.GC()
	g0, f0 := runtime.NumGoroutine(), fds()
	t.Run("lab", run)
	var g1, f1 int
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if g1, f1 = runtime.NumGoroutine(), fds(); g1 <= g0 && f1 <= f0 {
			break
		}
	}
	require.LessOrEqual(t, g1, g0, "goroutines left running")
	require.LessOrEqual(t, f1, f0, "file descriptors left open")
}

// runChild runs one test of this binary again as a child process with
// NSLAB_CHILD=child, requires it to fail, and returns its output and exit
// code: for tests of what a failing test prints.
func runChild(t *testing.T, test, child string) (string, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "NSLAB_CHILD="+child)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, string(out))
	return string(out), ee.ExitCode()
}

// newNetns makes an empty network namespace pinned as name in this run's
// namespace directory, removed when the test ends, and returns its path:
// the `ip netns add` of a test, which ip cannot do in the rootless run
// (it knows /run/netns alone).
func newNetns(t *testing.T, name string) string {
	t.Helper()
	ns, err := netns.New(nil)
	require.NoError(t, err)
	defer ns.Close()
	p := &netns.Pinner{}
	defer p.Close()
	path := netnsPath(name)
	require.NoError(t, ns.Pin(p, path))
	t.Cleanup(func() { netns.Unpin(path) })
	return path
}

// inNetns is a command that runs prog in the network namespace pinned at
// path: `ip netns exec` for any path.
func inNetns(path, prog string, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=" + path, prog}, args...)...)
}

// needsLoss marks a test that drops packets at random (a link's loss) as
// root-only where the kernel has no netem: nslab's loss is then an eBPF
// classifier, and only the machine's root may load one (CAP_BPF and
// CAP_NET_ADMIN of the machine's first user namespace), so in the
// rootless run the lab fails to build, saying so. With netem, loss works
// in a user namespace and the test runs.
func needsLoss(t *testing.T) {
	t.Helper()
	if !rootlessRun() {
		return
	}
	k, err := impair.DetectKernel()
	require.NoError(t, err)
	if !k.Netem && !k.BPF {
		rootOnly(t, "random loss on a kernel without netem is an eBPF classifier, which only the machine's root may load")
	}
}
