package impair

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

var update = flag.Bool("update", false, "rewrite the .want and .err files of testdata/ from what the code gives")

// fixture is one file of testdata/good or testdata/bad: a link's
// endpoints and the impairment table it carries, as a topology writes it.
type fixture struct {
	Endpoints []string `toml:"endpoints"`
	Impair    *Spec    `toml:"impair"`
}

func decodeFixture(t *testing.T, path string) (fixture, []byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f fixture
	if err := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields().Decode(&f); err != nil {
		t.Fatalf("%s: strict decoding: %v", path, err)
	}
	if len(f.Endpoints) != 2 {
		t.Fatalf("%s: endpoints must name two nodes", path)
	}
	return f, data
}

// TestSpecGood resolves each testdata/good/*.toml and compares both
// directions, in tc's words, with its .want file.
func TestSpecGood(t *testing.T) {
	files, _ := filepath.Glob("testdata/good/*.toml")
	if len(files) < 10 {
		t.Fatalf("found %d good fixtures, want at least 10", len(files))
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			f, _ := decodeFixture(t, file)
			a, b := f.Endpoints[0], f.Endpoints[1]
			l, ps := f.Impair.Resolve(a, b)
			if ps != nil {
				t.Fatalf("problems:\n%v", ps)
			}
			got := fmt.Sprintf("%s -> %s: %s\n%s -> %s: %s\n", a, b, orNone(l.AB), b, a, orNone(l.BA))
			compareFile(t, strings.TrimSuffix(file, ".toml")+".want", got)
			// What Resolve gives passes Validate, and its words read back.
			for _, d := range []Direction{l.AB, l.BA} {
				if err := d.Validate(); err != nil {
					t.Errorf("Validate(%v): %v", d, err)
				}
				back, err := Parse(d.Words())
				if err != nil || !sameDirection(back, d) {
					t.Errorf("Parse(%q) = %v, %v; want %v", d.Words(), back, err, d)
				}
			}
		})
	}
}

// TestSpecBad resolves each testdata/bad/*.toml and compares every
// problem, placed at the line and column of its key in the file, with
// its .err file: each problem's path must name a key written there.
func TestSpecBad(t *testing.T) {
	files, _ := filepath.Glob("testdata/bad/*.toml")
	if len(files) < 5 {
		t.Fatalf("found %d bad fixtures, want at least 5", len(files))
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			f, data := decodeFixture(t, file)
			pos := keyPositions(t, data)
			l, ps := f.Impair.Resolve(f.Endpoints[0], f.Endpoints[1])
			if len(ps) == 0 {
				t.Fatalf("no problems; resolved to %v", l.Format(f.Endpoints[0], f.Endpoints[1]))
			}
			if !l.IsZero() {
				t.Errorf("a spec with problems resolved to %v, want the zero Link", l.Format(f.Endpoints[0], f.Endpoints[1]))
			}
			var got strings.Builder
			for _, p := range ps {
				at, ok := pos["impair."+p.Path]
				if !ok {
					t.Errorf("problem %q: no key %q in the file to place it at", p, "impair."+p.Path)
				}
				fmt.Fprintf(&got, "%s: %s\n", at, p)
			}
			compareFile(t, strings.TrimSuffix(file, ".toml")+".err", got.String())
		})
	}
}

func orNone(d Direction) string {
	if d.IsZero() {
		return "none"
	}
	return d.String()
}

// sameDirection compares two directions, the loss model's H within a
// rounding error (the words write 100-H).
func sameDirection(a, b Direction) bool {
	ma, mb := a.LossModel, b.LossModel
	a.LossModel, b.LossModel = nil, nil
	if a != b || (ma == nil) != (mb == nil) {
		return false
	}
	if ma == nil {
		return true
	}
	near := func(x, y float64) bool { return x-y < 1e-9 && y-x < 1e-9 }
	return near(ma.P, mb.P) && near(ma.R, mb.R) && near(ma.H, mb.H) && near(ma.K, mb.K)
}

func compareFile(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -run %s -update writes it; read it before committing)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("%s differs:\n--- got\n%s--- want\n%s", path, got, want)
	}
}

// keyPositions maps each key path of a TOML document ("impair.from.home.rate",
// keys of inline tables included) to "line:col" of its key, as a
// topology decoder places a problem.
func keyPositions(t *testing.T, data []byte) map[string]string {
	t.Helper()
	pos := map[string]string{}
	p := unstable.Parser{}
	p.Reset(data)
	at := func(n *unstable.Node) string {
		sh := p.Shape(p.Range(n.Data))
		return fmt.Sprintf("%d:%d", sh.Start.Line, sh.Start.Column)
	}
	keyOf := func(it unstable.Iterator) (string, string) {
		var parts []string
		first := ""
		for it.Next() {
			if first == "" {
				first = at(it.Node())
			}
			parts = append(parts, string(it.Node().Data))
		}
		return strings.Join(parts, "."), first
	}
	var walk func(prefix string, v *unstable.Node)
	walk = func(prefix string, v *unstable.Node) {
		if v.Kind != unstable.InlineTable {
			return
		}
		for it := v.Children(); it.Next(); {
			kv := it.Node()
			k, kp := keyOf(kv.Key())
			// A dotted key also defines its parents: from.home.rate
			// defines from and from.home where it is written.
			parts := strings.Split(k, ".")
			for i := range parts {
				path := prefix + "." + strings.Join(parts[:i+1], ".")
				if _, seen := pos[path]; !seen {
					pos[path] = kp
				}
			}
			walk(prefix+"."+k, kv.Value())
		}
	}
	prefix := ""
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table:
			k, kp := keyOf(e.Key())
			prefix = k
			pos[k] = kp
		case unstable.KeyValue:
			k, kp := keyOf(e.Key())
			full := k
			if prefix != "" {
				full = prefix + "." + k
			}
			parts := strings.Split(full, ".")
			for i := range parts {
				path := strings.Join(parts[:i+1], ".")
				if _, seen := pos[path]; !seen {
					pos[path] = kp
				}
			}
			walk(full, e.Value())
		}
	}
	if err := p.Error(); err != nil {
		t.Fatal(err)
	}
	return pos
}

