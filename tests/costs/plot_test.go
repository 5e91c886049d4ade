package main

import (
	"bytes"
	"encoding/xml"
	"io"
	"strings"
	"testing"
)

func TestNiceTicks(t *testing.T) {
	for _, tc := range []struct {
		max  float64
		last float64
		n    int
	}{
		{1000, 1000, 6},
		{0.9, 1, 6},
		{3.7, 4, 5},
		{4.2, 5, 6},
		{0, 1, 2},
	} {
		got := niceTicks(tc.max)
		if got[0] != 0 || got[len(got)-1] != tc.last || len(got) != tc.n {
			t.Errorf("niceTicks(%g) = %v, want %d ticks from 0 to %g", tc.max, got, tc.n, tc.last)
		}
	}
}

func TestPlot(t *testing.T) {
	lab := func(fam string, n int, up float64) Lab {
		return Lab{Spec: fam + "," + string(rune('0'+n)), Family: fam, N: n,
			Up: Split{WallMS: up}, Down: Split{WallMS: up / 4}, Gone: Split{WallMS: up * 2},
			B2B: B2B{CycleMS: up * 3, PerCycle: Split{WallMS: up * 3, NslabUserMS: 10, NslabSysMS: up, IdleMS: up * 4}}}
	}
	r := &Report{When: "now", Cores: 2, Kernel: "6.18 <test>", Labs: []Lab{
		lab("single", 1, 100), lab("single", 2, 210), lab("linear", 1, 50), lab("linear", 3, 400),
	}}
	var out bytes.Buffer
	if err := Plot(&out, r); err != nil {
		t.Fatal(err)
	}
	// Well-formed XML, with one line per series in each family's panel and
	// one bar segment per non-zero part of each lab's cycle.
	d := xml.NewDecoder(bytes.NewReader(out.Bytes()))
	count := map[string]int{}
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed: %v\n%s", err, out.String())
		}
		if s, ok := tok.(xml.StartElement); ok {
			count[s.Name.Local]++
		}
	}
	if count["polyline"] != 2*len(lineSeries) {
		t.Errorf("%d polylines, want %d", count["polyline"], 2*len(lineSeries))
	}
	if got := strings.Count(out.String(), "core-s</title></rect>"); got != 4*3 {
		t.Errorf("%d bar segments, want 12", got)
	}
	if !strings.Contains(out.String(), "6.18 &lt;test&gt;") {
		t.Error("the kernel's name is not escaped")
	}
	if err := Plot(io.Discard, &Report{}); err == nil {
		t.Error("an empty report plotted")
	}
}
