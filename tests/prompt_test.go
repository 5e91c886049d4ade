package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// ptyRun starts the CLI on a new pseudo-terminal, as a person at a
// terminal would, and returns a handle to type into it and read from it.
type ptyRun struct {
	t      *testing.T
	master *os.File
	cmd    *exec.Cmd
	mu     sync.Mutex
	out    strings.Builder
	done   chan struct{}
}

func startPty(t *testing.T, env []string, args ...string) *ptyRun {
	t.Helper()
	return startPtySized(t, 40, 160, env, args...)
}

// startPtySized is startPty on a terminal of rows x cols (0 x 0: one
// nobody sized, as under script(1)).
func startPtySized(t *testing.T, rows, cols uint16, env []string, args ...string) *ptyRun {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	require.NoError(t, err)
	require.NoError(t, unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0))
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	require.NoError(t, err)
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	require.NoError(t, err)
	require.NoError(t, unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols}))
	cmd := exec.Command(nslabBin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = s, s, s
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	require.NoError(t, cmd.Start())
	s.Close()
	p := &ptyRun{t: t, master: m, cmd: cmd, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		buf := make([]byte, 4096)
		for {
			n, err := m.Read(buf)
			p.mu.Lock()
			p.out.Write(buf[:n])
			p.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		m.Close()
	})
	return p
}

func (p *ptyRun) typeIn(s string) {
	p.t.Helper()
	_, err := p.master.Write([]byte(s))
	require.NoError(p.t, err)
}

func (p *ptyRun) text() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// waitFor waits until the output holds want n times.
func (p *ptyRun) waitFor(want string, n int) {
	p.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Count(p.text(), want) >= n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	require.FailNow(p.t, fmt.Sprintf("the terminal never showed %q (%d times); it shows:\n%s", want, n, p.text()))
}

