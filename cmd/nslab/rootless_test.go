package main

import (
	"io"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// Every command has its place without root: run by the lab's keeper, run
// as it is (no kernel), or given a rootless action of its own. A command
// added without a place would ask an ordinary user for root.
func TestRootlessCommandsClassified(t *testing.T) {
	own := []string{"run", "up", "clean", "status", "graph", "__complete"}
	for _, cmd := range newApp(io.Discard, io.Discard).Commands {
		n := 0
		for _, set := range [][]string{forwardedCommands(), localCommands(), own} {
			if slices.Contains(set, cmd.Name) {
				n++
			}
		}
		require.Equal(t, 1, n, "command %q: place it in forwardedCommands or localCommands (cmd/nslab/rootless.go)", cmd.Name)
	}
}
