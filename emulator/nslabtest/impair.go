package nslabtest

import (
	"github.com/nslab/nslab/impair"
)

// Impair sets what the direction from node from to node to does, while
// the lab runs, with the words of the file's impairment table
// ("rate=10mbit", "delay=40ms", "loss=1%"; docs/impairments.md); no words
// give that direction its plain link back. Bad words, or a kernel that
// lacks what they need (delay without sch_netem), fail the test.
//
//	lab.Impair("client", "server", "loss=2%")
//	lab.Impair("server", "client", "rate=1mbit")
func (l *Lab) Impair(from, to string, words ...string) {
	l.t.Helper()
	d, err := impair.Parse(words)
	if err != nil {
		l.fatalf("nslabtest: impair %s -> %s: %v", from, to, err)
	}
	if _, err := l.lab().SetImpairment(from, to, d); err != nil {
		l.fatalf("nslabtest: impair %s -> %s: %v", from, to, err)
	}
}

// Impairment reads what both directions of the link between a and b do
// now, from the kernel.
func (l *Lab) Impairment(a, b string) impair.Link {
	l.t.Helper()
	im, err := l.lab().Impairment(a, b)
	if err != nil {
		l.fatalf("nslabtest: read link %s -- %s: %v", a, b, err)
	}
	return im.Now
}
