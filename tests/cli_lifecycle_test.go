package tests

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// slowScript keeps `nslab run` busy long enough to be signalled while its
// lab is up, printing a line every 100 ms (so that a reader that went away
// is noticed at the next line) for about 15 s.
var slowScript = "reach h1 h2\n" + strings.Repeat("sleep 100ms\nreach h1 h2\n", 150)

// startRun starts `nslab run --topo single,3` with slowScript and returns
// once the lab is up (its summary line was printed), with the process and
// the rest of its stdout.
func startRun(t *testing.T, name string) (*exec.Cmd, *bufio.Reader, io.ReadCloser) {
	t.Helper()
	script := filepath.Join(t.TempDir(), "slow.nsl")
	require.NoError(t, os.WriteFile(script, []byte(slowScript), 0o644))
	cmd := exec.Command(nslabBin, "run", "--topo", "single,3", "--name", name, "--script", script)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = io.Discard
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		cli(t, "", "clean", name)
	})
	r := bufio.NewReader(stdout)
	line, err := r.ReadString('\n')
	require.NoError(t, err)
	require.Contains(t, line, "lab "+name+": 4 nodes")
	require.True(t, namespaceExists(name+".h1"))
	return cmd, r, stdout
}

// waitExit waits for cmd to end (bounded) and returns its exit code.
func waitExit(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		require.NoError(t, err)
		return 0
	case <-time.After(15 * time.Second):
		t.Fatal("nslab run did not end within 15 s of its signal")
		return -1
	}
}

// statusOf returns the state nslab status --json gives the lab, or "" when
// it is not listed.
func statusOf(t *testing.T, name string) string {
	t.Helper()
	out, errs, code := cli(t, "", "status", "--json")
	require.Equal(t, 0, code, errs)
	var rows []struct {
		Lab, State, Note string
	}
	require.NoError(t, json.Unmarshal([]byte(out), &rows), out)
	for _, r := range rows {
		if r.Lab == name {
			return r.State
		}
	}
	return ""
}

// A `run` lab goes away on every way its process can end short of kill -9:
// a hung-up terminal, TERM, Ctrl-C, and a reader that went away (SIGPIPE,
// then a write error on stdout).
func TestRunTornDownOnSignal(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		end  func(cmd *exec.Cmd, out io.ReadCloser)
	}{
		{"hup", func(cmd *exec.Cmd, _ io.ReadCloser) { cmd.Process.Signal(syscall.SIGHUP) }},
		{"term", func(cmd *exec.Cmd, _ io.ReadCloser) { cmd.Process.Signal(syscall.SIGTERM) }},
		{"int", func(cmd *exec.Cmd, _ io.ReadCloser) { cmd.Process.Signal(syscall.SIGINT) }},
		// `nslab run ... | head -1`: the reader is gone after one line.
		{"pipe", func(_ *exec.Cmd, out io.ReadCloser) { out.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			name := uniqueName("sig" + tc.name)
			cmd, _, out := startRun(t, name)
			tc.end(cmd, out)
			require.Equal(t, 1, waitExit(t, cmd), "an interrupted run exits 1")
			require.False(t, namespaceExists(name+".h1"), "the lab's namespaces are gone")
			require.Empty(t, statusOf(t, name), "nslab status no longer lists the lab")
		})
	}
}

// A lab whose `nslab run` was killed with -9 shows as orphaned, not up,
// and nslab clean removes it.
func TestStatusShowsOrphanedRunLab(t *testing.T) {
	t.Parallel()
	name := uniqueName("orphan")
	cmd, _, _ := startRun(t, name)
	require.Equal(t, "up", statusOf(t, name))
	require.NoError(t, cmd.Process.Kill())
	cmd.Wait()
	require.Equal(t, "orphaned", statusOf(t, name))
	out, _, code := cli(t, "", "status", name)
	require.Equal(t, 0, code)
	require.Contains(t, out, "died without tearing it down: run nslab clean "+name)
	out, errs, code := cli(t, "", "clean", name)
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "lab "+name+" cleaned")
	require.False(t, namespaceExists(name+".h1"))
	// A lab left by `nslab up` is not orphaned: its builder is meant to end.
	up := uniqueName("notorphan")
	_, errs, code = cli(t, "", "up", "--topo", "single,2", "--name", up)
	require.Equal(t, 0, code, errs)
	t.Cleanup(func() { cli(t, "", "down", up) })
	require.Equal(t, "up", statusOf(t, up))
}

