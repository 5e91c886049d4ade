package emulator

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/nslab/nslab/internal/netns"
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
	journal, err := openJournal(lab)
	require.NoError(t, err)

	// The journal hook stops the pinning goroutine where a kill -9 would:
	// after the name is linked, before it is recorded as ours.
	killed := func(step netns.PinStep, arg string) error {
		if step == netns.Pinned {
			runtime.Goexit()
		}
		return journal.pinStep(step, arg)
	}
	self, err := os.Open("/proc/self/ns/net")
	require.NoError(t, err)
	defer self.Close()
	pin := func(p *netns.Pinner, path string) (err error) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			err = p.Pin(int(self.Fd()), path) // never mounted: the test stops before
		}()
		<-done
		return err
	}
	p := &netns.Pinner{Journal: killed}
	// Ours: linked from the recorded unnamed file, then "killed" before
	// the netns line.
	require.NoError(t, pin(p, filepath.Join(o.NetnsDir, "demo-a")))
	// Not ours: the name existed already; linking failed.
	foreign := filepath.Join(o.NetnsDir, "demo-b")
	require.NoError(t, os.WriteFile(foreign, nil, 0o444))
	require.ErrorIs(t, pin(p, foreign), os.ErrExist)
	p.Close()
	journal.close()

	ents, err := readJournal(lab)
	require.NoError(t, err)
	var kinds []string
	for _, e := range ents {
		kinds = append(kinds, e.kind+" "+e.arg)
	}
	require.Len(t, kinds, 3)
	require.Equal(t, []string{jTry + " demo-a", jTry + " demo-b"}, []string{kinds[0], kinds[2]}, "each name tried, none recorded as ours")
	require.True(t, strings.HasPrefix(kinds[1], jPinFile+" "), "the unnamed file, made for the first name")

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
