package tests

// Tests of the script language's issue-12 fixes: a program line runs the
// program the machine has, whatever is installed; program lines have a
// time limit; tcp checks what listens, and udp asks for an echo service
// that was asked for.

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/emulator/nslabtest"
	"github.com/nslab/nslab/scripting"
	"github.com/nslab/nslab/topo"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netns"
)

// cliEnv runs the nslab binary with env added to the test's environment.
func cliEnv(t *testing.T, env []string, args ...string) (stdout string, code int) {
	t.Helper()
	cmd := exec.Command(nslabBin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	}
	require.NoError(t, err, string(out))
	return string(out), 0
}

// TestScriptProgramIsThePathsProgram: `red ping blue` runs the program
// called ping that nslab finds on its PATH, in node red: with none, the
// line fails and points at reach; with one, that one runs (here a fake
// that prints its arguments); with one that never ends, the line's time
// limit stops it. Each case sets PATH itself, so the test gives the same
// result on a machine with or without iputils ping.
func TestScriptProgramIsThePathsProgram(t *testing.T) {
	t.Parallel()
	sleep, err := exec.LookPath("sleep")
	require.NoError(t, err)
	sleep, err = filepath.Abs(sleep)
	require.NoError(t, err)
	dir := t.TempDir()
	write := func(name, text string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(text), mode))
		return p
	}
	write("none/.keep", "", 0o644)
	write("fake/ping", "#!/bin/sh\necho \"fake ping $*\"\n", 0o755)
	write("endless/ping", "#!/bin/sh\necho started\nexec "+sleep+" 60\n", 0o755)

	name := uniqueName("tutorial")
	_, errs, code := cli(t, "", "up", "--name", name, "../topologies/tutorial.toml")
	require.Equal(t, 0, code, errs)
	defer cli(t, "", "down", name)

	for _, tc := range []struct {
		name, path, script string
		code               int
		want               []string
	}{
		{"no ping", "none", "red ping blue\n", 1, []string{
			`script.nsl:1: red ping blue: no program "ping" to run in node "red": exec: "ping": executable file not found in $PATH (nslab's own probe needs none: ` + "`reach red 192.168.15.2`)",
		}},
		{"a ping", "fake", "red ping blue\nexpect '^fake ping 192\\.168\\.15\\.2$'\n", 0, []string{
			"ok   " + "SCRIPT:1: red ping blue\n    fake ping 192.168.15.2",
		}},
		{"a ping that never ends", "endless", "set limit 500ms\nred ping blue\n", 1, []string{
			"    started\n",
			"SCRIPT:2: red ping blue: stopped after the line's time limit of 500ms (`set limit 1s` gives the lines that follow more, `limit 1s red ping blue` this line alone, `set limit off` lifts it); ping runs until it is stopped: give it a count, as in `red ping -c 3 blue`",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			script := write(tc.name+"/script.nsl", tc.script, 0o644)
			t0 := time.Now()
			out, code := cliEnv(t, []string{"PATH=" + filepath.Join(dir, tc.path)}, "attach", name, "--script", script)
			require.Equal(t, tc.code, code, out)
			require.Less(t, time.Since(t0), 10*time.Second, out)
			for _, w := range tc.want {
				require.Contains(t, out, strings.ReplaceAll(w, "SCRIPT", script))
			}
		})
	}
}

// TestScriptLineLimit: the time limit of a program line, from the Go API
// (Options.Limit), and a program that ignores SIGINT is killed a second
// after it; a run whose context ends reports the line as interrupted.
func TestScriptLineLimit(t *testing.T) {
	t.Parallel()
	lab := nslabtest.StartFile(t, "../topologies/tutorial.toml")
	run := func(ctx context.Context, src string, o scripting.Options) (*scripting.Result, string, error, time.Duration) {
		s, err := scripting.Parse("t.nsl", src, 1)
		require.NoError(t, err)
		var out strings.Builder
		o.Out = &out
		t0 := time.Now()
		res, err := scripting.Run(ctx, lab.Engine(), lab.Plan(), s, o)
		return res, out.String(), err, time.Since(t0)
	}

	res, out, err, took := run(context.Background(), "red true\nred sleep 10", scripting.Options{Limit: 300 * time.Millisecond})
	require.NoError(t, err)
	require.Len(t, res.Failures, 1, out)
	require.Equal(t, "t.nsl:2: red sleep 10: stopped after the line's time limit of 300ms (`set limit 600ms` gives the lines that follow more, `limit 600ms red sleep 10` this line alone, `set limit off` lifts it)", res.Failures[0].String())
	require.Less(t, took, 3*time.Second)

	// SIGINT first, SIGKILL a second later.
	res, out, err, took = run(context.Background(), `limit 300ms red sh -c 'trap "" INT; echo ignoring; exec sleep 10'`, scripting.Options{})
	require.NoError(t, err)
	require.Len(t, res.Failures, 1, out)
	require.Contains(t, res.Failures[0].Message, "stopped after the line's time limit of 300ms")
	require.Contains(t, out, "    ignoring\n")
	require.Greater(t, took, time.Second)
	require.Less(t, took, 4*time.Second)

	// No limit with Limit < 0 or `limit off`: the program ends on its own.
	res, out, err, _ = run(context.Background(), "red sleep 0.5\nlimit off red sleep 0.5", scripting.Options{Limit: -1})
	require.NoError(t, err)
	require.True(t, res.OK(), out)

	// The run's context ends: the line that runs is interrupted, and the
	// run stops there.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	res, out, err, took = run(ctx, "red sleep 10\nred true", scripting.Options{})
	require.ErrorIs(t, err, context.Canceled)
	require.Len(t, res.Failures, 1, out)
	require.Equal(t, "t.nsl:1: red sleep 10: interrupted", res.Failures[0].String())
	require.Equal(t, 1, res.Lines)
	require.Less(t, took, 3*time.Second)
}

