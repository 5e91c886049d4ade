package tests

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nslab/nslab/emulator/nslabtest"
	"github.com/nslab/nslab/scripting"
	"github.com/nslab/nslab/topo"
	"github.com/stretchr/testify/require"
)

// scriptRun runs src (as file t.nsl) in lab and returns the result and
// what it printed.
func scriptRun(t *testing.T, lab *nslabtest.Lab, src string, keepGoing bool) (*scripting.Result, string) {
	t.Helper()
	s, err := scripting.Parse("t.nsl", src, 1)
	require.NoError(t, err)
	var out strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := scripting.Run(ctx, lab.Engine(), lab.Plan(), s, scripting.Options{Out: &out, KeepGoing: keepGoing, Timeout: 300 * time.Millisecond})
	require.NoError(t, err, out.String())
	return res, out.String()
}

// TestScriptCommands runs every command of the language against the
// tutorial lab: each one passing, failing with its message, and negated.
func TestScriptCommands(t *testing.T) {
	t.Parallel()
	lab := nslabtest.StartFile(t, "../topologies/tutorial.toml")
	for _, tc := range []struct {
		name string
		src  string
		fail string // "" when the script must pass, else the failure message
	}{
		{"reach", "reach red blue\nreach blue 192.168.1.3", ""},
		{"reach fails", "reach red lan", "t.nsl:1: reach red lan: expected red to reach lan, but red -> lan (192.168.1.3): 1 sent, no reply"},
		{"negated reach", "!reach red lan\n!reach lan blue", ""},
		{"negated reach fails", "!reach red blue", "t.nsl:1: !reach red blue: expected red not to reach blue, but red -> blue (192.168.15.2): 1/1 replies from 192.168.15.2"},
		{"pingall of some", "pingall red blue host", ""},
		{"pingall fails", "pingall", "t.nsl:1: pingall: expected every pair to answer, but "},
		{"negated pingall", "!pingall", ""},
		{"nat", "nat blue lan\nnat blue lan host\nnat blue lan 192.168.1.2\n!nat blue lan 192.168.15.2\n!nat red blue", ""},
		{"nat fails", "nat red blue", "t.nsl:1: nat red blue: expected the source to be translated on the way from red to blue, but blue saw 192.168.15.1:"},
		{"nat seen fails", "nat blue lan blue", "t.nsl:1: nat blue lan blue: expected lan to see blue as blue (192.168.15.2), but lan saw 192.168.1.2:"},
		{"program", "red true\n!red false\nexec blue true", ""},
		{"program fails", "red sh -c 'echo oops >&2; exit 3'", "t.nsl:1: red sh -c 'echo oops >&2; exit 3': expected `red sh -c echo oops >&2; exit 3` to exit 0, but exit status 3"},
		{"negated program fails", "!red true", "expected `red true` to fail, but exit status 0"},
		{"no program", "red no-such-program-here", `t.nsl:1: red no-such-program-here: no program "no-such-program-here" to run in node "red"`},
		{"names become addresses", "red echo blue 'blue' \\blue lan:80\nexpect '^192\\.168\\.15\\.2 blue blue lan:80$'", ""},
		{"subst off", "set subst off\nred echo blue\nexpect '^blue$'", ""},
		{"expect", "red echo hello world\nexpect 'wor.d'\n!expect bye", ""},
		{"expect fails", "red echo hello\nexpect bye", "t.nsl:2: expect bye: expected the output of `red echo hello` to match \"bye\", but it printed:\n        hello"},
		{"negated expect fails", "red echo hello\n!expect hel+o", "expected the output of `red echo hello` not to match \"hel+o\", but matched"},
		{"expect before any program", "expect x", "no program has run yet"},
		{"serve tcp udp", "serve blue tcp 80\ntcp lan 192.168.1.2:80\n!tcp lan blue:80\nserve blue udp 5353\nudp red blue:5353\nserve lan udp 5353\n!udp red lan:5353", ""},
		{"tcp fails", "tcp red lan:80", "t.nsl:1: tcp red lan:80: expected red to connect to lan:80 over tcp, but "},
		{"tcp refused", "tcp red blue:81", "t.nsl:1: tcp red blue:81: expected red to connect to blue:81 over tcp, but red -> 192.168.15.2:81: connection refused: nothing listens on port 81 there, or a firewall rejects it"},
		{"udp needs an echo service", "udp red blue:5353", "t.nsl:1: udp red blue:5353: no echo service of nslab's at blue:5353: UDP has no handshake"},
		{"negated udp needs one too", "!udp red blue:5353", "start one with `serve blue udp 5353` before this line, or add echo = [5353] to node \"blue\""},
		{"udp to an address", "udp red 192.168.15.2:5353", "UDP has no handshake: the datagram may have been dropped on the way, or nothing there answers nslab's probe"},
		{"limit", "limit 2s red true\nlimit off exec red true\n!limit 2s red false", ""},
		{"limit stops a program", "limit 200ms red sleep 10", "t.nsl:1: limit 200ms red sleep 10: stopped after the line's time limit of 200ms (`set limit 400ms` gives the lines that follow more, `limit 400ms red sleep 10` this line alone, `set limit off` lifts it)"},
		{"set limit", "set limit 200ms\nred true\nred sleep 10", "t.nsl:3: red sleep 10: stopped after the line's time limit of 200ms"},
		{"negated limit fails too", "!limit 200ms red sleep 10", "t.nsl:1: !limit 200ms red sleep 10: stopped after the line's time limit of 200ms"},
		{"mininet listings", "net\nintfs", ""},
		{"wait", "wait reach red blue 1s\nwait !reach red lan 1s\n!wait reach red lan 300ms", ""},
		{"wait forms", "wait ! reach red lan 1s\nwait red true 1s\nwait !exec blue false 1s", ""},
		// A check that holds all along never makes `wait !CHECK` pass,
		// however the time runs out.
		{"wait negated fails", "wait !reach red blue 300ms", "t.nsl:1: wait !reach red blue 300ms: expected within 300ms, red not to reach blue, but after "},
		{"wait negated tcp fails", "serve blue tcp 80\nwait !tcp red blue:80 300ms", "t.nsl:2: wait !tcp red blue:80 300ms: expected within 300ms, red to get no answer from the echo service at blue:80 over tcp, but after "},
		{"sleep echo help", "sleep 10ms\necho hello\nhelp\nhelp reach", ""},
		{"listings", "nodes\nlinks\ndump red", ""},
		{"lab", "lab tutorial", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, out := scriptRun(t, lab, tc.src, false)
			if tc.fail == "" {
				require.True(t, res.OK(), "%v\n%s", res.Err(), out)
				require.Contains(t, out, "ok   t.nsl:1: ")
				return
			}
			require.False(t, res.OK(), out)
			require.Len(t, res.Failures, 1)
			require.Contains(t, res.Failures[0].String(), tc.fail)
			require.Contains(t, out, "FAIL t.nsl:")
		})
	}
}

