package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nslab/nslab/emulator/nslabtest"
	"github.com/nslab/nslab/topo"
	"github.com/stretchr/testify/require"
)

// The test helper package, used as a user would.

func TestNslabtestExampleTopologies(t *testing.T) {
	t.Parallel()
	t.Run("lan", func(t *testing.T) {
		t.Parallel()
		lab := nslabtest.StartFile(t, "../topologies/lan.toml")
		m := lab.RequireMatrix()
		require.Len(t, m.Nodes, 3)
		lab.RequireTCP("h1", "h3", 8080)
		lab.RequireUDP("h2", "h1", 5353)
	})
	t.Run("direct", func(t *testing.T) {
		t.Parallel()
		lab := nslabtest.StartFile(t, "../topologies/direct.toml")
		lab.RequireReachable("red", "blue")
		r := lab.RequireUDP("blue", "red", 9999)
		require.Equal(t, "192.168.15.2", r.Observed.Addr().String())
	})
	t.Run("routed", func(t *testing.T) {
		t.Parallel()
		lab := nslabtest.StartFile(t, "../topologies/routed.toml")
		lab.RequireMatrix()
		r := lab.RequireTCP("h1", "h4", 80)
		require.Equal(t, "10.1.0.2", r.Observed.Addr().String(), "no NAT on the way")
	})
	t.Run("nat", func(t *testing.T) {
		t.Parallel()
		lab := nslabtest.StartFile(t, "../topologies/nat.toml")
		require.Equal(t, "203.0.113.1", lab.ObservedSource("client1", "server", 9000).Addr().String())
		lab.RequireUnreachable("server", "client1")
		lab.RequireNoUDP("server", "client2", 9000)
	})
	t.Run("tutorial", func(t *testing.T) {
		t.Parallel()
		lab := nslabtest.StartFile(t, "../topologies/tutorial.toml")
		lab.RequireReachable("red", "blue")
		lab.RequireReachable("blue", "lan")
		lab.RequireUnreachable("lan", "blue")
		res := lab.Exec("blue", "ip", "route")
		require.Contains(t, string(res.Stdout), "192.168.1.0/24 via 192.168.15.5")
	})
}

func TestNslabtestGenerated50Hosts(t *testing.T) {
	t.Parallel()
	top, err := topo.Generate("single,50", "gen50")
	require.NoError(t, err)
	lab := nslabtest.Start(t, top)
	m := lab.RequireMatrix()
	probes, ok := m.Counts()
	require.Equal(t, 2450, probes)
	require.Equal(t, probes, ok)
}

// Two tests with the same topology run side by side, and a lab is gone
// once its test's cleanup has run.
func TestNslabtestParallelAndGone(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var names []string
	t.Run("group", func(t *testing.T) {
		for i := 0; i < 3; i++ {
			t.Run("lab", func(t *testing.T) {
				t.Parallel()
				b := topo.NewBuilder("same").Switch("s1").Host("a").Host("b").Link("a", "s1").Link("b", "s1")
				lab := nslabtest.Start(t, b.Topology())
				mu.Lock()
				names = append(names, lab.Name())
				mu.Unlock()
				lab.RequireReachable("a", "b")
				res := lab.Exec("a", "hostname")
				require.Equal(t, "a\n", string(res.Stdout))
			})
		}
	})
	require.Len(t, names, 3)
	for _, n := range names {
		for _, node := range []string{"s1", "a", "b"} {
			_, err := os.Stat(filepath.Join(netnsDir(), n+"."+node))
			require.True(t, os.IsNotExist(err), "%s-%s is gone", n, node)
		}
		_, err := os.Stat(filepath.Join(stateDir(), n))
		require.True(t, os.IsNotExist(err))
	}
}

func TestNslabtestEventuallyAndFirewall(t *testing.T) {
	t.Parallel()
	top := &topo.Topology{
		Name: "fwx",
		Nodes: []topo.NodeSpec{
			{Name: "web", Firewall: &topo.FirewallSpec{Input: "drop", Rules: []topo.FirewallRule{
				{Chain: "input", Action: "accept", Proto: "tcp", DPort: 443},
			}}},
			{Name: "c"},
		},
		Links: []topo.LinkSpec{{Endpoints: []string{"c", "web"}}},
	}
	lab := nslabtest.Start(t, top)
	lab.RequireTCP("c", "web", 443)
	lab.RequireNoTCP("c", "web", 22)
	lab.RequireNoUDP("c", "web", 443)
	lab.RequireUnreachable("c", "web")
	lab.EventuallyReachable("web", "c", 0)
}

