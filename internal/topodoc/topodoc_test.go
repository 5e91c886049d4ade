package topodoc

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite "+Page)

const root = "../.."

// TestTopologiesDoc: docs/topologies.md is what the example topologies
// give; `make graphs` rewrites it.
func TestTopologiesDoc(t *testing.T) {
	want, err := Generate(root)
	require.NoError(t, err)
	path := filepath.Join(root, Page)
	if *update {
		require.NoError(t, os.WriteFile(path, want, 0o644))
	}
	have, err := os.ReadFile(path)
	require.NoError(t, err, "run make graphs")
	require.Equal(t, string(want), string(have), "%s is not what topologies/ gives: run make graphs", Page)
}

func TestSummary(t *testing.T) {
	tests := []struct{ src, name, want string }{
		{"# lan: the smallest lab. One\n# switch.\n#\n# more\nname = \"lan\"\n", "lan", "The smallest lab. One switch."},
		{"# a lab with no name prefix\nname = \"x\"\n", "x", "A lab with no name prefix"},
		{"name = \"bare\"\n", "bare", ""},
		{"#\n# after a blank\n", "y", ""},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, summary(tc.src, tc.name), tc.src)
	}
}

// A file that does not resolve is an error, not a page without it.
func TestGenerateBadFile(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "topologies"), 0o755))
	_, err := Generate(dir)
	require.ErrorContains(t, err, "no topology files")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "topologies", "bad.toml"), []byte("name = \"bad\"\n"), 0o644))
	_, err = Generate(dir)
	require.ErrorContains(t, err, "has no nodes")
}
