package rtnl

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/nslab/nslab/internal/netns"
	"github.com/nslab/nslab/topo"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
)

// testNS is a network namespace of the test's own with a connection in
// it, gone when the test ends.
func testNS(t *testing.T) (*netns.NS, *Conn) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: makes network namespaces (the integration tests run as root)")
	}
	var c *Conn
	ns, err := netns.New(func() (err error) {
		c, err = Open()
		return err
	})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close(); ns.Close() })
	return ns, c
}

// A veth pair between two namespaces, made in one message with the
// indexes chosen here, comes up once both ends are up; addresses and
// routes land on the indexes given.
func TestVethAddressesRoutes(t *testing.T) {
	nsA, a := testNS(t)
	nsB, b := testNS(t)
	require.NoError(t, a.LinkSetUp(1, true))
	require.NoError(t, a.VethAdd(VethEnd{Name: "a0", Index: 10, MTU: 1400}, VethEnd{Name: "b0", Index: 11, NsFd: nsB.Fd()}))
	require.NoError(t, a.LinkSetUpNoIPv6(10))
	require.NoError(t, a.AddrAdd(10, netip.MustParsePrefix("10.9.0.1/24")))
	require.NoError(t, a.RouteAdd(netip.MustParsePrefix("10.8.0.0/16"), netip.MustParseAddr("10.9.0.2"), 10))

	ctx := context.Background()
	err := a.WaitOperUp(ctx, 10, time.Now().Add(50*time.Millisecond))
	require.ErrorContains(t, err, `interface "a0" is still`, "its peer is down")
	cctx, cancel := context.WithCancel(ctx)
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	t0 := time.Now()
	require.ErrorIs(t, a.WaitOperUp(cctx, 10, time.Now().Add(10*time.Second)), context.Canceled)
	require.Less(t, time.Since(t0), 5*time.Second, "a cancelled wait returns at once")

	require.NoError(t, b.LinkSetUp(11, true))
	require.NoError(t, a.WaitOperUp(ctx, 10, time.Now().Add(5*time.Second)))
	l, err := a.LinkGet(10)
	require.NoError(t, err)
	require.Equal(t, "a0", l.Attrs().Name)
	require.Equal(t, 1400, l.Attrs().MTU)

	h, err := NewHandle(nsA)
	require.NoError(t, err)
	defer h.Close()
	addrs, err := h.AddrList(l, netlink.FAMILY_V4)
	require.NoError(t, err)
	require.Len(t, addrs, 1)
	require.Equal(t, "10.9.0.1/24", addrs[0].IPNet.String())
	routes, err := RetryDump(func() ([]netlink.Route, error) { return h.RouteList(l, netlink.FAMILY_V4) })
	require.NoError(t, err)
	var dsts []string
	for _, r := range routes {
		dsts = append(dsts, r.Dst.String())
	}
	require.Contains(t, dsts, "10.8.0.0/16")
}

// A switch: a bridge made down, a port that joins it with the port group
// and comes up in the same message; WaitAllUp sees every port up.
func TestBridgePorts(t *testing.T) {
	_, sw := testNS(t)
	hostNS, host := testNS(t)
	require.NoError(t, sw.BridgeAdd("br0", 2, nil))
	require.NoError(t, sw.VethAdd(VethEnd{Name: "p1", Index: 20, Master: 2, Group: PortGroup, Up: true}, VethEnd{Name: "eth0", Index: 21, NsFd: hostNS.Fd()}))
	require.NoError(t, sw.LinkSetUp(2, true))
	require.NoError(t, host.LinkSetUp(21, true))
	n := &topo.Node{Name: "s1", Ifaces: []*topo.Iface{{Name: "p1", Index: 20}}}
	require.NoError(t, sw.WaitAllUp(context.Background(), n, time.Now().Add(30*time.Second))) // the kernel reports carrier late under load
	l, err := sw.LinkGet(20)
	require.NoError(t, err)
	require.Equal(t, 2, l.Attrs().MasterIndex)
	require.Equal(t, uint32(PortGroup), l.Attrs().Group)

	links, err := sw.LinkDump()
	require.NoError(t, err)
	var names []string
	for _, l := range links {
		names = append(names, l.Attrs().Name)
	}
	require.ElementsMatch(t, []string{"lo", "br0", "p1"}, names)
}

// NeighDel takes entries that are gone already as deleted, and the socket
// serves requests afterwards (no answer of the batch is left on it).
func TestNeighDel(t *testing.T) {
	_, c := testNS(t)
	require.NoError(t, c.LinkSetUp(1, true))
	list, err := c.NeighDump()
	require.NoError(t, err)
	require.Empty(t, list)
	gone := &netlink.Neigh{LinkIndex: 1, Family: netlink.FAMILY_V4, IP: netip.MustParseAddr("127.0.0.9").AsSlice()}
	require.NoError(t, c.NeighDel([]*netlink.Neigh{gone}))
	_, err = c.LinkGet(1)
	require.NoError(t, err)
}

func TestRetryDump(t *testing.T) {
	calls := 0
	v, err := RetryDump(func() (int, error) {
		calls++
		if calls < 3 {
			return 0, netlink.ErrDumpInterrupted
		}
		return 7, nil
	})
	require.NoError(t, err)
	require.Equal(t, 7, v)
	_, err = RetryDump(func() (int, error) { return 0, netlink.ErrDumpInterrupted })
	require.True(t, errors.Is(err, netlink.ErrDumpInterrupted), "gives up after a few tries")
}

// SetOffload turns a veth's TSO and GRO off and on through the netlink
// socket of its namespace, and Offload reads them back; a name that is
// no interface of that namespace is an error.
func TestOffload(t *testing.T) {
	nsA, a := testNS(t)
	nsB, _ := testNS(t)
	_ = nsA
	require.NoError(t, a.VethAdd(VethEnd{Name: "a0", Index: 10}, VethEnd{Name: "b0", Index: 11, NsFd: nsB.Fd()}))
	for _, tc := range []struct {
		f  Offload
		on bool
	}{{OffloadTSO, false}, {OffloadGRO, true}, {OffloadTSO, true}, {OffloadGRO, false}} {
		require.NoError(t, a.SetOffload("a0", tc.f, tc.on))
		got, err := a.Offload("a0", tc.f)
		require.NoError(t, err)
		require.Equal(t, tc.on, got, "feature %#x", tc.f)
	}
	require.ErrorContains(t, a.SetOffload("b0", OffloadGRO, true), "ethtool b0: no such device", "b0 is in the other namespace")
}
