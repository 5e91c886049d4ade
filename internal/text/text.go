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
