package rootless

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nslab/nslab/internal/proc"
	"golang.org/x/sys/unix"
)

// A keeper holds the namespaces of one lab made by `nslab up` without
// root, and runs the user's later commands on it (see the package doc).
// In the user's directory it leaves LAB.sock, where it listens, and
// LAB.keeper, its record.

// Record is a keeper's record, LAB.keeper.
type Record struct {
	PID    int    `json:"pid"`
	Start  uint64 `json:"start"`  // the start time of PID (/proc/PID/stat), so a reused PID is not taken for it
	UserNS string `json:"userns"` // DEV:INO of the keeper's user namespace
}

// SockPath and RecordPath are the keeper files of lab in dir.
func SockPath(dir, lab string) string   { return filepath.Join(dir, lab+".sock") }
func RecordPath(dir, lab string) string { return filepath.Join(dir, lab+".keeper") }

// LogPath is the keeper's stderr, removed when it ends as it should.
func LogPath(dir, lab string) string { return filepath.Join(dir, lab+".log") }

// Request is what a client sends first, with its stdin, stdout and
// stderr as SCM_RIGHTS: the command line to run in the lab (argv[0]
// included), its environment and working directory.
type Request struct {
	Args []string `json:"args"`
	Env  []string `json:"env"`
	Dir  string   `json:"dir"`
	// TTY asks for a terminal of the lab's own: the command runs on a
	// pseudo-terminal whose master is sent back, so that a shell gets a
	// controlling terminal and job control.
	TTY  bool `json:"tty,omitempty"`
	Rows int  `json:"rows,omitempty"`
	Cols int  `json:"cols,omitempty"`
	// Exec, when set, is the same command as Args said more simply (a
	// program in a node), for a keeper that starts it itself.
	Exec *ExecRequest `json:"exec,omitempty"`
}

// ExecRequest is `nslab exec LAB NODE -- ARGV...`.
type ExecRequest struct {
	Node string   `json:"node"`
	Argv []string `json:"argv"`
}

// message is every later message: a signal for the command (client to
// keeper), or its end (keeper to client).
type message struct {
	Signal int    `json:"signal,omitempty"`
	Exit   *int   `json:"exit,omitempty"`
	Error  string `json:"error,omitempty"`
	PTY    bool   `json:"pty,omitempty"` // the master of the command's terminal comes with it
}

// Keepers lists the labs that have a keeper record in dir.
func Keepers(dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var labs []string
	for _, e := range ents {
		if lab, ok := strings.CutSuffix(e.Name(), ".keeper"); ok && e.Type().IsRegular() {
			labs = append(labs, lab)
		}
	}
	return labs
}

// ReadRecord reads the keeper record of lab in dir.
func ReadRecord(dir, lab string) (*Record, error) {
	f, err := os.OpenFile(RecordPath(dir, lab), os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r Record
	if err := json.NewDecoder(io.LimitReader(f, 4096)).Decode(&r); err != nil {
		return nil, fmt.Errorf("keeper record of lab %q: %w", lab, err)
	}
	return &r, nil
}

// Alive reports whether the keeper of the record still runs: the same
// process (PID and start time) in the same user namespace.
func (r *Record) Alive() bool {
	if r.PID <= 0 {
		return false
	}
	start, err := proc.StartTime(r.PID)
	if err != nil || start != r.Start {
		return false
	}
	id, err := userNSOf(r.PID)
	return err == nil && id == r.UserNS
}

// userNSOf is the identity, DEV:INO, of the user namespace of pid.
func userNSOf(pid int) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/user", pid), &st); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino), nil
}

