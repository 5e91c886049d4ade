package impair

import (
	"strings"
	"testing"
)

// FuzzParse feeds run-time words (split at blanks) to Parse and each whole
// input to the unit parsers; its seeds are in testdata/fuzz/FuzzParse.
// What is accepted must pass Validate and read back the same from its
// own words and figures; nothing may panic.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		d, err := Parse(strings.Fields(s))
		if err == nil {
			if err := d.Validate(); err != nil {
				t.Fatalf("Parse(%q) = %v, which Validate refuses: %v", s, d, err)
			}
			back, err := Parse(d.Words())
			if err != nil || !sameDirection(back, d) {
				t.Fatalf("Parse(%q) = %#v; its words %q read back as %#v, %v", s, d, d.Words(), back, err)
			}
			_ = d.String()
		} else if _, ok := err.(Problems); !ok || err.Error() == "" {
			t.Fatalf("Parse(%q): error %T %q", s, err, err)
		}
		if r, err := parseRate(s); err == nil && r > 0 {
			if back, err := parseRate(FormatRate(r)); back != r || err != nil {
				t.Fatalf("rate %q = %d, written %s, read back %d, %v", s, r, FormatRate(r), back, err)
			}
		}
		if b, err := parseSize(s); err == nil && b > 0 {
			if back, err := parseSize(FormatSize(b)); back != b || err != nil {
				t.Fatalf("size %q = %d, written %s, read back %d, %v", s, b, FormatSize(b), back, err)
			}
		}
		if x, err := parseTime(s); err == nil {
			if x < 0 || x > maxDelay {
				t.Fatalf("time %q = %v, out of range", s, x)
			}
			if back, err := parseTime(FormatTime(x)); back != x || err != nil {
				t.Fatalf("time %q = %d, written %s, read back %d, %v", s, x, FormatTime(x), back, err)
			}
		}
		if p, err := parsePercent(s); err == nil {
			if !(p >= 0 && p <= 100) {
				t.Fatalf("percent %q = %v, out of range", s, p)
			}
			if back, err := parsePercent(FormatPercent(p)); back != p || err != nil {
				t.Fatalf("percent %q = %v, written %s, read back %v, %v", s, p, FormatPercent(p), back, err)
			}
		}
		_, _, _ = parseLimit(s)
		_, _ = parseGap(s)
		_, _ = parseDistribution(s)
	})
}
