package topo_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/nslab/nslab/topo"
	"github.com/stretchr/testify/require"
)

// A link, a switch port and the host attachment take the same impairment
// table; per sending node under from.NODE.
func TestImpairResolved(t *testing.T) {
	top, err := topo.LoadFile("testdata/impair/good.toml")
	require.NoError(t, err)
	p, err := topo.Resolve(top)
	require.NoError(t, err)
	got := map[string][2]string{}
	for _, l := range p.Links {
		got[l.A.Node+"-"+l.B.Node] = [2]string{l.Impair.AB.String(), l.Impair.BA.String()}
	}
	got["host"] = [2]string{p.Host.Impair.AB.String(), p.Host.Impair.BA.String()}
	require.Equal(t, map[string][2]string{
		// dsl: up from home 1.5 Mbit/s... overridden to 2mbit; loss over both.
		"home-isp": {"rate 2Mbit delay 25ms loss 0.1%", "rate 1.5Mbit delay 25ms loss 0.1%"},
		"isp-s1":   {"rate 10Mbit delay 20ms", "rate 10Mbit delay 20ms"},
		"srv-s1":   {"", ""},
		"host":     {"loss 1%", ""},
	}, got)

	// The lab's record keeps the topology as JSON, and a lab opened later
	// resolves it again: the impairments must survive the round trip.
	data, err := json.Marshal(top)
	require.NoError(t, err)
	var back topo.Topology
	require.NoError(t, json.Unmarshal(data, &back))
	p2, err := topo.Resolve(&back)
	require.NoError(t, err)
	for i, l := range p.Links {
		require.Equal(t, l.Impair, p2.Links[i].Impair)
	}
	require.Equal(t, p.Host.Impair, p2.Host.Impair)
}

// Every bad value is reported at once, at its key's file:line:col.
func TestImpairProblems(t *testing.T) {
	top, err := topo.LoadFile("testdata/impair/bad.toml")
	require.NoError(t, err)
	_, err = topo.Resolve(top)
	require.Error(t, err)
	require.True(t, topo.IsBadInput(err))
	if *update {
		require.NoError(t, os.WriteFile("testdata/impair/bad.err", []byte(err.Error()+"\n"), 0o644))
	}
	want, err2 := os.ReadFile("testdata/impair/bad.err")
	require.NoError(t, err2)
	require.Equal(t, strings.TrimSpace(string(want)), err.Error())
}

// A misspelt key in an impairment table, or in one direction's, gets the
// key meant.
func TestImpairUnknownKeys(t *testing.T) {
	_, err := topo.LoadFile("testdata/impair/unknown_key.toml")
	require.Error(t, err)
	require.Equal(t, `testdata/impair/unknown_key.toml:9:1: unknown key "dela" in [links.impair] (did you mean "delay"?)
testdata/impair/unknown_key.toml:11:1: unknown key "rat" in [links.impair.from.a] (did you mean "rate"?)`, err.Error())
}
