package capture

import (
	"bytes"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"
	"github.com/stretchr/testify/require"
)

// A file with two interfaces reads back with each packet on its own
// interface, named node:iface, with its nanosecond timestamp, direction
// and length, and the kernel's counters in the statistics blocks.
func TestPcapngRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	ifaces := []Interface{{Name: "r1:eth0", Filter: "udp"}, {Name: "h2:eth0"}}
	w, err := NewPcapngWriter(&buf, ifaces, false)
	require.NoError(t, err)
	t0 := time.Date(2026, 12, 7, 4, 0, 0, 123456789, time.UTC)
	udp := packets["udp4"]
	require.NoError(t, w.WritePacket(Packet{Iface: 1, Time: t0, Length: len(udp) + 100, Data: udp, Outgoing: true}))
	require.NoError(t, w.WritePacket(Packet{Iface: 0, Time: t0.Add(1), Length: len(udp), Data: udp}))
	require.NoError(t, w.Close([]Stats{{Received: 5, Dropped: 1}, {Received: 2}}))

	r, err := pcapgo.NewNgReader(bytes.NewReader(buf.Bytes()), pcapgo.NgReaderOptions{})
	require.NoError(t, err)
	data, ci, err := r.ReadPacketData()
	require.NoError(t, err)
	require.Equal(t, udp, data)
	require.Equal(t, 1, ci.InterfaceIndex)
	require.Equal(t, t0.UnixNano(), ci.Timestamp.UnixNano())
	require.Equal(t, len(udp)+100, ci.Length)
	_, ci, err = r.ReadPacketData()
	require.NoError(t, err)
	require.Equal(t, 0, ci.InterfaceIndex)
	require.Equal(t, t0.UnixNano()+1, ci.Timestamp.UnixNano())
	require.Equal(t, 2, r.NInterfaces())
	i0, err := r.Interface(0)
	require.NoError(t, err)
	require.Equal(t, "r1:eth0", i0.Name)
	require.Equal(t, "udp", i0.Filter)
	i1, err := r.Interface(1)
	require.NoError(t, err)
	require.Equal(t, "h2:eth0", i1.Name)
}