// StartKeeper starts the keeper of lab: self (this program) run with args
// as a child in new namespaces (Command), in a session of its own, its
// stderr in dir/LAB.log. It returns once the keeper is listening, or
// with the error it reported.
func StartKeeper(dir, lab, self string, args []string) error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	logf, err := os.OpenFile(LogPath(dir, lab), os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		w.Close()
		return fmt.Errorf("keeper log: %w", err)
	}
	defer logf.Close()
	cmd := Command(dir, self, args)
	cmd.SysProcAttr.Setsid = true
	cmd.Stdout = w
	cmd.Stderr = logf
	err = cmd.Start()
	w.Close()
	if err != nil {
		os.Remove(LogPath(dir, lab))
		return Explain(err)
	}
	go cmd.Wait() // reaped if it ends while this process runs
	line, _ := io.ReadAll(io.LimitReader(r, 4096))
	if msg := strings.TrimSpace(string(line)); msg != "ok" {
		if msg == "" {
			// It ended before it could say: its last word is in its log
			// (a refused namespace, a mount that failed).
			msg = lastLine(LogPath(dir, lab))
			os.Remove(LogPath(dir, lab))
		}
		if msg == "" {
			msg = "the keeper of lab " + lab + " ended before it was ready"
		}
		if strings.Contains(msg, ErrKeeperExists.Error()) {
			return &keeperError{msg, ErrKeeperExists}
		}
		return errors.New(msg)
	}
	return nil
}

// lastLine is the last line of the file at path, without nslab's
// "nslab: " prefix, or "".
func lastLine(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	return strings.TrimPrefix(strings.TrimSpace(lines[len(lines)-1]), "nslab: ")
}

// keeperError is an error the keeper reported on its way up, as text,
// that is still one of this package's errors.
type keeperError struct {
	msg string
	is  error
}

func (e *keeperError) Error() string { return e.msg }
func (e *keeperError) Unwrap() error { return e.is }

// Keeper is the server side, run by the keeper process after Setup.
type Keeper struct {
	Dir, Lab string
	// Self is the program the keeper runs for each request
	// ("/proc/self/exe").
	Self string
	// Env is added to every request's environment (the state and
	// namespace directories of the keeper).
	Env []string
	// LabsLeft reports whether a lab is still in the keeper's
	// namespaces; once none is after a request, the keeper ends.
	LabsLeft func() bool
	// Teardown removes the lab when the keeper is told to end (SIGTERM,
	// SIGINT, SIGHUP).
	Teardown func()
	// Exec, if set, starts the program of an ExecRequest in the lab with
	// the request's environment, directory and files, instead of running
	// nslab again for it (one program start less). When it cannot, it
	// returns the exit code the command would have had and its error,
	// which the keeper writes on the request's stderr as nslab would.
	Exec func(r ExecRequest, env []string, dir string, stdin, stdout, stderr *os.File) (*exec.Cmd, int, error)
}

// Serve writes the record, listens on the socket, reports "ok" (or the
// error) on ready and closes it, and serves requests until no lab is
// left (or none was made within idle of the start) or a signal ends it.
// It removes its files before it returns.
func (k *Keeper) Serve(ready io.WriteCloser, idle time.Duration) error {
	err := k.writeRecord()
	if err != nil {
		fmt.Fprintf(ready, "%v\n", err)
		ready.Close()
		return err
	}
	sock := SockPath(k.Dir, k.Lab)
	l, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: sock, Net: "unixpacket"})
	if err != nil {
		os.Remove(RecordPath(k.Dir, k.Lab))
		if errors.Is(err, unix.EADDRINUSE) {
			err = fmt.Errorf("lab %q %w (nslab status lists it; nslab clean %s removes it)", k.Lab, ErrKeeperExists, k.Lab)
		}
		fmt.Fprintf(ready, "%v\n", err)
		ready.Close()
		return err
	}
	l.SetUnlinkOnClose(false)
	defer func() {
		// The socket first: a client that finds no socket knows the
		// lab is gone.
		os.Remove(sock)
		os.Remove(RecordPath(k.Dir, k.Lab))
		os.Remove(LogPath(k.Dir, k.Lab))
	}()
	fmt.Fprintln(ready, "ok")
	ready.Close()

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, unix.SIGHUP)
	var mu sync.Mutex
	active := 0
	closing := false            // decided to end: no new command starts
	done := make(chan struct{}) // closed when the keeper is to end
	var once sync.Once
	end := func() { once.Do(func() { close(done); l.Close() }) }
	check := func() {
		mu.Lock()
		defer mu.Unlock()
		if active == 0 && !k.LabsLeft() {
			closing = true
			end()
		}
	}
	go func() {
		select {
		case <-time.After(idle):
			check()
		case <-done:
		}
	}()
	go func() {
		select {
		case <-sigs:
			if k.Teardown != nil {
				k.Teardown()
			}
			end()
		case <-done:
		}
	}()
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			select {
			case <-done:
				return nil
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		mu.Lock()
		if closing {
			// Taken just before the end: closed unanswered, which the
			// client reads as no keeper (and up or run start a new one).
			mu.Unlock()
			c.Close()
			continue
		}
		active++
		mu.Unlock()
		go func() {
			k.handle(c)
			c.Close()
			mu.Lock()
			active--
			mu.Unlock()
			check()
		}()
	}
}