// listenIn opens a plain TCP listener (not nslab's echo service: it
// accepts and says nothing) in node's namespace, as a program of the
// node's own would, and closes it when the test ends.
func listenIn(t *testing.T, lab *emulator.Lab, node string, port int) {
	t.Helper()
	ln, err := openListener(lab, node, port)
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
}

// openListener opens the listener of listenIn from a thread of its own
// that enters the node's namespace and leaves it again (a thread that
// cannot leave is never unlocked, and ends with its goroutine).
func openListener(lab *emulator.Lab, node string, port int) (net.Listener, error) {
	type result struct {
		ln  net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			ch <- result{nil, err}
			return
		}
		defer orig.Close()
		ns, err := netns.GetFromPath(netnsPath(lab.Plan.Node(node).Namespace))
		if err != nil {
			ch <- result{nil, err}
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			ch <- result{nil, err}
			return
		}
		ln, lerr := net.Listen("tcp", fmt.Sprintf(":%d", port))
		if err := netns.Set(orig); err != nil {
			if ln != nil {
				ln.Close()
			}
			ch <- result{nil, err}
			return
		}
		runtime.UnlockOSThread()
		ch <- result{ln, lerr}
	}()
	r := <-ch
	if r.err != nil {
		return nil, r.err
	}
	go func() { // accept, say nothing, close when the listener closes
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := r.ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	return r.ln, nil
}

// TestScriptTCPChecksWhatListens: `tcp A B:PORT` connects to whatever
// listens there and starts nothing of its own, so a program that starts
// listening later binds its port (the issue's `wait tcp eng1 lib1:8080
// 3s` before python's http.server); an echo service is used only where
// one was asked for, and udp needs one.
func TestScriptTCPChecksWhatListens(t *testing.T) {
	t.Parallel()
	top, err := topo.LoadFile("../topologies/tutorial.toml")
	require.NoError(t, err)
	for i := range top.Nodes {
		if top.Nodes[i].Name == "lan" {
			top.Nodes[i].Echo = []int{7000}
		}
	}
	lab := nslabtest.Start(t, top)

	// A listener that never answers: the check holds at the handshake,
	// well within the 300ms of scriptRun's timeout.
	listenIn(t, lab.Engine(), "blue", 8080)
	res, out := scriptRun(t, lab, "tcp red blue:8080\ntcp red 192.168.15.2:8080\n!tcp red blue:8081", false)
	require.True(t, res.OK(), "%v\n%s", res.Err(), out)
	require.Contains(t, out, "red -> 192.168.15.2:8080: connected (the TCP handshake completed, from 192.168.15.1:")

	// The program starts after the check began: the check waits for it,
	// and the port is the program's to bind.
	late := make(chan error, 1)
	go func() {
		time.Sleep(500 * time.Millisecond)
		ln, err := openListener(lab.Engine(), "blue", 8082)
		if err == nil {
			t.Cleanup(func() { ln.Close() })
		}
		late <- err
	}()
	res, out = scriptRun(t, lab, "!tcp red blue:8082\nwait tcp red blue:8082 5s", false)
	require.NoError(t, <-late, "the program could not listen on the port the check probed")
	require.True(t, res.OK(), "%v\n%s", res.Err(), out)
	require.Regexp(t, `after \d+ tries in [0-9.]+m?s: red -> 192\.168\.15\.2:8082: connected`, out)
	require.NotContains(t, out, "address already in use")

	// An echo service asked for (serve, or the node's echo ports) answers
	// with the source it saw; the tcp check of it says so.
	res, out = scriptRun(t, lab, "serve blue tcp 9000\ntcp red blue:9000\nudp blue lan:7000\ntcp blue lan:7000", false)
	require.True(t, res.OK(), "%v\n%s", res.Err(), out)
	require.Contains(t, out, "192.168.15.2:9000 answered; it saw 192.168.15.1:")
	require.Contains(t, out, "192.168.1.3:7000 answered; it saw 192.168.1.2:", "lan sees blue through host's masquerade")

	// udp without one is refused, '!' or not, with what to do.
	res, out = scriptRun(t, lab, "!udp red blue:9001", false)
	require.Len(t, res.Failures, 1, out)
	require.Contains(t, res.Failures[0].Message, "no echo service of nslab's at blue:9001: UDP has no handshake")
	require.Contains(t, res.Failures[0].Message, "(for a service started elsewhere, as by nslab serve, name its address: udp red 192.168.15.2:9001)")
}
