package emulator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
	"unsafe"

	"github.com/nslab/nslab/internal/netns"
	"github.com/nslab/nslab/topo"
	"golang.org/x/sys/unix"
)

// makeEtc writes the lab's hosts file and makes the lab's mount namespace:
// a copy of the machine's in which /etc/hosts is that file. Commands run
// in a node enter it, so the machine's /etc is never changed.
func (l *Lab) makeEtc() error {
	hosts := filepath.Join(l.dir, "hosts")
	if err := os.WriteFile(hosts, l.Plan.HostsFile(), 0o644); err != nil {
		return fmt.Errorf("write hosts file: %w", err)
	}
	if _, err := os.Stat("/etc/hosts"); err != nil {
		l.opts.Logger.Warn("the machine has no /etc/hosts to cover: nodes resolve no lab names", "err", err)
		return nil
	}
	pin := filepath.Join(l.dir, "mnt")
	if err := l.journal.add(jMountNS, pin); err != nil {
		return err
	}
	fd, err := newLabMountNS(hosts)
	if err != nil {
		return fmt.Errorf("lab mount namespace: %w", err)
	}
	defer unix.Close(fd)
	if err := netns.Pin(fd, pin); err != nil {
		return fmt.Errorf("pin lab mount namespace: %w", err)
	}
	return nil
}

// newLabMountNS makes the lab's mount namespace, in which /etc/hosts is
// hosts, and returns a descriptor of it.
//
// The kernel bind-mounts a mount namespace's file only into a mount
// namespace with a smaller id (an older one, so that no loop can form),
// and since Linux 6.18 ids are handed out in per-CPU batches: a namespace
// made now on one CPU can have a smaller id than one made earlier on
// another. nslab's own mount namespace is the machine's first (id 1) when
// it runs as root on the host, but not in a container or a user namespace
// of its own (docs/rootless.md), where about one pin in two failed with
// EINVAL. So the namespace is made again, on each CPU in turn, until its
// id is larger than the one it is pinned from; on kernels without the
// id's ioctl, ids only grow and the first one is kept.
func newLabMountNS(hosts string) (int, error) {
	cur, curErr := mountNSID("/proc/thread-self/ns/mnt")
	var cpus unix.CPUSet
	if unix.SchedGetaffinity(0, &cpus) != nil {
		cpus.Zero()
	}
	var last error
	for cpu := -1; cpu < 1024; cpu++ {
		if cpu >= 0 && !cpus.IsSet(cpu) {
			continue
		}
		fdc := make(chan int, 1)
		err := netns.Discard(func() error {
			// Never switched back: this thread is discarded when it returns.
			if cpu >= 0 {
				var one unix.CPUSet
				one.Set(cpu)
				if err := unix.SchedSetaffinity(0, &one); err != nil {
					return err
				}
			}
			if err := unix.Unshare(unix.CLONE_FS | unix.CLONE_NEWNS); err != nil {
				return fmt.Errorf("unshare mount namespace: %w", err)
			}
			if err := unix.Mount("", "/", "none", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
				return fmt.Errorf("make lab mounts private: %w", err)
			}
			if err := unix.Mount(hosts, "/etc/hosts", "none", unix.MS_BIND, ""); err != nil {
				return fmt.Errorf("bind-mount lab hosts file: %w", err)
			}
			fd, err := unix.Open("/proc/thread-self/ns/mnt", unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return err
			}
			fdc <- fd
			return nil
		})
		if err != nil {
			return -1, err
		}
		fd := <-fdc
		id, err := mountNSIDOf(fd)
		if curErr != nil || err != nil || id > cur {
			return fd, nil
		}
		unix.Close(fd)
		last = fmt.Errorf("the kernel gave every new mount namespace an id (last %d) below nslab's own (%d), and binds only younger ones", id, cur)
	}
	return -1, last
}

// nsGetMntnsID is NS_GET_MNTNS_ID, _IOR(0xb7, 5, __u64) (Linux 6.12).
const nsGetMntnsID = 0x8008b705

func mountNSID(path string) (uint64, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	return mountNSIDOf(fd)
}

func mountNSIDOf(fd int) (uint64, error) {
	var id uint64
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), nsGetMntnsID, uintptr(unsafe.Pointer(&id))); e != 0 {
		return 0, e
	}
	return id, nil
}

// nodeEnv describes what a process entering a node needs.
type nodeEnv struct {
	node     *nodeHandle
	mntns    string // path of the lab's mount namespace, "" for none
	hostname string
	// dir is the working directory to take inside: the caller's. Entering
	// a mount namespace moves the thread to that namespace's root, so
	// without it every command ran in "/".
	dir    string
	dirErr error // why there is no dir
}

