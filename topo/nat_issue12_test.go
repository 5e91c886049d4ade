package topo_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/nslab/nslab/topo"
	"github.com/stretchr/testify/require"
)

// natGateway is a topology with one NAT gateway; natLines go into its
// [nodes.nat] table from line 13 on.
func natGateway(natLines string) string {
	return `name = "e"

[[nodes]]
name = "lan"
kind = "switch"

[[nodes]]
name = "gw"
kind = "router"
[nodes.nat]
outside = "wan"
masquerade = true
` + natLines + `
[[nodes]]
name = "client"
gateway = "192.168.1.1"

[[nodes]]
name = "server"

[[links]]
a = { node = "gw", interface = "lan", addresses = ["192.168.1.1/24"] }
b = { node = "lan" }

[[links]]
a = { node = "client", addresses = ["192.168.1.2/24"] }
b = { node = "lan" }

[[links]]
a = { node = "gw", interface = "wan", addresses = ["203.0.113.1/24"] }
b = { node = "server", addresses = ["203.0.113.10/24"] }
`
}

// An empty profile, mapping or filtering is bad input placed at its line
// (not plain masquerade), and an unknown profile lists the known ones
// once, with a suggestion only when one is close (issue 12, items 14, 15).
func TestNATBehaviourNameErrors(t *testing.T) {
	const (
		profiles   = "full-cone, restricted-cone, port-restricted, symmetric"
		behaviours = "endpoint-independent, address-dependent, address-and-port-dependent"
	)
	for _, tc := range []struct {
		name, lines string
		want        []string // every problem, in order
	}{
		{"empty profile", `profile = ""`, []string{
			`e.toml:13:1: node "gw": profile is empty: write one of ` + profiles + `, or leave profile out`}},
		{"empty mapping", `mapping = ""`, []string{
			`e.toml:13:1: node "gw": mapping is empty: write one of ` + behaviours + `, or leave mapping out`}},
		{"empty filtering", `filtering = ""`, []string{
			`e.toml:13:1: node "gw": filtering is empty: write one of ` + behaviours + `, or leave filtering out`}},
		{"all three empty", "profile = \"\"\nmapping = \"\"\nfiltering = \"\"", []string{
			`e.toml:13:1: node "gw": profile is empty: write one of ` + profiles + `, or leave profile out`,
			`e.toml:14:1: node "gw": mapping is empty: write one of ` + behaviours + `, or leave mapping out`,
			`e.toml:15:1: node "gw": filtering is empty: write one of ` + behaviours + `, or leave filtering out`}},
		{"empty mapping beside a profile", "profile = \"full-cone\"\nmapping = \"\"", []string{
			`e.toml:14:1: node "gw": mapping is empty: write one of ` + behaviours + `, or leave mapping out`}},
		{"empty filtering beside a mapping", "mapping = \"endpoint-independent\"\nfiltering = \"\"", []string{
			`e.toml:14:1: node "gw": filtering is empty: write one of ` + behaviours + `, or leave filtering out`}},
		{"unknown profile, nothing close", `profile = "cone"`, []string{
			`e.toml:13:1: node "gw": unknown NAT profile "cone" (known: ` + profiles + `)`}},
		{"unknown profile, one close", `profile = "full-cones"`, []string{
			`e.toml:13:1: node "gw": unknown NAT profile "full-cones" (known: ` + profiles + `) (did you mean "full-cone"?)`}},
		{"unknown mapping", `mapping = "random"`, []string{
			`e.toml:13:1: node "gw": unknown mapping "random" (known: ` + behaviours + `)`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			top, err := topo.Decode("e.toml", []byte(natGateway(tc.lines)))
			require.NoError(t, err)
			_, err = topo.Resolve(top)
			require.Error(t, err)
			require.True(t, topo.IsBadInput(err), "bad input: %v", err)
			var ps topo.Problems
			require.True(t, errors.As(err, &ps), "%T: %v", err, err)
			got := make([]string, len(ps))
			for i, p := range ps {
				got[i] = p.String()
				require.LessOrEqual(t, strings.Count(got[i], profiles)+strings.Count(got[i], behaviours), 1, "one list of names at most: %s", got[i])
			}
			require.Equal(t, tc.want, got)
		})
	}
}

// The same topology with the names left out, or written, resolves: the
// errors above are about "" only.
func TestNATBehaviourNamesGiven(t *testing.T) {
	for _, lines := range []string{"", `profile = "port-restricted"`, "mapping = \"endpoint-independent\"\nfiltering = \"address-dependent\""} {
		top, err := topo.Decode("e.toml", []byte(natGateway(lines)))
		require.NoError(t, err)
		_, err = topo.Resolve(top)
		require.NoError(t, err, lines)
	}
}
