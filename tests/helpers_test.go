package tests

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/topo"
	"github.com/stretchr/testify/require"
)

var labSeq atomic.Int64

// tag is in the name of every lab this test process makes, so that the
// leftover check looks at this process's labs only and parallel runs of
// the suite do not disturb each other.
var tag = fmt.Sprintf("t%d", os.Getpid()%1000000)

// uniqueName gives a lab name no other test, parallel or in another
// process, uses at the same time.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%s-%d", prefix, tag, labSeq.Add(1))
}

// nslabBin is the CLI, built once for the suite.
var nslabBin string

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
	if os.Geteuid() != 0 {
		// Not a skip: the integration tests are the point of this package.
		fmt.Fprintln(os.Stderr, "tests: the integration tests build real labs and must run as root (sudo make test)")
		return 1
	}
	dir, err := os.MkdirTemp("", "nslab-tests-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755) // TestCLINotRoot runs it as nobody
	nslabBin = filepath.Join(dir, "nslab")
	_, here, _, _ := runtime.Caller(0)
	build := exec.Command("go", "build", "-buildvcs=auto", "-o", nslabBin, "./cmd/nslab")
	build.Dir = filepath.Dir(filepath.Dir(here))
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build nslab: %v\n%s", err, out)
		return 1
	}
	code := m.Run()
	if left := leftovers(); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: the suite left things behind:\n  %s\n", strings.Join(left, "\n  "))
		return 1
	}
	return code
}

// leftovers lists what this test process's labs left on the machine:
// named namespaces, lab records, and links in the root namespace.
func leftovers() []string {
	var out []string
	for _, dir := range []string{"/run/netns", "/run/nslab"} {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if strings.Contains(e.Name(), "-"+tag+"-") {
				out = append(out, filepath.Join(dir, e.Name()))
			}
		}
	}
	ents, _ := os.ReadDir("/sys/class/net")
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "nt"+tag) {
			out = append(out, "link "+e.Name())
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
	_, here, _, _ := runtime.Caller(0)
	top, err := topo.LoadFile(filepath.Join(filepath.Dir(filepath.Dir(here)), "topologies", file))
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

func namespaceExists(name string) bool {
	_, err := os.Stat(filepath.Join("/run/netns", name))
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