// A failure explains itself with the source node's state: interfaces,
// routes and neighbour entries at that moment.
func TestNslabtestDiagnose(t *testing.T) {
	t.Parallel()
	lab := nslabtest.StartFile(t, "../topologies/lan.toml")
	lab.RequireReachable("h1", "h2")
	d := lab.Diagnose("h1")
	require.Contains(t, d, "node h1 (netns ")
	require.Contains(t, d, "eth0 up 10.0.0.1/24")
	require.Contains(t, d, "route 10.0.0.0/24 dev eth0")
	require.Regexp(t, `neighbour 10\.0\.0\.2 dev eth0 lladdr [0-9a-f:]{17} (REACHABLE|STALE|DELAY|PROBE)`, d)
}

// A failing assertion says which probe failed, from where to where, what
// came back, and the source node's state. The test runs itself again as a
// child process in which the assertion fails, and reads the child's output.
func TestNslabtestFailureExplains(t *testing.T) {
	if child := os.Getenv("NSLAB_CHILD"); child == "failing-assertion" || child == "kept" {
		b := topo.NewBuilder(child).Host("red").Host("blue").Host("green")
		b.Link("red", "blue").Link("blue", "green")
		lab := nslabtest.Start(t, b.Topology())
		lab.RequireReachable("red", "green") // blue does not forward: fails
		return
	}
	t.Parallel()
	s, code := runChild(t, "TestNslabtestFailureExplains", "failing-assertion")
	require.Equal(t, 1, code, s)
	require.Regexp(t, `nslabtest: red should reach green, but: red -> green \(10\.0\.1\.2\): 3 sent, no reply`, s)
	require.Contains(t, s, "node red (netns failing-assertion-")
	require.Contains(t, s, "route 10.0.0.0/24 dev eth0")
	require.Contains(t, s, "--- FAIL: TestNslabtestFailureExplains")
}

// After a lab's test ends, nothing it used stays: no goroutine, no file
// descriptor (sockets, namespace handles). Not parallel: the count is of
// the whole process.
func TestNslabtestLeavesNothingOpen(t *testing.T) {
	requireNothingLeftOpen(t, func(t *testing.T) {
		lab := nslabtest.Start(t, profileLabTopology(topo.NATSpec{Profile: "full-cone", Hairpinning: true}))
		lab.RequireReachable("client", "net")
		lab.RequireTCP("client", "net", 8080)
		lab.RequireUDP("client", "net", 8081)
		lab.RequireMatrix("client", "client2", "gw")
		lab.RequireNAT("client", "net", topo.EndpointIndependent, topo.EndpointIndependent)
		require.True(t, lab.Hairpins("client", "client2", "net"))
		lab.Exec("client", "true")
	})
}

// -nslab.keep keeps a failed test's lab up and says how to enter it.
func TestNslabtestKeepFlag(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^TestNslabtestFailureExplains$", "-test.count=1", "-nslab.keep")
	cmd.Env = append(os.Environ(), "NSLAB_CHILD=kept")
	out, _ := cmd.CombinedOutput()
	m := regexp.MustCompile("lab (kept-[0-9-]+) kept up \\(-nslab.keep\\): enter it with `nslab shell (kept-[0-9-]+) red`, remove it with `nslab down (kept-[0-9-]+)`").FindStringSubmatch(string(out))
	require.NotNil(t, m, string(out))
	name := m[1]
	require.Equal(t, name, m[2])
	t.Cleanup(func() { cli(t, "", "clean", name) })
	require.True(t, namespaceExists(name+".red"), "the lab is still up")
	_, errs, code := cli(t, "", "exec", name, "red", "--", "hostname")
	require.Equal(t, 0, code, errs)
	_, errs, code = cli(t, "", "down", name)
	require.Equal(t, 0, code, errs)
	require.False(t, namespaceExists(name+".red"))
}