func TestCLIExitCodes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, cmd := range []string{"up", "run", "validate"} {
		_, errs, code := cli(t, "", cmd, dir)
		require.Equal(t, 2, code, "%s of a directory: %s", cmd, errs)
		require.Contains(t, errs, "is a directory")
	}

	// --prompt without a terminal is refused before anything is built.
	name := uniqueName("noprompt")
	_, errs, code := cli(t, "", "run", "--prompt", "--topo", "single,2", "--name", name)
	require.Equal(t, 2, code, errs)
	require.Contains(t, errs, "--prompt needs a terminal")
	require.NotContains(t, errs, "torn down")
	require.Empty(t, statusOf(t, name))

	lab := uniqueName("execcodes")
	_, errs, code = cli(t, "", "up", "--topo", "single,2", "--name", lab)
	require.Equal(t, 0, code, errs)
	t.Cleanup(func() { cli(t, "", "down", lab) })
	for _, tc := range []struct {
		argv []string
		code int
	}{
		{[]string{"nosuchprog-nslab"}, 127},
		{[]string{"/no/such/file"}, 127},
		{[]string{"/etc/hosts"}, 126}, // not executable
		{[]string{"/bin/sh", "-c", "exit 2"}, 2},
		{[]string{"/bin/sh", "-c", "exit 0"}, 0},
	} {
		_, errs, code := cli(t, "", append([]string{"exec", lab, "h1", "--"}, tc.argv...)...)
		require.Equal(t, tc.code, code, "exec %v: %s", tc.argv, errs)
	}
	// An unknown node is still bad input.
	_, _, code = cli(t, "", "exec", lab, "nosuchnode", "--", "true")
	require.Equal(t, 2, code)
}

func TestCLINameFlag(t *testing.T) {
	t.Parallel()
	lan := filepath.Join("..", "topologies", "lan.toml")
	for _, tc := range []struct{ name, want string }{
		{"nb/x", `--name: lab name "nb/x" may only have`},
		{"", "--name: a lab name cannot be empty"},
		{"UPPER", `--name: lab name "UPPER"`},
		{strings.Repeat("a", 33), "at most 32"},
	} {
		for _, args := range [][]string{{"up", lan}, {"run", lan}, {"up", "--topo", "single,2"}} {
			_, errs, code := cli(t, "", append(args, "--name", tc.name)...)
			require.Equal(t, 2, code, "%v --name %q: %s", args, tc.name, errs)
			require.Contains(t, errs, tc.want)
			require.NotContains(t, errs, "lan.toml:", "the error is the flag's, not the file's")
		}
	}
}

func TestCLIVersion(t *testing.T) {
	t.Parallel()
	out, errs, code := cli(t, "", "--version")
	require.Equal(t, 0, code, errs)
	require.True(t, strings.HasPrefix(out, "nslab "), out)
	same, _, _ := cli(t, "", "version")
	require.Equal(t, out, same)
	// The revision is the commit the binary was built from.
	if rev, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil {
		require.Contains(t, out, "revision "+strings.TrimSpace(string(rev)))
	}
	var v struct{ Module, Go string }
	js, _, code := cli(t, "", "version", "--json")
	require.Equal(t, 0, code)
	require.NoError(t, json.Unmarshal([]byte(js), &v))
	require.Equal(t, "github.com/nslab/nslab", v.Module)

	// A bad flag at the top level names the help once.
	_, errs, code = cli(t, "", "--bogus")
	require.Equal(t, 2, code)
	require.Contains(t, errs, "(see `nslab --help`)")
	require.NotContains(t, errs, "nslab nslab")
	_, errs, code = cli(t, "", "up", "--bogus")
	require.Equal(t, 2, code)
	require.Contains(t, errs, "(see `nslab up --help`)")
}

func TestCLICleanWords(t *testing.T) {
	t.Parallel()
	name := uniqueName("nolab")
	out, errs, code := cli(t, "", "clean", name)
	require.Equal(t, 0, code, errs)
	require.Equal(t, "no lab "+name+": nothing to clean\n", out)
	_, errs, code = cli(t, "", "clean", "Bad/Name")
	require.Equal(t, 2, code)
	require.Contains(t, errs, `lab name "Bad/Name"`)
}