// TestScriptOutputs checks what the listing commands and programs print.
func TestScriptOutputs(t *testing.T) {
	t.Parallel()
	lab := nslabtest.StartFile(t, "../topologies/tutorial.toml")
	_, out := scriptRun(t, lab, "nodes\nlinks\ndump blue\nhelp\nhelp wait\nblue ip -4 -o addr show dev eth0\nnet\nintfs", false)
	require.Contains(t, out, "eth0->v-net-0:red")
	require.Contains(t, out, "red: eth0")
	require.Contains(t, out, "blue         host    eth0 192.168.15.2/24")
	require.Contains(t, out, "red:eth0 (up) -- v-net-0:red (up)")
	require.Contains(t, out, "route 192.168.1.0/24 via 192.168.15.5")
	require.Contains(t, out, "reach A B")
	require.Contains(t, out, "wait CHECK ARG... DURATION")
	require.Contains(t, out, "inet 192.168.15.2/24")
	_, out = scriptRun(t, lab, "pingall red blue", false)
	require.Contains(t, out, "2/2 pairs answered")
}

// TestScriptLinkDownUp: `link down` cuts traffic both ways and `up`
// restores it, with the routes the kernel dropped.
func TestScriptLinkDownUp(t *testing.T) {
	t.Parallel()
	lab := nslabtest.StartFile(t, "../topologies/tutorial.toml")
	res, out := scriptRun(t, lab, `reach red blue
link red v-net-0 down
!reach red blue
!reach blue red
links
link red v-net-0 up
wait reach red blue 2s
reach blue red
link blue v-net-0 down
!reach blue lan
link blue v-net-0 up
wait reach blue lan 2s
link red v-net-0 down
!nat red blue           # cannot be run: red has no route at all
link red v-net-0 up
wait reach red blue 2s
blue ip route
expect '192\.168\.1\.0/24 via 192\.168\.15\.5'`, true)
	require.Len(t, res.Failures, 1, "%v\n%s", res.Err(), out)
	require.Contains(t, res.Failures[0].String(), "!nat red blue: red -> blue (192.168.15.2:7): no answer from the echo service, so nothing to tell")
	require.Contains(t, out, "red:eth0 (down) -- v-net-0:red (down)")
	require.Equal(t, 11, res.Checks)
	// Nor does `!wait` pass on a check that cannot be run.
	res, out = scriptRun(t, lab, "link red v-net-0 down\n!wait nat red blue 300ms\nlink red v-net-0 up\nwait reach red blue 2s", true)
	require.Len(t, res.Failures, 1, out)
	require.Contains(t, res.Failures[0].String(), "t.nsl:2: !wait nat red blue 300ms: after ")
	require.Contains(t, res.Failures[0].String(), "the last could not be run: red -> blue (192.168.15.2:7): no answer from the echo service")
	// The kernel agrees: red's end is up again.
	st, err := lab.Engine().Status()
	require.NoError(t, err)
	for _, n := range st.Nodes {
		if n.Name == "red" {
			require.Equal(t, "up", strings.ToLower(n.Interfaces[1].State), "%+v", n.Interfaces)
		}
	}
}