// wait waits for the program to exit and for its last output to be read,
// and returns its exit code.
func (p *ptyRun) wait() int {
	p.t.Helper()
	err := p.cmd.Wait()
	select { // the reader ends once the terminal has nothing left to read
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	require.NoError(p.t, err)
	return 0
}

// TestPrompt types at the nslab> prompt through a pseudo-terminal: checks,
// completion, history, a failure, bad input, a program's output, Ctrl-C on
// a line being typed and on a running program, help, and Ctrl-D tearing
// the lab down.
func TestPrompt(t *testing.T) {
	t.Parallel()
	hist := filepath.Join(t.TempDir(), "history")
	name := uniqueName("tutorial")
	p := startPty(t, []string{"NSLAB_HISTORY=" + hist}, "run", "--prompt", "--test", "none", "--name", name, "../topologies/tutorial.toml")
	p.waitFor("nslab> ", 1)
	require.Contains(t, p.text(), "Type `help` for the commands")

	p.typeIn("reach red blue\r")
	p.waitFor("1/1 replies from 192.168.15.2", 1)
	p.waitFor("nslab> ", 2)

	// Tab completes the command and a node name.
	p.typeIn("rea\tred bl\t\r")
	p.waitFor("1/1 replies from 192.168.15.2", 2)
	// Up arrow brings the last line back.
	p.typeIn("\x1b[A\r")
	p.waitFor("1/1 replies from 192.168.15.2", 3)

	p.typeIn("reach red lan\r")
	p.waitFor("FAIL: expected red to reach lan, but red -> lan (192.168.1.3): 1 sent, no reply", 1)
	p.typeIn("reach red bleu\r")
	p.waitFor(`no node "bleu" in lab "`+name+`" (did you mean "blue"?)`, 1)

	p.typeIn("blue ip -4 -o addr show dev eth0\r")
	p.waitFor("inet 192.168.15.2/24", 1)

	// Ctrl-C clears what is being typed...
	p.typeIn("garbage\x03reach blue red\r")
	p.waitFor("1/1 replies from 192.168.15.1", 1)
	require.NotContains(t, p.text(), `"garbage"`)
	// ...and stops a program that runs, leaving the prompt up.
	p.typeIn("red sleep 30\r")
	time.Sleep(300 * time.Millisecond)
	p.typeIn("\x03")
	p.waitFor("\r\ninterrupted\r\n", 1)
	require.NotContains(t, p.text(), "signal: ")
	// A line's time limit, set at the prompt.
	p.typeIn("set limit 500ms\r")
	p.typeIn("red sleep 30\r")
	p.waitFor("FAIL: stopped after the line's time limit of 500ms (`set limit 1s` gives the lines that follow more", 1)
	// Mininet's words: net and intfs list, iperf3 points to iperf, and an
	// unknown word is an unknown command, not a sign of another lab.
	p.typeIn("net\r")
	p.waitFor("eth0->v-net-0:red", 1)
	p.typeIn("intfs\r")
	p.waitFor("red: eth0", 1)
	p.typeIn("iperf3 red blue\r")
	p.waitFor("unknown command \"iperf3\": nslab's own throughput probe is `iperf A B`", 1)
	p.typeIn("nodez\r")
	p.waitFor(`unknown command "nodez", and lab "`+name+`" has no node of that name (close: nodes)`, 1)
	require.NotContains(t, p.text(), "another lab")
	p.typeIn("help\r")
	p.waitFor("Commands (NODE PROGRAM ARG... runs a program in a node", 1)

	// Ctrl-D leaves, and nslab run tears the lab down.
	p.typeIn("\x04")
	require.Equal(t, 0, p.wait(), p.text())
	<-p.done
	require.Contains(t, p.text(), "lab "+name+" torn down")
	require.False(t, namespaceExists(name+".red"))
	h, err := os.ReadFile(hist)
	require.NoError(t, err)
	require.Contains(t, string(h), "reach red blue\n")
	require.Contains(t, string(h), "help\n")
}

// TestAttachPrompt opens the prompt on a lab that nslab up left running;
// leaving the prompt leaves the lab up.
func TestAttachPrompt(t *testing.T) {
	t.Parallel()
	name := uniqueName("tutorial")
	_, errs, code := cli(t, "", "up", "--name", name, "../topologies/tutorial.toml")
	require.Equal(t, 0, code, errs)
	defer cli(t, "", "down", name)
	p := startPty(t, []string{"NSLAB_HISTORY="}, "attach", name)
	p.waitFor("nslab> ", 1)
	p.typeIn("link red v-net-0 down\r!reach red blue\rlink red v-net-0 up\rwait reach red blue 2s\rexit\r")
	require.Equal(t, 0, p.wait(), p.text())
	require.Contains(t, p.text(), "red:eth0 -- v-net-0:red down")
	require.Contains(t, p.text(), "red -> blue (192.168.15.2): 1 sent, no reply")
	require.Contains(t, p.text(), "after ")
	require.NotContains(t, p.text(), "FAIL")
	require.True(t, namespaceExists(name+".red"), "attach leaves the lab up")
}

// TestPromptZeroWidth: on a terminal that reports 0 columns (script(1), a
// pty nobody sized) the prompt edits as on 80: what is typed stays on one
// line, not one character a line.
func TestPromptZeroWidth(t *testing.T) {
	t.Parallel()
	p := startPtySized(t, 0, 0, []string{"NSLAB_HISTORY="}, "run", "--prompt", "--test", "none", "--name", uniqueName("zw"), "../topologies/tutorial.toml")
	p.waitFor("nslab> ", 1)
	p.typeIn("echo typed on a terminal of no width\r")
	p.waitFor("\r\ntyped on a terminal of no width\r\n", 1)
	require.Contains(t, p.text(), "nslab> echo typed on a terminal of no width")
	p.typeIn("exit\r")
	require.Equal(t, 0, p.wait(), p.text())
}
