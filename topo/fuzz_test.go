package topo_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/nslab/nslab/topo"
)

// FuzzDecode feeds arbitrary files to Decode and Resolve: neither may
// panic, a Decode error is always Problems, and a Resolve error always
// bad input.
//
//	go test -run '^$' -fuzz FuzzDecode -fuzztime 20s ./emulator/
func FuzzDecode(f *testing.F) {
	var seeds []string
	for _, pat := range []string{
		filepath.Join("..", "topologies", "*.toml"),
		filepath.Join("testdata", "*", "*.toml"),
	} {
		m, err := filepath.Glob(pat)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, m...)
	}
	if len(seeds) == 0 {
		f.Fatal("no seed files")
	}
	for _, file := range seeds {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tp, err := topo.Decode("fuzz.toml", data)
		if err != nil {
			var ps topo.Problems
			if !errors.As(err, &ps) {
				t.Fatalf("Decode error is %T, not Problems: %v", err, err)
			}
			if len(ps) == 0 {
				t.Fatal("Decode returned empty Problems")
			}
			return
		}
		if tp == nil {
			t.Fatal("Decode returned neither a topology nor an error")
		}
		p, err := topo.Resolve(tp)
		if err != nil {
			var ps topo.Problems
			if !errors.As(err, &ps) || len(ps) == 0 {
				t.Fatalf("Resolve error is %T, not Problems: %v", err, err)
			}
			for _, pr := range ps {
				_ = pr.String()
			}
			return
		}
		if p == nil {
			t.Fatal("Resolve returned neither a plan nor an error")
		}
	})
}