// TestScriptWaitTimesOut: `wait` retries until its duration and then
// fails with the last answer.
func TestScriptWaitTimesOut(t *testing.T) {
	t.Parallel()
	lab := nslabtest.StartFile(t, "../topologies/tutorial.toml")
	t0 := time.Now()
	res, out := scriptRun(t, lab, "wait reach red lan 400ms", false)
	require.GreaterOrEqual(t, time.Since(t0), 400*time.Millisecond, "wait gave up before its time")
	require.False(t, res.OK(), out)
	msg := res.Failures[0].String()
	require.Contains(t, msg, "t.nsl:1: wait reach red lan 400ms: expected within 400ms, red to reach lan, but after ")
	require.Regexp(t, `after \d+ tries in [0-9.]+m?s, the last: red -> lan \(192\.168\.1\.3\): 1 sent, no reply`, msg)
}

// TestScriptStopsOrGoesOn: a failing line stops the script, or not with
// KeepGoing, and each failure names its own line.
func TestScriptStopsOrGoesOn(t *testing.T) {
	t.Parallel()
	lab := nslabtest.StartFile(t, "../topologies/tutorial.toml")
	src := "reach red blue\n# a comment\n\nreach red lan\nreach blue red\n!reach blue red\n"
	res, _ := scriptRun(t, lab, src, false)
	require.Equal(t, 2, res.Lines, "stopped at the failing line")
	require.Equal(t, 4, res.Failures[0].Line, "the failure is on line 4")
	res, _ = scriptRun(t, lab, src, true)
	require.Equal(t, 4, res.Lines)
	require.Equal(t, 2, res.Passed)
	require.Len(t, res.Failures, 2)
	require.Equal(t, 4, res.Failures[0].Line)
	require.Equal(t, 6, res.Failures[1].Line)
	require.Contains(t, res.Err().Error(), "t.nsl:6: !reach blue red: expected blue not to reach red")
}

