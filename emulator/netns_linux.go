package emulator

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/nslab/nslab/topo"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// onThread runs fn on a fresh goroutine locked to its OS thread. fn may
// switch the thread's namespaces; it reports through restored whether it
// switched the thread back. If it did not, the thread stays locked and
// the runtime discards it when the goroutine ends, so no other goroutine
// ever runs in the wrong namespace.
func onThread(fn func() (restored bool, err error)) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		restored, err := fn()
		if restored {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// newNetns creates a network namespace, writes sysctls inside it and
// opens a route netlink socket in it, all from one visit of a locked thread
// (`ip netns add` + `ip netns exec NS sysctl ...`). It returns the
// namespace's file descriptor and the socket. Nothing is mounted yet: the
// namespace disappears if the descriptor is closed before mountNetns.
func newNetns(sysctls []topo.Sysctl) (fd int, sock *nl.NetlinkSocket, err error) {
	fd = -1
	err = onThread(func() (bool, error) {
		orig, err := netns.Get()
		if err != nil {
			return true, fmt.Errorf("open current namespace: %w", err)
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return true, fmt.Errorf("unshare network namespace: %w", err)
		}
		werr := writeSysctls(sysctls)
		if werr == nil {
			fd, werr = unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if werr == nil {
				sock, werr = nl.GetNetlinkSocketAt(netns.None(), netns.None(), unix.NETLINK_ROUTE)
				if werr != nil {
					unix.Close(fd)
					fd = -1
				}
			}
		}
		if err := netns.Set(orig); err != nil {
			if sock != nil {
				sock.Close()
			}
			if fd >= 0 {
				unix.Close(fd)
			}
			return false, fmt.Errorf("switch back to the original namespace: %w", err)
		}
		return true, werr
	})
	return fd, sock, err
}

// writeSysctls writes settings in the calling thread's network namespace:
// /proc/sys/net is resolved by the namespace of the thread that opens it.
func writeSysctls(ss []topo.Sysctl) error {
	for _, s := range ss {
		path := "/proc/sys/" + strings.ReplaceAll(s.Key, ".", "/")
		if strings.Contains(s.Key, "/") {
			path = "/proc/sys/" + s.Key
		}
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("sysctl %s: this kernel has no such setting", s.Key)
			}
			return fmt.Errorf("sysctl %s: %w", s.Key, err)
		}
		_, err = f.WriteString(s.Value)
		f.Close()
		if err != nil {
			return fmt.Errorf("sysctl %s = %q: %w", s.Key, s.Value, err)
		}
	}
	return nil
}

// ensureMountDir makes dir exist and be a mount point with the given
// propagation (unix.MS_SHARED or unix.MS_PRIVATE), bind-mounting it onto
// itself when it is not one yet, as `ip netns add` does for /run/netns.
func ensureMountDir(dir string, propagation uintptr) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	err := unix.Mount("", dir, "none", propagation|unix.MS_REC, "")
	if err == nil {
		if mountedOnItself(dir) {
			return nil
		}
	} else if !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("make %s a %s mount: %w", dir, propName(propagation), err)
	}
	if err := unix.Mount(dir, dir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind-mount %s onto itself: %w", dir, err)
	}
	if err := unix.Mount("", dir, "none", propagation|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make %s a %s mount: %w", dir, propName(propagation), err)
	}
	return nil
}

func propName(p uintptr) string {
	if p == unix.MS_SHARED {
		return "shared"
	}
	return "private"
}

// mountedOnItself reports whether dir is a mount point of its own (and so
// setting its propagation did not change its parent's).
func mountedOnItself(dir string) bool {
	data, err := os.ReadFile("/proc/thread-self/mountinfo")
	if err != nil {
		return false
	}
	abs, _ := filepath.Abs(dir)
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && unescapeMount(f[4]) == abs {
			return true
		}
	}
	return false
}

func unescapeMount(s string) string {
	return strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(s)
}

// pinNamespace bind-mounts the namespace behind fd on path (created here,
// exclusively, so that an existing name is never taken over):
// the `mount --bind /proc/self/ns/net /run/netns/NAME` of `ip netns add`.
func pinNamespace(fd int, path string) error {
	p := &pinner{}
	defer p.close()
	return p.pin(fd, path, nil)
}

