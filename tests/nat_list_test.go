package tests

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/nslab/nslab/topo"
	"github.com/stretchr/testify/require"
)

// `nft list ruleset` (the machine's nft, Debian's nftables package) lists
// the tables of a gateway with every profile and every rule a behaviour
// adds. It used to abort in each gateway whose chain postnat filled a map
// (netlink_parse_concat_expr: Assertion `consumed > 0' failed, nft 1.0.6):
// the rule loaded the generic `ct original saddr` into a concatenation
// (issue 12, item 16).
func TestNATRulesetLists(t *testing.T) {
	t.Parallel()
	nft, err := exec.LookPath("nft")
	require.NoError(t, err, "the nft binary (package nftables) is needed to list what nslab wrote")
	const (
		fillMappings = `update @mappings { udp sport timeout 2m : ct original ip saddr . ct original proto-src }`
		fillKept     = `update @kept { ct original ip saddr . ct original proto-src timeout 2m : udp sport }`
		hairpin      = `oifname != "wan" ct original ip daddr 203.0.113.1 snat to 203.0.113.1`
	)
	for _, tc := range []struct {
		name string
		spec topo.NATSpec
		want []string // lines of the ip table, besides its name
	}{
		{"full-cone", topo.NATSpec{Profile: "full-cone"}, []string{fillMappings, `iifname "wan" dnat ip to udp dport map @mappings`}},
		{"restricted-cone", topo.NATSpec{Profile: "restricted-cone"}, []string{fillMappings, `update @peers { ip daddr . udp sport timeout 2m }`}},
		{"port-restricted", topo.NATSpec{Profile: "port-restricted"}, []string{`oifname "wan" iifname != "wan" masquerade`}},
		{"symmetric", topo.NATSpec{Profile: "symmetric"}, []string{`masquerade fully-random`}},
		{"port-restricted+random-ports", topo.NATSpec{Profile: "port-restricted", PortPreservation: new(false)}, []string{fillKept, `snat to 203.0.113.1:ip saddr . udp sport map @kept`}},
		{"full-cone+random-ports+hairpin", topo.NATSpec{Profile: "full-cone", PortPreservation: new(false), Hairpinning: true}, []string{fillMappings, fillKept, hairpin}},
		{"port-restricted+hairpin", topo.NATSpec{Profile: "port-restricted", Hairpinning: true}, []string{fillMappings, hairpin}},
		{"mapping and filtering", topo.NATSpec{Mapping: topo.EndpointIndependent, Filtering: topo.AddressDependent}, []string{fillMappings}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			lab := profileLab(t, tc.spec)
			var ns string
			for _, n := range lab.Plan.Nodes {
				if n.Name == "gw" {
					ns = n.Namespace
				}
			}
			require.NotEmpty(t, ns)
			out, err := inNetns(netnsPath(ns), nft, "list", "ruleset").CombinedOutput()
			require.NoError(t, err, "nft list ruleset in %s:\n%s", ns, out)
			table := "table ip " + "nslab-" + lab.Name() + " {"
			require.Contains(t, string(out), "table inet nslab-"+lab.Name()+" {")
			require.Contains(t, string(out), table)
			ipTable := string(out[strings.Index(string(out), table):])
			for _, line := range tc.want {
				require.Contains(t, ipTable, line)
			}
			// The table by itself lists too.
			out, err = inNetns(netnsPath(ns), nft, "list", "table", "ip", "nslab-"+lab.Name()).CombinedOutput()
			require.NoError(t, err, "%s", out)
		})
	}
}

// `nslab validate` refuses an empty profile, mapping or filtering (exit 2,
// file:line:col), and names the known profiles once (issue 12, items 14
// and 15).
func TestNATValidateBehaviourNames(t *testing.T) {
	t.Parallel()
	gateway := func(lines string) string {
		return `name = "names"

[[nodes]]
name = "gw"
kind = "router"
[nodes.nat]
outside = "wan"
masquerade = true
` + lines + `

[[nodes]]
name = "client"

[[nodes]]
name = "server"

[[links]]
a = { node = "gw", interface = "lan", addresses = ["192.168.1.1/24"] }
b = { node = "client", addresses = ["192.168.1.2/24"] }

[[links]]
a = { node = "gw", interface = "wan", addresses = ["203.0.113.1/24"] }
b = { node = "server", addresses = ["203.0.113.10/24"] }
`
	}
	const profiles = "full-cone, restricted-cone, port-restricted, symmetric"
	for _, tc := range []struct {
		lines string
		want  []string
	}{
		{"profile = \"\"", []string{`:9:1: node "gw": profile is empty: write one of ` + profiles + `, or leave profile out`}},
		{"mapping = \"\"\nfiltering = \"\"", []string{
			`:9:1: node "gw": mapping is empty: write one of endpoint-independent, address-dependent, address-and-port-dependent, or leave mapping out`,
			`:10:1: node "gw": filtering is empty: write one of endpoint-independent, address-dependent, address-and-port-dependent, or leave filtering out`}},
		{"profile = \"cone\"", []string{`:9:1: node "gw": unknown NAT profile "cone" (known: ` + profiles + ")\n"}},
	} {
		f := writeTopology(t, gateway(tc.lines))
		out, errs, code := cli(t, "", "validate", f)
		require.Equal(t, 2, code, "%s%s", out, errs)
		for _, w := range tc.want {
			require.Contains(t, errs, f+w)
		}
		require.LessOrEqual(t, strings.Count(errs, profiles), 1, errs)
	}
	// Written out, the same file is valid.
	f := writeTopology(t, gateway(`profile = "full-cone"`))
	_, errs, code := cli(t, "", "validate", f)
	require.Equal(t, 0, code, errs)
}
