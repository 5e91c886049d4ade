package tests

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/topo"
	"github.com/stretchr/testify/require"
)

// profileLab: client and client2 behind gateway gw (outside 203.0.113.1),
// and one "internet" node with three addresses, .10, .11 and .12.
func profileLab(t *testing.T, nat topo.NATSpec) *emulator.Lab {
	t.Helper()
	top := profileLabTopology(nat)
	top.Name = uniqueName("prof")
	return startLab(t, top, emulator.Options{})
}

func profileLabTopology(nat topo.NATSpec) *topo.Topology {
	nat.Outside = "wan"
	nat.Masquerade = true
	return &topo.Topology{
		Name: "prof",
		Nodes: []topo.NodeSpec{
			{Name: "lan", Kind: topo.KindSwitch},
			{Name: "client", Gateway: "192.168.1.1"},
			{Name: "client2", Gateway: "192.168.1.1"},
			{Name: "gw", Kind: topo.KindRouter, NAT: &nat},
			{Name: "net"},
		},
		Links: []topo.LinkSpec{
			{A: &topo.EndpointSpec{Node: "gw", Interface: "lan", Addresses: []string{"192.168.1.1/24"}}, B: &topo.EndpointSpec{Node: "lan"}},
			{A: &topo.EndpointSpec{Node: "client", Addresses: []string{"192.168.1.2/24"}}, B: &topo.EndpointSpec{Node: "lan"}},
			{A: &topo.EndpointSpec{Node: "client2", Addresses: []string{"192.168.1.3/24"}}, B: &topo.EndpointSpec{Node: "lan"}},
			{A: &topo.EndpointSpec{Node: "gw", Interface: "wan", Addresses: []string{"203.0.113.1/24"}},
				B: &topo.EndpointSpec{Node: "net", Addresses: []string{"203.0.113.10/24", "203.0.113.11/24", "203.0.113.12/24"}}},
		},
	}
}

// observed is what one probe table found.
type observed struct {
	mapping, filtering topo.Behaviour
	preserved          bool
	hairpin            bool
}

// probeTable runs RFC 4787's tests from one inside socket: the same socket
// to two ports of one outside address and to a second address (mapping),
// then unsolicited packets to its mapping from a new port of a contacted
// address and from an address never contacted (filtering), and from
// another inside host to the mapping (hairpinning).
func probeTable(t *testing.T, lab *emulator.Lab) observed {
	t.Helper()
	const inside = 40000
	sock, err := lab.ListenUDP("client", netip.AddrPortFrom(netip.Addr{}, inside))
	require.NoError(t, err)
	defer sock.Close()
	listen := func(node, a string) *net.UDPConn {
		c, err := lab.ListenUDP(node, ap(a))
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		return c
	}
	a1 := listen("net", "203.0.113.10:3478")
	a2 := listen("net", "203.0.113.10:3479")
	b1 := listen("net", "203.0.113.11:3478")
	mapped := func(dst *net.UDPConn) netip.AddrPort {
		to := dst.LocalAddr().(*net.UDPAddr).AddrPort()
		_, err := sock.WriteToUDPAddrPort([]byte("hello"), to)
		require.NoError(t, err)
		dst.SetReadDeadline(time.Now().Add(time.Second))
		buf := make([]byte, 64)
		_, from, err := dst.ReadFromUDPAddrPort(buf)
		require.NoError(t, err, "probe to %s got through", to)
		return from
	}
	m1, m2, m3 := mapped(a1), mapped(a2), mapped(b1)
	var o observed
	switch {
	case m1 == m2 && m2 == m3:
		o.mapping = topo.EndpointIndependent
	case m1 == m2:
		o.mapping = topo.AddressDependent
	default:
		o.mapping = topo.AddressAndPortDependent
	}
	o.preserved = m1.Port() == inside
	require.Equal(t, "203.0.113.1", m1.Addr().String())

	arrives := func(from *net.UDPConn) bool {
		_, err := from.WriteToUDPAddrPort([]byte("unsolicited"), m1)
		require.NoError(t, err)
		sock.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		buf := make([]byte, 64)
		for {
			n, _, err := sock.ReadFromUDPAddrPort(buf)
			if err != nil {
				return false
			}
			if string(buf[:n]) == "unsolicited" {
				return true
			}
		}
	}
	newPort := listen("net", "203.0.113.10:5000") // contacted address, new port
	newAddr := listen("net", "203.0.113.12:3478") // address never contacted
	switch {
	case arrives(newAddr):
		o.filtering = topo.EndpointIndependent
	case arrives(newPort):
		o.filtering = topo.AddressDependent
	default:
		o.filtering = topo.AddressAndPortDependent
	}
	// The contacted endpoint itself always gets through.
	require.True(t, arrives(a1), "the endpoint the client talked to is let in")

	// Hairpinning: client2 sends to the client's mapping.
	other := listen("client2", "0.0.0.0:40001")
	if _, err := other.WriteToUDPAddrPort([]byte("hairpin"), m1); err == nil {
		sock.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		buf := make([]byte, 64)
		for {
			n, from, err := sock.ReadFromUDPAddrPort(buf)
			if err != nil {
				break
			}
			if string(buf[:n]) == "hairpin" {
				o.hairpin = true
				// Seen as coming from the gateway's outside address.
				require.Equal(t, "203.0.113.1", from.Addr().String(), "hairpinned packets come from the outside address")
				break
			}
		}
	}
	return o
}