// Without the capabilities, Start fails the test with one sentence naming
// them (it does not skip). The test runs itself as nobody (in the rootless
// run: as root of its user namespace without any capability).
func TestNslabtestNotRoot(t *testing.T) {
	if os.Getenv("NSLAB_CHILD") == "not-root" {
		nslabtest.Start(t, topo.NewBuilder("noroot").Host("a").Topology())
		return
	}
	t.Parallel()
	dir, err := os.MkdirTemp("", "nslab-noroot-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755)) // nobody must reach the binary
	bin := filepath.Join(dir, "tests.test")
	data, err := os.ReadFile(os.Args[0])
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(bin, data, 0o755))
	cmd := exec.Command(bin, "-test.run=^TestNslabtestNotRoot$", "-test.count=1")
	if rootlessRun() {
		// Root of the user namespace, which maps no other user: the
		// same process without any capability.
		cmd = exec.Command("setpriv", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", bin, "-test.run=^TestNslabtestNotRoot$", "-test.count=1")
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NSLAB_CHILD=not-root")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, string(out))
	require.Contains(t, string(out), "nslabtest: building a lab needs CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_NET_RAW: run the tests as root")
	require.Contains(t, string(out), "--- FAIL: TestNslabtestNotRoot")
	require.NotContains(t, string(out), "SKIP")
}

// NewUnstarted resolves the topology and returns a lab with default
// Options; the settings made before Start are the ones the lab is built and
// used with. Using the engine before Start, or starting twice, fails the
// test (run as child processes that fail).
func TestNslabtestUnstartedOptions(t *testing.T) {
	switch os.Getenv("NSLAB_CHILD") {
	case "engine-before-start":
		lab := nslabtest.NewUnstarted(t, topo.NewBuilder("early").Host("a").Topology())
		lab.Engine()
		return
	case "start-twice":
		lab := nslabtest.Start(t, topo.NewBuilder("twice").Host("a").Topology())
		lab.Start()
		return
	}
	t.Parallel()
	b := topo.NewBuilder("unstarted").Switch("s1").Host("a").Host("b").Link("a", "s1").Link("b", "s1")
	lab := nslabtest.NewUnstarted(t, b.Topology())
	require.Regexp(t, `^unstarted-[0-9]+-[0-9]+$`, lab.Name())
	require.ElementsMatch(t, []string{"a", "b", "s1"}, lab.Plan().NodeNames())
	require.Equal(t, nslabtest.StartTimeout, lab.Options.StartTimeout)
	require.Equal(t, nslabtest.ExecTimeout, lab.Options.ExecTimeout)
	require.Equal(t, nslabtest.ScriptTimeout, lab.Options.ScriptTimeout)
	_, err := os.Stat(filepath.Join(netnsDir(), lab.Name()+"-a"))
	require.True(t, os.IsNotExist(err), "nothing is built before Start")

	lab.Options.NoEtc = true              // the engine's option: no /etc/hosts of the lab's
	lab.Options.ExecTimeout = time.Second // long enough to start sleep on a loaded machine
	lab.Start()
	require.Same(t, lab.Plan(), lab.Engine().Plan)
	lab.RequireReachable("a", "b")
	res := lab.Exec("a", "getent", "hosts", "b")
	require.Equal(t, 2, res.ExitCode, "NoEtc: b is not in the machine's /etc/hosts: %s", res.Stdout)
	res = lab.Exec("a", "sleep", "10")
	require.Equal(t, 128+9, res.ExitCode, "killed at ExecTimeout")
	require.Less(t, res.Duration, 5*time.Second)

	for child, want := range map[string]string{
		"engine-before-start": `nslabtest: lab "early-[0-9]+-[0-9]+" is not started: call its Start after NewUnstarted`,
		"start-twice":         `nslabtest: lab "twice-[0-9]+-[0-9]+" is already started`,
	} {
		out, code := runChild(t, "TestNslabtestUnstartedOptions", child)
		require.Equal(t, 1, code, out)
		require.Regexp(t, want, out)
	}
}

// RunScripts runs each script matching a glob in a subtest of its own,
// against the topology its `# topology:` line names or the one beside it;
// a failing line fails its subtest with the script's file and line, a
// script that does not fit its topology fails before anything is built,
// and a script naming no topology or a glob matching nothing fails the
// test (run as child processes that fail).
func TestNslabtestRunScripts(t *testing.T) {
	switch child := os.Getenv("NSLAB_CHILD"); child {
	case "fails", "bad", "none":
		nslabtest.RunScripts(t, "testdata/runscripts/"+child+"/*.nsl")
		return
	case "nomatch":
		nslabtest.RunScripts(t, "testdata/runscripts/*.none")
		return
	}
	t.Parallel()
	t.Run("pass", func(t *testing.T) {
		// tutorial.nsl names its topology; web.nsl has web.toml beside it.
		nslabtest.RunScripts(t, "../emulator/nslabtest/testdata/*.nsl")
		nslabtest.RunScripts(t, "../topologies/*.nsl") // lan.nsl, lan.toml
	})
	for _, tc := range []struct {
		child string
		want  []string
	}{
		{"fails", []string{
			`testdata/runscripts/fails/reach\.nsl:3: !reach red blue: expected red not to reach blue, but red -> blue`,
			`--- FAIL: TestNslabtestRunScripts/reach `,
		}},
		{"bad", []string{
			`nslabtest: script testdata/runscripts/bad/typo\.nsl does not fit topology \.\./topologies/tutorial\.toml \(nothing was built\)`,
			`testdata/runscripts/bad/typo\.nsl:3: reach red bleu: no node "bleu" in lab "tutorial-[0-9]+-[0-9]+" \(did you mean "blue"\?\)`,
		}},
		{"none", []string{regexp.QuoteMeta("nslabtest: script testdata/runscripts/none/orphan.nsl names no topology: put a line `# topology: FILE` at its top, or the topology beside it as orphan.toml")}},
		{"nomatch", []string{`nslabtest: no script file matches "testdata/runscripts/\*\.none"`}},
	} {
		out, code := runChild(t, "TestNslabtestRunScripts", tc.child)
		require.Equal(t, 1, code, out)
		for _, want := range tc.want {
			require.Regexp(t, want, out)
		}
	}
}
