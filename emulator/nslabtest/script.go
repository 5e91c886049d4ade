package nslabtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/scripting"
	"github.com/nslab/nslab/topo"
	"github.com/stretchr/testify/require"
)

// The engine's lab is a lab scripts run in.
var _ scripting.Lab = (*emulator.Lab)(nil)

// ScriptTimeout is Options.ScriptTimeout's default (5m): how long a
// script run by RunScript or Script may take.
const ScriptTimeout = 5 * time.Minute

// RunScript runs the script file at path against the lab (the language of
// docs/scripting.md). Problems found before it runs (an unknown node or
// command, a malformed duration) fail the test at once. Each failing line
// is reported as "file:line: command: expected ..., but ..." through
// t.Errorf, the script runs on to its end, and the test stops after it when
// any line failed. It returns the result.
func (l *Lab) RunScript(path string) *scripting.Result {
	l.t.Helper()
	s, err := scripting.ParseFile(path)
	if s == nil {
		l.fatalf("nslabtest: script: %v", err)
	}
	return l.runScript(s)
}

// Script runs lines of the script language written in place; messages
// name them "script:N".
func (l *Lab) Script(lines string) *scripting.Result {
	l.t.Helper()
	s, _ := scripting.Parse("script", lines, 1)
	return l.runScript(s)
}

func (l *Lab) runScript(s *scripting.Script) *scripting.Result {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(l.t.Context(), orDefault(l.Options.ScriptTimeout, ScriptTimeout))
	defer cancel()
	var out strings.Builder
	res, err := scripting.Run(ctx, l.lab(), l.plan, s, scripting.Options{Out: &out, KeepGoing: true})
	if err != nil {
		if topo.IsBadInput(err) {
			l.fatalf("nslabtest: script %s does not fit lab %s:\n%v", s.File, l.Name(), err)
		}
		l.fatalf("nslabtest: script %s: %v", s.File, err)
	}
	for _, f := range res.Failures {
		l.t.Errorf("%s", f)
	}
	if !res.OK() {
		l.t.Logf("script %s ran:\n%s", s.File, out.String())
		require.FailNow(l.t, "nslabtest: "+res.Summary())
	}
	return res
}

// RunScripts runs every script file matching glob (as filepath.Glob, e.g.
// "testdata/*.nsl"), each in a parallel subtest named after the file
// without its extension, against a lab of its own, in the spirit of
// rsc.io/script/scripttest. The lab is built from the topology file the
// script names (see ScriptTopology); the script is checked against it
// before anything is built, then run as by RunScript: each failing line is
// reported as "file:line: command: expected ..., but ...". A glob that
// matches nothing fails the test.
func RunScripts(t *testing.T, glob string) {
	t.Helper()
	files, err := filepath.Glob(glob)
	if err != nil {
		require.FailNow(t, fmt.Sprintf("nslabtest: scripts %q: %v", glob, err))
	}
	if len(files) == 0 {
		require.FailNow(t, fmt.Sprintf("nslabtest: no script file matches %q", glob))
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), filepath.Ext(file)), func(t *testing.T) {
			t.Parallel()
			runScriptFile(t, file)
		})
	}
}

// runScriptFile builds the lab file names and runs file in it.
func runScriptFile(t *testing.T, file string) {
	t.Helper()
	path, err := ScriptTopology(file)
	if err != nil {
		require.FailNow(t, fmt.Sprintf("nslabtest: %v", err))
	}
	top, err := topo.LoadFile(path)
	if err != nil {
		require.FailNow(t, fmt.Sprintf("nslabtest: %v", err))
	}
	l := NewUnstarted(t, top)
	s, err := scripting.ParseFile(file)
	if s == nil {
		l.fatalf("nslabtest: script: %v", err)
	}
	if err := scripting.Check(s, l.Plan(), nil); err != nil {
		l.fatalf("nslabtest: script %s does not fit topology %s (nothing was built):\n%v", file, path, err)
	}
	l.Start()
	l.runScript(s)
}

// topologyLine is the comment naming a script's topology file.
var topologyLine = regexp.MustCompile(`^#\s*topology:\s*(\S+)\s*$`)

// ScriptTopology returns the topology file the script file names, for
// RunScripts: a "# topology: FILE" comment among the comments and blank
// lines at the script's top (FILE relative to the script's directory, as
// `source` reads it), else the .toml file of the same base name beside it
// (lan.nsl: lan.toml). It is an error when neither is there.
func ScriptTopology(script string) (string, error) {
	data, err := os.ReadFile(script)
	if err != nil {
		return "", fmt.Errorf("read script: %w", err)
	}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			break // the first command ends the header
		}
		if m := topologyLine.FindStringSubmatch(line); m != nil {
			path := m[1]
			if !filepath.IsAbs(path) {
				path = filepath.Join(filepath.Dir(script), path)
			}
			if _, err := os.Stat(path); err != nil {
				return "", fmt.Errorf("%s:%d: topology %s: %w", script, i+1, m[1], err)
			}
			return path, nil
		}
	}
	sibling := strings.TrimSuffix(script, filepath.Ext(script)) + ".toml"
	if _, err := os.Stat(sibling); err == nil {
		return sibling, nil
	}
	return "", fmt.Errorf("script %s names no topology: put a line `# topology: FILE` at its top, or the topology beside it as %s", script, filepath.Base(sibling))
}
