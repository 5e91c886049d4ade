package tests

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func writeTopology(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "lab.toml")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	return p
}

func TestCLIUpExecStatusDown(t *testing.T) {
	t.Parallel()
	name := uniqueName("cli")
	out, errs, code := cli(t, "", "up", "--name", name, "--topo", "single,3")
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "lab "+name+": 4 nodes (3 hosts, 1 switch)")
	defer cli(t, "", "clean", name)

	// exec: exit code, stdout, stderr and stdin are the command's own.
	out, errs, code = cli(t, "", "exec", name, "h1", "--", "sh", "-c", "hostname; echo oops >&2; exit 3")
	require.Equal(t, 3, code)
	require.Equal(t, "h1\n", out)
	require.Equal(t, "oops\n", errs)
	out, _, code = cli(t, "piped in\n", "exec", name, "h2", "cat")
	require.Equal(t, 0, code)
	require.Equal(t, "piped in\n", out)
	out, _, code = cli(t, "", "exec", name, "h3", "getent", "hosts", "h1")
	require.Equal(t, 0, code)
	require.Contains(t, out, "10.0.0.1")

	// status, for people and for scripts; flags may follow the lab name.
	out, errs, code = cli(t, "", "status", name, "--json")
	require.Equal(t, 0, code, errs)
	var st struct {
		Lab   string `json:"lab"`
		State string `json:"state"`
		Nodes []struct {
			Name       string `json:"name"`
			Namespace  string `json:"namespace"`
			Interfaces []struct {
				Name  string   `json:"name"`
				State string   `json:"state"`
				Addrs []string `json:"addresses"`
			} `json:"interfaces"`
			Routes []string `json:"routes"`
		} `json:"nodes"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &st), out)
	require.Equal(t, name, st.Lab)
	require.Equal(t, "up", st.State)
	require.Len(t, st.Nodes, 4)
	h1 := st.Nodes[1]
	require.Equal(t, "h1", h1.Name)
	require.Equal(t, name+".h1", h1.Namespace)
	var eth0 []string
	for _, i := range h1.Interfaces {
		if i.Name == "eth0" {
			require.Equal(t, "up", i.State)
			eth0 = i.Addrs
		}
	}
	require.Equal(t, []string{"10.0.0.1/24"}, eth0)
	require.Contains(t, h1.Routes, "10.0.0.0/24 dev eth0")

	out, _, code = cli(t, "", "status")
	require.Equal(t, 0, code)
	require.Contains(t, out, name)

	// ping and pingall, with typed JSON.
	out, errs, code = cli(t, "", "ping", name, "h1", "h3", "-c", "2")
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "2/2 replies from 10.0.0.3")
	out, _, code = cli(t, "", "pingall", name, "--json")
	require.Equal(t, 0, code)
	var m struct {
		Nodes   []string `json:"nodes"`
		Results [][]*struct {
			Sent     int `json:"sent"`
			Received int `json:"received"`
		} `json:"results"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &m))
	require.Equal(t, []string{"h1", "h2", "h3"}, m.Nodes)
	require.Equal(t, 1, m.Results[0][2].Received)

	out, errs, code = cli(t, "", "down", name)
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "torn down")
	require.False(t, namespaceExists(name+".h1"))

	// The lab is gone: every command says so and lists what exists.
	for _, args := range [][]string{{"down", name}, {"exec", name, "h1", "true"}, {"status", name}, {"ping", name, "h1", "h2"}} {
		_, errs, code = cli(t, "", args...)
		require.Equal(t, 2, code, "%v: %s", args, errs)
		require.Contains(t, errs, `no lab "`+name+`"`)
	}
}

