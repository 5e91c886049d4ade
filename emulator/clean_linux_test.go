package emulator

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// A builder killed between linking a namespace's name and recording it
// leaves a "try" line: clean removes that name only if it is a link to the
// file nslab recorded, never a file of the same name that is not ours.
func TestCleanAfterKillBetweenLinkAndRecord(t *testing.T) {
	dir := t.TempDir()
	o := Options{StateDir: filepath.Join(dir, "state"), NetnsDir: filepath.Join(dir, "netns")}.withDefaults()
	require.NoError(t, os.MkdirAll(o.NetnsDir, 0o755))
	lab := filepath.Join(o.StateDir, "demo")
	require.NoError(t, os.MkdirAll(lab, 0o755))
	jr, err := openJournal(lab)
	require.NoError(t, err)

	p := &pinner{journal: jr.add}
	// Ours: linked from the recorded unnamed file, then "killed" before
	// the netns line.
	require.NoError(t, p.note(jTry, "demo-a"))
	require.NoError(t, p.mountPoint(filepath.Join(o.NetnsDir, "demo-a")))
	// Not ours: the name existed already; linking failed.
	foreign := filepath.Join(o.NetnsDir, "demo-b")
	require.NoError(t, os.WriteFile(foreign, nil, 0o444))
	require.NoError(t, p.note(jTry, "demo-b"))
	require.ErrorIs(t, p.mountPoint(foreign), os.ErrExist)
	p.close()
	jr.close()

	var st unix.Stat_t
	require.NoError(t, unix.Stat(filepath.Join(o.NetnsDir, "demo-a"), &st))

	require.NoError(t, removeLab(o, "demo"))
	_, err = os.Stat(filepath.Join(o.NetnsDir, "demo-a"))
	require.True(t, os.IsNotExist(err), "our half-made name is removed")
	_, err = os.Stat(foreign)
	require.NoError(t, err, "a name that was not ours stays")
	_, err = os.Stat(lab)
	require.True(t, os.IsNotExist(err), "the record goes")
	require.NoError(t, removeLab(o, "demo"), "cleaning twice is fine")
}