// writeRecord writes the keeper's record (O_EXCL: one keeper a lab).
func (k *Keeper) writeRecord() error {
	start, err := proc.StartTime(os.Getpid())
	if err != nil {
		return fmt.Errorf("keeper: %w", err)
	}
	id, err := userNSOf(os.Getpid())
	if err != nil {
		return fmt.Errorf("keeper: %w", err)
	}
	data, _ := json.Marshal(Record{PID: os.Getpid(), Start: start, UserNS: id})
	path := RecordPath(k.Dir, k.Lab)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("lab %q %w (nslab status lists it; nslab clean %s removes it)", k.Lab, ErrKeeperExists, k.Lab)
		}
		return fmt.Errorf("keeper record: %w", err)
	}
	defer f.Close()
	if _, err := f.Write(append(data, '\n')); err != nil {
		os.Remove(path)
		return fmt.Errorf("keeper record: %w", err)
	}
	return nil
}

// handle runs one request: the peer must be the user the keeper's user
// namespace maps to root.
func (k *Keeper) handle(c *net.UnixConn) {
	send := func(m message) {
		data, _ := json.Marshal(m)
		c.Write(data)
	}
	raw, err := c.SyscallConn()
	if err != nil {
		return
	}
	var cred *unix.Ucred
	var credErr error
	raw.Control(func(fd uintptr) { cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
	// The request is read first, so that the refusal reaches the client
	// (which sends before it reads); what another user sent is closed.
	buf := make([]byte, 1<<20)
	oob := make([]byte, unix.CmsgSpace(3*4))
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		return
	}
	files, err := receiveFiles(oob[:oobn])
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	if credErr != nil || cred.Uid != 0 {
		send(message{Error: "this lab belongs to another user"})
		return
	}
	if err != nil || len(files) != 3 {
		send(message{Error: "keeper: a request needs stdin, stdout and stderr"})
		return
	}
	var req Request
	if err := json.Unmarshal(buf[:n], &req); err != nil || len(req.Args) == 0 {
		send(message{Error: "keeper: bad request"})
		return
	}
	env := append(req.Env, k.Env...)
	if req.Exec != nil && k.Exec != nil && !req.TTY {
		cmd, code, err := k.Exec(*req.Exec, env, req.Dir, files[0], files[1], files[2])
		if err != nil {
			fmt.Fprintf(files[2], "nslab: %v\n", err)
			send(message{Exit: &code})
			return
		}
		for _, f := range files {
			f.Close()
		}
		files = nil
		k.wait(c, cmd, send)
		return
	}
	cmd := &exec.Cmd{Path: k.Self, Args: req.Args, Env: env, Dir: req.Dir,
		Stdin: files[0], Stdout: files[1], Stderr: files[2]}
	var master *os.File
	if req.TTY {
		m, slave, err := openPTY(req.Rows, req.Cols)
		if err != nil {
			send(message{Error: fmt.Sprintf("keeper: terminal for lab %q: %v", k.Lab, err)})
			return
		}
		defer slave.Close()
		defer m.Close()
		master = m
		cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	}
	if err := cmd.Start(); err != nil {
		send(message{Error: fmt.Sprintf("keeper: start nslab in lab %q: %v", k.Lab, err)})
		return
	}
	for _, f := range files {
		f.Close()
	}
	files = nil
	if master != nil {
		// Only the command keeps the terminal's slave side: the client
		// reads the master until the kernel says the last one closed.
		cmd.Stdin.(*os.File).Close()
		data, _ := json.Marshal(message{PTY: true})
		c.WriteMsgUnix(data, unix.UnixRights(int(master.Fd())), nil)
		master.Close()
	}
	k.wait(c, cmd, send)
}

// wait passes the client's signals to cmd until it ends (the client's end
// is a hang-up), and sends its exit code.
func (k *Keeper) wait(c *net.UnixConn, cmd *exec.Cmd, send func(message)) {
	go func() {
		// Signals from the client; its end (EOF, kill -9) is a hang-up.
		b := make([]byte, 512)
		for {
			n, err := c.Read(b)
			if err != nil || n == 0 {
				cmd.Process.Signal(unix.SIGHUP)
				return
			}
			var m message
			if json.Unmarshal(b[:n], &m) == nil && m.Signal > 0 {
				cmd.Process.Signal(syscall.Signal(m.Signal))
			}
		}
	}()
	cmd.Wait()
	code := ExitCode(cmd.ProcessState)
	send(message{Exit: &code})
}

// openPTY opens a pseudo-terminal of the given size: its master and its
// slave.
func openPTY(rows, cols int) (master, slave *os.File, err error) {
	mfd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	if err := unix.IoctlSetPointerInt(mfd, unix.TIOCSPTLCK, 0); err != nil {
		unix.Close(mfd)
		return nil, nil, fmt.Errorf("unlock: %w", err)
	}
	sfd, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(mfd), unix.TIOCGPTPEER, uintptr(unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC))
	if e != 0 {
		unix.Close(mfd)
		return nil, nil, fmt.Errorf("open the slave: %w", e)
	}
	if rows > 0 && cols > 0 {
		unix.IoctlSetWinsize(mfd, unix.TIOCSWINSZ, &unix.Winsize{Row: uint16(rows), Col: uint16(cols)})
	}
	return os.NewFile(uintptr(mfd), "ptmx"), os.NewFile(sfd, "pts"), nil
}