// TestStrictDecoding: the decoder's strict mode refuses an unknown key
// anywhere in the table, in a from.NODE table and in loss_model too (the
// Spec is plain structs and a map of them), and a form TOML does not
// allow: extending an inline table with a [table] header.
func TestStrictDecoding(t *testing.T) {
	for _, tc := range []struct{ name, doc, want string }{
		{"top", "endpoints = [\"a\", \"b\"]\n[impair]\ndealy = \"1ms\"\n", "strict mode"},
		{"from", "endpoints = [\"a\", \"b\"]\n[impair.from.a]\nrat = \"1mbit\"\n", "strict mode"},
		{"loss_model", "endpoints = [\"a\", \"b\"]\n[impair]\nloss_model = { p = \"1%\", q = \"2%\" }\n", "strict mode"},
		{"profile per direction", "endpoints = [\"a\", \"b\"]\n[impair.from.a]\nprofile = \"dsl\"\n", "strict mode"},
		{"inline then header", "endpoints = [\"a\", \"b\"]\nimpair = { profile = \"dsl\" }\n[impair.from.a]\nrate = \"1mbit\"\n", "already exists"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var f fixture
			err := toml.NewDecoder(strings.NewReader(tc.doc)).DisallowUnknownFields().Decode(&f)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("decode error %v, want one that says %q", err, tc.want)
			}
		})
	}
}

// TestKeysMatchTags: the keys Resolve and Parse read are exactly the toml
// tags of Params, LossModelSpec and Spec, in the same order.
func TestKeysMatchTags(t *testing.T) {
	tags := func(v any) []string {
		var out []string
		rt := reflect.TypeOf(v)
		for i := 0; i < rt.NumField(); i++ {
			f := rt.Field(i)
			tag, ok := f.Tag.Lookup("toml")
			if !ok {
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			if jt, _, _ := strings.Cut(f.Tag.Get("json"), ","); jt != name {
				t.Errorf("%s.%s: json name %q, toml name %q", rt.Name(), f.Name, jt, name)
			}
			out = append(out, name)
		}
		return out
	}
	var want []string
	for _, k := range tags(Params{}) {
		if k == "loss_model" {
			for _, m := range tags(LossModelSpec{}) {
				want = append(want, "loss_model."+m)
			}
			continue
		}
		want = append(want, k)
	}
	// Keys puts loss_model's keys after loss_correlation, where Params
	// has the field.
	want = append(want, "profile", "user", "from")
	if got := Keys(); !reflect.DeepEqual(got, want) {
		t.Errorf("Keys() = %q\nwant      %q", got, want)
	}
	if got := tags(Spec{}); !reflect.DeepEqual(got, []string{"profile", "user", "from"}) {
		t.Errorf("Spec's own keys = %q", got)
	}
}

// TestIsZero: a Spec that says nothing resolves to a plain link.
func TestIsZero(t *testing.T) {
	var nilSpec *Spec
	for _, s := range []*Spec{nilSpec, {}, {From: map[string]Params{"a": {}}}} {
		if !s.IsZero() {
			t.Errorf("%+v: IsZero false", s)
		}
		if l, ps := s.Resolve("a", "b"); !l.IsZero() || ps != nil {
			t.Errorf("%+v resolved to %v, %v", s, l, ps)
		}
	}
	for _, s := range []*Spec{{Profile: "dsl"}, {Params: Params{Loss: "0"}}, {From: map[string]Params{"a": {LossModel: &LossModelSpec{}}}}} {
		if s.IsZero() {
			t.Errorf("%+v: IsZero true", s)
		}
	}
}

// TestProfileRemovedValue: a key written over a profile that leaves one
// of the profile's values without what it needs is reported where the
// user wrote it, naming the profile. No built-in profile has such a pair
// today (jitter, limit, reorder...), so the check is driven directly.
func TestProfileRemovedValue(t *testing.T) {
	prof := profileLayer(Direction{Delay: 50e6, Jitter: 5e6})
	user := newLayer()
	user.path["delay"] = "from.home.delay" // delay = "0"
	got := checkDirection(mergeLayers(prof, user), "x")
	want := Problems{{Path: "from.home.delay",
		Msg: `0 leaves the jitter 5ms of profile "x" without a delay (netem varies the delay by up to the jitter): set jitter to 0 as well`}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}
