package graph_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nslab/nslab/graph"
	"github.com/nslab/nslab/topo"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func plan(t *testing.T, file string) *topo.Plan {
	t.Helper()
	top, err := topo.LoadFile(file)
	require.NoError(t, err)
	p, err := topo.Resolve(top)
	require.NoError(t, err)
	return p
}

// TestGolden draws the fixture and two example topologies in every
// format and compares with testdata/NAME.FORMAT (go test -update rewrites
// them). Each drawing is made twice: the output is deterministic.
func TestGolden(t *testing.T) {
	for _, file := range []string{"testdata/features.toml", "../topologies/nat.toml", "../topologies/dumbbell.toml"} {
		p := plan(t, file)
		for _, f := range graph.Formats() {
			t.Run(p.Lab+"."+string(f), func(t *testing.T) {
				var a, b bytes.Buffer
				require.NoError(t, graph.Write(&a, p, f))
				require.NoError(t, graph.Write(&b, p, f))
				require.Equal(t, a.String(), b.String(), "two drawings of one plan differ")
				golden := filepath.Join("testdata", p.Lab+"."+string(f))
				if *update {
					require.NoError(t, os.WriteFile(golden, a.Bytes(), 0o644))
				}
				want, err := os.ReadFile(golden)
				require.NoError(t, err, "go test ./graph -update writes it")
				require.Equal(t, string(want), a.String(), "%s is out of date: go test ./graph -update, then look at the difference", golden)
			})
		}
	}
}

// TestWhatIsDrawn checks the things a picture must show, in every text
// format, for the fixture that has them all.
func TestWhatIsDrawn(t *testing.T) {
	p := plan(t, "testdata/features.toml")
	want := []string{
		"h1:eth0 10.0.0.2/24",                    // an interface and its address
		"sw:h1",                                  // a switch port
		"rate 5Mbit delay 20ms",                  // one direction's impairment
		"delay 20ms",                             // the other's
		"loss 1%",                                // the host attachment's
		"NAT snat 203.0.113.1 out of wan",        // the NAT
		"mapping endpoint-independent",           // its behaviour
		"forward udp 203.0.113.1:5000",           // its forward
		"firewall in drop fwd accept out accept", // a firewall
		"echo 3478",                              // an echo service
		"this machine",                           // the host attachment
		"alone",                                  // a node without links
	}
	for _, f := range []graph.Format{graph.Dot, graph.Mermaid, graph.SVG} {
		t.Run(string(f), func(t *testing.T) {
			var out bytes.Buffer
			require.NoError(t, graph.Write(&out, p, f))
			for _, w := range want {
				require.Contains(t, out.String(), w)
			}
		})
	}
}

// TestShapesByRole: every role has its own shape in each format.
func TestShapesByRole(t *testing.T) {
	p := plan(t, "testdata/features.toml")
	tests := []struct {
		format graph.Format
		want   []string
	}{
		{graph.Dot, []string{`"sw" [label="sw\nswitch", shape=box, style="filled"`, `"r1" [label="r1\nrouter", shape=ellipse`, `"gw" [label="gw\n`, `shape=hexagon`, `"@host" [label="host\n(this machine)", shape=house`, `"h1" [label="h1\n`, `shape=box, style="rounded,filled"`}},
		{graph.Mermaid, []string{`n1[["sw<br/>switch"]]`, `n3(["r1<br/>router"])`, `n5{{"gw<br/>`, `n8[/"host<br/>(this machine)"/]`, `n7("alone")`, "class n3,n4 router", "class n8 host_attachment"}},
		{graph.SVG, []string{`class="node switch" id="sw"`, `class="node router" id="r1"`, `class="node nat-gateway" id="gw"`, `class="node host-attachment" id="@host"`, `class="node host" id="alone"`}},
	}
	for _, tc := range tests {
		t.Run(string(tc.format), func(t *testing.T) {
			var out bytes.Buffer
			require.NoError(t, graph.Write(&out, p, tc.format))
			for _, w := range tc.want {
				require.Contains(t, out.String(), w)
			}
		})
	}
}

