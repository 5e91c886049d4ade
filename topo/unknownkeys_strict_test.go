package topo

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/pelletier/go-toml/v2"
	"github.com/stretchr/testify/require"
)

// Decode finds unknown keys from its source map (one pass) rather than by
// go-toml's strict mode (quadratic): both must find the same keys, at the
// same places, in every file of testdata and topologies and in the cases
// below, which put unknown keys where strict mode looks: top level, tables,
// arrays of tables, inline tables, arrays of inline tables, tables by name
// and under an unknown key.
func TestUnknownKeysAgreeWithStrictMode(t *testing.T) {
	files, err := filepath.Glob("testdata/*/*.toml")
	require.NoError(t, err)
	examples, err := filepath.Glob("../topologies/*.toml")
	require.NoError(t, err)
	files = append(files, examples...)
	cases := map[string]string{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		cases[f] = string(data)
	}
	cases["crafted"] = `name = "x"
bogus = 1
[addressing]
ipv4 = "10.0.0.0/8"
wrong = 2
[[nodes]]
name = "r"
kind = "router"
routes = [{to = "10.1.0.0/16", via = "10.0.0.1", metricz = 3}]
nat = {profile = "full-cone", outside = "eth1", colour = "red"}
[nodes.sysctls]
"net.ipv4.ip_forward" = "1"
[[nodes]]
name = "h"
[nodes.unknown]
a = 1
b = {c = 2}
[[links]]
endpoints = ["r", "h"]
mtux = 1500
[links.impair]
delay = "10ms"
speed = "fast"
[links.impair.from.r]
loss = "1%"
jitterz = "1ms"
[host]
interface = "veth0"
extra = true
`
	for name, data := range cases {
		want := strictUnknown(t, []byte(data))
		var got []string
		_, err := Decode(name, []byte(data))
		var ps Problems
		if errors.As(err, &ps) {
			for _, p := range ps {
				if bytes.HasPrefix([]byte(p.Msg), []byte("unknown key")) {
					got = append(got, fmt.Sprintf("%d:%d", p.Pos.Line, p.Pos.Col))
				}
			}
		}
		sort.Strings(got)
		require.Equal(t, want, got, "%s: %v", name, err)
		if name == "crafted" {
			require.Len(t, got, 9, "every planted key: %v", err)
		}
	}
}

// strictUnknown lists where go-toml's strict mode finds unknown keys.
func strictUnknown(t *testing.T, data []byte) []string {
	var top Topology
	err := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields().Decode(&top)
	var strict *toml.StrictMissingError
	var out []string
	if errors.As(err, &strict) {
		for _, e := range strict.Errors {
			line, col := e.Position()
			out = append(out, fmt.Sprintf("%d:%d", line, col))
		}
	}
	sort.Strings(out)
	return out
}