func (l *Lab) envOf(node string) (nodeEnv, error) {
	h, err := l.node(node)
	if err != nil {
		return nodeEnv{}, err
	}
	e := nodeEnv{node: h, hostname: h.node.Name}
	if pin := filepath.Join(l.dir, "mnt"); netns.IsNamespaceFile(pin) {
		e.mntns = pin
	}
	// The calling goroutine's thread has never switched namespaces (only
	// discarded threads do), so this is the directory nslab runs in.
	e.dir, e.dirErr = os.Getwd()
	return e, nil
}

// enter switches the calling (locked, disposable) thread into the node:
// its network namespace ns, the lab's mount namespace, and a UTS namespace
// of its own with the node's hostname. Run it inside the node handle's
// discard: the thread must never be unlocked.
func (e nodeEnv) enter(ns *netns.NS) error {
	mntfd := -1
	if e.mntns != "" {
		var err error
		if mntfd, err = unix.Open(e.mntns, unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
			return fmt.Errorf("open mount namespace: %w", err)
		}
		defer unix.Close(mntfd)
	}
	flags := unix.CLONE_FS | unix.CLONE_NEWUTS
	if err := unix.Unshare(flags); err != nil {
		return fmt.Errorf("unshare: %w", err)
	}
	if err := unix.Sethostname([]byte(e.hostname)); err != nil {
		return fmt.Errorf("set hostname: %w", err)
	}
	if mntfd >= 0 {
		if err := unix.Setns(mntfd, unix.CLONE_NEWNS); err != nil {
			return fmt.Errorf("enter mount namespace: %w", err)
		}
	}
	if err := ns.Set(); err != nil {
		return fmt.Errorf("enter network namespace: %w", err)
	}
	if err := mountNodeSysfs(); err != nil {
		return err
	}
	// The same path in the lab's mount namespace: a copy of the machine's
	// (and a slave of it, so later mounts appear in it too).
	if e.dirErr != nil {
		return fmt.Errorf("working directory: %w", e.dirErr)
	}
	if e.dir != "" {
		if err := unix.Chdir(e.dir); err != nil {
			return fmt.Errorf("enter working directory %s: %w", e.dir, err)
		}
	}
	return nil
}

// mountNodeSysfs gives the calling thread, already in the node's network
// namespace, a mount namespace of its own in which /sys is a sysfs of that
// network namespace, as `ip netns exec` does: without it /sys/class/net
// lists the machine's interfaces, and a write to
// /sys/class/net/lo/tx_queue_len changes the machine's lo. The new mount
// namespace is a slave of the one entered, so nothing mounted here
// reaches it.
func mountNodeSysfs() error {
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("unshare mount namespace for /sys: %w", err)
	}
	if err := unix.Mount("", "/", "none", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make node mounts private: %w", err)
	}
	flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	var vfs unix.Statfs_t
	if unix.Statfs("/sys", &vfs) == nil && vfs.Flags&unix.ST_RDONLY != 0 {
		flags |= unix.MS_RDONLY
	}
	if err := unix.Unmount("/sys", unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("unmount the machine's /sys: %w", err)
	}
	if err := unix.Mount("sysfs", "/sys", "sysfs", flags, ""); err != nil {
		return fmt.Errorf("mount the node's /sys: %w", err)
	}
	return nil
}

// Start starts cmd inside node, like `ip netns exec NS CMD` but with the
// node's hostname and the lab's /etc/hosts, and no fork of ip. It runs in
// the caller's working directory, or in cmd.Dir when set (a relative
// cmd.Dir is taken from the caller's). Wait for it with cmd.Wait as usual.
func (l *Lab) Start(node string, cmd *exec.Cmd) error {
	e, err := l.envOf(node)
	if err != nil {
		return err
	}
	err = e.node.discard(func(ns *netns.NS) error {
		if err := e.enter(ns); err != nil {
			return err
		}
		return cmd.Start()
	})
	if err != nil {
		return fmt.Errorf("exec %q in node %q: %w", cmd.Path, node, err)
	}
	return nil
}

// ExecResult is what a command run in a node did.
type ExecResult struct {
	Stdout   []byte
	Stderr   []byte
	ExitCode int
	Duration time.Duration
}

// Exec runs argv in node, in the caller's working directory, and waits
// for it, returning its output and exit code. A non-zero exit is not an
// error; failing to start is.
func (l *Lab) Exec(ctx context.Context, node string, argv ...string) (ExecResult, error) {
	if len(argv) == 0 {
		return ExecResult{}, topo.BadInput(errors.New("exec: no command given"))
	}
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	t0 := time.Now()
	if err := l.Start(node, cmd); err != nil {
		return ExecResult{ExitCode: -1}, err
	}
	err := cmd.Wait()
	res := ExecResult{Stdout: out.Bytes(), Stderr: errb.Bytes(), Duration: time.Since(t0)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.ExitCode = ee.ExitCode()
		if res.ExitCode < 0 {
			res.ExitCode = 128 + int(ee.Sys().(syscall.WaitStatus).Signal())
		}
	default:
		return res, fmt.Errorf("exec %q in node %q: %w", argv[0], node, err)
	}
	return res, nil
}

