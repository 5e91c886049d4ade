package topo

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

// TestUnknownKeys decodes files with misspelt keys in every kind of table
// and checks that each key is reported at once, at its line and column,
// naming the table it is in and the key that was meant.
func TestUnknownKeys(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []string // LINE:COL: MESSAGE, in order
	}{
		{"every_table.toml", []string{
			`4:1: unknown key "routng" in the top-level table (did you mean "routing"?)`,
			`7:1: unknown key "ipv6_subnt" in [addressing] (did you mean "ipv6_subnet"?)`,
			`11:1: unknown key "knd" in [[nodes]] (did you mean "kind"?)`,
			`12:1: unknown key "gatway" in [[nodes]] (did you mean "gateway"?)`,
			`13:33: unknown key "vai" in [[nodes.routes]] (did you mean "via"?)`,
			`16:1: unknown key "outsde" in [nodes.nat] (did you mean "outside"?)`,
			`18:30: unknown key "prt" in [[nodes.nat.forwards]] (did you mean "port"?)`,
			`21:1: unknown key "inptu" in [nodes.firewall] (did you mean "input"?)`,
			`26:1: unknown key "dprt" in [[nodes.firewall.rules]] (did you mean "dport"?)`,
			`37:1: unknown key "mut" in [[links]] (did you mean "mtu"?)`,
			`40:20: unknown key "iface" in [links.a] (did you mean "interface"?)`,
			`41:20: unknown key "adresses" in [links.b] (did you mean "addresses"?)`,
			`45:1: unknown key "interfce" in [host] (did you mean "interface"?)`,
			`46:33: unknown key "dve" in [[host.routes]] (did you mean "dev"?)`,
			`49:1: unknown key "scirpt" in [test] (did you mean "script"?)`,
		}},
		{"top_key_in_table.toml", []string{
			`4:1: unknown key "foo" in the top-level table (known: name, routing, addressing, nodes, links, host, test, capture)`,
			`8:1: unknown key "routing" in [[nodes]] (a top-level key must be written before the first [table] or [[table]] line)`,
			`10:2: unknown key "natt" in [[nodes]] (did you mean "nat"?)`,
			`13:2: unknown key "hosts" in the top-level table (did you mean "host"?)`,
		}},
		{"no_close_key.toml", []string{
			`3:24: unknown key "colour" in [[nodes]] (known: ` + strings.Join(tomlFields(reflect.TypeOf(NodeSpec{})).names, ", ") + `)`,
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			file := filepath.Join("testdata", "unknownkey", tc.file)
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Decode(file, data)
			if !IsBadInput(err) {
				t.Fatalf("Decode: %v, want bad input", err)
			}
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("error is %T, not Problems: %v", err, err)
			}
			var got []string
			for _, p := range ps {
				if p.File != file {
					t.Errorf("problem %q: File = %q, want %q", p.Msg, p.File, file)
				}
				got = append(got, fmt.Sprintf("%d:%d: %s", p.Pos.Line, p.Pos.Col, p.Msg))
			}
			if g, w := strings.Join(got, "\n"), strings.Join(tc.want, "\n"); g != w {
				t.Errorf("problems:\n%s\nwant:\n%s", g, w)
			}
			if want := file + ":" + tc.want[0]; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error text starts %q, want %q", strings.SplitN(err.Error(), "\n", 2)[0], want)
			}
		})
	}
}

