package graph

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strings"
)

// The SVG's measures, in pixels. Text is monospace so that its width is
// known without fonts: a character is 0.6 em.
const (
	svgFont      = 11.0
	svgCharW     = svgFont * 0.6
	svgLineH     = 14.0
	svgEdgeFont  = 10.0
	svgEdgeCharW = svgEdgeFont * 0.6
	svgEdgeLineH = 12.5
	svgPadX      = 12.0
	svgPadY      = 8.0
	svgGapY      = 36.0 // between nodes of a layer
	svgSlant     = 12.0 // the pointed or slanted sides of some shapes
	svgMinGapX   = 60.0 // between layers, at least
	svgMargin    = 20.0
	svgTitleH    = 28.0
	svgLegendH   = 30.0
)

// box is a node placed in the picture.
type box struct {
	n          *Node
	lines      []string
	w, h, x, y float64 // size, and centre
	layer, pos int
}

// WriteSVG draws the graph as SVG, laid out here: the nodes in layers
// from left to right by their distance (in links) from the node farthest
// from the rest, ordered in each layer to keep links short, each link a
// straight line (a curve between nodes of one layer, or beside another
// link between the same two nodes) with its label at the middle.
func (g *Graph) WriteSVG(w io.Writer) error {
	boxes, layers := g.layout()
	index := map[string]*box{}
	for _, b := range boxes {
		index[b.n.ID] = b
	}

	// Widths: each layer as wide as its widest node; the gap after it as
	// wide as the widest label of a link leaving it to the right.
	layerW := make([]float64, len(layers))
	gapW := make([]float64, len(layers))
	for i, l := range layers {
		for _, b := range l {
			layerW[i] = max(layerW[i], b.w)
		}
		gapW[i] = svgMinGapX
	}
	labels := make([][]string, len(g.Links))
	for i, l := range g.Links {
		labels[i] = g.linkLabel(l)
		a, b := index[l.A.Node], index[l.B.Node]
		first := min(a.layer, b.layer)
		if a.layer != b.layer {
			gapW[first] = max(gapW[first], textWidth(labels[i], svgEdgeCharW)+2*svgPadX)
		}
	}
	// Heights: the layers centred on the tallest.
	layerH := make([]float64, len(layers))
	height := 0.0
	for i, l := range layers {
		for j, b := range l {
			if j > 0 {
				layerH[i] += svgGapY
			}
			layerH[i] += b.h
		}
		height = max(height, layerH[i])
	}
	// Links between nodes of one layer curve to the right, into the gap
	// after it, with their labels beside them.
	for i, l := range g.Links {
		a, b := index[l.A.Node], index[l.B.Node]
		if a.layer == b.layer {
			gapW[a.layer] = max(gapW[a.layer], 5*svgPadX+textWidth(labels[i], svgEdgeCharW))
		}
	}
	left := make([]float64, len(layers))
	x := svgMargin
	for i, l := range layers {
		left[i] = x
		y := svgMargin + svgTitleH + (height-layerH[i])/2
		for _, b := range l {
			b.x = x + layerW[i]/2
			b.y = y + b.h/2
			y += b.h + svgGapY
		}
		x += layerW[i]
		if i < len(layers)-1 || gapW[i] > svgMinGapX {
			x += gapW[i]
		}
	}
	width := max(x+svgMargin, svgMargin*2+float64(len("lab "+g.Lab))*svgFont*1.2*0.6, g.legendWidth()+2*svgMargin)

	// Links first, so that nodes cover their ends; then their labels.
	type drawn struct {
		path       string
		lx, ly, lh float64
		gap        int // the gap after this layer holds the label
		lines      []string
	}
	var placed []drawn
	seen := map[[2]string]int{}
	for i, l := range g.Links {
		a, b := index[l.A.Node], index[l.B.Node]
		if a.layer > b.layer {
			a, b = b, a
		}
		key := [2]string{a.n.ID, b.n.ID}
		k := seen[key]
		seen[key]++
		colour, sw := "#6b7280", 1.5
		if l.AB != "" || l.BA != "" {
			colour, sw = "#dc2626", 2.5
		}
		tw := textWidth(labels[i], svgEdgeCharW)
		var cx, cy, lx, ly float64
		if a.layer == b.layer {
			// A curve to the right of the layer: its apex, halfway to
			// the control point, clears the layer's widest node.
			reach := layerW[a.layer]/2 + svgPadX*2 + float64(k)*svgPadX
			cx, cy = a.x+2*reach, (a.y+b.y)/2
			lx, ly = a.x+reach+svgPadX+tw/2, cy
		} else {
			// Layers are a breadth-first search's, so a link joins
			// neighbouring layers. The control point is on the line for
			// the first link between two nodes and off it for another;
			// the label sits in the gap, on the side of the layer with
			// more nodes, where the links are farther apart.
			cx, cy = (a.x+b.x)/2, (a.y+b.y)/2
			if k > 0 {
				off := float64((k+1)/2) * 40
				if k%2 == 0 {
					off = -off
				}
				cy += off
			}
			gapL, gapR := left[a.layer]+layerW[a.layer], left[b.layer]
			lx = (gapL + gapR) / 2
			switch na, nb := len(layers[a.layer]), len(layers[b.layer]); {
			case nb > na:
				lx = max(lx, gapR-svgPadX-tw/2)
			case na > nb:
				lx = min(lx, gapL+svgPadX+tw/2)
			}
			// x is linear in t on this curve, its control point being
			// halfway across.
			t := (lx - a.x) / (b.x - a.x)
			ly = (1-t)*(1-t)*a.y + 2*t*(1-t)*cy + t*t*b.y
		}
		path := fmt.Sprintf(`<path d="M%s,%s Q%s,%s %s,%s" fill="none" stroke="%s" stroke-width="%s"/>`,
			num(a.x), num(a.y), num(cx), num(cy), num(b.x), num(b.y), colour, num(sw))
		lh := float64(len(labels[i]))*svgEdgeLineH + 4
		placed = append(placed, drawn{path, lx, ly, lh, a.layer, labels[i]})
	}
	// Labels in one gap that would overlap move down, in the order of
	// their heights; the picture grows to hold them.
	order := make([]int, len(placed))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(i, j int) bool {
		p, q := placed[order[i]], placed[order[j]]
		if p.gap != q.gap {
			return p.gap < q.gap
		}
		return p.ly < q.ly
	})
	bottom := svgMargin + svgTitleH + height
	for k, i := range order {
		if k > 0 {
			prev := placed[order[k-1]]
			if prev.gap == placed[i].gap {
				placed[i].ly = max(placed[i].ly, prev.ly+prev.lh/2+placed[i].lh/2+2)
			}
		}
		bottom = max(bottom, placed[i].ly+placed[i].lh/2)
	}
	total := bottom + svgLegendH + svgMargin

	out := bufio.NewWriter(w)
	fmt.Fprintf(out, `<svg xmlns="http://www.w3.org/2000/svg" width="%s" height="%s" viewBox="0 0 %s %s" font-family="ui-monospace, Menlo, Consolas, monospace">`+"\n",
		num(width), num(total), num(width), num(total))
	fmt.Fprintf(out, "<title>lab %s</title>\n", xmlText(g.Lab))
	fmt.Fprintf(out, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	fmt.Fprintf(out, `<text x="%s" y="%s" font-size="%s" font-weight="bold" fill="#111827">lab %s</text>`+"\n",
		num(svgMargin), num(svgMargin+svgFont*1.2), num(svgFont*1.2), xmlText(g.Lab))

	for _, p := range placed {
		out.WriteString(p.path + "\n")
	}
	for _, b := range boxes {
		writeShape(out, b)
	}
	for _, p := range placed {
		tw := textWidth(p.lines, svgEdgeCharW)
		th := float64(len(p.lines)) * svgEdgeLineH
		fmt.Fprintf(out, `<rect x="%s" y="%s" width="%s" height="%s" rx="3" fill="#ffffff" fill-opacity="0.9"/>`+"\n",
			num(p.lx-tw/2-3), num(p.ly-th/2-2), num(tw+6), num(th+4))
		writeText(out, p.lx, p.ly, p.lines, svgEdgeFont, svgEdgeLineH, "#374151", "")
	}
	g.writeLegend(out, svgMargin, total-svgMargin-svgLegendH/2)
	out.WriteString("</svg>\n")
	return out.Flush()
}

