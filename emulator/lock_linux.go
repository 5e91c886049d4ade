package emulator

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nslab/nslab/internal/netns"
	"golang.org/x/sys/unix"
)

// Every command that changes a lab (up, down, clean, a failed up's
// rollback) holds the lab's lock for its whole run: flock(2) on
// StateDir/LAB.lock, a file beside the lab's directory that outlives it.
// So `clean` can never remove the directory of a lab being built, and two
// builders of one name never interleave. The holder writes its PID into
// the file for the messages of those who wait.
//
// The file is removed by a holder that leaves no lab behind (a down, a
// clean, a refused or rolled-back up), while it still holds the lock; a
// waiter that then gets the lock on the removed file sees that the path
// no longer names the file it locked, and starts again on the new one.

// lockWait is how long a command waits for another one's lock on the
// same lab before it gives up and says who holds it.
const lockWait = 30 * time.Second

type labLock struct {
	f    *os.File
	path string
}

func lockPath(stateDir, lab string) string { return filepath.Join(stateDir, lab+".lock") }

// lockLab takes the lock of lab in stateDir, waiting up to wait for
// another process (or another Lab of this one) to release it.
//
// With no state directory there is nothing to hold: it returns a nil
// lock (whose release does nothing).
func lockLab(stateDir, lab string, wait time.Duration) (*labLock, error) {
	if err := checkDir(stateDir); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	path := lockPath(stateDir, lab)
	deadline := time.Now().Add(wait)
	for sleep := time.Millisecond; ; {
		f, err := openFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("lock lab %q: %w", lab, err)
		}
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			if sameFile(f, path) {
				f.Truncate(0)
				f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
				return &labLock{f: f, path: path}, nil
			}
			f.Close() // removed by the holder before us: take the new one
			continue
		}
		holder := readHolder(f)
		f.Close()
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("lock lab %q: %w", lab, err)
		}
		if time.Now().After(deadline) {
			return nil, &BusyError{Lab: lab, PID: holder}
		}
		time.Sleep(sleep)
		sleep = min(2*sleep, 50*time.Millisecond)
	}
}

// BusyError says that another nslab command is changing the lab.
type BusyError struct {
	Lab string
	PID int // the holder of the lab's lock, 0 if unknown
}

func (e *BusyError) Error() string {
	who := "another nslab command"
	if e.PID > 0 {
		who = fmt.Sprintf("process %d", e.PID)
	}
	return fmt.Sprintf("lab %q is busy: %s is building or removing it; try again when it is done", e.Lab, who)
}

func sameFile(f *os.File, path string) bool {
	var a, b unix.Stat_t
	if unix.Fstat(int(f.Fd()), &a) != nil || unix.Lstat(path, &b) != nil {
		return false
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}

func readHolder(f *os.File) int {
	buf := make([]byte, 16)
	n, _ := f.ReadAt(buf, 0)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	return pid
}

// release drops the lock; if the lab's directory is gone, it removes the
// lock file first (while holding the lock: see above).
func (k *labLock) release() {
	if k == nil || k.f == nil {
		return
	}
	lab := strings.TrimSuffix(filepath.Base(k.path), ".lock")
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(filepath.Dir(k.path), lab), &st); errors.Is(err, unix.ENOENT) {
		os.Remove(k.path)
	}
	k.f.Close()
	k.f = nil
}

// The state directory is a private mount of its own (a lab's mount
// namespace is pinned inside it, which needs one: see netns.EnsureMountDir).
// nslab bind-mounts it onto itself when it is not a mount point yet, and
// leaves the file mountedMark beside the labs to say so; when the last
// lab in it goes, the bind mount goes too. Making labs and unmounting are
// kept apart by flock(2) on dirLock: a builder holds it shared from the
// mount to its lab's directory, the unmounter exclusive (and gives up if
// it cannot have it at once: a builder is then on its way).
const (
	mountedMark = ".mounted"
	dirLock     = ".lock"
)

// enterStateDir prepares stateDir for a new lab and returns with the
// directory lock held shared; done releases it.
func enterStateDir(stateDir string) (done func(), err error) {
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return nil, fmt.Errorf("prepare state directory: %w", err)
	}
	if err := checkDir(stateDir); err != nil {
		return nil, err
	}
	f, err := openFile(filepath.Join(stateDir, dirLock), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("prepare state directory: %w", err)
	}
	// Exclusive while mounting, so that two builders never both find no
	// mount and stack two; then shared while the lab's directory is made.
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("prepare state directory: lock: %w", err)
	}
	mounted, err := netns.EnsureMountDir(stateDir, unix.MS_PRIVATE)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("prepare state directory: %w", err)
	}
	if mounted {
		if m, err := openFile(filepath.Join(stateDir, mountedMark), os.O_WRONLY|os.O_CREATE, 0o644); err == nil {
			m.Close()
		}
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH); err != nil {
		f.Close()
		return nil, fmt.Errorf("prepare state directory: lock: %w", err)
	}
	return func() { f.Close() }, nil
}

// leaveStateDir removes the bind mount nslab made on stateDir if no lab
// is left in it.
func leaveStateDir(stateDir string) {
	if checkDir(stateDir) != nil {
		return
	}
	mark := filepath.Join(stateDir, mountedMark)
	if _, err := os.Lstat(mark); err != nil {
		return // not ours to unmount
	}
	f, err := openFile(filepath.Join(stateDir, dirLock), os.O_RDWR, 0)
	if err != nil {
		return
	}
	defer f.Close()
	if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
		return // a builder is on its way: the last to leave unmounts
	}
	ents, err := os.ReadDir(stateDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if e.IsDir() {
			return
		}
	}
	if netns.UnmountDir(stateDir) == nil {
		os.Remove(mark)
	}
}
