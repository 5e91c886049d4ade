package emulator

import (
	"testing"

	"github.com/nslab/nslab/internal/ebpfswitch"
	"github.com/nslab/nslab/topo"
	"github.com/stretchr/testify/require"
)

// The switch program's maps are sized for the lab: its eBPF switches,
// their ports, and for each switch the MACs of its L2 segment.
func TestEBPFSize(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want ebpfswitch.Size
	}{
		// s1: h1, s2; s2: h2, s1, s3; s3: h3, s2. One segment of three hosts.
		{"linear,3", ebpfswitch.Size{Switches: 3, Ports: 7, MACs: 9}},
		// One switch of five hosts.
		{"single,5", ebpfswitch.Size{Switches: 1, Ports: 5, MACs: 5}},
		// tree,2,2: three switches, four hosts, one segment.
		{"tree,2,2", ebpfswitch.Size{Switches: 3, Ports: 8, MACs: 12}},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			top, err := topo.Generate(tc.spec, "sz")
			require.NoError(t, err)
			for i := range top.Nodes {
				if top.Nodes[i].Kind == topo.KindSwitch {
					top.Nodes[i].Datapath = topo.DatapathEBPF
				}
			}
			p, err := topo.Resolve(top)
			require.NoError(t, err)
			require.Equal(t, tc.want, ebpfSize(p))
		})
	}
	// A plan of bridges needs no map at all.
	top, err := topo.Generate("linear,3", "sz")
	require.NoError(t, err)
	p, err := topo.Resolve(top)
	require.NoError(t, err)
	require.Equal(t, ebpfswitch.Size{}, ebpfSize(p))
}