// layout puts every node in a layer and orders each layer.
func (g *Graph) layout() ([]*box, [][]*box) {
	boxes := make([]*box, len(g.Nodes))
	index := map[string]int{}
	for i := range g.Nodes {
		n := &g.Nodes[i]
		lines := n.label()
		boxes[i] = &box{n: n, lines: lines,
			w: textWidth(lines, svgCharW) + 2*svgPadX,
			h: float64(len(lines))*svgLineH + 2*svgPadY, layer: -1}
		if n.Role == RoleNATGateway || n.Role == RoleHostAttachment {
			boxes[i].w += 2 * svgSlant
		}
		index[n.ID] = i
	}
	adj := make([][]int, len(boxes))
	for _, l := range g.Links {
		a, b := index[l.A.Node], index[l.B.Node]
		adj[a] = append(adj[a], b)
		adj[b] = append(adj[b], a)
	}
	for i := range adj {
		sort.Ints(adj[i])
	}
	bfs := func(from int) []int {
		dist := make([]int, len(boxes))
		for i := range dist {
			dist[i] = -1
		}
		dist[from] = 0
		queue := []int{from}
		for len(queue) > 0 {
			v := queue[0]
			queue = queue[1:]
			for _, u := range adj[v] {
				if dist[u] < 0 {
					dist[u] = dist[v] + 1
					queue = append(queue, u)
				}
			}
		}
		return dist
	}
	// Each connected part, in the order of its first node, gets layers
	// after the parts before it; its root is the node farthest from the
	// others (the first such), so that the picture is long, not tall.
	offset := 0
	for start := range boxes {
		if boxes[start].layer >= 0 {
			continue
		}
		part := bfs(start)
		root, ecc := start, -1
		for v, d := range part {
			if d < 0 {
				continue
			}
			e := 0
			for _, dd := range bfs(v) {
				e = max(e, dd)
			}
			if e > ecc {
				root, ecc = v, e
			}
		}
		deepest := 0
		for v, d := range bfs(root) {
			if d >= 0 {
				boxes[v].layer = offset + d
				deepest = max(deepest, d)
			}
		}
		offset += deepest + 1
	}
	layers := make([][]*box, offset)
	for _, b := range boxes {
		layers[b.layer] = append(layers[b.layer], b)
	}
	renumber := func(l []*box) {
		for i, b := range l {
			b.pos = i
		}
	}
	for _, l := range layers {
		renumber(l)
	}
	// Barycentre sweeps, left to right then back: each node moves to the
	// mean position of its neighbours in the layer before (or after);
	// ties keep the file's order.
	bary := func(l []*box, side int) {
		key := map[*box]float64{}
		for _, b := range l {
			sum, n := 0.0, 0
			for _, u := range adj[index[b.n.ID]] {
				if boxes[u].layer == b.layer+side {
					sum += float64(boxes[u].pos)
					n++
				}
			}
			if n == 0 {
				key[b] = float64(b.pos)
			} else {
				key[b] = sum / float64(n)
			}
		}
		sort.SliceStable(l, func(i, j int) bool { return key[l[i]] < key[l[j]] })
		renumber(l)
	}
	for range 4 {
		for i := 1; i < len(layers); i++ {
			bary(layers[i], -1)
		}
		for i := len(layers) - 2; i >= 0; i-- {
			bary(layers[i], +1)
		}
	}
	return boxes, layers
}

