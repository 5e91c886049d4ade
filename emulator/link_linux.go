package emulator

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/nslab/nslab/internal/rtnl"
	"github.com/nslab/nslab/topo"
	"golang.org/x/sys/unix"
)

// SetLink takes the cable between a and b down or brings it up again while
// the lab runs, as pulling and plugging a cable would: both ends are set
// down (`ip link set dev IF down` in each node), or up. a and b are node
// names, or "node:interface" (see Plan.FindLink).
//
// The kernel drops a downed interface's IPv6 addresses and every route
// through it; bringing the cable up restores the addresses and routes the
// plan gives those interfaces, so the lab is as it was built.
func (l *Lab) SetLink(a, b string, up bool) (*topo.Link, error) {
	k, err := l.Plan.FindLink(a, b)
	if err != nil {
		return nil, err
	}
	state := "down"
	if up {
		state = "up"
	}
	for _, i := range []*topo.Iface{k.A, k.B} {
		if err := l.setIface(i, up); err != nil {
			return k, fmt.Errorf("set %q of node %q %s: %w", i.Name, i.Node, state, err)
		}
	}
	return k, nil
}

func (l *Lab) setIface(i *topo.Iface, up bool) error {
	h, err := l.node(i.Node)
	if err != nil {
		return err
	}
	return h.route(func(c *rtnl.Conn) error { return setIface(c, h.node, i, up) })
}

func setIface(c *rtnl.Conn, n *topo.Node, i *topo.Iface, up bool) error {
	if err := c.LinkSetUp(i.Index, up); err != nil || !up || i.Port {
		return err
	}
	for _, a := range i.Addrs {
		if err := c.AddrAdd(i.Index, a); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("restore address %s: %w", a, err)
		}
	}
	for _, r := range n.Routes {
		if r.Dev != i.Name && (r.Dev != "" || !viaOn(i.Addrs, r.Via)) {
			continue
		}
		if err := c.RouteAdd(r.Dst, r.Via, i.Index); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("restore route %s: %w", r, err)
		}
	}
	return nil
}

// viaOn reports whether via is in one of the prefixes.
func viaOn(addrs []netip.Prefix, via netip.Addr) bool {
	for _, a := range addrs {
		if via.IsValid() && a.Masked().Contains(via) {
			return true
		}
	}
	return false
}