// Each profile's promise is what the probe table observes.
func TestNATProfiles(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		spec topo.NATSpec
		want observed
	}{
		{topo.NATSpec{Profile: "full-cone"}, observed{topo.EndpointIndependent, topo.EndpointIndependent, true, false}},
		{topo.NATSpec{Profile: "restricted-cone"}, observed{topo.EndpointIndependent, topo.AddressDependent, true, false}},
		{topo.NATSpec{Profile: "port-restricted"}, observed{topo.EndpointIndependent, topo.AddressAndPortDependent, true, false}},
		{topo.NATSpec{Profile: "symmetric"}, observed{topo.AddressAndPortDependent, topo.AddressAndPortDependent, false, false}},
		{topo.NATSpec{Profile: "full-cone", Hairpinning: true}, observed{topo.EndpointIndependent, topo.EndpointIndependent, true, true}},
		{topo.NATSpec{Profile: "port-restricted", Hairpinning: true}, observed{topo.EndpointIndependent, topo.AddressAndPortDependent, true, true}},
		{topo.NATSpec{}, observed{topo.EndpointIndependent, topo.AddressAndPortDependent, true, false}}, // plain masquerade
		{topo.NATSpec{Profile: "port-restricted", PortPreservation: new(false)}, observed{topo.EndpointIndependent, topo.AddressAndPortDependent, false, false}},
		{topo.NATSpec{Profile: "full-cone", PortPreservation: new(false), Hairpinning: true}, observed{topo.EndpointIndependent, topo.EndpointIndependent, false, true}},
	} {
		name := tc.spec.Profile
		if name == "" {
			name = "plain-masquerade"
		}
		if tc.spec.Hairpinning {
			name += "+hairpin"
		}
		if tc.spec.PortPreservation != nil && !*tc.spec.PortPreservation {
			name += "+random-ports"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := probeTable(t, profileLab(t, tc.spec))
			require.Equal(t, tc.want, got)
		})
	}
}

// The hole-punching race: a peer's packet reaches the gateway before the
// inside host has sent anything. A profile must not let that packet take
// the tuple the host's mapping needs: the host keeps its port.
func TestNATProfileEarlyPeerPacket(t *testing.T) {
	t.Parallel()
	for _, profile := range []string{"full-cone", "restricted-cone", "port-restricted"} {
		t.Run(profile, func(t *testing.T) {
			t.Parallel()
			lab := profileLab(t, topo.NATSpec{Profile: profile})
			from := earlyThenLate(t, lab, 3)
			require.Equal(t, ap("203.0.113.1:40000"), from, "the late side keeps its port")
		})
	}
	// Plain masquerade (no profile) lets the early packet in to the
	// gateway itself, conntrack confirms it, and the late side's mapping
	// moves to another port: what makes two plain gateways fail a hole
	// punch (TestPunchGrid).
	t.Run("plain-masquerade", func(t *testing.T) {
		t.Parallel()
		lab := profileLab(t, topo.NATSpec{})
		from := earlyThenLate(t, lab, 1)
		require.Equal(t, "203.0.113.1", from.Addr().String())
		require.NotEqual(t, uint16(40000), from.Port(), "the early packet took the tuple: the late side is moved")
	})
}

func TestNATMappingTimeout(t *testing.T) {
	t.Parallel()
	lab := profileLab(t, topo.NATSpec{Profile: "port-restricted", MappingTimeout: "7s"})
	res, err := lab.Exec(t.Context(), "gw", "cat", "/proc/sys/net/netfilter/nf_conntrack_udp_timeout", "/proc/sys/net/netfilter/nf_conntrack_udp_timeout_stream")
	require.NoError(t, err)
	require.Equal(t, "7\n7\n", string(res.Stdout))
}

// earlyThenLate is the hole-punching race at a gateway: the peer on net
// sends early packets to the gateway's 203.0.113.1:40000 before the client
// has sent anything, then the client sends from port 40000 to the peer.
// It returns the source the peer saw on the client's packet.
func earlyThenLate(t *testing.T, lab *emulator.Lab, early int) netip.AddrPort {
	t.Helper()
	peer, err := lab.ListenUDP("net", ap("203.0.113.10:3478"))
	require.NoError(t, err)
	defer peer.Close()
	for i := 0; i < early; i++ {
		peer.WriteToUDPAddrPort([]byte("early"), ap("203.0.113.1:40000"))
	}
	time.Sleep(20 * time.Millisecond)
	sock, err := lab.ListenUDP("client", ap("0.0.0.0:40000"))
	require.NoError(t, err)
	defer sock.Close()
	_, err = sock.WriteToUDPAddrPort([]byte("late"), ap("203.0.113.10:3478"))
	require.NoError(t, err)
	peer.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 64)
	_, from, err := peer.ReadFromUDPAddrPort(buf)
	require.NoError(t, err)
	return from
}
