package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// natCLILab brings topologies/nat.toml up with `nslab up` under a unique
// name and tears it down when the test (and its subtests) end, even when
// up failed half way.
func natCLILab(t *testing.T) string {
	t.Helper()
	name := uniqueName("natcli")
	t.Cleanup(func() {
		if _, errs, code := cli(t, "", "down", name); code != 0 {
			// Whatever state it is in (half built, already gone), clean
			// leaves nothing behind.
			if _, cerrs, ccode := cli(t, "", "clean", name); ccode != 0 {
				t.Errorf("down %s: exit %d: %s; clean: exit %d: %s", name, code, errs, ccode, cerrs)
			}
		}
	})
	out, errs, code := cli(t, "", "up", "--name", name, "../topologies/nat.toml")
	require.Equal(t, 0, code, "up: %s%s", out, errs)
	return name
}

// natCLIBuffer is an io.Writer safe to read while a process writes to it.
type natCLIBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *natCLIBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *natCLIBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// natCLIServe is `nslab serve` running in the background.
type natCLIServe struct {
	cmd     *exec.Cmd
	stdout  natCLIBuffer
	stderr  natCLIBuffer
	exited  chan struct{} // closed when the process has exited
	waitErr error         // the process's exit, once exited is closed
}

// startServe starts `nslab serve args...` and waits until it says it
// listens. The process is killed (and waited for) when the test ends.
func startServe(t *testing.T, args ...string) *natCLIServe {
	t.Helper()
	s := &natCLIServe{exited: make(chan struct{})}
	s.cmd = exec.Command(nslabBin, append([]string{"serve"}, args...)...)
	s.cmd.Stdout, s.cmd.Stderr = &s.stdout, &s.stderr
	require.NoError(t, s.cmd.Start())
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		s.cmd.Process.Kill() // an error only says it has exited already
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
			t.Errorf("nslab serve (pid %d) did not exit after SIGKILL", s.cmd.Process.Pid)
		}
	})
	s.waitFor(t, "echo service on ", 5*time.Second)
	return s
}

// waitFor waits until the service has printed want.
func (s *natCLIServe) waitFor(t *testing.T, want string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !strings.Contains(s.stdout.String(), want) {
		select {
		case <-s.exited:
			if strings.Contains(s.stdout.String(), want) {
				return
			}
			t.Fatalf("nslab serve exited (%v) before printing %q\nstdout:\n%s\nstderr:\n%s", s.waitErr, want, s.stdout.String(), s.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("nslab serve did not print %q within %s\nstdout:\n%s\nstderr:\n%s", want, d, s.stdout.String(), s.stderr.String())
		}
	}
}

// cliWithin is cli with a time limit: a command that should fail at once
// but serves (or waits) instead fails the test instead of hanging it.
func cliWithin(t *testing.T, d time.Duration, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, nslabBin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("nslab %s: still running after %s\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), d, o.String(), e.String())
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return o.String(), e.String(), ee.ExitCode()
	}
	require.NoError(t, err)
	return o.String(), e.String(), 0
}

// `nslab serve` and `nslab probe` end to end through the NAT of
// topologies/nat.toml: the server sees client1 as the gateway's outside
// address, with the source port kept.
func TestCLIServeProbe(t *testing.T) {
	t.Parallel()
	name := natCLILab(t)
	srv := startServe(t, name, "server", "--udp", "9000")
	require.Contains(t, srv.stdout.String(), "echo service on "+name+" udp port 9000 of node server")

	// For people.
	out, errs, code := cliWithin(t, 5*time.Second, "probe", name, "client1", "server", "--udp", "9000", "--from-port", "40000")
	require.Equal(t, 0, code, "probe: %s%s", out, errs)
	require.Contains(t, out, "the far side saw 203.0.113.1:40000", out)
	require.Contains(t, out, "local 192.168.1.2:40000", out)
	require.Empty(t, errs)

	// For scripts; flags may come before the arguments too.
	out, errs, code = cliWithin(t, 5*time.Second, "probe", "--json", "--udp", "9000", "--from-port", "40000", name, "client1", "server")
	require.Equal(t, 0, code, "probe --json: %s%s", out, errs)
	var res map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &res), out)
	require.Equal(t, "203.0.113.1:40000", res["observed"], out)
	require.Equal(t, "192.168.1.2:40000", res["local"], out)
	require.Equal(t, "203.0.113.10:9000", res["to"], out)
	require.Equal(t, "client1", res["from"], out)
	require.Equal(t, "udp", res["proto"], out)

	// The service reports each source it saw: the mapped one. It prints
	// before it answers, but the line may not have reached us yet.
	srv.waitFor(t, "probe from 203.0.113.1:40000\n", 2*time.Second)
	require.NotContains(t, srv.stdout.String(), "192.168.1.2", "the server saw an inside address")

	// Nothing answers: the server has no route to the inside.
	start := time.Now()
	out, errs, code = cliWithin(t, 5*time.Second, "probe", name, "server", "192.168.1.2", "--udp", "9000", "--timeout", "200ms")
	require.Equal(t, 1, code, "probe to the inside: %s%s", out, errs)
	require.Empty(t, out)
	require.True(t, strings.HasPrefix(errs, "nslab: "), errs)
	// A port with no service behind it: the probe gives up after --timeout.
	out, errs, code = cliWithin(t, 5*time.Second, "probe", name, "client1", "server", "--udp", "9001", "--timeout", "200ms")
	require.Equal(t, 1, code, "probe of a closed port: %s%s", out, errs)
	require.Contains(t, errs, "no answer")
	require.Less(t, time.Since(start), 900*time.Millisecond, "--timeout 200ms was not honoured")

	// Ctrl-C stops the service cleanly.
	require.NoError(t, srv.cmd.Process.Signal(os.Interrupt))
	select {
	case <-srv.exited:
		require.NoError(t, srv.waitErr, "serve after SIGINT; stderr: %s", srv.stderr.String())
	case <-time.After(3 * time.Second):
		t.Fatal("nslab serve did not stop on SIGINT")
	}
}

