package nslabtest

import (
	"context"
	"strings"
	"time"

	"github.com/nslab/nslab/scripting"
	"github.com/nslab/nslab/topo"
	"github.com/stretchr/testify/require"
)

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
	res, err := scripting.Run(ctx, l.lab(), s, scripting.Options{Out: &out, KeepGoing: true})
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