// TestKnownKeysAreTheDecoders checks that the keys offered for each table
// are exactly those go-toml decodes into its struct: every key listed is
// accepted, and every key go-toml writes for a filled struct is listed.
func TestKnownKeysAreTheDecoders(t *testing.T) {
	for _, v := range []any{Topology{}, Addressing{}, NodeSpec{}, RouteSpec{}, LinkSpec{}, EndpointSpec{},
		HostSpec{}, TestSpec{}, NATSpec{}, ForwardSpec{}, FirewallSpec{}, FirewallRule{}} {
		typ := reflect.TypeOf(v)
		t.Run(typ.Name(), func(t *testing.T) {
			kf := tomlFields(typ)
			if len(kf.names) == 0 {
				t.Fatal("no keys")
			}
			listed := map[string]bool{}
			for _, k := range kf.names {
				listed[k] = true
				// Any value: a type error is fine, an unknown key is not.
				dst := reflect.New(typ).Interface()
				err := toml.NewDecoder(strings.NewReader(k + " = 1\n")).DisallowUnknownFields().Decode(dst)
				var strict *toml.StrictMissingError
				if errors.As(err, &strict) {
					t.Errorf("key %q is listed but go-toml does not know it: %v", k, err)
				}
			}
			var buf bytes.Buffer
			if err := toml.NewEncoder(&buf).Encode(filled(typ).Interface()); err != nil {
				t.Fatal(err)
			}
			var written map[string]any
			if err := toml.Unmarshal(buf.Bytes(), &written); err != nil {
				t.Fatal(err)
			}
			for k := range written {
				if !listed[k] {
					t.Errorf("go-toml writes key %q, which is not listed in %v", k, kf.names)
				}
			}
			if len(written) != len(kf.names) {
				t.Errorf("go-toml writes %d keys, %d are listed: %v", len(written), len(kf.names), kf.names)
			}
		})
	}
}

// filled returns a value of typ with every field set, so that omitempty
// leaves none out.
func filled(typ reflect.Type) reflect.Value {
	v := reflect.New(typ).Elem()
	for i := 0; i < typ.NumField(); i++ {
		f := v.Field(i)
		if !typ.Field(i).IsExported() {
			continue
		}
		switch f.Kind() {
		case reflect.String:
			f.SetString("x")
		case reflect.Int:
			f.SetInt(1)
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Pointer:
			p := reflect.New(f.Type().Elem())
			if p.Elem().Kind() == reflect.Struct {
				p.Elem().Set(filled(f.Type().Elem()))
			} else if p.Elem().Kind() == reflect.Bool {
				p.Elem().SetBool(true)
			}
			f.Set(p)
		case reflect.Slice:
			s := reflect.MakeSlice(f.Type(), 1, 1)
			switch e := s.Index(0); e.Kind() {
			case reflect.String:
				e.SetString("x")
			case reflect.Int:
				e.SetInt(1)
			case reflect.Struct:
				e.Set(filled(e.Type()))
			}
			f.Set(s)
		case reflect.Map:
			m := reflect.MakeMap(f.Type())
			val := reflect.ValueOf("v")
			if et := f.Type().Elem(); et.Kind() == reflect.Struct {
				val = filled(et)
			}
			m.SetMapIndex(reflect.ValueOf("k"), val)
			f.Set(m)
		case reflect.Interface:
			f.Set(reflect.ValueOf("x"))
		case reflect.Struct:
			f.Set(filled(f.Type()))
		}
	}
	return v
}

// TestTomlFields checks the reading of tags on a struct made for it.
func TestTomlFields(t *testing.T) {
	type Inner struct {
		Deep string `toml:"deep"`
	}
	type sample struct {
		Inner            // untagged embedded: its keys in place
		A      string    `toml:"a,omitempty"`
		Skip   string    `toml:"-"`
		Plain  int       // untagged: its Go name
		hidden int       // unexported: not a key
		Tab    *struct{} `toml:"tab"`
	}
	got := tomlFields(reflect.TypeOf(sample{})).names
	want := []string{"deep", "a", "Plain", "tab"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("tomlFields = %v, want %v", got, want)
	}
}

func TestSuggestKey(t *testing.T) {
	nodeKeys := tomlFields(reflect.TypeOf(NodeSpec{})).names
	endKeys := tomlFields(reflect.TypeOf(EndpointSpec{})).names
	for _, tc := range []struct {
		key   string
		known []string
		want  string
	}{
		{"knd", nodeKeys, ` (did you mean "kind"?)`},
		{"gatway", nodeKeys, ` (did you mean "gateway"?)`},
		{"gateway_6", nodeKeys, ` (did you mean "gateway6"?)`},
		{"iface", endKeys, ` (did you mean "interface"?)`}, // an abbreviation, not a near spelling
		{"addrs", endKeys, ` (did you mean "addresses"?)`}, // ditto
		{"colour", endKeys, ` (known: node, interface, mac, addresses)`},
	} {
		if got := suggestKey(tc.key, tc.known); got != tc.want {
			t.Errorf("suggestKey(%q) = %q, want %q", tc.key, got, tc.want)
		}
	}
}
