package capture

import (
	"errors"
	"testing"
)

// Any filter either compiles to a program the BPF machine runs on every
// fixture frame, or fails with a *SyntaxError whose column is in the
// filter (or just past its end); nothing panics.
func FuzzCompile(f *testing.F) {
	for _, s := range []string{"", "tcp port 80", "host h1 or (udp and not port 53)", "net fd00::/64", "!arp && src 10.0.0.1",
		"portrange 1-2 or proto 17", "ip6 host h2", "((", "port 1-", "src or dst host h3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		flt, err := Compile(src, FilterOptions{Resolve: labHosts})
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("%q: %T %v", src, err, err)
			}
			if se.Col < 1 || se.Col > len([]rune(src))+1 {
				t.Fatalf("%q: column %d out of range", src, se.Col)
			}
			return
		}
		for _, p := range packets {
			flt.Match(p)
		}
		if len(flt.Raw()) > maxInsns {
			t.Fatalf("%q: %d instructions", src, len(flt.Raw()))
		}
	})
}