func writeShape(out *bufio.Writer, b *box) {
	s := styleOf(b.n.Role)
	x0, y0, x1, y1 := b.x-b.w/2, b.y-b.h/2, b.x+b.w/2, b.y+b.h/2
	paint := fmt.Sprintf(`fill="%s" stroke="%s" stroke-width="1.5"`, s.fill, s.stroke)
	fmt.Fprintf(out, `<g class="node %s" id="%s">`+"\n", b.n.Role, xmlText(b.n.ID))
	fmt.Fprintf(out, "<title>%s (%s)</title>\n", xmlText(b.n.Name), b.n.Role)
	switch b.n.Role {
	case RoleRouter:
		fmt.Fprintf(out, `<rect x="%s" y="%s" width="%s" height="%s" rx="%s" %s/>`+"\n", num(x0), num(y0), num(b.w), num(b.h), num(min(b.h/2, 18)), paint)
	case RoleSwitch:
		fmt.Fprintf(out, `<rect x="%s" y="%s" width="%s" height="%s" %s/>`+"\n", num(x0), num(y0), num(b.w), num(b.h), paint)
		fmt.Fprintf(out, `<rect x="%s" y="%s" width="%s" height="%s" fill="none" stroke="%s"/>`+"\n", num(x0+3), num(y0+3), num(b.w-6), num(b.h-6), s.stroke)
	case RoleNATGateway:
		d := svgSlant
		fmt.Fprintf(out, `<polygon points="%s,%s %s,%s %s,%s %s,%s %s,%s %s,%s" %s/>`+"\n",
			num(x0), num(b.y), num(x0+d), num(y0), num(x1-d), num(y0), num(x1), num(b.y), num(x1-d), num(y1), num(x0+d), num(y1), paint)
	case RoleHostAttachment:
		d := svgSlant
		fmt.Fprintf(out, `<polygon points="%s,%s %s,%s %s,%s %s,%s" %s/>`+"\n",
			num(x0+d), num(y0), num(x1), num(y0), num(x1-d), num(y1), num(x0), num(y1), paint)
	default:
		fmt.Fprintf(out, `<rect x="%s" y="%s" width="%s" height="%s" rx="8" %s/>`+"\n", num(x0), num(y0), num(b.w), num(b.h), paint)
	}
	writeText(out, b.x, b.y, b.lines, svgFont, svgLineH, "#111827", "bold")
	out.WriteString("</g>\n")
}

