package topo

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestScriptSource: the line of a [test] script's first line, for
// messages that point into the topology file. TOML drops only a newline
// that comes right after the opening quotes.
func TestScriptSource(t *testing.T) {
	for _, tc := range []struct {
		name, script string
		want         int
	}{
		{"multi-line literal", "script = '''\nreach a b\n'''", 6},
		{"multi-line basic", "script = \"\"\"\nreach a b\n\"\"\"", 6},
		{"quotes then blanks", "script = '''   \nreach a b\n'''", 5},
		{"one line", "script = 'reach a b'", 5},
		{"crlf", "script = '''\r\nreach a b\r\n'''", 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			top, err := Decode("lab.toml", []byte("name = \"x\"\nnodes = [{ name = \"a\" }]\n\n[test]\n"+tc.script+"\n"))
			require.NoError(t, err)
			file, line := top.ScriptSource()
			require.Equal(t, "lab.toml", file)
			require.Equal(t, tc.want, line)
		})
	}
	file, line := NewBuilder("x").Host("a").Topology().ScriptSource()
	require.Equal(t, "", file)
	require.Equal(t, 1, line)
}
