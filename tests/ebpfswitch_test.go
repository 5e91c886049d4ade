package tests

import (
	"context"
	"testing"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/emulator/nslabtest"
	"github.com/nslab/nslab/topo"
	"github.com/stretchr/testify/require"
)

// ebpfTopology is h1..h3 on s1, h4 on s2, s1 and s2 joined: two eBPF
// switches, or s2 a bridge when mixed.
func ebpfTopology(mixed bool) *topo.Topology {
	top := topo.NewBuilder("ebsw").Switch("s1").Switch("s2").
		Host("h1").Host("h2").Host("h3").Host("h4").
		Link("h1", "s1").Link("h2", "s1").Link("h3", "s1").Link("s1", "s2").Link("h4", "s2").Topology()
	for i := range top.Nodes {
		if top.Nodes[i].Kind == topo.KindSwitch && (!mixed || top.Nodes[i].Name == "s1") {
			top.Nodes[i].Datapath = topo.DatapathEBPF
		}
	}
	return top
}

// Switches of the "ebpf" datapath carry a lab as bridges do: every host
// reaches every other (ARP and ICMP across one and two switches, beside a
// bridge too), TCP and UDP pass, a port keeps impairments (the loss on its
// egress beside the switch on its ingress), and the switch node has no
// bridge device.
func TestEBPFSwitch(t *testing.T) {
	t.Parallel()
	if rootlessRun() {
		// Not a skip: what a user without the privilege gets is a clear
		// refusal, before anything is built.
		plan, err := topo.Resolve(ebpfTopology(false))
		require.NoError(t, err)
		plan.Lab = uniqueName("ebsw")
		_, err = emulator.Up(context.Background(), plan, emulator.Options{})
		require.ErrorContains(t, err, `a switch with datapath "ebpf" needs nslab's eBPF switch program, which this kernel or user cannot load`)
		return
	}
	for _, mixed := range []bool{false, true} {
		name := "ebpf"
		if mixed {
			name = "mixed"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			lab := nslabtest.Start(t, ebpfTopology(mixed))
			lab.RequireMatrix("h1", "h2", "h3", "h4")
			lab.RequireTCP("h1", "h4", 8080)
			lab.RequireUDP("h4", "h2", 5353)
			res := lab.Exec("s1", "ip", "-o", "link", "show", "type", "bridge")
			require.Equal(t, 0, res.ExitCode, res.Stderr)
			require.Empty(t, string(res.Stdout), "an eBPF switch has no bridge")
			lab.Impair("s1", "h2", "loss=100%")
			lab.RequireUnreachable("h1", "h2")
			lab.RequireReachable("h1", "h3")
			lab.Impair("s1", "h2")
			lab.RequireReachable("h1", "h2")
		})
	}
}
