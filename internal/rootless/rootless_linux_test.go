package rootless

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/nslab/nslab/internal/proc"
	"github.com/stretchr/testify/require"
)

// The user's directory is trusted only if it is a directory of the user's
// alone.
func TestDirRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		make func(t *testing.T, dir string)
		why  string
	}{
		{"ok", func(t *testing.T, dir string) {}, ""},
		{"open to others", func(t *testing.T, dir string) { require.NoError(t, os.Chmod(dir, 0o755)) }, "others can reach it (mode 0755"},
		{"a symbolic link", func(t *testing.T, dir string) {
			require.NoError(t, os.Remove(dir))
			require.NoError(t, os.Symlink(t.TempDir(), dir))
		}, "it is a symbolic link"},
		{"a file", func(t *testing.T, dir string) {
			require.NoError(t, os.Remove(dir))
			require.NoError(t, os.WriteFile(dir, nil, 0o600))
		}, "it is not a directory"},
		{"another user's", func(t *testing.T, dir string) {
			if os.Geteuid() != 0 {
				t.Fatal("needs root to give the directory away")
			}
			require.NoError(t, os.Chown(dir, 65534, 65534))
		}, "it is owned by uid 65534"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := t.TempDir()
			t.Setenv("XDG_RUNTIME_DIR", run)
			dir := filepath.Join(run, "nslab")
			require.NoError(t, os.Mkdir(dir, 0o700))
			tc.make(t, dir)
			got, err := Dir()
			if tc.why == "" {
				require.NoError(t, err)
				require.Equal(t, dir, got)
				return
			}
			require.ErrorContains(t, err, "refusing rootless directory "+dir+": "+tc.why)
		})
	}
}

// Without XDG_RUNTIME_DIR, or with one that is not the user's, the
// directory is /tmp/nslab-UID.
func TestDirFallback(t *testing.T) {
	for _, xdg := range []string{"", "relative", "/nonexistent", "other"} {
		t.Run(xdg, func(t *testing.T) {
			if xdg == "other" {
				xdg = t.TempDir()
				require.NoError(t, os.Chown(xdg, 65534, 65534))
			}
			t.Setenv("XDG_RUNTIME_DIR", xdg)
			t.Setenv("TMPDIR", t.TempDir())
			got, err := Dir()
			require.NoError(t, err)
			require.Equal(t, filepath.Join(os.TempDir(), fmt.Sprintf("nslab-%d", os.Geteuid())), got)
		})
	}
}

// Needed: missing capabilities always; --rootless only where it would not
// nest a user namespace in the one nslab made.
func TestNeeded(t *testing.T) {
	require.True(t, Needed([]string{"CAP_NET_ADMIN"}, false))
	require.False(t, Needed(nil, false))
	require.Equal(t, !InUserNS(), Needed(nil, true))
}

// A keeper record names a live keeper only while that process (same start
// time) runs in the recorded user namespace.
func TestRecordAlive(t *testing.T) {
	start, err := proc.StartTime(os.Getpid())
	require.NoError(t, err)
	ns, err := userNSOf(os.Getpid())
	require.NoError(t, err)
	for _, tc := range []struct {
		name string
		r    Record
		want bool
	}{
		{"this process", Record{PID: os.Getpid(), Start: start, UserNS: ns}, true},
		{"a reused PID", Record{PID: os.Getpid(), Start: start + 1, UserNS: ns}, false},
		{"another user namespace", Record{PID: os.Getpid(), Start: start, UserNS: "1:1"}, false},
		{"no such process", Record{PID: 1 << 30, Start: start, UserNS: ns}, false},
		{"no PID", Record{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) { require.Equal(t, tc.want, tc.r.Alive()) })
	}
}

// Keepers lists the labs that have a record, nothing else.
func TestKeepers(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"a.keeper", "b.keeper", "b.sock", "c.log", "mnt"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), nil, 0o600))
	}
	require.NoError(t, os.Mkdir(filepath.Join(dir, "d.keeper"), 0o700))
	require.Equal(t, []string{"a", "b"}, Keepers(dir))
}

func ExampleForbiddenError() {
	fmt.Println(&ForbiddenError{Setting: "user.max_user_namespaces = 0"})
	// Output: nslab without root needs a user namespace, which this machine forbids (sysctl user.max_user_namespaces = 0): run as root, or allow them (docs/rootless.md)
}