// `run --json` has the shape of `up --json`, with the test's result added.
func TestCLIJSONShapes(t *testing.T) {
	t.Parallel()
	keys := func(out string) map[string]any {
		m := map[string]any{}
		require.NoError(t, json.Unmarshal([]byte(out), &m), out)
		return m
	}
	name := uniqueName("jsonup")
	out, errs, code := cli(t, "", "up", "--json", "--topo", "single,2", "--name", name)
	require.Equal(t, 0, code, errs)
	t.Cleanup(func() { cli(t, "", "down", name) })
	up := keys(out)
	out, errs, code = cli(t, "", "run", "--json", "--topo", "single,2", "--name", uniqueName("jsonrun"))
	require.Equal(t, 0, code, errs)
	run := keys(out)
	for k := range up {
		if k != "lab" && k != "up_ms" {
			require.Equal(t, up[k], run[k], "key %q", k)
		}
		require.Contains(t, run, k)
	}
	require.NotContains(t, run, "summary")
	require.Equal(t, "pingall", run["test"])
}

// A script can come from stdin: --script - for run and validate, and lines
// piped into attach.
func TestCLIScriptFromStdin(t *testing.T) {
	t.Parallel()
	out, errs, code := cli(t, "reach h1 h2\nreach h2 h1\n", "run", "--topo", "single,2", "--name", uniqueName("stdin"), "--script", "-")
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "stdin: 2 of 2 checks passed")

	_, errs, code = cli(t, "reach h1 nosuch\n", "validate", filepath.Join("..", "topologies", "lan.toml"), "--script", "-")
	require.Equal(t, 2, code)
	require.Contains(t, errs, "stdin:1")

	name := uniqueName("attachpipe")
	_, errs, code = cli(t, "", "up", "--topo", "single,2", "--name", name)
	require.Equal(t, 0, code, errs)
	t.Cleanup(func() { cli(t, "", "down", name) })
	out, errs, code = cli(t, "reach h1 h2\n", "attach", name)
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "1 of 1 checks passed")
	_, _, code = cli(t, "!reach h1 h2\n", "attach", name)
	require.Equal(t, 1, code, "a failing piped line fails attach")
}

// Every flag's help says its default once, and booleans say no
// "(default: false)".
func TestCLIHelpDefaults(t *testing.T) {
	t.Parallel()
	out, _, code := cli(t, "", "--help")
	require.Equal(t, 0, code)
	var cmds []string
	for _, l := range strings.Split(out[strings.Index(out, "COMMANDS:"):strings.Index(out, "GLOBAL OPTIONS:")], "\n")[1:] {
		if f := strings.Fields(l); len(f) > 0 && !strings.HasPrefix(f[0], "help") {
			cmds = append(cmds, strings.TrimSuffix(f[0], ","))
		}
	}
	require.Contains(t, cmds, "ping")
	for _, c := range append(cmds, "") {
		args := []string{"--help"}
		if c != "" {
			args = []string{c, "--help"}
		}
		help, _, _ := cli(t, "", args...)
		for _, l := range strings.Split(help, "\n") {
			require.LessOrEqual(t, strings.Count(l, "(default:"), 1, "nslab %s --help: %s", c, l)
			require.NotContains(t, l, "(default: false)", "nslab %s --help", c)
		}
	}
}

// Every command that names a lab checks the name first: a name such as
// ../../tmp/x never becomes a path outside the state directory.
func TestCLILabNameChecked(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"exec", "../../tmp/x/fake", "h1", "--", "hostname"},
		{"shell", "../x", "h1"},
		{"status", "../x"},
		{"ping", "../x", "a", "b"},
		{"pingall", "../x"},
		{"attach", "../x"},
		{"punch", "../x", "a", "b"},
		{"down", "../x"},
		{"clean", "../x"},
		{"serve", "../x", "a", "--udp", "9"},
		{"probe", "../x", "a", "b", "--udp", "9"},
	} {
		_, errs, code := cli(t, "", args...)
		require.Equal(t, 2, code, "%v: %s", args, errs)
		require.Contains(t, errs, `lab name "../`, "%v", args)
	}
}
