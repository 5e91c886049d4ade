package rootless

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/nslab/nslab/internal/netns"
	"golang.org/x/sys/unix"
)

// Environment variables between a parent and the child Command starts.
const (
	// setupEnv names the user's directory (Dir) in a child that must run
	// Setup; Setup removes it, so that programs the child starts (a node's
	// commands, nslab itself) do not set up again.
	setupEnv = "NSLAB_ROOTLESS_SETUP"
	// StateEnv and NetnsEnv are where Setup put the state directory and
	// the named namespaces; nslab's flags and emulator.Options read them.
	StateEnv = "NSLAB_STATE_DIR"
	NetnsEnv = "NSLAB_NETNS_DIR"
	// ForceEnv set to 1 runs rootless even with the capabilities (as
	// nslab --rootless does).
	ForceEnv = "NSLAB_ROOTLESS"
)

// mountDir is the directory of Dir on which a child mounts its tmpfs.
const mountDir = "mnt"

// InUserNS reports whether this process runs in a user namespace other
// than the machine's first one (whose uid_map maps every uid to itself).
func InUserNS() bool {
	data, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return false
	}
	f := strings.Fields(string(data))
	return !(len(f) == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295")
}

// Needed reports whether nslab must run in a user namespace of its own:
// when it lacks a capability it needs (missing, from
// emulator.MissingCapabilities), or when force is set and it does not
// already run in a user namespace (where force would only nest one more).
func Needed(missing []string, force bool) bool {
	return len(missing) > 0 || (force && !InUserNS())
}

// Forced reports whether ForceEnv asks for rootless mode.
func Forced() bool { return os.Getenv(ForceEnv) == "1" }

// Dir returns the user's own directory for rootless labs, creating it:
// $XDG_RUNTIME_DIR/nslab when XDG_RUNTIME_DIR is set (and is the user's:
// `sudo -u` keeps the caller's), else /tmp/nslab-UID. It must be a
// directory owned by the user and closed to everyone else (mode 0700),
// not a symbolic link: one user can never reach another's labs, and
// another user cannot plant one.
func Dir() (string, error) {
	base := os.Getenv("XDG_RUNTIME_DIR")
	var st unix.Stat_t
	var dir string
	if base != "" && filepath.IsAbs(base) && unix.Stat(base, &st) == nil && int(st.Uid) == os.Geteuid() {
		dir = filepath.Join(base, "nslab")
	} else {
		dir = filepath.Join(os.TempDir(), "nslab-"+strconv.Itoa(os.Geteuid()))
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("rootless directory: %w", err)
	}
	if err := checkPrivate(dir); err != nil {
		return "", err
	}
	return dir, nil
}

// checkPrivate says why dir is not a directory of the user's alone.
func checkPrivate(dir string) error {
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return fmt.Errorf("rootless directory: %w", &os.PathError{Op: "lstat", Path: dir, Err: err})
	}
	why := ""
	switch {
	case st.Mode&unix.S_IFMT == unix.S_IFLNK:
		why = "it is a symbolic link"
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		why = "it is not a directory"
	case int(st.Uid) != os.Geteuid():
		why = fmt.Sprintf("it is owned by uid %d, not by uid %d who runs nslab", st.Uid, os.Geteuid())
	case st.Mode&0o077 != 0:
		why = fmt.Sprintf("others can reach it (mode %04o; chmod 700 %s)", st.Mode&0o7777, dir)
	}
	if why != "" {
		return fmt.Errorf("refusing rootless directory %s: %s", dir, why)
	}
	return nil
}

// Command returns a command that runs path with args (args[0] included)
// as a child in new user, mount and network namespaces, the user mapped
// to root there, and with the child set up to run Setup on dir (from
// Dir). The network namespace is new because a thread of the child that
// enters a node must be able to come back, which needs the capability
// over its home namespace too.
func Command(dir, path string, args []string) *exec.Cmd {
	cmd := &exec.Cmd{Path: path, Args: args}
	cmd.Env = append(os.Environ(), setupEnv+"="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:                 unix.CLONE_NEWUSER | unix.CLONE_NEWNS | unix.CLONE_NEWNET,
		UidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}},
		GidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}},
		GidMappingsEnableSetgroups: false,
	}
	return cmd
}

// Paths are where a child's labs live, inside its own mount namespace.
type Paths struct {
	Dir                string // the user's directory (Dir), outside the tmpfs
	StateDir, NetnsDir string
}