func receiveFiles(oob []byte) ([]*os.File, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var files []*os.File
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			unix.CloseOnExec(fd)
			files = append(files, os.NewFile(uintptr(fd), "fd"))
		}
	}
	return files, nil
}

// ErrNoKeeper says that no keeper serves the lab.
var ErrNoKeeper = errors.New("no keeper")

// ErrKeeperExists says that the lab has a keeper already (StartKeeper).
var ErrKeeperExists = errors.New("has a keeper already")

// Forward runs the request in the lab's namespaces through its keeper in
// dir, on the three files, passing on the signals that end a program, and
// returns the command's exit code. It returns an error wrapping
// ErrNoKeeper when no keeper listens for the lab.
//
// With req.TTY (stdin and stdout must be a terminal), the command runs on a
// terminal of the lab's own, as ssh -t does: this terminal is put in raw
// mode and relays both ways (and its size) until the command ends.
func Forward(dir, lab string, req Request, stdin, stdout, stderr *os.File) (int, error) {
	c, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: SockPath(dir, lab), Net: "unixpacket"})
	if err != nil {
		return 0, fmt.Errorf("lab %q: %w (%v)", lab, ErrNoKeeper, err)
	}
	defer c.Close()
	if req.TTY {
		if ws, err := unix.IoctlGetWinsize(int(stdin.Fd()), unix.TIOCGWINSZ); err == nil {
			req.Rows, req.Cols = int(ws.Row), int(ws.Col)
		}
	}
	data, _ := json.Marshal(req)
	rights := unix.UnixRights(int(stdin.Fd()), int(stdout.Fd()), int(stderr.Fd()))
	if _, _, err := c.WriteMsgUnix(data, rights, nil); err != nil {
		return 0, fmt.Errorf("lab %q: send to its keeper: %w", lab, err)
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT)
	defer signal.Stop(sigs)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case s := <-sigs:
				data, _ := json.Marshal(message{Signal: int(s.(syscall.Signal))})
				c.Write(data)
			case <-stop:
				return
			}
		}
	}()
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	var relayed chan struct{} // closed when the terminal's output is all copied
	for {
		n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
		if err != nil || n == 0 {
			if relayed == nil {
				// Nothing was started: as good as no keeper.
				return 0, fmt.Errorf("lab %q: %w (it closed the connection)", lab, ErrNoKeeper)
			}
			return 0, fmt.Errorf("lab %q: its keeper went away", lab)
		}
		var m message
		if err := json.Unmarshal(buf[:n], &m); err != nil {
			continue
		}
		switch {
		case m.Error != "":
			return 0, errors.New(m.Error)
		case m.PTY:
			files, err := receiveFiles(oob[:oobn])
			if err != nil || len(files) != 1 {
				return 0, fmt.Errorf("lab %q: no terminal from its keeper", lab)
			}
			master := files[0]
			defer master.Close()
			restore, err := rawMode(stdin)
			if err != nil {
				return 0, err
			}
			defer restore()
			relayed = relay(master, stdin, stdout)
		case m.Exit != nil:
			if relayed != nil {
				select {
				case <-relayed:
				case <-time.After(time.Second): // a background job keeps the terminal
				}
			}
			return *m.Exit, nil
		}
	}
}