// TestScriptSource: lines of a sourced file run, and fail with their own
// file and line.
func TestScriptSource(t *testing.T) {
	t.Parallel()
	lab := nslabtest.StartFile(t, "../topologies/tutorial.toml")
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "sub.nsl"), []byte("reach red blue\nreach red lan\n"), 0o644))
	main := filepath.Join(dir, "main.nsl")
	require.NoError(t, os.WriteFile(main, []byte("reach blue red\nsource sub.nsl\nreach red blue\n"), 0o644))
	s, err := scripting.ParseFile(main)
	require.NoError(t, err)
	res, err := scripting.Run(context.Background(), lab.Engine(), lab.Plan(), s, scripting.Options{Timeout: 300 * time.Millisecond})
	require.NoError(t, err)
	require.Len(t, res.Failures, 1)
	require.Equal(t, filepath.Join(dir, "sub.nsl"), res.Failures[0].File)
	require.Equal(t, 2, res.Failures[0].Line)
	require.Equal(t, 3, res.Lines, "reach, reach, reach: then stopped")
}

// TestScriptBadInputRunsNothing: problems are all found before the first
// line runs.
func TestScriptBadInputRunsNothing(t *testing.T) {
	t.Parallel()
	lab := nslabtest.StartFile(t, "../topologies/tutorial.toml")
	s, _ := scripting.Parse("t.nsl", "link red v-net-0 down\nreach red bleu\nwait reach red blue 2\n", 1)
	_, err := scripting.Run(context.Background(), lab.Engine(), lab.Plan(), s, scripting.Options{})
	require.Error(t, err)
	require.Contains(t, err.Error(), `t.nsl:2: reach red bleu: no node "bleu" in lab "`+lab.Name()+`" (did you mean "blue"?)`)
	require.Contains(t, err.Error(), `t.nsl:3: wait reach red blue 2: malformed duration "2"`)
	lab.RequireReachable("red", "blue") // line 1 never ran
}

// TestNslabtestRunScript: the Go entry point, passing, and failing
// through testing.TB with the script's file and line.
func TestNslabtestRunScript(t *testing.T) {
	if os.Getenv("NSLAB_CHILD") == "script-fails" {
		lab := nslabtest.StartFile(t, "../topologies/tutorial.toml")
		lab.Script("reach red blue\n!reach red blue\nreach red lan")
		t.Log("not reached")
		return
	}
	t.Parallel()
	lab := nslabtest.StartFile(t, "../topologies/tutorial.toml")
	res := lab.RunScript("testdata/tutorial.nsl")
	require.True(t, res.OK())
	require.Equal(t, 5, res.Passed)

	res = lab.RunScript("testdata/issue5.nsl")
	require.Equal(t, 7, res.Passed)

	out, _ := runChild(t, "TestNslabtestRunScript", "script-fails")
	require.Contains(t, out, "script:2: !reach red blue: expected red not to reach blue, but red -> blue (192.168.15.2)")
	require.Contains(t, out, "script:3: reach red lan: expected red to reach lan, but red -> lan (192.168.1.3): 1 sent, no reply")
	require.Contains(t, out, "nslabtest: 1 of 3 checks passed, 2 failed")
	require.NotContains(t, out, "not reached")
	require.Contains(t, out, "--- FAIL: TestNslabtestRunScript")
}

