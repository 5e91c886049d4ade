package text_test

import (
	"fmt"
	"testing"

	"github.com/nslab/nslab/internal/text"
)

func TestPlural(t *testing.T) {
	for _, tc := range []struct {
		n    int
		one  string
		many []string
		want string
	}{
		{1, "switch", nil, "1 switch"},
		{0, "switch", nil, "0 switches"},
		{3, "host", nil, "3 hosts"},
		{2, "address", nil, "2 addresses"},
		{2, "box", nil, "2 boxes"},
		{2, "entry", []string{"entries"}, "2 entries"},
		{1, "entry", []string{"entries"}, "1 entry"},
	} {
		if got := text.Plural(tc.n, tc.one, tc.many...); got != tc.want {
			t.Errorf("Plural(%d, %q, %q) = %q, want %q", tc.n, tc.one, tc.many, got, tc.want)
		}
	}
}

func ExamplePlural() {
	fmt.Println(text.Plural(4, "node"), text.Plural(1, "switch"), text.Plural(2, "switch"), text.Plural(3, "try", "tries"))
	// Output: 4 nodes 1 switch 2 switches 3 tries
}

func TestDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"kind", "kind", 0}, {"knd", "kind", 1}, {"gatway", "gateway", 1},
		{"mbits", "mbit", 1}, {"abc", "", 3}, {"net", "nat", 1}, {"µs", "us", 1},
	} {
		if got := text.Distance(tc.a, tc.b); got != tc.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