// rawMode puts the terminal f in raw mode and returns what restores it.
func rawMode(f *os.File) (func(), error) {
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, fmt.Errorf("terminal: %w", err)
	}
	raw := *old
	raw.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	raw.Oflag &^= unix.OPOST
	raw.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	raw.Cflag &^= unix.CSIZE | unix.PARENB
	raw.Cflag |= unix.CS8
	raw.Cc[unix.VMIN], raw.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &raw); err != nil {
		return nil, fmt.Errorf("terminal: %w", err)
	}
	return func() { unix.IoctlSetTermios(fd, unix.TCSETS, old) }, nil
}

// relay copies the terminal's input to master and master's output to
// out, and passes on the terminal's size as it changes. The channel is
// closed once master has nothing more to say.
func relay(master, in, out *os.File) chan struct{} {
	done := make(chan struct{})
	go io.Copy(master, in)
	go func() {
		io.Copy(out, master) // ends with EIO when the last slave closes
		close(done)
	}()
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, unix.SIGWINCH)
	go func() {
		defer signal.Stop(winch)
		for {
			select {
			case <-winch:
				if ws, err := unix.IoctlGetWinsize(int(in.Fd()), unix.TIOCGWINSZ); err == nil {
					unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, ws)
				}
			case <-done:
				return
			}
		}
	}()
	return done
}

// Kill removes the lab whose keeper is gone: it kills every process of
// this user in the recorded user namespace (by its identity) and removes
// the keeper's files. It returns how many processes it killed. A keeper
// that is still alive is not touched: ask it instead (Forward clean).
func Kill(dir, lab string) (int, error) {
	r, err := ReadRecord(dir, lab)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, err
	}
	killed := 0
	if r != nil {
		if r.Alive() {
			return 0, fmt.Errorf("lab %q: its keeper (process %d) is alive", lab, r.PID)
		}
		for round := 0; round < 50; round++ {
			pids := inUserNS(r.UserNS)
			if len(pids) == 0 {
				break
			}
			for _, pid := range pids {
				if unix.Kill(pid, unix.SIGKILL) == nil && round == 0 {
					killed++
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		if left := inUserNS(r.UserNS); len(left) > 0 {
			return killed, fmt.Errorf("lab %q: processes %v in its user namespace did not end", lab, left)
		}
	}
	for _, p := range []string{SockPath(dir, lab), RecordPath(dir, lab), LogPath(dir, lab)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return killed, err
		}
	}
	return killed, nil
}

// inUserNS lists the processes of this user whose user namespace is id.
func inUserNS(id string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		var st unix.Stat_t
		if unix.Stat("/proc/"+e.Name(), &st) != nil || int(st.Uid) != os.Geteuid() {
			continue
		}
		if _, err := proc.StartTime(pid); err != nil {
			continue // ended: a zombie holds no namespace
		}
		if ns, err := userNSOf(pid); err == nil && ns == id {
			pids = append(pids, pid)
		}
	}
	return pids
}
