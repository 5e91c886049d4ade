package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/topo"
	"github.com/stretchr/testify/require"
)

// runApp runs the CLI in process and returns its stdout and error.
func runApp(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errs bytes.Buffer
	app := newApp(&out, &errs)
	err := app.Run(permuteArgs(app, append([]string{"nslab"}, args...)))
	return out.String(), err
}

// fakeState writes the record of a lab that is up, as nslab writes it,
// into a state directory of the test's: completion reads only records.
func fakeState(t *testing.T, labs map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, spec := range labs {
		top, err := topo.Generate(spec, name)
		require.NoError(t, err)
		data, err := json.Marshal(emulator.Record{Version: 1, Lab: name, State: emulator.StateUp, Topology: top})
		require.NoError(t, err)
		require.NoError(t, os.Mkdir(filepath.Join(dir, name), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, name, "record.json"), data, 0o644))
	}
	// Things that are not labs: a file, a directory without a record, a
	// record that names another lab, a name no lab can have.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "stray"), nil, 0o644))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "empty"), 0o755))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "liar"), 0o755))
	data, _ := json.Marshal(emulator.Record{Lab: "other", State: emulator.StateUp})
	require.NoError(t, os.WriteFile(filepath.Join(dir, "liar", "record.json"), data, 0o644))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "Bad Name"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "Bad Name", "record.json"), data, 0o644))
	return dir
}

func TestComplete(t *testing.T) {
	state := fakeState(t, map[string]string{"alpha": "single,2", "beta": "linear,2"})
	tests := []struct {
		name  string
		words []string
		want  string // the whole output
	}{
		{"commands", []string{"pi"}, "ping\tprobe one pair of nodes with ICMP echo, in process\npingall\tprobe every pair of hosts and routers\n:\n"},
		{"no hidden command", []string{"__c"}, ":\n"},
		{"global flags", []string{"--st"}, "--state-dir\tDIR of lab records\n:\n"},
		{"global flag value", []string{"--state-dir", ""}, ":dirs\n"},
		{"topology file", []string{"run", ""}, ":files toml\n"},
		{"after the file", []string{"run", "lan.toml", ""}, ":\n"},
		{"files to validate", []string{"validate", "a.toml", ""}, ":files toml\n"},
		{"script flag", []string{"run", "lan.toml", "--script", ""}, ":files nsl\n"},
		{"command flags", []string{"status", "--j"}, "--json\tprint JSON\n:\n"},
		{"labs", []string{"status", ""}, "alpha\tup, 3 nodes\nbeta\tup, 4 nodes\n:\n"},
		{"labs by prefix", []string{"down", "b"}, "beta\tup, 4 nodes\n:\n"},
		{"nodes", []string{"exec", "alpha", ""}, "s1\tswitch\nh1\thost\nh2\thost\n:\n"},
		{"nodes after a flag", []string{"ping", "-c", "3", "beta", "h1", "h"}, "h1\thost\nh2\thost\n:\n"},
		{"a program in a node", []string{"exec", "alpha", "h1", "ip"}, ":commands\n"},
		{"its arguments", []string{"exec", "alpha", "h1", "ip", "a", ""}, ":files\n"},
		{"a program after --", []string{"exec", "alpha", "h1", "--", "l"}, ":commands\n"},
		{"its arguments after --", []string{"exec", "alpha", "h1", "--", "ls", "-"}, ":files\n"},
		{"a program's flags are its own", []string{"exec", "alpha", "h1", "ls", "-"}, ":files\n"},
		{"a program's flag with a value", []string{"exec", "alpha", "h1", "ping", "-c", ""}, ":files\n"},
		{"a program's flag without", []string{"exec", "alpha", "h1", "ping", "-n", "h"}, ":files\n"},
		{"flags before the lab", []string{"exec", "--w"}, "--workers\tkernel steps run at once\n:\n"},
		{"link actions", []string{"link", "beta", "h1", "s1", "s"}, "show\twhat each direction does\nset\timpair: rate=, delay=, loss=, ...\n:\n"},
		{"link --from", []string{"link", "beta", "h1", "s1", "--from", "s"}, "s1\tswitch\ns2\tswitch\n:\n"},
		{"interfaces", []string{"capture", "alpha", "h1:"}, "h1:eth0\tinterface of h1\n:\n"},
		{"no such lab", []string{"exec", "gamma", ""}, ":\n"},
		{"a lab name that is a path", []string{"exec", "../alpha", ""}, ":\n"},
		{"graph: files and labs", []string{"graph", "a"}, "alpha\tup, 3 nodes\n:files toml\n"},
		{"graph formats", []string{"graph", "lan.toml", "--format", ""}, "dot\nmermaid\nsvg\njson\n:\n"},
		{"shells", []string{"completion", "z"}, "zsh\n:\n"},
		{"help", []string{"help", "gr"}, "graph\tdraw a lab: dot, mermaid, svg or json\n:\n"},
		{"unknown command", []string{"fly", ""}, ":\n"},
		{"state dir given on the line", []string{"--state-dir", "/nonexistent", "status", ""}, ":\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runApp(t, append([]string{"--state-dir", state, "__complete"}, tc.words...)...)
			require.NoError(t, err)
			require.Equal(t, tc.want, out)
		})
	}
	// No words at all: the commands.
	out, err := runApp(t, "__complete")
	require.NoError(t, err)
	require.Contains(t, out, "graph\tdraw a lab")
	require.NotContains(t, out, "__complete")
}

