package nslabtest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// ScriptTopology reads the "# topology:" line among the comments at a
// script's top only, relative to the script's directory; else the .toml
// beside it; else it says what is missing.
func TestScriptTopology(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		path := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, []byte(text), 0o644))
		return path
	}
	write("nets/lab.toml", `name = "lab"`)
	write("side.toml", `name = "side"`)
	abs := filepath.Join(dir, "nets/lab.toml")
	for _, tc := range []struct {
		name, script, text, want, err string
	}{
		{name: "header", script: "header.nsl", text: "# about it\n\n#topology:  nets/lab.toml \nreach a b\n", want: "nets/lab.toml"},
		{name: "absolute", script: "abs.nsl", text: "# topology: " + abs + "\n", want: "nets/lab.toml"},
		{name: "header wins", script: "side.nsl", text: "# topology: nets/lab.toml\n", want: "nets/lab.toml"},
		{name: "no topology", script: "side2.nsl", text: "reach a b\n", err: "names no topology"},
		{name: "beside", script: "side.nsl", text: "reach a b\n", want: "side.toml"},
		{name: "after a command", script: "late.nsl", text: "reach a b\n# topology: nets/lab.toml\n", err: "script " + dir + "/late.nsl names no topology: put a line `# topology: FILE` at its top, or the topology beside it as late.toml"},
		{name: "missing file", script: "gone.nsl", text: "# x\n# topology: nets/gone.toml\n", err: dir + "/gone.nsl:2: topology nets/gone.toml: stat " + dir + "/nets/gone.toml: no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			script := filepath.Join(dir, tc.script)
			require.NoError(t, os.WriteFile(script, []byte(tc.text), 0o644))
			got, err := ScriptTopology(script)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, filepath.Join(dir, tc.want), filepath.Clean(got))
		})
	}
	_, err := ScriptTopology(filepath.Join(dir, "nosuch.nsl"))
	require.ErrorContains(t, err, "read script: open "+dir+"/nosuch.nsl: no such file or directory")
}