// TestCLIRunScripts: nslab run with --script and with a topology's own
// test; exit codes 0, 1 and 2; line numbers of the topology file.
func TestCLIRunScripts(t *testing.T) {
	t.Parallel()
	out, errs, code := cli(t, "", "run", "--name", uniqueName("tut"), "../topologies/tutorial.toml")
	require.Equal(t, 0, code, out+errs)
	require.Contains(t, out, "topologies/tutorial.toml: 12 of 12 checks passed, 0 failed")

	// The file's own test fails on its line 14 (the 3rd line of the script).
	name := uniqueName("emb")
	file := writeTopology(t, `name = "x"
[[nodes]]
name = "a"
[[nodes]]
name = "b"
[[links]]
endpoints = ["a", "b"]

[test]
keep_going = true
script = '''
reach a b
# not a b:
!reach a b
reach b a
'''
`)
	out, errs, code = cli(t, "", "run", "--name", name, file)
	require.Equal(t, 1, code, out+errs)
	require.Contains(t, out, "FAIL "+file+":14: !reach a b\n     expected a not to reach b, but a -> b (10.0.0.2)")
	require.Contains(t, out, "ok   "+file+":15: reach b a", "keep_going ran on")
	require.Contains(t, errs, "script: 1 line(s) failed; the first: "+file+":14: !reach a b: expected a not to reach b")

	// --script replaces it; --json has the result.
	script := filepath.Join(t.TempDir(), "s.nsl")
	require.NoError(t, os.WriteFile(script, []byte("reach a b\nreach b a\n"), 0o644))
	out, errs, code = cli(t, "", "run", "--json", "--name", uniqueName("js"), "--script", script, file)
	require.Equal(t, 0, code, out+errs)
	var res struct {
		Test   string           `json:"test"`
		Script scripting.Result `json:"script"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &res), out)
	require.Equal(t, "script", res.Test)
	require.Equal(t, 2, res.Script.Passed)
	require.Empty(t, res.Script.Failures)

	// 2: a bad script creates nothing, and every problem is listed.
	require.NoError(t, os.WriteFile(script, []byte("reach a c\nsleep 2\nlink a b sideways\n"), 0o644))
	name = uniqueName("bad")
	_, errs, code = cli(t, "", "run", "--name", name, "--script", script, file)
	require.Equal(t, 2, code, errs)
	require.Contains(t, errs, script+`:1: reach a c: no node "c" in lab "`+name+`"`)
	require.Contains(t, errs, script+`:2: sleep 2: malformed duration "2"`)
	require.Contains(t, errs, script+`:3: link a b sideways: unknown link word "sideways" (down, up, show, clear or set)`)
	require.False(t, namespaceExists(name+".a"))

	// validate checks the script too, and builds nothing.
	out, errs, code = cli(t, "", "validate", file, "--script", script)
	require.Equal(t, 2, code, out+errs)
	require.Contains(t, errs, script+`:2: sleep 2: malformed duration "2"`)
	out, errs, code = cli(t, "", "validate", file)
	require.Equal(t, 0, code, out+errs)
	require.Contains(t, out, "its script (3 lines) fits it")

	// --test none skips the file's test; --test script without one is bad input.
	out, errs, code = cli(t, "", "run", "--test", "none", "--name", uniqueName("none"), file)
	require.Equal(t, 0, code, out+errs)
	require.NotContains(t, out, "checks passed")
	_, errs, code = cli(t, "", "run", "--test", "script", "--topo", "single,2", "--name", uniqueName("nos"))
	require.Equal(t, 2, code)
	require.Contains(t, errs, "the topology has no script")
}

// TestExampleTopologiesPass: every example topology's own test (or
// script) passes in nslab run.
func TestExampleTopologiesPass(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../topologies/*.toml")
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 5)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			args := []string{"run", "--name", uniqueName(strings.TrimSuffix(filepath.Base(f), ".toml")), f}
			if s := strings.TrimSuffix(f, ".toml") + ".nsl"; fileExists(s) {
				args = append(args, "--script", s)
			}
			out, errs, code := cli(t, "", args...)
			require.Equal(t, 0, code, out+errs)
			require.Contains(t, out, " checks passed, 0 failed", "each example carries a test")
		})
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// TestCLIAttachScript runs a script in a lab started by nslab up.
func TestCLIAttachScript(t *testing.T) {
	t.Parallel()
	name := uniqueName("tutorial") // `lab tutorial` accepts tutorial-…
	_, errs, code := cli(t, "", "up", "--name", name, "../topologies/tutorial.toml")
	require.Equal(t, 0, code, errs)
	defer cli(t, "", "down", name)
	out, errs, code := cli(t, "", "attach", name, "--script", "testdata/tutorial.nsl")
	require.Equal(t, 0, code, out+errs)
	require.Contains(t, out, "5 of 5 checks passed")
	script := filepath.Join(t.TempDir(), "f.nsl")
	require.NoError(t, os.WriteFile(script, []byte("reach red blue\nreach red lan\n"), 0o644))
	out, errs, code = cli(t, "", "attach", name, "--script", script, "--json")
	require.Equal(t, 1, code, out+errs)
	require.Contains(t, out, `"line": 2`)
	require.NoError(t, os.WriteFile(script, []byte("reach h1 h2\n"), 0o644))
	_, errs, code = cli(t, "", "attach", name, "--script", script)
	require.Equal(t, 2, code, errs)
	require.Contains(t, errs, "is the script for another lab?")
	// A lab renamed with --name still counts as the lab its file names.
	renamed := uniqueName("renamed")
	_, errs, code = cli(t, "", "up", "--name", renamed, "../topologies/tutorial.toml")
	require.Equal(t, 0, code, errs)
	defer cli(t, "", "down", renamed)
	out, errs, code = cli(t, "", "attach", renamed, "--script", "testdata/tutorial.nsl")
	require.Equal(t, 0, code, out+errs)
	require.NoError(t, os.WriteFile(script, []byte("lab lan\n"), 0o644))
	_, errs, code = cli(t, "", "attach", renamed, "--script", script)
	require.Equal(t, 2, code)
	require.Contains(t, errs, `this script is for lab "lan", not for "`+renamed+`" (its file calls it "tutorial")`)

	_, errs, code = cli(t, "", "attach", name)
	require.Equal(t, 2, code, "no terminal, no script")
	require.Contains(t, errs, "the prompt needs a terminal")
}

// TestScriptPunch: `punch` and `!punch` in a script, on p2p.toml with one
// gateway made symmetric: against a port-restricted cone they need a
// relay; against a full cone they connect.
func TestScriptPunch(t *testing.T) {
	t.Parallel()
	top, err := topo.LoadFile("../topologies/p2p.toml")
	require.NoError(t, err)
	for i := range top.Nodes {
		if top.Nodes[i].Name == "gw-b" {
			top.Nodes[i].NAT.Profile = "symmetric"
		}
	}
	lab := nslabtest.Start(t, top)
	res, out := scriptRun(t, lab, "!punch alice bob\n!punch bob alice via rendezvous\npunch alice bob", false)
	require.Equal(t, 2, res.Passed, out)
	require.Len(t, res.Failures, 1)
	require.Contains(t, res.Failures[0].String(), "t.nsl:3: punch alice bob: expected alice and bob to connect directly, but alice <-> bob via rendezvous")
	require.Contains(t, res.Failures[0].String(), "they need a relay")

	for i := range top.Nodes {
		if top.Nodes[i].Name == "gw-a" {
			top.Nodes[i].NAT.Profile = "full-cone"
		}
	}
	lab2 := nslabtest.Start(t, top)
	res, out = scriptRun(t, lab2, "punch alice bob\n!punch alice bob", false)
	require.Equal(t, 1, res.Passed, out)
	require.Contains(t, res.Failures[0].String(), "t.nsl:2: !punch alice bob: expected alice and bob to need a relay, but alice <-> bob via rendezvous")
}