func TestCompletionScripts(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		t.Run(sh, func(t *testing.T) {
			out, err := runApp(t, "completion", sh)
			require.NoError(t, err)
			require.Equal(t, completionScripts[sh], out)
			require.Contains(t, out, "__complete")
		})
	}
	// bash is everywhere nslab runs: its script must parse. zsh and fish
	// are checked by the integration test (tests/completion_test.go),
	// which installs them.
	out, err := exec.Command("bash", "-n", "-c", completionScripts["bash"]).CombinedOutput()
	require.NoError(t, err, string(out))

	_, err = runApp(t, "completion", "tcsh")
	require.True(t, topo.IsBadInput(err))
	require.EqualError(t, err, `no completion for shell "tcsh" (known: bash, zsh, fish)`)
	_, err = runApp(t, "completion")
	require.True(t, topo.IsBadInput(err))
	require.True(t, strings.HasPrefix(err.Error(), "usage: nslab completion"))
}

// TestGraphCLI: the formats, -o and its extension, and bad input (exit 2,
// no file written).
func TestGraphCLI(t *testing.T) {
	lan := "../../topologies/lan.toml"
	out, err := runApp(t, "graph", lan)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(out, `graph "lan" {`), out)
	out, err = runApp(t, "graph", lan, "--format", "mermaid")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(out, "flowchart LR\n"), out)
	out, err = runApp(t, "graph", "--topo", "linear,2", "-f", "json")
	require.NoError(t, err)
	require.Contains(t, out, `"lab": "linear-2"`)

	dir := t.TempDir()
	svg := filepath.Join(dir, "lan.svg")
	out, err = runApp(t, "graph", lan, "-o", svg)
	require.NoError(t, err)
	require.Empty(t, out)
	data, err := os.ReadFile(svg)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(data), "<svg "), string(data))
	mmd := filepath.Join(dir, "lan.txt")
	_, err = runApp(t, "graph", lan, "-o", mmd, "--format", "mermaid")
	require.NoError(t, err)
	data, err = os.ReadFile(mmd)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(data), "flowchart LR"))

	state := fakeState(t, map[string]string{"alpha": "single,2"})
	bad := []struct {
		args []string
		msg  string
	}{
		{[]string{"graph"}, "usage: nslab graph FILE | --topo SPEC | LAB"},
		{[]string{"graph", lan, "--format", "png"}, `--format: unknown format "png" (known: dot, mermaid, svg, json)`},
		{[]string{"graph", "nosuch.toml"}, "nosuch.toml"},
		{[]string{"--state-dir", state, "graph", "gamma"}, `"gamma" is not a file, nor a lab that is up: no lab "gamma"`},
		{[]string{"graph", lan, "--topo", "single,2"}, "give a file or --topo, not both"},
		{[]string{"graph", lan, "-o", filepath.Join(dir, "no", "such", "dir.svg")}, "-o: open "},
		{[]string{"graph", "--topo", "blob,3", "-o", filepath.Join(dir, "never.svg")}, "blob"},
	}
	for _, tc := range bad {
		_, err := runApp(t, tc.args...)
		require.Error(t, err, tc.args)
		require.True(t, topo.IsBadInput(err), "%v: %v is not bad input", tc.args, err)
		require.ErrorContains(t, err, tc.msg)
	}
	_, err = os.Stat(filepath.Join(dir, "never.svg"))
	require.True(t, os.IsNotExist(err), "a failed graph wrote its file")
}
