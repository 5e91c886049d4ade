package tests

import (
	"context"
	"errors"
	"testing"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/emulator/nslabtest"
	"github.com/nslab/nslab/topo"
	"github.com/stretchr/testify/require"
)

// The classifier of the test API, over every preset: each is classified
// as what it promises.
func TestClassifyNATProfiles(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		profile            string
		mapping, filtering topo.Behaviour
		preserved          bool
	}{
		{"full-cone", topo.EndpointIndependent, topo.EndpointIndependent, true},
		{"restricted-cone", topo.EndpointIndependent, topo.AddressDependent, true},
		{"port-restricted", topo.EndpointIndependent, topo.AddressAndPortDependent, true},
		{"symmetric", topo.AddressAndPortDependent, topo.AddressAndPortDependent, false},
	} {
		t.Run(tc.profile, func(t *testing.T) {
			t.Parallel()
			top := profileLabTopology(topo.NATSpec{Profile: tc.profile})
			lab := nslabtest.Start(t, top)
			b := lab.RequireNAT("client", "net", tc.mapping, tc.filtering)
			require.Equal(t, tc.preserved, b.PortPreservation)
			require.Equal(t, "203.0.113.1", b.Mapped.Addr().String())
		})
	}
}

func TestClassifyNATBadInput(t *testing.T) {
	t.Parallel()
	lab := nslabtest.StartFile(t, "../topologies/routed.toml")
	_, err := lab.Engine().ClassifyNAT(context.Background(), "h1", "h3")
	require.Error(t, err)
	require.True(t, topo.IsBadInput(err))
	require.Contains(t, err.Error(), `outside node "h3" needs three IPv4 addresses`)

	top := profileLabTopology(topo.NATSpec{Profile: "full-cone"})
	nat := nslabtest.Start(t, top)
	_, err = nat.Engine().ClassifyNAT(context.Background(), "client", "client2")
	require.Error(t, err)
	_, err = nat.Engine().ClassifyNAT(context.Background(), "lan", "net")
	require.ErrorContains(t, err, `node "lan" is a switch`)
	_, err = nat.Engine().ClassifyNAT(context.Background(), "client", "nosuch")
	require.ErrorContains(t, err, `no node "nosuch"`)

	// A path with no NAT: gw's own traffic to net is not translated.
	_, err = nat.Engine().ClassifyNAT(context.Background(), "gw", "net")
	require.True(t, errors.Is(err, emulator.ErrNoNAT), "%v", err)
}

func TestNslabtestHairpinsAndTransportMatrix(t *testing.T) {
	t.Parallel()
	t.Run("hairpin", func(t *testing.T) {
		t.Parallel()
		lab := nslabtest.Start(t, profileLabTopology(topo.NATSpec{Profile: "full-cone", Hairpinning: true}))
		require.True(t, lab.Hairpins("client", "client2", "net"))
	})
	t.Run("no hairpin", func(t *testing.T) {
		t.Parallel()
		lab := nslabtest.Start(t, profileLabTopology(topo.NATSpec{Profile: "full-cone"}))
		require.False(t, lab.Hairpins("client", "client2", "net"))
	})
	t.Run("matrix", func(t *testing.T) {
		t.Parallel()
		lab := nslabtest.StartFile(t, "../topologies/lan.toml")
		lab.RequireMatrixTCP(7001)
		lab.RequireMatrixUDP(7002)
	})
}

// With snat to one address, the profile's maps and hairpinning use that
// address, not the outside interface's first one.
func TestNATProfileWithSNATAddress(t *testing.T) {
	t.Parallel()
	top := profileLabTopology(topo.NATSpec{Profile: "full-cone", Hairpinning: true})
	for i := range top.Nodes {
		if top.Nodes[i].Name == "gw" {
			top.Nodes[i].NAT.Masquerade = false
			top.Nodes[i].NAT.SNAT = "203.0.113.5"
		}
	}
	top.Links[3].A.Addresses = append(top.Links[3].A.Addresses, "203.0.113.5/24")
	lab := nslabtest.Start(t, top)
	b := lab.RequireNAT("client", "net", topo.EndpointIndependent, topo.EndpointIndependent)
	require.Equal(t, "203.0.113.5", b.Mapped.Addr().String())
	require.True(t, lab.Hairpins("client", "client2", "net"))
}