// Setup runs early in a child of Command: it makes the child's mounts
// stop propagating to the machine, mounts a tmpfs on Dir()/mnt (seen by
// this mount namespace alone, gone with it), makes the state and
// namespace directories in it, brings the loopback interface of the new
// network namespace up, and points StateEnv and NetnsEnv at them for this
// process and what it starts. ok is false when this process is not such a
// child.
func Setup() (p Paths, ok bool, err error) {
	dir, ok := os.LookupEnv(setupEnv)
	if !ok {
		return Paths{}, false, nil
	}
	os.Unsetenv(setupEnv)
	if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return Paths{}, true, explainInside(fmt.Errorf("make mounts private: %w", err))
	}
	mnt := filepath.Join(dir, mountDir)
	if err := os.Mkdir(mnt, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return Paths{}, true, fmt.Errorf("rootless directory: %w", err)
	}
	if err := unix.Mount("nslab", mnt, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		return Paths{}, true, explainInside(fmt.Errorf("mount a tmpfs on %s: %w", mnt, err))
	}
	p = Paths{Dir: dir, StateDir: filepath.Join(mnt, "state"), NetnsDir: filepath.Join(mnt, "netns")}
	// Each directory is made a mount of its own at once, as the engine
	// wants them (the state directory private, the namespace directory
	// shared, as ip netns makes it): so it never has to mount or unmount
	// them per lab, which costs an RCU grace period each time.
	for _, d := range []struct {
		path string
		prop uintptr
	}{{p.StateDir, unix.MS_PRIVATE}, {p.NetnsDir, unix.MS_SHARED}} {
		if _, err := netns.EnsureMountDir(d.path, d.prop); err != nil {
			return Paths{}, true, fmt.Errorf("rootless: %w", err)
		}
	}
	if err := loopbackUp(); err != nil {
		return Paths{}, true, err
	}
	os.Setenv(StateEnv, p.StateDir)
	os.Setenv(NetnsEnv, p.NetnsDir)
	return p, true, nil
}

// loopbackUp sets lo up in the calling thread's network namespace (the
// child's own, where everything of the process runs that is not in a
// node).
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("rootless: loopback: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("rootless: loopback: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("rootless: loopback: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("rootless: set loopback up: %w", err)
	}
	return nil
}

// sysctls are the settings that forbid unprivileged user namespaces, with
// the value that forbids them.
func sysctls() []struct{ name, path, forbids string } {
	return []struct{ name, path, forbids string }{
		{"user.max_user_namespaces", "/proc/sys/user/max_user_namespaces", "0"},
		{"kernel.unprivileged_userns_clone", "/proc/sys/kernel/unprivileged_userns_clone", "0"},
		{"kernel.apparmor_restrict_unprivileged_userns", "/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1"},
	}
}

// ForbiddenError says that the machine does not let this user create a
// user namespace, naming the setting that forbids it where one does.
type ForbiddenError struct {
	Setting string // e.g. "user.max_user_namespaces = 0"; empty if unknown
	Err     error
}

func (e *ForbiddenError) Error() string {
	if e.Setting != "" {
		return fmt.Sprintf("nslab without root needs a user namespace, which this machine forbids (sysctl %s): run as root, or allow them (docs/rootless.md)", e.Setting)
	}
	return fmt.Sprintf("nslab without root needs a user namespace, which this machine refused (%v): run as root (docs/rootless.md)", e.Err)
}

func (e *ForbiddenError) Unwrap() error { return e.Err }

// forbidding names the sysctl that forbids user namespaces, or "".
func forbidding() string {
	for _, s := range sysctls() {
		data, err := os.ReadFile(s.path)
		if err == nil && strings.TrimSpace(string(data)) == s.forbids {
			return s.name + " = " + s.forbids
		}
	}
	return ""
}

// Explain turns the error of starting a Command into a ForbiddenError when
// the kernel refused the user namespace, and returns other errors as they
// are.
func Explain(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EACCES) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EUSERS) {
		return &ForbiddenError{Setting: forbidding(), Err: err}
	}
	return err
}

// explainInside names the setting when a child got its user namespace but
// not the capabilities in it (AppArmor's restriction on Ubuntu 24.04 lets
// the namespace be made, then denies what is done in it).
func explainInside(err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		if s := forbidding(); s != "" {
			return &ForbiddenError{Setting: s, Err: err}
		}
	}
	return err
}

// ExitCode is the exit code of a finished command as a shell gives it:
// 128+N for one killed by signal N.
func ExitCode(st *os.ProcessState) int {
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return st.ExitCode()
}

// Run starts cmd (from Command) with the caller's stdin, stdout and
// stderr unless set, passes it the signals that end a program (interrupt,
// terminate, hang-up, quit), waits for it and returns its exit code.
func Run(cmd *exec.Cmd) (int, error) {
	if cmd.Stdin == nil {
		cmd.Stdin = os.Stdin
	}
	if cmd.Stdout == nil {
		cmd.Stdout = os.Stdout
	}
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return 0, Explain(err)
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				cmd.Process.Signal(s)
			case <-done:
				return
			}
		}
	}()
	err := cmd.Wait()
	close(done)
	if cmd.ProcessState == nil {
		return 0, err
	}
	return ExitCode(cmd.ProcessState), nil
}
