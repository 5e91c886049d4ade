package topo_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/nslab/nslab/topo"
)

// update rewrites the golden files of TestBad from the current output:
//
//	go test ./emulator -run TestBad -update
//
// Read every golden it changes before committing it.
var update = flag.Bool("update", false, "rewrite testdata/bad/*.golden from the current output")

// knownBugs lists fixtures whose output is wrong today because of a bug in
// the package. Their golden file holds the output the code should give;
// the case is skipped (and -update leaves the golden alone) until the bug
// is fixed. Remove the entry with the fix.
var knownBugs = map[string]string{}

// decodeResolve decodes and resolves a file the way `nslab validate` does,
// returning the error of whichever step failed.
func decodeResolve(file string, data []byte) (*topo.Plan, error) {
	t, err := topo.Decode(file, data)
	if err != nil {
		return nil, err
	}
	return topo.Resolve(t)
}

// TestBad decodes and resolves every testdata/bad/*.toml and compares the
// problems reported, one a line with file:line:col, with NAME.golden.
func TestBad(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "bad", "*.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no fixtures in testdata/bad")
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".toml")
		t.Run(name, func(t *testing.T) {
			if why, ok := knownBugs[name]; ok {
				t.Skip("known bug: " + why)
			}
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			_, err = decodeResolve(file, data)
			if err == nil {
				t.Fatalf("%s resolved without error", file)
			}
			if !topo.IsBadInput(err) {
				t.Errorf("IsBadInput(%v) = false", err)
			}
			var ps topo.Problems
			if !errors.As(err, &ps) {
				t.Fatalf("error is %T, not Problems: %v", err, err)
			}
			for i, p := range ps {
				if p.File != file {
					t.Errorf("problem %d: File = %q, want %q", i, p.File, file)
				}
			}
			if !sort.SliceIsSorted(ps, func(i, j int) bool {
				a, b := ps[i].Pos, ps[j].Pos
				return a.Line < b.Line || a.Line == b.Line && a.Col < b.Col
			}) {
				t.Errorf("problems are not in line order:\n%s", ps.Error())
			}
			got := ps.Error() + "\n"
			golden := strings.TrimSuffix(file, ".toml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("problems differ from %s\ngot:\n%swant:\n%s", golden, got, want)
			}
		})
	}
}

// TestBadGoldensHaveFixtures catches a golden file left behind by a
// renamed or deleted fixture.
func TestBadGoldensHaveFixtures(t *testing.T) {
	goldens, err := filepath.Glob(filepath.Join("testdata", "bad", "*.golden"))
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range goldens {
		if _, err := os.Stat(strings.TrimSuffix(g, ".golden") + ".toml"); err != nil {
			t.Errorf("%s has no fixture: %v", g, err)
		}
	}
}
