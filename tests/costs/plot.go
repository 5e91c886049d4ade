package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
)

// Plot draws the report as an SVG, one column per lab family (single,N:
// one switch; linear,N: N switches): on top, up, down, down until the
// kernel is done, and a back-to-back cycle against the size; below, where
// the core time of one back-to-back cycle went. Written by hand: a plotting
// library for two charts is not worth a dependency.
func Plot(w io.Writer, r *Report) error {
	fams := families(r)
	if len(fams) == 0 {
		return errors.New("plot: no lab in the report")
	}
	const (
		panelW, lineH, barH = 440.0, 260.0, 230.0
		left, gap, top      = 70.0, 90.0, 70.0
		rowGap              = 110.0
	)
	width := left + float64(len(fams))*(panelW+gap)
	height := top + lineH + rowGap + barH + 110
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="22" font-size="15" font-weight="bold">Where a lab's time goes: nslab %s, %d cores, kernel %s</text>`+"\n",
		left, esc(r.When), r.Cores, esc(r.Kernel))
	fmt.Fprintf(&b, `<text x="%.0f" y="40" fill="#444">medians of %d isolated runs (machine load %.1f at the start); back to back: %d cycles of nslab up + nslab down, each at once after the last</text>`+"\n",
		left, r.Reps, r.Load, r.Cycles)
	for i, f := range fams {
		x := left + float64(i)*(panelW+gap)
		linePanel(&b, f, x, top, panelW, lineH)
		barPanel(&b, f, r.Cores, x, top+lineH+rowGap, panelW, barH)
	}
	legend(&b, left, top+lineH+58, lineSeries)
	legend(&b, left, top+lineH+rowGap+barH+70, barSeries)
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

type family struct {
	name, title, unit string
	labs              []Lab
}

func families(r *Report) []family {
	var out []family
	idx := map[string]int{}
	for _, l := range r.Labs {
		i, ok := idx[l.Family]
		if !ok {
			f := family{name: l.Family, title: l.Family + ",N", unit: "N"}
			switch l.Family {
			case "single":
				f.title, f.unit = "single,N: one switch, N hosts", "N hosts (one switch)"
			case "linear":
				f.title, f.unit = "linear,N: N switches in a row, a host on each", "N switches (2N nodes)"
			}
			i = len(out)
			idx[l.Family] = i
			out = append(out, f)
		}
		out[i].labs = append(out[i].labs, l)
	}
	return out
}

type series struct {
	label, color, dash string
	value              func(Lab) float64 // seconds
}

var lineSeries = []series{
	{"up", "#1f77b4", "", func(l Lab) float64 { return l.Up.WallMS / 1000 }},
	{"down (until nslab down returns)", "#ff7f0e", "", func(l Lab) float64 { return l.Down.WallMS / 1000 }},
	{"down until the kernel has removed every interface", "#d62728", "6,4", func(l Lab) float64 { return (l.Down.WallMS + l.Gone.WallMS) / 1000 }},
	{"back to back: one cycle (up + down, median)", "#2ca02c", "", func(l Lab) float64 { return l.B2B.CycleMS / 1000 }},
}

var barSeries = []series{
	{"nslab, user space", "#1f77b4", "", func(l Lab) float64 { return l.B2B.PerCycle.NslabUserMS / 1000 }},
	{"kernel, in nslab's system calls", "#9467bd", "", func(l Lab) float64 { return l.B2B.PerCycle.NslabSysMS / 1000 }},
	{"kernel, kworkers (namespace cleanup)", "#d62728", "", func(l Lab) float64 { return l.B2B.PerCycle.KworkerMS / 1000 }},
	{"kernel, other threads (rcu, ksoftirqd)", "#e377c2", "", func(l Lab) float64 { return l.B2B.PerCycle.KthreadMS / 1000 }},
	{"other load on the machine", "#bdbdbd", "", func(l Lab) float64 { return l.B2B.PerCycle.OtherMS / 1000 }},
	{"idle: every core waiting", "#f4f4f4", "", func(l Lab) float64 { return l.B2B.PerCycle.IdleMS / 1000 }},
}