// ExecReplace replaces the calling process with argv running inside node,
// in the working directory of the calling process: stdin, stdout, stderr
// and the exit code are the command's own. It returns only on failure.
func (l *Lab) ExecReplace(node string, argv []string, env []string) error {
	if len(argv) == 0 {
		return topo.BadInput(errors.New("exec: no command given"))
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return topo.BadInput(&ProgramError{Node: node, Program: argv[0], Err: err})
	}
	e, err := l.envOf(node)
	if err != nil {
		return err
	}
	return e.node.discard(func(ns *netns.NS) error {
		if err := e.enter(ns); err != nil {
			return fmt.Errorf("enter node %q: %w", node, err)
		}
		err := unix.Exec(path, argv, env)
		return &ProgramError{Node: node, Program: path, Err: err}
	})
}

// ProgramError is a program that could not be started in a node: not
// found (Err is exec.ErrNotFound or fs.ErrNotExist) or not executable
// (fs.ErrPermission), as opposed to a failure to enter the node. The CLI
// exits 127 and 126 on these, as shells do.
type ProgramError struct {
	Node    string
	Program string
	Err     error
}

func (e *ProgramError) Error() string {
	return fmt.Sprintf("exec %q in node %q: %v", e.Program, e.Node, e.Err)
}

func (e *ProgramError) Unwrap() error { return e.Err }

// startServices starts each node's echo service and start commands in
// the background, with output to StateDir/LAB/logs/NODE.log, in the
// working directory nslab runs in.
func (l *Lab) startServices(ctx context.Context) error {
	if err := l.startEcho(); err != nil {
		return err
	}
	for _, n := range l.Plan.Nodes {
		if len(n.Start) == 0 {
			continue
		}
		logs := filepath.Join(l.dir, "logs")
		if err := os.MkdirAll(logs, 0o755); err != nil {
			return err
		}
		for _, s := range n.Start {
			f, err := os.OpenFile(filepath.Join(logs, n.Name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
			if err != nil {
				return err
			}
			cmd := exec.Command("/bin/sh", "-c", s)
			cmd.Stdout, cmd.Stderr = f, f
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
			err = l.Start(n.Name, cmd)
			f.Close()
			if err != nil {
				return fmt.Errorf("start %q in node %q: %w", s, n.Name, err)
			}
			l.journal.add(jProc, fmt.Sprint(cmd.Process.Pid))
			l.mu.Lock()
			l.procs = append(l.procs, cmd)
			l.mu.Unlock()
			l.opts.Logger.Debug("started", "node", n.Name, "cmd", s, "pid", cmd.Process.Pid)
		}
	}
	return nil
}

// Open returns the lab called name that is up (built by this or another
// process), from its record.
func Open(name string, opts Options) (*Lab, error) {
	opts = opts.withDefaults()
	r, err := ReadRecord(opts.StateDir, name)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			labs, _ := ListLabs(opts.StateDir)
			return nil, topo.BadInput(&NoSuchLabError{Lab: name, Labs: labs})
		}
		return nil, err
	}
	if r.State != StateUp {
		state, _ := r.Condition(r.BuilderAlive())
		return nil, fmt.Errorf("lab %q is %s, not up (remove it with `nslab clean %s`)", name, state, name)
	}
	if r.Version != recordVersion {
		return nil, fmt.Errorf("lab %q was built by another version of nslab (record version %d, this one reads %d): take it down with `nslab down %s`", name, r.Version, recordVersion, name)
	}
	if r.Topology == nil {
		return nil, fmt.Errorf("record of lab %q has no topology", name)
	}
	plan, err := topo.Resolve(r.Topology)
	if err != nil {
		return nil, fmt.Errorf("record of lab %q: %w", name, err)
	}
	opts.NetnsDir = r.NetnsDir
	if r.HostNetns != "" {
		opts.HostNetns = r.HostNetns
	}
	return &Lab{Plan: plan, Record: r, opts: opts, dir: labDir(opts.StateDir, name), nodes: map[string]*nodeHandle{}}, nil
}

// Clean removes the lab called name in whatever state it is in (up,
// half-built after a crash, half torn down) from its ownership record,
// touching nothing else. Cleaning a lab that does not exist is not an
// error. It holds the lab's lock while it works (see lockLab), so it
// waits for a build of the same name to end.
func Clean(name string, opts Options) error {
	opts = opts.withDefaults()
	if err := topo.CheckLabName(name); err != nil {
		return topo.BadInput(err)
	}
	lock, err := lockLab(opts.StateDir, name, lockWait)
	if err != nil {
		return err
	}
	defer leaveStateDir(opts.StateDir)
	defer lock.release()
	if r, err := ReadRecord(opts.StateDir, name); err == nil {
		if r.State == StateBuilding && builderAlive(r) && r.PID != os.Getpid() {
			return fmt.Errorf("lab %q is being built by process %d right now; stop that process first, then clean", name, r.PID)
		}
	}
	return removeLab(opts, name)
}