// pinner makes the empty files that namespaces are mounted on. Creating an
// inode per file is costly on some file systems (ext4 scans its bitmaps
// past recently deleted inodes), so it makes one unnamed inode per
// directory (O_TMPFILE) and gives it a new name per namespace (linkat):
// each pin is then one directory entry. Where that is not possible it
// creates files one by one.
//
// The journal hook records, before each step, what the step may leave
// behind if the process is killed right after it: the inode of the
// unnamed file ("pinfile DEV:INO"), the name about to be linked ("try
// NAME"), and the name once it is ours ("netns NAME"). Clean removes a
// "try" name only if it is a link to a recorded pinfile inode, so a name
// that was someone else's is never touched.
type pinner struct {
	tmp     map[string]int // directory -> O_TMPFILE descriptor
	journal func(kind, arg string) error
}

func (p *pinner) close() {
	for _, fd := range p.tmp {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	p.tmp = nil
}

func (p *pinner) note(kind, arg string) error {
	if p.journal == nil {
		return nil
	}
	return p.journal(kind, arg)
}

func (p *pinner) tmpFile(dir string) int {
	if p.tmp == nil {
		p.tmp = map[string]int{}
	}
	fd, ok := p.tmp[dir]
	if ok {
		return fd
	}
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0o444)
	if err == nil {
		var st unix.Stat_t
		if err = unix.Fstat(fd, &st); err == nil {
			err = p.note(jPinFile, fileID(st))
		}
		if err != nil {
			unix.Close(fd)
		}
	}
	if err != nil {
		fd = -1
	}
	p.tmp[dir] = fd
	return fd
}

func fileID(st unix.Stat_t) string { return fmt.Sprintf("%d:%d", st.Dev, st.Ino) }

func (p *pinner) mountPoint(path string) error {
	if fd := p.tmpFile(filepath.Dir(path)); fd >= 0 {
		err := unix.Linkat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", fd), unix.AT_FDCWD, path, unix.AT_SYMLINK_FOLLOW)
		if err == nil {
			return nil
		}
		if errors.Is(err, unix.EEXIST) {
			return os.ErrExist
		}
		unix.Close(fd)
		p.tmp[filepath.Dir(path)] = -1
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return err
	}
	return f.Close()
}

// pin makes the mount point (failing with os.ErrExist when the name is
// taken), records it as ours, and mounts the namespace on it.
func (p *pinner) pin(fd int, path string, journal func(kind, arg string) error) error {
	p.journal = journal
	name := filepath.Base(path)
	if err := p.note(jTry, name); err != nil {
		return err
	}
	if err := p.mountPoint(path); err != nil {
		return err
	}
	if err := p.note(jNetns, name); err != nil {
		os.Remove(path)
		return err
	}
	src := fmt.Sprintf("/proc/self/fd/%d", fd)
	if err := unix.Mount(src, path, "none", unix.MS_BIND, ""); err != nil {
		os.Remove(path)
		return fmt.Errorf("bind-mount namespace: %w", err)
	}
	return nil
}

// ourPinFile reports whether path is a plain file that is a link to one of
// the recorded pinfile inodes.
func ourPinFile(path string, pinfiles map[string]bool) bool {
	var st unix.Stat_t
	if unix.Lstat(path, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return false
	}
	return pinfiles[fileID(st)]
}

// unpinNamespace undoes pinNamespace; a missing path is not an error.
func unpinNamespace(path string) error {
	err := unix.Unmount(path, unix.MNT_DETACH)
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// nsInode returns the inode of the namespace pinned at path.
func nsInode(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, err
	}
	if st.Dev == 0 {
		return 0, fmt.Errorf("%s is not a namespace", path)
	}
	return st.Ino, nil
}

// isNamespaceFile reports whether path has a namespace mounted on it (and
// is not just the empty file it is mounted on).
func isNamespaceFile(path string) bool {
	var st, parent unix.Statfs_t
	if unix.Statfs(path, &st) != nil || unix.Statfs(filepath.Dir(path), &parent) != nil {
		return false
	}
	const nsfsMagic = 0x6e736673
	return st.Type == nsfsMagic
}
