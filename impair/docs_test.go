//go:build !netem

// The netem build runs in a VM that holds the package's testdata only,
// not the repository's docs: this check runs natively.

package impair

import (
	"os"
	"strings"
	"testing"
)

// TestDocs: docs/impairments.md names every key and lists every profile
// with the figures the code has, in tc's words, and its source.
func TestDocs(t *testing.T) {
	data, err := os.ReadFile("../docs/impairments.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	for _, k := range Keys() {
		if !strings.Contains(doc, "`"+k+"`") && !strings.Contains(doc, "`"+strings.TrimPrefix(k, "loss_model.")+"`") {
			t.Errorf("docs/impairments.md does not name the key `%s`", k)
		}
	}
	for _, p := range Profiles() {
		row := "| `" + p.Name + "` | " + p.Down.String() + " | " + p.Up.String() + " |"
		if !strings.Contains(doc, row) {
			t.Errorf("docs/impairments.md has no row starting %q", row)
		}
	}
	for _, d := range distributionNames() {
		if !strings.Contains(doc, "`"+d+"`") {
			t.Errorf("docs/impairments.md does not name the distribution `%s`", d)
		}
	}
}
