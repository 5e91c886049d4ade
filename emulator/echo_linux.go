package emulator

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nslab/nslab/topo"
)

// The echo service of a node (echo = [...] in a topology) must outlive the
// process that built the lab (`nslab up` exits; a later `nslab punch`
// uses it), so it runs as a process of its own inside the node. That
// process is this program again: Up starts /proc/self/exe inside the
// node's namespaces with echoEnv set, and Dispatch, which the program's
// main (or a test binary's TestMain) calls first, turns it into the echo
// service. Labs without echo ports start nothing.
const (
	// echoEnv holds the ports to serve, "3478,3479"; set only in the
	// service process.
	echoEnv = "NSLAB_ECHO_SERVICE"
	// echoNodeEnv names the node, for the log.
	echoNodeEnv = "NSLAB_ECHO_NODE"
	// echoReady is the line the service writes on descriptor 3 once every
	// socket is open; anything else written there is the reason it failed.
	echoReady = "ready"
)

// runEchoService is the body of the echo service process: it listens on
// every port, UDP and TCP, in the namespace it was started in, reports
// readiness on descriptor 3 and serves until SIGTERM (teardown).
func runEchoService(spec, node string) int {
	status := os.NewFile(3, "status")
	fail := func(err error) int {
		if status != nil {
			fmt.Fprintf(status, "%v\n", err)
			status.Close()
		}
		fmt.Fprintf(os.Stderr, "nslab echo service in node %q: %v\n", node, err)
		return 1
	}
	ports, err := parseEchoSpec(spec)
	if err != nil {
		return fail(err)
	}
	here := func(fn func() error) error { return fn() }
	var svcs []*Service
	for _, p := range ports {
		for _, proto := range []string{"udp", "tcp"} {
			s, err := listenEcho(proto, p, here)
			if err != nil {
				return fail(fmt.Errorf("listen on %s port %d: %w", proto, p, err))
			}
			svcs = append(svcs, s)
		}
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	fmt.Fprintf(os.Stderr, "nslab echo service in node %q: udp and tcp ports %s (pid %d)\n", node, spec, os.Getpid())
	if status != nil {
		fmt.Fprintln(status, echoReady)
		status.Close()
	}
	<-stop
	for _, s := range svcs {
		s.Close()
	}
	return 0
}

func parseEchoSpec(spec string) ([]int, error) {
	var ports []int
	for _, f := range strings.Split(spec, ",") {
		p, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || p < 1 || p > 65535 {
			return nil, fmt.Errorf("bad port %q in %s=%q", f, echoEnv, spec)
		}
		ports = append(ports, p)
	}
	return ports, nil
}

// echoStartTimeout bounds the wait for an echo service to be listening.
const echoStartTimeout = 10 * time.Second

// startEcho starts the echo service of every node that has echo ports and
// waits until each listens. Each is recorded in the journal and stopped
// at teardown with the node's other processes.
func (l *Lab) startEcho() error {
	for _, n := range l.Plan.Nodes {
		if len(n.Echo) == 0 {
			continue
		}
		if err := l.startEchoIn(n); err != nil {
			return fmt.Errorf("start echo service in node %q: %w", n.Name, err)
		}
	}
	return nil
}

func (l *Lab) startEchoIn(n *topo.Node) error {
	ports := make([]string, len(n.Echo))
	for i, p := range n.Echo {
		ports[i] = strconv.Itoa(p)
	}
	logs := filepath.Join(l.dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(logs, n.Name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	// This very binary, even if it was replaced on disk since it started.
	cmd := exec.Command("/proc/self/exe")
	// What ps shows, and a guard: a test binary whose TestMain does not
	// call Dispatch (nslabtest.Main does) runs no test with -test.run=^$,
	// and ends at once instead of running its suite inside the node.
	cmd.Args = []string{"nslab-echo-service", "-test.run=^$", l.Plan.Lab, n.Name}
	cmd.Env = append(os.Environ(), echoEnv+"="+strings.Join(ports, ","), echoNodeEnv+"="+n.Name)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = l.Start(n.Name, cmd)
	w.Close()
	if err != nil {
		return err
	}
	l.journal.add(jProc, fmt.Sprint(cmd.Process.Pid))
	l.mu.Lock()
	l.procs = append(l.procs, cmd)
	l.mu.Unlock()
	r.SetReadDeadline(time.Now().Add(echoStartTimeout))
	line, err := bufio.NewReader(r).ReadString('\n')
	line = strings.TrimSpace(line)
	switch {
	case line == echoReady:
		l.opts.Logger.Debug("echo service started", "node", n.Name, "ports", n.Echo, "pid", cmd.Process.Pid)
		return nil
	case line != "":
		return errors.New(line)
	case errors.Is(err, io.EOF):
		return fmt.Errorf("the service (pid %d) ended without taking its role: %w", cmd.Process.Pid, errNoDispatch)
	default:
		return fmt.Errorf("the service (pid %d) did not report ready within %s: %w", cmd.Process.Pid, echoStartTimeout, err)
	}
}

// errNoDispatch says what a program must do so that nslab can run its
// echo service: the service is the program itself, started again.
var errNoDispatch = errors.New("the program must call emulator.Dispatch first in main (in a test package: func TestMain(m *testing.M) { nslabtest.Main(m) })")
