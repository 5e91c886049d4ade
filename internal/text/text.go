// Package text holds the few words nslab's messages share, so that every
// part says a count the same way.
package text

import (
	"strconv"
	"strings"
)

// Plural says n of a thing: "1 switch", "3 switches", "2 hosts". A word
// whose plural is irregular gives it as the third argument: Plural(2,
// "entry", "entries").
func Plural(n int, one string, many ...string) string {
	if n == 1 {
		return "1 " + one
	}
	if len(many) > 0 {
		return strconv.Itoa(n) + " " + many[0]
	}
	for _, end := range []string{"ch", "sh", "s", "x"} {
		if strings.HasSuffix(one, end) {
			return strconv.Itoa(n) + " " + one + "es"
		}
	}
	return strconv.Itoa(n) + " " + one + "s"
}

// Distance is the edit distance between a and b (Levenshtein: insertions,
// deletions and substitutions of runes), by which "did you mean" finds
// the name closest to one mistyped.
func Distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