func TestCLIRunExitCodes(t *testing.T) {
	t.Parallel()
	// 0: every pair answers.
	out, errs, code := cli(t, "", "run", "--name", uniqueName("run"), "--topo", "linear,3")
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "*** Results: 0% dropped (6/6 received)")
	require.Contains(t, out, "torn down")

	// 1: the two LANs have no route to each other, so pingall fails.
	file := writeTopology(t, `
name = "`+uniqueName("runfail")+`"
[[nodes]]
name = "r"
kind = "router"
[[nodes]]
name = "a"
[[nodes]]
name = "b"
[[links]]
endpoints = ["a", "r"]
[[links]]
endpoints = ["b", "r"]
`)
	out, errs, code = cli(t, "", "run", file)
	require.Equal(t, 1, code, out)
	// r is pinged at its first address, on a's side: b has no route there.
	require.Contains(t, errs, "pingall: 3 of 6 pairs did not answer")
	require.Contains(t, out, "a -> r X\n")
	require.Contains(t, out, "b -> X X\n")
	require.Contains(t, out, "r -> a b\n")

	// 2: bad input, nothing created.
	bad := writeTopology(t, "name = \"x\"\n[[nodes]]\nname = \"a\"\ncolour = \"red\"\n")
	_, errs, code = cli(t, "", "run", bad)
	require.Equal(t, 2, code)
	require.Contains(t, errs, bad+":4:1: unknown key \"colour\" in [[nodes]]")
	require.False(t, namespaceExists("x-a"))

	// --json for scripts.
	out, errs, code = cli(t, "", "run", "--json", "--name", uniqueName("runjson"), "--topo", "single,2")
	require.Equal(t, 0, code, errs)
	var res struct {
		Nodes int     `json:"nodes"`
		UpMS  float64 `json:"up_ms"`
		Test  string  `json:"test"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &res), out)
	require.Equal(t, 3, res.Nodes)
	require.Equal(t, "pingall", res.Test)
	require.Greater(t, res.UpMS, 0.0)
}

func TestCLIValidate(t *testing.T) {
	t.Parallel()
	bad := writeTopology(t, `name = "v"
[[nodes]]
name = "a"
[[nodes]]
name = "a"
kind = "hub"
[[links]]
endpoints = ["a", "zz"]
`)
	_, errs, code := cli(t, "", "validate", bad)
	require.Equal(t, 2, code)
	// Every problem at once, with file:line:column.
	require.Contains(t, errs, bad+":5:1: node \"a\": duplicate node name (first defined on line 3)")
	require.Contains(t, errs, bad+":8:19: link a -- zz: unknown node \"zz\"")

	out, errs, code := cli(t, "", "validate", "../topologies/lan.toml", "../topologies/routed.toml", "../topologies/direct.toml")
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "lab lan is valid")

	// generate gives a file that validates and builds the same lab.
	out, _, code = cli(t, "", "generate", "tree,2,2", "--name", "gen")
	require.Equal(t, 0, code)
	f := writeTopology(t, out)
	out, errs, code = cli(t, "", "validate", f)
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "7 nodes (4 hosts, 3 switches), 6 links, 1 segment")

	_, errs, code = cli(t, "", "generate", "star,3")
	require.Equal(t, 2, code)
	require.Contains(t, errs, `unknown topology "star"`)
	_, errs, code = cli(t, "", "frobnicate")
	require.Equal(t, 2, code)
	require.Contains(t, errs, `unknown command "frobnicate"`)
}

// kill -9 of a build half-way, then clean: nothing of that lab remains,
// and another lab is untouched.
func TestKill9ThenClean(t *testing.T) {
	t.Parallel()
	other := startLab(t, loadTopology(t, "lan.toml"), emptyOpts())
	name := uniqueName("kill")
	cmd := exec.Command(nslabBin, "up", "--name", name, "--topo", "single,400")
	require.NoError(t, cmd.Start())
	// Wait until the build is well under way: some namespaces exist.
	require.Eventually(t, func() bool {
		ents, _ := filepath.Glob(netnsPath(name + ".h*"))
		return len(ents) > 20
	}, 20*time.Second, time.Millisecond)
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	cmd.Wait()

	out, errs, code := cli(t, "", "status")
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, name)

	out, errs, code = cli(t, "", "clean", name)
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "lab "+name+" cleaned")
	left, _ := filepath.Glob(netnsPath(name + ".*"))
	require.Empty(t, left)
	_, err := os.Stat(filepath.Join(stateDir(), name))
	require.True(t, os.IsNotExist(err))
	// Idempotent.
	_, errs, code = cli(t, "", "clean", name)
	require.Equal(t, 0, code, errs)
	reach(t, other, "h1", "h2", true)
}

func TestCLIHelpTeaches(t *testing.T) {
	t.Parallel()
	out, _, code := cli(t, "", "--help")
	require.Equal(t, 0, code)
	for _, cmd := range []string{"run", "up", "down", "status", "exec", "shell", "attach", "punch", "ping", "pingall", "validate", "clean", "generate"} {
		require.Contains(t, out, "\n   "+cmd+" ")
	}
	out, _, code = cli(t, "", "exec", "--help")
	require.Equal(t, 0, code)
	require.Contains(t, out, "nslab exec lan h1 -- ip -br addr")
	out, _, code = cli(t, "", "run", "--help")
	require.Equal(t, 0, code)
	require.Contains(t, out, "--topo")
	require.True(t, strings.Contains(out, "Exit 0"))
}

// On a terminal, a build that takes more than a second shows its progress;
// `script` gives the CLI a pseudo-terminal.
func TestCLIProgressOnTerminal(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("script"); err != nil {
		t.Fatal("this test needs `script` (util-linux) for a pseudo-terminal")
	}
	name := uniqueName("tty")
	cmd := exec.Command("script", "-qec", nslabBin+" run --test none --prompt=false --name "+name+" --topo single,200", "/dev/null")
	cmd.Env = append(os.Environ(), "NSLAB_PROGRESS_DELAY=0s")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	require.Contains(t, string(out), "building lab "+name+": ")
	require.Contains(t, string(out), "steps)")
	require.Contains(t, string(out), "tearing down lab "+name+": ", "the teardown shows its progress too")
	require.Contains(t, string(out), "lab "+name+" torn down")

	// pingall: the probes done after each wave (100 hosts need 9,900
	// neighbour entries at once, more than the machine's table takes by
	// default, so ~1 s of waves here; where the limit is higher, one wave,
	// and the line's last draw still shows it done).
	pa := uniqueName("ttyp")
	_, errs, code := cli(t, "", "up", "--name", pa, "--topo", "single,100")
	require.Equal(t, 0, code, errs)
	defer cli(t, "", "down", pa)
	cmd = exec.Command("script", "-qec", nslabBin+" pingall "+pa, "/dev/null")
	cmd.Env = append(os.Environ(), "NSLAB_PROGRESS_DELAY=0s")
	out, err = cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	require.Contains(t, string(out), "pingall lab "+pa+": probes")
	require.Regexp(t, `probes\s+[1-9][0-9]*% \([1-9][0-9]*/9900 steps\)`, string(out), "a wave's probes are counted")
	require.Contains(t, string(out), "*** Results: 0% dropped (9900/9900 received)")

	// Not on a terminal: no progress line.
	plain := exec.Command(nslabBin, "run", "--test", "none", "--name", uniqueName("notty"), "--topo", "single,2")
	plain.Env = append(os.Environ(), "NSLAB_PROGRESS_DELAY=0s")
	out2, err := plain.CombinedOutput()
	require.NoError(t, err, string(out2))
	require.NotContains(t, string(out2), "building lab")
}

// SIGTERM (or Ctrl-C) during a build rolls everything back, with no
// clean needed.
func TestCLISigtermRollsBack(t *testing.T) {
	t.Parallel()
	name := uniqueName("term")
	cmd := exec.Command(nslabBin, "up", "--name", name, "--topo", "single,400")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	require.Eventually(t, func() bool {
		ents, _ := filepath.Glob(netnsPath(name + ".h*"))
		return len(ents) > 20
	}, 20*time.Second, time.Millisecond)
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	err := cmd.Wait()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "an interrupted build is a failure")
	require.Contains(t, stderr.String(), "interrupted: lab "+`"`+name+`"`+" rolled back")
	left, _ := filepath.Glob(netnsPath(name + ".*"))
	require.Empty(t, left)
	_, err = os.Stat(filepath.Join(stateDir(), name))
	require.True(t, os.IsNotExist(err))
}

// nslab shell gives an interactive shell on a terminal, inside the node.
func TestCLIShell(t *testing.T) {
	t.Parallel()
	name := uniqueName("sh")
	_, errs, code := cli(t, "", "up", "--name", name, "--topo", "single,2")
	require.Equal(t, 0, code, errs)
	defer cli(t, "", "down", name)
	cmd := exec.Command("script", "-qec", nslabBin+" shell "+name+" h2", "/dev/null")
	cmd.Env = append(os.Environ(), "SHELL=/bin/sh")
	cmd.Stdin = strings.NewReader("echo in-$(hostname)-$NSLAB_NODE; ip -o -4 addr show dev eth0; exit 5\n")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, string(out))
	require.Equal(t, 5, ee.ExitCode(), "the shell's exit code comes back")
	require.Contains(t, string(out), "in-h2-h2")
	require.Contains(t, string(out), "10.0.0.2/24")
}
