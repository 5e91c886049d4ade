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