// Wrong input to serve and probe exits 2 with a message that says what is
// wrong, and without touching the lab.
func TestCLIProbeBadInput(t *testing.T) {
	t.Parallel()
	name := natCLILab(t)
	noLab := uniqueName("natcli-nolab") // never brought up
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"probe without proto", []string{"probe", name, "client1", "server"}, "give one of --udp PORT or --tcp PORT"},
		{"probe with both protos", []string{"probe", name, "client1", "server", "--udp", "9000", "--tcp", "9000"}, "give one of --udp PORT or --tcp PORT"},
		{"probe from a switch", []string{"probe", name, "lan", "server", "--udp", "9000"}, `node "lan" is a switch`},
		{"probe to unknown node", []string{"probe", name, "client1", "nosuch", "--udp", "9000"}, `no node "nosuch"`},
		{"probe from unknown node", []string{"probe", name, "clinet1", "server", "--udp", "9000"}, `no node "clinet1" (did you mean "client1"?)`},
		{"probe to a switch", []string{"probe", name, "client1", "lan", "--udp", "9000"}, `node "lan" has no IPv4 address`},
		{"probe missing TO", []string{"probe", name, "client1", "--udp", "9000"}, "usage: nslab probe LAB FROM TO"},
		{"probe unknown lab", []string{"probe", noLab, "client1", "server", "--udp", "9000"}, `no lab "` + noLab + `"`},
		{"serve port 0", []string{"serve", name, "server", "--udp", "0"}, "--udp 0: a port is 1-65535"},
		{"serve port 70000", []string{"serve", name, "server", "--tcp", "70000"}, "--tcp 70000: a port is 1-65535"},
		{"probe port 70000", []string{"probe", name, "client1", "server", "--udp", "70000"}, "--udp 70000: a port is 1-65535"},
		{"probe port -5", []string{"probe", name, "client1", "server", "--udp", "-5"}, "--udp -5: a port is 1-65535"},
		{"probe from port 70000", []string{"probe", name, "client1", "server", "--udp", "9000", "--from-port", "70000"}, "--from-port 70000: a port is 1-65535"},
		{"serve without proto", []string{"serve", name, "server"}, "give one of --udp PORT or --tcp PORT"},
		{"serve on a switch", []string{"serve", name, "lan", "--udp", "9000"}, `node "lan" is a switch`},
		{"serve on unknown node", []string{"serve", name, "nosuch", "--udp", "9000"}, `no node "nosuch"`},
		{"serve missing NODE", []string{"serve", name, "--udp", "9000"}, "usage: nslab serve LAB NODE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, errs, code := cliWithin(t, 3*time.Second, tc.args...)
			require.Equal(t, 2, code, "nslab %s\nstdout: %s\nstderr: %s", strings.Join(tc.args, " "), out, errs)
			require.Empty(t, out)
			require.True(t, strings.HasPrefix(errs, "nslab: "), errs)
			require.Contains(t, errs, tc.want)
		})
	}
}
