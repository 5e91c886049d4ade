package netns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// EnsureMountDir makes dir exist and be a mount point with the given
// propagation (unix.MS_SHARED or unix.MS_PRIVATE), bind-mounting it onto
// itself when it is not one yet, as `ip netns add` does for /run/netns.
// mounted says whether it made that bind mount (UnmountDir undoes it).
func EnsureMountDir(dir string, propagation uintptr) (mounted bool, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	err = unix.Mount("", dir, "none", propagation|unix.MS_REC, "")
	if err == nil {
		if mountedOnItself(dir) {
			return false, nil
		}
	} else if !errors.Is(err, unix.EINVAL) {
		return false, fmt.Errorf("make %s a %s mount: %w", dir, propName(propagation), err)
	}
	if err := unix.Mount(dir, dir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return false, fmt.Errorf("bind-mount %s onto itself: %w", dir, err)
	}
	if err := unix.Mount("", dir, "none", propagation|unix.MS_REC, ""); err != nil {
		unix.Unmount(dir, unix.MNT_DETACH)
		return false, fmt.Errorf("make %s a %s mount: %w", dir, propName(propagation), err)
	}
	return true, nil
}

// UnmountDir removes the bind mount EnsureMountDir made on dir, if dir is
// still a mount point of its own.
func UnmountDir(dir string) error {
	if !mountedOnItself(dir) {
		return nil
	}
	if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("unmount %s: %w", dir, err)
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
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
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

// Pin bind-mounts the namespace behind fd (of any kind: network, mount) on
// path (created here, exclusively, so that an existing name is never taken
// over): the `mount --bind /proc/self/ns/net /run/netns/NAME` of
// `ip netns add`.
func Pin(fd int, path string) error {
	p := &Pinner{}
	defer p.Close()
	return p.Pin(fd, path)
}

// PinStep is a step of Pinner.Pin that may leave something behind if the
// process is killed right after it.
type PinStep int

const (
	// PinFile: the unnamed file namespaces are mounted on was made; the
	// argument is its "DEV:INO".
	PinFile PinStep = iota
	// PinTry: the name (the argument, the base name of the path) is about
	// to be linked to that file, and may not be ours if it exists.
	PinTry
	// Pinned: the name is ours; the namespace is mounted on it next. The
	// argument is "NAME ID": the name and the identity of the namespace
	// (see ID), so that a namespace someone else pinned under the name
	// later is never taken for it.
	Pinned
)

// Pinner makes the empty files that namespaces are mounted on. Creating an
// inode per file is costly on some file systems (ext4 scans its bitmaps
// past recently deleted inodes), so it makes one unnamed inode per
// directory (O_TMPFILE) and gives it a new name per namespace (linkat):
// each pin is then one directory entry. Where that is not possible it
// creates files one by one.
//
// Journal, if set, records before each step what the step may leave
// behind if the process is killed right after it (see PinStep): the inode
// of the unnamed file, the name about to be linked, and the name once it
// is ours. A cleanup that finds a PinTry name without its Pinned step
// removes it only if it is a link to a recorded PinFile inode (IsPinFile),
// so a name that was someone else's is never touched.
type Pinner struct {
	Journal func(step PinStep, arg string) error
	tmp     map[string]int // directory -> O_TMPFILE descriptor
}

// Close closes the unnamed files.
func (p *Pinner) Close() {
	for _, fd := range p.tmp {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	p.tmp = nil
}

func (p *Pinner) note(step PinStep, arg string) error {
	if p.Journal == nil {
		return nil
	}
	return p.Journal(step, arg)
}

func (p *Pinner) tmpFile(dir string) int {
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
			err = p.note(PinFile, fileID(st))
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

// nsID is a namespace's identity: its nsfs file's device and inode and
// the inode's change time. The kernel reuses a freed namespace's inode
// number for the next namespace made (`ip netns del X; ip netns add X`
// got the same one), but the nsfs inode of the new namespace is a new
// one, made at another time; while the namespace is pinned its inode
// stays, and with it the time.
func nsID(st unix.Stat_t) string {
	return fmt.Sprintf("%d:%d:%d.%09d", st.Dev, st.Ino, st.Ctim.Sec, st.Ctim.Nsec)
}

// The descriptor tables behind /proc/self/fd and /proc/thread-self/fd are
// the same (nslab never unshares them): these paths do not depend on the
// thread's namespaces.
func (p *Pinner) mountPoint(path string) error {
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
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		os.Remove(path)
		return err
	}
	// Recorded like the unnamed file's inode, so that a cleanup finds this
	// file to be ours too.
	if err := p.note(PinFile, fileID(st)); err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// Pin makes the mount point (failing with os.ErrExist when the name is
// taken), records it as ours, and mounts the namespace behind fd on it.
func (p *Pinner) Pin(fd int, path string) error {
	name := filepath.Base(path)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("namespace to pin at %s: %w", path, err)
	}
	if err := p.note(PinTry, name); err != nil {
		return err
	}
	if err := p.mountPoint(path); err != nil {
		return err
	}
	if err := p.note(Pinned, name+" "+nsID(st)); err != nil {
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

// Pin pins the namespace at path with p (see Pinner.Pin); Path then
// returns path.
func (ns *NS) Pin(p *Pinner, path string) error {
	if err := p.Pin(ns.fd, path); err != nil {
		return err
	}
	ns.path = path
	return nil
}

// IsPinFile reports whether path is a plain file that is a link to one of
// the recorded PinFile inodes ("DEV:INO").
func IsPinFile(path string, pinfiles map[string]bool) bool {
	var st unix.Stat_t
	if unix.Lstat(path, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return false
	}
	return pinfiles[fileID(st)]
}

// Unpin undoes Pin; a missing path is not an error.
func Unpin(path string) error {
	err := unix.Unmount(path, unix.MNT_DETACH)
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Inode returns the inode of the namespace pinned at path: what
// /proc/PID/ns/net of a process inside it points to.
func Inode(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, err
	}
	if st.Dev == 0 {
		return 0, fmt.Errorf("%s is not a namespace", path)
	}
	return st.Ino, nil
}

// ID returns the identity of the namespace pinned at path (see nsID):
// what the Pinned step recorded. A path with no namespace on it gives an
// error. One open of the path serves both checks, so that they look at
// the same file.
func ID(path string) (string, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var fs unix.Statfs_t
	var st unix.Stat_t
	if err := unix.Fstatfs(fd, &fs); err != nil {
		return "", err
	}
	if fs.Type != nsfsMagic {
		return "", fmt.Errorf("%s: no namespace is pinned there", path)
	}
	if err := unix.Fstat(fd, &st); err != nil {
		return "", err
	}
	return nsID(st), nil
}

// ID returns the identity of the namespace, as ID gives it for its path.
func (ns *NS) ID() (string, error) {
	var st unix.Stat_t
	if ns == nil || ns.fd < 0 {
		return "", errors.New("namespace is closed")
	}
	if err := unix.Fstat(ns.fd, &st); err != nil {
		return "", err
	}
	return nsID(st), nil
}

const nsfsMagic = 0x6e736673

// IsNamespaceFile reports whether path has a namespace mounted on it (and
// is not just the empty file it is mounted on).
func IsNamespaceFile(path string) bool {
	var st, parent unix.Statfs_t
	if unix.Statfs(path, &st) != nil || unix.Statfs(filepath.Dir(path), &parent) != nil {
		return false
	}
	return st.Type == nsfsMagic
}

// PinnedAt reports whether path still pins this namespace: a lab taken
// down (and perhaps built again under the same names) by another process
// since the namespace was opened has unpinned it.
func (ns *NS) PinnedAt(path string) bool {
	var a, b unix.Stat_t
	if ns == nil || ns.fd < 0 || unix.Fstat(ns.fd, &a) != nil || unix.Stat(path, &b) != nil {
		return false
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}