func linePanel(b *strings.Builder, f family, x0, y0, w, h float64) {
	xmax, ymax := 0.0, 0.0
	for _, l := range f.labs {
		xmax = math.Max(xmax, float64(l.N))
		for _, s := range lineSeries {
			ymax = math.Max(ymax, s.value(l))
		}
	}
	xticks, yticks := niceTicks(xmax), niceTicks(ymax)
	xmax, ymax = xticks[len(xticks)-1], yticks[len(yticks)-1]
	px := func(v float64) float64 { return x0 + v/xmax*w }
	py := func(v float64) float64 { return y0 + h - v/ymax*h }
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="13" font-weight="bold">%s</text>`+"\n", x0, y0-10, esc(f.title))
	axes(b, x0, y0, w, h, xticks, yticks, px, py, "%.4g", "%.4g")
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x0+w/2, y0+h+34, esc(f.unit))
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" transform="rotate(-90 %.1f %.1f)">seconds</text>`+"\n", x0-45, y0+h/2, x0-45, y0+h/2)
	for _, s := range lineSeries {
		var pts []string
		for _, l := range f.labs {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(float64(l.N)), py(s.value(l))))
		}
		dash := ""
		if s.dash != "" {
			dash = fmt.Sprintf(` stroke-dasharray="%s"`, s.dash)
		}
		fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", strings.Join(pts, " "), s.color, dash)
		for _, l := range f.labs {
			fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"><title>%s %s: %.3f s</title></circle>`+"\n",
				px(float64(l.N)), py(s.value(l)), s.color, esc(l.Spec), esc(s.label), s.value(l))
		}
	}
}

func barPanel(b *strings.Builder, f family, cores int, x0, y0, w, h float64) {
	ymax := 0.0
	for _, l := range f.labs {
		t := 0.0
		for _, s := range barSeries {
			t += s.value(l)
		}
		ymax = math.Max(ymax, t)
	}
	yticks := niceTicks(ymax)
	ymax = yticks[len(yticks)-1]
	py := func(v float64) float64 { return y0 + h - v/ymax*h }
	slot := w / float64(len(f.labs))
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="13" font-weight="bold">%s</text>`+"\n", x0, y0-10,
		esc(fmt.Sprintf("%s: one back-to-back cycle, core time by who spent it", f.name)))
	axes(b, x0, y0, w, h, nil, yticks, nil, py, "", "%.4g")
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" transform="rotate(-90 %.1f %.1f)">core-seconds (%d cores)</text>`+"\n", x0-45, y0+h/2, x0-45, y0+h/2, cores)
	for i, l := range f.labs {
		cx := x0 + slot*(float64(i)+0.5)
		bw := math.Min(60, slot*0.6)
		acc := 0.0
		for _, s := range barSeries {
			v := s.value(l)
			if v <= 0 {
				continue
			}
			fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" stroke="#888" stroke-width="0.5"><title>%s %s: %.3f core-s</title></rect>`+"\n",
				cx-bw/2, py(acc+v), bw, py(acc)-py(acc+v), s.color, esc(l.Spec), esc(s.label), v)
			acc += v
		}
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", cx, y0+h+16, esc(l.Spec))
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#444" font-size="10">%s</text>`+"\n", cx, y0+h+30, esc(l.B2B.PerCycle.Floor(cores)))
	}
}

// axes draws the frame, grid lines and tick labels; nil px leaves the x
// axis unlabelled (the bars label themselves).
func axes(b *strings.Builder, x0, y0, w, h float64, xticks, yticks []float64, px, py func(float64) float64, xfmt, yfmt string) {
	for _, t := range yticks {
		y := py(t)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e0e0e0"/>`+"\n", x0, y, x0+w, y)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", x0-6, y+4, fmt.Sprintf(yfmt, t))
	}
	if px != nil {
		for _, t := range xticks {
			x := px(t)
			fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e0e0e0"/>`+"\n", x, y0, x, y0+h)
			fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x, y0+h+16, fmt.Sprintf(xfmt, t))
		}
	}
	fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#333"/>`+"\n", x0, y0, w, h)
}

func legend(b *strings.Builder, x, y float64, ss []series) {
	col := 0.0
	for i, s := range ss {
		if i > 0 && i%3 == 0 {
			y += 18
			col = 0
		}
		lx := x + col*330
		dash := ""
		if s.dash != "" {
			dash = fmt.Sprintf(` stroke-dasharray="%s"`, s.dash)
		}
		fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="18" height="10" fill="%s" stroke="#888" stroke-width="0.5"/>`, lx, y-9, s.color)
		if s.dash != "" {
			fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="white" stroke-width="3"%s/>`, lx, y-4, lx+18, y-4, dash)
		}
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", lx+24, y, esc(s.label))
		col++
	}
}

// niceTicks returns 0 and evenly spaced round values up to at least max.
func niceTicks(max float64) []float64 {
	if max <= 0 || math.IsNaN(max) || math.IsInf(max, 0) {
		return []float64{0, 1}
	}
	raw := max / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	var t []float64
	for i := 0; ; i++ {
		v := float64(i) * step
		t = append(t, v)
		if v >= max-1e-9 {
			return t
		}
	}
}

func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}
