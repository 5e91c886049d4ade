package emulator

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nslab/nslab/topo"
	"github.com/stretchr/testify/require"
)

// Every kind of journal entry belongs to exactly one phase, whose undo
// then gets it: nothing the journal lists is left without an owner.
func TestEveryJournalKindHasOnePhase(t *testing.T) {
	owner := map[string]string{}
	for _, ph := range phases {
		for _, k := range ph.kinds {
			require.NotContains(t, owner, k, "journal kind %q claimed by %s and %s", k, owner[k], ph.name)
			owner[k] = ph.name
		}
	}
	for _, k := range []string{jNetns, jTry, jPinFile, jMountNS, jHostLink, jProc, jNft} {
		require.Contains(t, owner, k, "journal kind %q has no phase", k)
	}
}

// undo runs the phases' undos last phase first, each with its own
// journal entries in the journal's order, and only for the phases given
// (a rollback of a build that stopped early); then the state directory
// goes, unless an undo failed. A new phase gets rollback and clean that way, with no other code.
func TestUndoRunsPhasesInReverse(t *testing.T) {
	o := Options{StateDir: t.TempDir(), NetnsDir: t.TempDir()}.withDefaults()
	var calls []string
	record := func(name string) func(*undoer, []journalEntry) error {
		return func(u *undoer, ents []journalEntry) error {
			var args []string
			for _, e := range ents {
				args = append(args, e.kind+"="+e.arg)
			}
			calls = append(calls, name+"("+strings.Join(args, ",")+")")
			if name == "b" {
				return errors.New("b failed")
			}
			return nil
		}
	}
	list := []phase{
		{name: "a", kinds: []string{"ka"}, undo: record("a")},
		{name: "nothing to undo", kinds: []string{"kn"}},
		{name: "b", kinds: []string{"kb", "kb2"}, undo: record("b")},
		{name: "c", kinds: []string{"kc"}, undo: record("c")},
	}
	write := func() {
		dir := labDir(o.StateDir, "demo")
		require.NoError(t, os.MkdirAll(dir, 0o755))
		j, err := openJournal(dir)
		require.NoError(t, err)
		for _, line := range [][2]string{{"ka", "1"}, {"kb", "2"}, {"kn", "x"}, {"kc", "3"}, {"kb2", "4"}, {"ka", "5"}, {"other", "y"}} {
			require.NoError(t, j.add(line[0], line[1]))
		}
		j.close()
	}

	write()
	err := undo(o, "demo", list, nil, true)
	require.ErrorContains(t, err, "b failed", "a failing undo is reported")
	require.Equal(t, []string{"c(kc=3)", "b(kb=2,kb2=4)", "a(ka=1,ka=5)"}, calls, "every undo runs, even after one failed")
	_, err = os.Stat(labDir(o.StateDir, "demo"))
	require.NoError(t, err, "after a failed undo the journal stays, for clean to try again")

	calls = nil
	require.NoError(t, undo(o, "demo", list[:2], nil, true), "a rollback of the phases started")
	require.Equal(t, []string{"a(ka=1,ka=5)"}, calls)
	_, err = os.Stat(labDir(o.StateDir, "demo"))
	require.True(t, os.IsNotExist(err), "the state directory goes once every undo worked")
}

// The runner reports each phase's progress as it starts, stops at the
// first failure and says how many phases were started; a cancelled
// context stops it before the next phase.
func TestBuildRunsPhasesInOrder(t *testing.T) {
	var reported, ran []string
	lab := func() *Lab {
		o := Options{Progress: func(p Progress) { reported = append(reported, p.Phase) }}.withDefaults()
		return &Lab{Plan: &topo.Plan{Lab: "demo"}, opts: o, nodes: map[string]*nodeHandle{}}
	}
	step := func(name string, err error) func(*builder, context.Context) error {
		return func(*builder, context.Context) error { ran = append(ran, name); return err }
	}
	boom := errors.New("boom")
	list := []phase{
		{name: "one", progress: label("first"), build: step("one", nil)},
		{name: "two", build: step("two", nil)},
		{name: "three", progress: label("third"), build: step("three", boom)},
		{name: "four", build: step("four", nil)},
	}
	started, err := lab().build(context.Background(), list)
	require.ErrorIs(t, err, boom)
	require.Equal(t, 3, started)
	require.Equal(t, []string{"one", "two", "three"}, ran)
	require.Equal(t, []string{"first", "third"}, reported)

	reported, ran = nil, nil
	started, err = lab().build(context.Background(), list[:2])
	require.NoError(t, err)
	require.Equal(t, 2, started)
	require.Equal(t, []string{"first", "up"}, reported)

	ran = nil
	ctx, cancel := context.WithCancel(context.Background())
	list[0].build = func(*builder, context.Context) error { cancel(); return nil }
	started, err = lab().build(ctx, list)
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, 1, started, "the phase after the cancel is not started")
	require.Empty(t, ran)
}

// removeLab of a lab whose state directory is gone is nothing to do.
func TestRemoveLabNothingThere(t *testing.T) {
	o := Options{StateDir: t.TempDir(), NetnsDir: filepath.Join(t.TempDir(), "netns")}.withDefaults()
	require.NoError(t, removeLab(o, "none"))
}
