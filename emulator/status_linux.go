package emulator

import (
	"fmt"
	"sort"
	"time"

	"github.com/nslab/nslab/impair"
	"github.com/nslab/nslab/internal/rtnl"
	"github.com/nslab/nslab/topo"
	"github.com/vishvananda/netlink"
)

// LabStatus is what `nslab status LAB` shows, read live from the kernel.
type LabStatus struct {
	Lab     string       `json:"lab"`
	State   string       `json:"state"`
	PID     int          `json:"pid"`
	Created time.Time    `json:"created"`
	Nodes   []NodeStatus `json:"nodes"`
}

// NodeStatus is one node as the kernel has it.
type NodeStatus struct {
	Name       string        `json:"name"`
	Kind       topo.Kind     `json:"kind"`
	Namespace  string        `json:"namespace"`
	Interfaces []IfaceStatus `json:"interfaces"`
	Routes     []string      `json:"routes"`
	Error      string        `json:"error,omitempty"`
}

// IfaceStatus is one interface of a node.
type IfaceStatus struct {
	Name   string   `json:"name"`
	Index  int      `json:"index"`
	State  string   `json:"state"`
	MAC    string   `json:"mac,omitempty"`
	MTU    int      `json:"mtu"`
	Master string   `json:"master,omitempty"`
	Addrs  []string `json:"addresses,omitempty"`
	// Impair is what nslab's qdiscs do to the packets the interface sends
	// (`tc qdisc show dev IF`), nil for a plain one.
	Impair *impair.Direction `json:"impair,omitempty"`
}

// Status reads every node's interfaces, addresses and routes from the
// kernel (`ip addr` and `ip route` in each namespace).
func (l *Lab) Status() (*LabStatus, error) {
	st := &LabStatus{Lab: l.Plan.Lab, State: l.Record.State, PID: l.Record.PID, Created: l.Record.Created}
	for _, n := range l.Plan.Nodes {
		ns := NodeStatus{Name: n.Name, Kind: n.Kind, Namespace: n.Namespace}
		if err := l.readNode(n.Name, &ns); err != nil {
			ns.Error = err.Error()
		}
		st.Nodes = append(st.Nodes, ns)
	}
	return st, nil
}

func (l *Lab) readNode(name string, ns *NodeStatus) error {
	h, err := l.node(name)
	if err != nil {
		return err
	}
	return h.netlink(func(nh *netlink.Handle) error { return readNode(nh, ns) })
}

func readNode(nh *netlink.Handle, ns *NodeStatus) error {
	links, err := rtnl.RetryDump(func() ([]netlink.Link, error) { return nh.LinkList() })
	if err != nil {
		return fmt.Errorf("list links: %w", err)
	}
	names := map[int]string{}
	for _, k := range links {
		names[k.Attrs().Index] = k.Attrs().Name
	}
	sort.Slice(links, func(i, j int) bool { return links[i].Attrs().Index < links[j].Attrs().Index })
	for _, k := range links {
		a := k.Attrs()
		is := IfaceStatus{Name: a.Name, Index: a.Index, State: a.OperState.String(), MTU: a.MTU, Master: names[a.MasterIndex]}
		if len(a.HardwareAddr) > 0 {
			is.MAC = a.HardwareAddr.String()
		}
		addrs, err := rtnl.RetryDump(func() ([]netlink.Addr, error) { return nh.AddrList(k, netlink.FAMILY_ALL) })
		if err == nil {
			for _, ad := range addrs {
				if ad.IP.IsLinkLocalUnicast() {
					continue
				}
				is.Addrs = append(is.Addrs, ad.IPNet.String())
			}
		}
		if a.Name != "lo" {
			// A qdisc nslab did not set (ErrForeignQdisc) is not shown.
			if d, err := impair.Read(nh, a.Index); err == nil && !d.IsZero() {
				is.Impair = &d
			}
		}
		ns.Interfaces = append(ns.Interfaces, is)
	}
	routes, err := rtnl.RetryDump(func() ([]netlink.Route, error) { return nh.RouteList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		return fmt.Errorf("list routes: %w", err)
	}
	for _, r := range routes {
		if r.Dst != nil && r.Dst.IP.IsLinkLocalUnicast() || r.Dst != nil && r.Dst.IP.IsMulticast() {
			continue
		}
		dst := "default"
		if r.Dst != nil {
			dst = r.Dst.String()
		}
		s := dst
		if r.Gw != nil {
			s += " via " + r.Gw.String()
		}
		if n, ok := names[r.LinkIndex]; ok {
			s += " dev " + n
		}
		ns.Routes = append(ns.Routes, s)
	}
	return nil
}

// Neighbours lists a node's neighbour entries as `ip neigh` shows them:
// "10.0.0.2 dev eth0 lladdr 02:.. REACHABLE".
func (l *Lab) Neighbours(node string) ([]string, error) {
	h, err := l.node(node)
	if err != nil {
		return nil, err
	}
	var out []string
	err = h.netlink(func(nh *netlink.Handle) (err error) {
		out, err = neighbours(nh)
		return err
	})
	return out, err
}

func neighbours(nh *netlink.Handle) ([]string, error) {
	list, err := rtnl.RetryDump(func() ([]netlink.Neigh, error) { return nh.NeighList(0, netlink.FAMILY_ALL) })
	if err != nil {
		return nil, err
	}
	names := map[int]string{}
	if links, err := rtnl.RetryDump(func() ([]netlink.Link, error) { return nh.LinkList() }); err == nil {
		for _, k := range links {
			names[k.Attrs().Index] = k.Attrs().Name
		}
	}
	var out []string
	for _, n := range list {
		if n.IP == nil || n.IP.IsMulticast() {
			continue
		}
		s := fmt.Sprintf("%s dev %s", n.IP, names[n.LinkIndex])
		if len(n.HardwareAddr) > 0 {
			s += " lladdr " + n.HardwareAddr.String()
		}
		out = append(out, s+" "+neighState(n.State))
	}
	return out, nil
}

func neighState(s int) string {
	for _, x := range []struct {
		bit  int
		name string
	}{{netlink.NUD_INCOMPLETE, "INCOMPLETE"}, {netlink.NUD_REACHABLE, "REACHABLE"}, {netlink.NUD_STALE, "STALE"},
		{netlink.NUD_DELAY, "DELAY"}, {netlink.NUD_PROBE, "PROBE"}, {netlink.NUD_FAILED, "FAILED"},
		{netlink.NUD_NOARP, "NOARP"}, {netlink.NUD_PERMANENT, "PERMANENT"}} {
		if s&x.bit != 0 {
			return x.name
		}
	}
	return "NONE"
}
