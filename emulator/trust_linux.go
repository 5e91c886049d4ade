package emulator

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// nslab runs as root and removes what its state directory names, so the
// directory is trusted only if no one else could have written it: it and
// every lab directory, record and journal in it must be owned by the user
// running nslab, writable by no one else, and not a symbolic link. Files
// are opened without following symbolic links. See docs/architecture.md,
// "Ownership".

// UnsafeError says why a state directory, lab directory or file of one is
// not trusted.
type UnsafeError struct {
	Path, Why string
}

func (e *UnsafeError) Error() string {
	return fmt.Sprintf("refusing %s: %s (nslab trusts only what the user running it owns and no one else can write)", e.Path, e.Why)
}

// checkOwned says why st, the file at path, is not trusted, or returns nil.
func checkOwned(path string, st *unix.Stat_t, wantDir bool) error {
	mode := st.Mode & unix.S_IFMT
	switch {
	case mode == unix.S_IFLNK:
		return &UnsafeError{path, "it is a symbolic link"}
	case wantDir && mode != unix.S_IFDIR:
		return &UnsafeError{path, "it is not a directory"}
	case !wantDir && mode != unix.S_IFREG:
		return &UnsafeError{path, "it is not a regular file"}
	case int(st.Uid) != os.Geteuid():
		return &UnsafeError{path, fmt.Sprintf("it is owned by uid %d, not by uid %d who runs nslab", st.Uid, os.Geteuid())}
	case st.Mode&0o022 != 0:
		return &UnsafeError{path, fmt.Sprintf("it is writable by its group or others (mode %04o; chmod go-w %s)", st.Mode&0o7777, path)}
	}
	return nil
}

// checkDir checks that dir is a directory nslab can trust. A missing
// directory is reported as os.ErrNotExist.
func checkDir(dir string) error {
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return &os.PathError{Op: "lstat", Path: dir, Err: err}
	}
	return checkOwned(dir, &st, true)
}

// trustedLabDir returns the directory of lab in stateDir after checking
// both (os.ErrNotExist if either is missing).
func trustedLabDir(stateDir, lab string) (string, error) {
	if !safeName(lab) || lab == "" {
		return "", fmt.Errorf("bad lab name %q", lab)
	}
	if err := checkDir(stateDir); err != nil {
		return "", err
	}
	dir := labDir(stateDir, lab)
	if err := checkDir(dir); err != nil {
		return "", err
	}
	return dir, nil
}

// openFile opens a file of a lab directory without following a symbolic
// link, and checks that the file opened is a regular file nslab can
// trust.
func openFile(path string, flag int, perm os.FileMode) (*os.File, error) {
	f, err := os.OpenFile(path, flag|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return nil, &UnsafeError{path, "it is a symbolic link"}
		}
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, err
	}
	if err := checkOwned(path, &st, false); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// checkRecordDir checks a directory a record names (where its namespaces
// are pinned): an absolute, clean path to a directory nslab can trust,
// so that a planted record cannot point nslab's removals elsewhere.
func checkRecordDir(dir string) error {
	if !filepath.IsAbs(dir) || filepath.Clean(dir) != dir {
		return &UnsafeError{dir, "a record may only name an absolute, clean path"}
	}
	return checkDir(dir)
}
