package topo_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/nslab/nslab/topo"
)

// bigTopology is a file of n hosts on switches of 1,000 ports joined by
// one router, as a user would write it.
func bigTopology(n int) []byte {
	var b strings.Builder
	b.WriteString("name = \"big\"\nrouting = \"auto\"\n[addressing]\nipv4 = \"10.0.0.0/8\"\nipv4_subnet = 20\n")
	switches := (n + 999) / 1000
	for s := 0; s < switches; s++ {
		fmt.Fprintf(&b, "[[nodes]]\nname = \"s%d\"\nkind = \"switch\"\n", s)
	}
	b.WriteString("[[nodes]]\nname = \"r\"\nkind = \"router\"\n")
	for s := 0; s < switches; s++ {
		fmt.Fprintf(&b, "[[links]]\nendpoints = [\"r\", \"s%d\"]\n", s)
	}
	for h := 0; h < n; h++ {
		fmt.Fprintf(&b, "[[nodes]]\nname = \"h%d\"\n", h)
	}
	for h := 0; h < n; h++ {
		fmt.Fprintf(&b, "[[links]]\nendpoints = [\"h%d\", \"s%d\"]\n", h, h/1000)
	}
	return []byte(b.String())
}

// Decoding and validating is linear in the file's size: positions are a
// binary search in an index of line starts, not a scan from the start.
func BenchmarkValidate(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		data := bigTopology(n)
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			for b.Loop() {
				t, err := topo.Decode("big.toml", data)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := topo.Resolve(t); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// Unknown keys are found from the source map in one pass: go-toml's
// strict mode placed each of its errors by scanning from the file's
// start, so 20,000 of them took 14 s to 2 min.
func BenchmarkUnknownKeys(b *testing.B) {
	for _, n := range []int{2000, 20000} {
		var s strings.Builder
		s.WriteString("name = \"big\"\n")
		for i := 0; i < n; i++ {
			fmt.Fprintf(&s, "[[nodes]]\nname = \"h%d\"\nbogus%d = 1\n", i, i)
		}
		data := []byte(s.String())
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			for b.Loop() {
				_, err := topo.Decode("big.toml", data)
				var ps topo.Problems
				if !errors.As(err, &ps) || len(ps) != n {
					b.Fatalf("want %d problems, got %v", n, err)
				}
			}
		})
	}
}