// writeText writes lines centred on (x, y); the first in boldFirst's
// weight.
func writeText(out *bufio.Writer, x, y float64, lines []string, size, lineH float64, colour, boldFirst string) {
	top := y - float64(len(lines))*lineH/2 + lineH*0.75
	fmt.Fprintf(out, `<text x="%s" font-size="%s" fill="%s" text-anchor="middle">`, num(x), num(size), colour)
	for i, l := range lines {
		weight := ""
		if i == 0 && boldFirst != "" {
			weight = ` font-weight="` + boldFirst + `"`
		}
		fmt.Fprintf(out, `<tspan x="%s" y="%s"%s>%s</tspan>`, num(x), num(top+float64(i)*lineH), weight, xmlText(l))
	}
	out.WriteString("</text>\n")
}

// legendWidth is the width of the legend of the roles drawn.
func (g *Graph) legendWidth() float64 {
	w := 0.0
	for _, r := range g.roles() {
		w += 18 + float64(len(r))*svgEdgeCharW + 16
	}
	return w
}

func (g *Graph) roles() []Role {
	var out []Role
	for _, r := range Roles() {
		for _, n := range g.Nodes {
			if n.Role == r {
				out = append(out, r)
				break
			}
		}
	}
	return out
}

func (g *Graph) writeLegend(out *bufio.Writer, x, y float64) {
	for _, r := range g.roles() {
		s := styleOf(r)
		fmt.Fprintf(out, `<rect x="%s" y="%s" width="12" height="12" fill="%s" stroke="%s"/>`, num(x), num(y-6), s.fill, s.stroke)
		fmt.Fprintf(out, `<text x="%s" y="%s" font-size="%s" fill="#374151">%s</text>`+"\n", num(x+18), num(y+4), num(svgEdgeFont), r)
		x += 18 + float64(len(r))*svgEdgeCharW + 16
	}
}

func textWidth(lines []string, charW float64) float64 {
	n := 0
	for _, l := range lines {
		n = max(n, len([]rune(l)))
	}
	return float64(n) * charW
}

// num writes a coordinate with at most one decimal, the same on every
// machine.
func num(f float64) string {
	s := fmt.Sprintf("%.1f", f)
	return strings.TrimSuffix(s, ".0")
}

func xmlText(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}
