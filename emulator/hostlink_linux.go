package emulator

import (
	"errors"
	"fmt"
	"time"

	"github.com/nslab/nslab/internal/netns"
	"github.com/nslab/nslab/internal/rtnl"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// hostNetns opens the namespace standing for the host.
func (l *Lab) hostNetns() (*netns.NS, error) {
	return openHostNetns(l.opts.HostNetns)
}

// openHostNetns opens the namespace at path, or for "" the one nslab runs
// in (the calling thread's, which nslab never switches).
func openHostNetns(path string) (*netns.NS, error) {
	if path == "" {
		return netns.Current()
	}
	return netns.Open(path)
}

func (l *Lab) addHostLink() error {
	hl := l.Plan.Host
	labEnd := l.handle(hl.Lab.Node)
	hostNS, err := l.hostNetns()
	if err != nil {
		return fmt.Errorf("host attachment: open host namespace: %w", err)
	}
	defer hostNS.Close()
	// Recorded with the lab's end (its node's namespace and its index), by
	// which teardown deletes the pair without touching anything in the
	// host namespace that might not be ours.
	if err := l.journal.add(jHostLink, fmt.Sprintf("%s %s %d", hl.Host.Name, labEnd.node.Namespace, hl.Lab.Index)); err != nil {
		return err
	}
	local := rtnl.VethEnd{Name: hl.Lab.Name, Index: hl.Lab.Index, MTU: hl.Host.MTU, Up: hl.Lab.Port}
	if hl.Lab.Port {
		local.Master, local.Group = hl.Lab.Master, rtnl.PortGroup
	}
	peer := rtnl.VethEnd{Name: hl.Host.Name, MTU: hl.Host.MTU, NsFd: hostNS.Fd()}
	err = labEnd.rt.VethAdd(local, peer)
	if errors.Is(err, unix.EEXIST) && waitHostNameFree(hostNS, hl.Host.Name, time.Now().Add(hostNameWait)) {
		err = labEnd.rt.VethAdd(local, peer)
	}
	if errors.Is(err, unix.EEXIST) {
		err = fmt.Errorf("an interface with that name already exists in the host namespace (not ours: nslab leaves it alone): %w", err)
	}
	if err != nil {
		return fmt.Errorf("add veth %q to the host (peer %q in node %q): %w", hl.Host.Name, hl.Lab.Name, hl.Lab.Node, err)
	}
	return nil
}

// hostNameWait bounds the wait for a host attachment's name that is still
// being released by the kernel.
const hostNameWait = 2 * time.Second

// waitHostNameFree waits, until deadline, for the interface called name in
// the host namespace to go, if it is a veth whose peer's namespace is
// being dismantled: the host end of a lab released without deleting it
// (a builder killed mid-build), which the kernel's namespace cleanup work
// removes moments later. It reports whether the name is free; an
// interface that is not on its way out is left alone at once.
func waitHostNameFree(hostNS *netns.NS, name string, deadline time.Time) bool {
	h, err := rtnl.NewHandle(hostNS)
	if err != nil {
		return false
	}
	defer h.Close()
	for {
		link, err := h.LinkByName(name)
		if err != nil {
			var nf netlink.LinkNotFoundError
			return errors.As(err, &nf)
		}
		// The kernel reports the peer's namespace id as -1 (unsigned:
		// 4294967295; the library's -1 means no peer namespace at all)
		// once that namespace is unhashed for cleanup.
		if link.Type() != "veth" || link.Attrs().NetNsID != int(^uint32(0)) || time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// configureHost sets the host's end up with its addresses and routes.
func (l *Lab) configureHost() error {
	hl := l.Plan.Host
	hostNS, err := l.hostNetns()
	if err != nil {
		return fmt.Errorf("host attachment: open host namespace: %w", err)
	}
	defer hostNS.Close()
	h, err := rtnl.NewHandle(hostNS)
	if err != nil {
		return fmt.Errorf("host attachment: %w", err)
	}
	defer h.Close()
	link, err := h.LinkByName(hl.Host.Name)
	if err != nil {
		return fmt.Errorf("host attachment: find %q: %w", hl.Host.Name, err)
	}
	idx := link.Attrs().Index
	hl.Host.Index = idx
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("host attachment: set %q up: %w", hl.Host.Name, err)
	}
	for _, a := range hl.Host.Addrs {
		addr := &netlink.Addr{IPNet: prefixIPNet(a)}
		if a.Addr().Is6() {
			addr.Flags = unix.IFA_F_NODAD
		}
		if err := h.AddrAdd(link, addr); err != nil {
			return fmt.Errorf("host attachment: add address %s to %q: %w", a, hl.Host.Name, err)
		}
	}
	for _, r := range hl.Routes {
		nr := &netlink.Route{Dst: prefixIPNet(r.Dst), LinkIndex: idx}
		if r.Via.IsValid() {
			nr.Gw = r.Via.AsSlice()
		}
		if err := h.RouteAdd(nr); err != nil {
			return fmt.Errorf("host attachment: add route %s: %w", r, err)
		}
	}
	return nil
}