// TestSVGIsWellFormed parses every example's SVG as XML and checks that
// each node is drawn once and no two nodes overlap.
func TestSVGIsWellFormed(t *testing.T) {
	files, err := filepath.Glob("../topologies/*.toml")
	require.NoError(t, err)
	files = append(files, "testdata/features.toml")
	type shape struct {
		X      float64 `xml:"x,attr"`
		Y      float64 `xml:"y,attr"`
		W      float64 `xml:"width,attr"`
		H      float64 `xml:"height,attr"`
		Points string  `xml:"points,attr"`
	}
	var doc struct {
		XMLName xml.Name `xml:"svg"`
		Groups  []struct {
			Class string  `xml:"class,attr"`
			ID    string  `xml:"id,attr"`
			Rects []shape `xml:"rect"`
			Polys []shape `xml:"polygon"`
		} `xml:"g"`
	}
	type bbox struct{ x0, y0, x1, y1 float64 }
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			p := plan(t, file)
			var out bytes.Buffer
			require.NoError(t, graph.Write(&out, p, graph.SVG))
			doc.Groups = nil
			require.NoError(t, xml.Unmarshal(out.Bytes(), &doc))
			require.Len(t, doc.Groups, len(graph.New(p).Nodes))
			var boxes []bbox
			for _, g := range doc.Groups {
				var b bbox
				switch {
				case len(g.Rects) > 0:
					r := g.Rects[0]
					b = bbox{r.X, r.Y, r.X + r.W, r.Y + r.H}
				case len(g.Polys) > 0:
					b = bbox{1e9, 1e9, -1e9, -1e9}
					for _, pt := range strings.Fields(g.Polys[0].Points) {
						var x, y float64
						_, err := fmt.Sscanf(pt, "%g,%g", &x, &y)
						require.NoError(t, err)
						b = bbox{min(b.x0, x), min(b.y0, y), max(b.x1, x), max(b.y1, y)}
					}
				default:
					t.Fatalf("node %s has no shape", g.ID)
				}
				for i, o := range boxes {
					overlap := b.x0 < o.x1 && o.x0 < b.x1 && b.y0 < o.y1 && o.y0 < b.y1
					require.False(t, overlap, "node %s overlaps %s", g.ID, doc.Groups[i].ID)
				}
				boxes = append(boxes, b)
			}
		})
	}
}

// TestJSON: the JSON reads back into a Graph equal to New's.
func TestJSON(t *testing.T) {
	p := plan(t, "testdata/features.toml")
	var out bytes.Buffer
	require.NoError(t, graph.Write(&out, p, graph.JSON))
	var back graph.Graph
	require.NoError(t, json.Unmarshal(out.Bytes(), &back))
	require.Equal(t, *graph.New(p), back)
	require.Equal(t, graph.HostID, back.Links[len(back.Links)-1].A.Node)
	require.Equal(t, "rate 5Mbit delay 20ms", back.Links[2].AB)
	require.Equal(t, "delay 20ms", back.Links[2].BA)
}

func TestParseFormat(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{"dot", "dot", ""},
		{"Mermaid", "mermaid", ""},
		{"svg", "svg", ""},
		{"json", "json", ""},
		{"png", "", `unknown format "png" (known: dot, mermaid, svg, json)`},
	}
	for _, tc := range tests {
		f, err := graph.ParseFormat(tc.in)
		if tc.err != "" {
			require.EqualError(t, err, tc.err)
			continue
		}
		require.NoError(t, err)
		require.Equal(t, graph.Format(tc.want), f)
	}
	require.EqualError(t, graph.Write(new(bytes.Buffer), plan(t, "testdata/features.toml"), "png"), `unknown format "png" (known: dot, mermaid, svg, json)`)
}

// TestOddNames: interface names may hold characters that mean something
// in each format ('<', '&', '"', '#', '|', '\'); each format escapes them,
// and a lab of one node without links is drawn too.
func TestOddNames(t *testing.T) {
	top, err := topo.Decode("odd.toml", []byte(`
name = "odd"
[[nodes]]
name = "a"
[[nodes]]
name = "b"
[[nodes]]
name = "lonely"
[[links]]
a = { node = "a", interface = 'x<y&"z\' }
b = { node = "b", interface = "p|q#r" }
`))
	require.NoError(t, err)
	p, err := topo.Resolve(top)
	require.NoError(t, err)
	tests := []struct {
		format graph.Format
		want   string
	}{
		{graph.Dot, `label="a:x<y&\"z\\ 10.0.0.1/24\nb:p|q#r 10.0.0.2/24"`},
		{graph.Mermaid, `n1 ---|"a:x#lt;y&#quot;z\ 10.0.0.1/24<br/>b:p|q#r 10.0.0.2/24"| n2`},
		{graph.SVG, `a:x&lt;y&amp;&quot;z\ 10.0.0.1/24`},
		{graph.JSON, `"interface": "x\u003cy\u0026\"z\\"`},
	}
	for _, tc := range tests {
		t.Run(string(tc.format), func(t *testing.T) {
			var out bytes.Buffer
			require.NoError(t, graph.Write(&out, p, tc.format))
			require.Contains(t, out.String(), tc.want)
			if tc.format == graph.SVG {
				require.NoError(t, xml.Unmarshal(out.Bytes(), new(struct{})))
			}
		})
	}
}
