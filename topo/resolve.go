package topo

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/nslab/nslab/impair"
	"github.com/nslab/nslab/internal/text"
)

// Plan is a validated topology with everything decided: each node's
// namespace name, each interface's name, kernel index, MAC and addresses,
// and every route. Resolve makes it; the engine applies it.
type Plan struct {
	Lab      string
	Routing  string
	Nodes    []*Node
	Links    []*Link
	Segments []*Segment
	// Host is the host attachment, nil when the topology asks for none.
	Host *HostLink
	// Topology is what the plan was resolved from.
	Topology *Topology

	byName map[string]*Node
}

// Node is a resolved node.
type Node struct {
	Name string
	Kind Kind
	// Namespace is the name of its network namespace ("<lab>-<node>"), as
	// `ip netns list` shows it.
	Namespace string
	// Bridge is the bridge's interface name, for a switch (index 2); ""
	// for a switch whose Datapath is DatapathEBPF.
	Bridge string
	// Datapath is a switch's: DatapathBridge or DatapathEBPF.
	Datapath string
	// Trunks are a switch's further bridges, when it has more than 1,000
	// ports: see Trunk.
	Trunks  []*Trunk
	Ifaces  []*Iface
	Routes  []Route
	Sysctls []Sysctl
	Start   []string
	// Echo are the ports of the node's echo service (UDP and TCP).
	Echo []int
	// NAT and Firewall are the node's nftables rules, nil when none.
	NAT      *NAT
	Firewall *Firewall
	// IPv6 is true when any of its interfaces has an IPv6 address.
	IPv6 bool
}

// Trunk is a further bridge of a switch with more ports than one bridge
// serves well: the switch is then a chain of bridges inside its
// namespace, the switch's own bridge first, each further bridge joined to
// the one before by a veth pair, so that a host sees one switch whichever
// bridge its port is on (the same addresses, one L2 segment; a frame
// between hosts on bridges k apart crosses k pairs). Each bridge takes up
// to chainPorts ports.
//
// Why a chain of small bridges and not one big one (a bridge takes up to
// 1,023 ports: BR_MAX_PORTS) or a star: a bridge floods a broadcast (an ARP request) by
// queueing one copy per port at once on the CPU's backlog, whose length
// is net.core.netdev_max_backlog (1,000 by default, one setting for the
// whole machine, which nslab leaves alone); the copies past it are dropped,
// always for the same ports (the first made). A chain's links were made
// with their bridges, before any host's port, so a bridge floods them
// last: each bridge's copies are delivered before the next bridge floods,
// and at most two bridges' floods (both ways along the chain) are queued
// at once.
type Trunk struct {
	// Bridge and Index are the further bridge's name and index.
	Bridge string
	Index  int
	// Up is the pair's end on the bridge before (index UpMaster), Down its
	// end on this bridge, with their indexes.
	Up, Down           string
	UpIndex, DownIndex int
	UpMaster           int
	// MTU is the pair's, the largest of the switch's links (0: the
	// kernel's default), so that no frame a port takes is too big for it.
	MTU int
}

// Iface is one interface of a node (or of the host, for a host attachment).
type Iface struct {
	Node  string // owning node; "" for the host's end of a host attachment
	Name  string
	Index int // interface index inside its namespace
	MAC   net.HardwareAddr
	MTU   int
	Addrs []netip.Prefix
	// Port is true for a switch port (its master is the bridge).
	Port bool
	// Master is the index of a port's bridge in the switch's namespace: 2
	// for the switch's bridge, or a Trunk's Index.
	Master int
	// Peer is the other end of the veth pair.
	Peer *Iface `json:"-"`
	// Segment is the index of the L2 segment in Plan.Segments.
	Segment int
}

// Link is a resolved veth pair.
type Link struct {
	A, B *Iface
	MTU  int
	// Impair is what each direction does to packets: AB from A's node to
	// B's, BA back (zero: a plain link).
	Impair impair.Link
}

// Segment is one L2 broadcast domain: a point-to-point link, or every
// interface reachable through switches.
type Segment struct {
	Index   int
	Subnets []netip.Prefix
	Members []*Iface // interfaces of hosts and routers (and the host attachment)
}

// Route is a resolved route.
type Route struct {
	Dst netip.Prefix
	Via netip.Addr // invalid for a device route
	Dev string     // outgoing interface
	// Auto is true for routes made by automatic routing.
	Auto bool
}

func (r Route) String() string {
	s := r.Dst.String()
	if r.Dst.Bits() == 0 {
		s = "default"
	}
	if r.Via.IsValid() {
		s += " via " + r.Via.String()
	}
	if r.Dev != "" {
		s += " dev " + r.Dev
	}
	return s
}

// Sysctl is one setting written in a node's namespace.
type Sysctl struct{ Key, Value string }

// HostLink is a resolved host attachment.
type HostLink struct {
	Host   *Iface // the end in the host namespace
	Lab    *Iface // the end in the lab node
	Routes []Route
	// Impair: AB from the host into the lab, BA back.
	Impair impair.Link
}

// Node returns the node called name, or nil.
func (p *Plan) Node(name string) *Node {
	return p.byName[name]
}

// UnknownNode is the error for a node the lab does not have, with the
// closest name it does have: bad input.
func (p *Plan) UnknownNode(name string) error {
	return BadInput(fmt.Errorf("lab %q has no node %q%s", p.Lab, name, suggest(name, p.NodeNames())))
}

// NodeNames lists the node names in the order they were written.
func (p *Plan) NodeNames() []string {
	out := make([]string, len(p.Nodes))
	for i, n := range p.Nodes {
		out[i] = n.Name
	}
	return out
}

// Iface returns the node's interface called name, or nil.
func (n *Node) Iface(name string) *Iface {
	for _, i := range n.Ifaces {
		if i.Name == name {
			return i
		}
	}
	return nil
}

// FirstAddr returns the node's first address of the family (4 or 6).
func (n *Node) FirstAddr(family int) (netip.Addr, bool) {
	for _, i := range n.Ifaces {
		for _, a := range i.Addrs {
			if (family == 4) == a.Addr().Is4() {
				return a.Addr(), true
			}
		}
	}
	return netip.Addr{}, false
}

var (
	labNameRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	nodeNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	sysctlRE   = regexp.MustCompile(`^[a-z0-9_]+([./][A-Za-z0-9_.@-]+)+$`)
)

const (
	// maxArgLen is the kernel's MAX_ARG_STRLEN (32 pages of 4 KiB): the
	// longest argument exec takes, its final NUL included.
	maxArgLen   = 32 * 4096
	maxLabName  = 32
	maxNodeName = 64
	maxIfName   = 15 // IFNAMSIZ - 1
)

// ValidIfName reports why name cannot be a Linux interface name, or "".
func ValidIfName(name string) string {
	switch {
	case name == "":
		return "is empty"
	case len(name) > maxIfName:
		return fmt.Sprintf("is %d bytes, the kernel allows at most %d", len(name), maxIfName)
	case name == "." || name == "..":
		return "is not allowed"
	case strings.ContainsAny(name, "/: \t\n"):
		return "contains '/', ':' or white space"
	}
	return ""
}

// Validate checks a topology and returns every problem found at once (as
// Problems), or nil. It creates nothing.
func Validate(t *Topology) error {
	_, err := Resolve(t)
	return err
}

// Resolve validates t and decides everything the engine needs. On bad
// input it returns Problems listing every problem found.
func Resolve(t *Topology) (*Plan, error) {
	r := &resolver{t: t, c: &collector{src: t.source}}
	r.run()
	if err := r.c.err(); err != nil {
		return nil, err
	}
	return r.plan, nil
}

type resolver struct {
	t    *Topology
	c    *collector
	plan *Plan
	// per node: its spec index
	specIdx map[string]int
	// ifaces in creation order per node
	uf []int // union-find over all ifaces
	// all ifaces, in order
	all []*Iface
	// the link path each iface came from, for messages
	path map[*Iface]string
	// families lists written on nodes (and switches) and on links, and
	// the lists that apply to each interface (see applyFamilies)
	nodeFam map[string]*famRule
	linkFam map[*Iface]*famRule
	allow   map[*Iface][]*famRule
	// pool6 is true when addressing hands out IPv6 subnets
	pool6 bool
}

func (r *resolver) run() {
	t, c := r.t, r.c
	p := &Plan{Lab: t.Name, Routing: t.Routing, Topology: t, byName: map[string]*Node{}}
	r.plan = p
	r.specIdx = map[string]int{}
	r.path = map[*Iface]string{}
	r.nodeFam = map[string]*famRule{}
	r.linkFam = map[*Iface]*famRule{}

	switch {
	case t.Name == "":
		c.add("name", "lab", "the lab needs a name (name = \"...\")")
	case len(t.Name) > maxLabName:
		c.add("name", fmt.Sprintf("lab %q", t.Name), "name is %d bytes, at most %d are allowed", len(t.Name), maxLabName)
	case !labNameRE.MatchString(t.Name):
		c.add("name", fmt.Sprintf("lab %q", t.Name), "name may only have lowercase letters, digits and '-', and must start with a letter or digit")
	}
	if len(t.Nodes) == 0 {
		c.add("", fmt.Sprintf("lab %q", t.Name), "the lab has no nodes (add [[nodes]] tables)")
	}
	switch t.Routing {
	case "", "static", "auto":
	default:
		c.add("routing", "routing", "unknown routing mode %q (known: static, auto)", t.Routing)
	}
	if p.Routing == "" {
		p.Routing = "static"
	}

	// Nodes.
	known := kinds()
	for i := range t.Nodes {
		ns := &t.Nodes[i]
		path := fmt.Sprintf("nodes[%d]", i)
		obj := fmt.Sprintf("node %q", ns.Name)
		if ns.Name == "" {
			c.add(path, fmt.Sprintf("node %d", i+1), "node has no name")
			continue
		}
		if len(ns.Name) > maxNodeName || !nodeNameRE.MatchString(ns.Name) {
			c.add(path+".name", obj, "a node name may only have letters, digits, '_', '.' and '-' (at most %d bytes)", maxNodeName)
		}
		if j, dup := r.specIdx[ns.Name]; dup {
			line := ""
			if pos, ok := c.src.at(fmt.Sprintf("nodes[%d].name", j)); ok {
				line = fmt.Sprintf(" (first defined on line %d)", pos.Line)
			}
			c.add(path+".name", obj, "duplicate node name%s", line)
			continue
		}
		k := ns.kindOf()
		if _, ok := known[k]; !ok {
			c.add(path+".kind", obj, "unknown kind %q (known: %s)", ns.Kind, knownKindsText())
			k = KindHost
		}
		r.specIdx[ns.Name] = i
		n := &Node{Name: ns.Name, Kind: k, Namespace: NamespaceName(t.Name, ns.Name), Start: ns.Start}
		if fr := r.parseFamilies(path, obj, ns.Families); fr != nil {
			if known[k].bridge {
				fr.obj = fmt.Sprintf("switch %q", ns.Name)
			}
			r.nodeFam[ns.Name] = fr
		}
		switch {
		case !known[k].bridge && ns.Datapath != "":
			c.add(path+".datapath", obj, "only a switch has a datapath")
		case ns.Datapath == "" || ns.Datapath == DatapathBridge:
		case ns.Datapath == DatapathEBPF:
			n.Datapath = DatapathEBPF
		default:
			c.add(path+".datapath", obj, "unknown datapath %q (known: %s, %s)%s", ns.Datapath, DatapathBridge, DatapathEBPF,
				suggest(ns.Datapath, []string{DatapathBridge, DatapathEBPF}))
		}
		if known[k].bridge && n.Datapath == "" {
			n.Datapath = DatapathBridge
			n.Bridge = ns.Name
			if ValidIfName(ns.Name) != "" || ns.Name == "lo" {
				n.Bridge = "br0"
			}
		}
		if known[k].bridge {
			if ns.Gateway != "" || ns.Gateway6 != "" || len(ns.Routes) > 0 {
				c.add(path, obj, "a switch has no addresses, so it takes no gateway or routes")
			}
		}
		keys := make([]string, 0, len(ns.Sysctls))
		for k := range ns.Sysctls {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if !sysctlRE.MatchString(k) || strings.Contains(k, "..") {
				c.add(path+".sysctls."+k, obj, "sysctl %q is not a sysctl name like \"net.ipv4.ip_forward\"", k)
				continue
			}
			if !strings.HasPrefix(k, "net.") && !strings.HasPrefix(k, "net/") {
				// Only net.* settings belong to a network namespace; any
				// other would change the whole machine.
				c.add(path+".sysctls."+k, obj, "sysctl %q is not per network namespace: a node can only set net.* sysctls", k)
				continue
			}
			n.Sysctls = append(n.Sysctls, Sysctl{k, ns.Sysctls[k]})
		}
		for j, cmd := range ns.Start {
			switch {
			case strings.TrimSpace(cmd) == "":
				c.add(fmt.Sprintf("%s.start[%d]", path, j), obj, "start command %d is empty", j+1)
			case len(cmd) >= maxArgLen:
				// sh -c passes it as one argument: the kernel refuses
				// (E2BIG) one of MAX_ARG_STRLEN or more.
				c.add(fmt.Sprintf("%s.start[%d]", path, j), obj, "start command %d is %d bytes, and the kernel takes at most %d in one argument: put it in a script file and start that", j+1, len(cmd), maxArgLen-1)
			}
		}
		n.Echo = r.echoPorts(path, obj, n, ns.Echo)
		p.Nodes = append(p.Nodes, n)
		p.byName[n.Name] = n
	}

	// Links: make the interfaces.
	for i := range t.Links {
		l := &t.Links[i]
		path := fmt.Sprintf("links[%d]", i)
		a, b, ok := l.endpoints()
		if !ok {
			c.add(path, fmt.Sprintf("link %d", i+1), "write a link either as endpoints = [\"a\", \"b\"] or with both an a and a b table")
			continue
		}
		obj := fmt.Sprintf("link %s -- %s", a, b)
		if l.MTU != 0 && (l.MTU < 68 || l.MTU > 65535) {
			c.add(path+".mtu", obj, "mtu %d is outside 68-65535", l.MTU)
		}
		if a.Node == b.Node && a.Node != "" {
			c.add(path, obj, "a link from node %q to itself", a.Node)
			continue
		}
		ia := r.endpoint(path, "a", 0, obj, a, l.MTU, l.A != nil)
		ib := r.endpoint(path, "b", 1, obj, b, l.MTU, l.B != nil)
		if ia == nil || ib == nil {
			continue
		}
		ia.Peer, ib.Peer = ib, ia
		p.Links = append(p.Links, &Link{A: ia, B: ib, MTU: l.MTU, Impair: r.impairment(path, obj, l.Impair, a.Node, b.Node)})
		if fr := r.parseFamilies(path, obj, l.Families); fr != nil {
			if ia.Port && ib.Port {
				c.add(path+".families", obj, "a link between two switches has no addresses: write families on a switch to cover its whole segment")
				continue
			}
			r.linkFam[ia], r.linkFam[ib] = fr, fr
		}
	}

	// Host attachment.
	if h := t.Host; h != nil {
		obj := "host attachment"
		if why := ValidIfName(h.Interface); why != "" {
			c.add("host.interface", obj, "interface name %q %s", h.Interface, why)
		}
		if h.MTU != 0 && (h.MTU < 68 || h.MTU > 65535) {
			c.add("host.mtu", obj, "mtu %d is outside 68-65535", h.MTU)
		}
		hi := &Iface{Name: h.Interface, MTU: h.MTU}
		hi.Addrs = r.prefixes("host.addresses", obj, h.Addresses)
		li := r.endpoint("host", "node", -1, obj, EndpointSpec{Node: h.Node}, h.MTU, true)
		if li != nil {
			hi.Peer, li.Peer = li, hi
			r.all = append(r.all, hi)
			r.uf = append(r.uf, len(r.uf))
			r.path[hi] = "host"
			p.Host = &HostLink{Host: hi, Lab: li, Impair: r.impairment("host", obj, h.Impair, HostEnd, h.Node)}
		}
	}

	r.assignNames()
	r.segments()
	r.applyFamilies()
	r.addresses()
	r.checkFamilies()
	r.checkSegments()
	r.staticRoutes()
	r.natAndFirewall()
	if p.Routing == "auto" {
		r.autoRoutes()
	}
	for _, n := range p.Nodes {
		for _, i := range n.Ifaces {
			for _, a := range i.Addrs {
				if a.Addr().Is6() {
					n.IPv6 = true
				}
			}
		}
	}
}

// endpoint makes the interface for one end of a link.
func (r *resolver) endpoint(path, side string, idx int, obj string, e EndpointSpec, mtu int, long bool) *Iface {
	c := r.c
	epath := path + "." + side
	if !long {
		epath = fmt.Sprintf("%s.endpoints[%d]", path, idx)
	}
	n := r.plan.byName[e.Node]
	if e.Node == "" {
		c.add(epath, obj, "endpoint has no node")
		return nil
	}
	if n == nil {
		c.add(epath, obj, "unknown node %q%s", e.Node, suggest(e.Node, r.plan.NodeNames()))
		return nil
	}
	i := &Iface{Node: n.Name, Name: e.Interface, MTU: mtu, Port: n.Kind == KindSwitch}
	if e.Interface != "" {
		if why := ValidIfName(e.Interface); why != "" {
			c.add(epath, obj, "interface name %q %s", e.Interface, why)
		} else if e.Interface == "lo" || (n.Bridge != "" && e.Interface == n.Bridge) {
			c.add(epath, obj, "interface name %q is taken in node %q", e.Interface, n.Name)
		}
	}
	if e.MAC != "" {
		mac, err := net.ParseMAC(e.MAC)
		switch {
		case err != nil || len(mac) != 6:
			c.add(epath+".mac", obj, "mac %q is not an Ethernet address like 02:00:00:00:00:01", e.MAC)
		case mac[0]&1 == 1:
			c.add(epath+".mac", obj, "mac %q is a multicast address", e.MAC)
		case bytes.Equal(mac, make(net.HardwareAddr, 6)):
			c.add(epath+".mac", obj, "mac %q is all zeros", e.MAC)
		default:
			i.MAC = mac
		}
	}
	i.Addrs = r.prefixes(epath+".addresses", obj, e.Addresses)
	if i.Port && len(i.Addrs) > 0 {
		c.add(epath+".addresses", obj, "switch %q is a bridge: its ports take no addresses", n.Name)
		i.Addrs = nil
	}
	n.Ifaces = append(n.Ifaces, i)
	r.all = append(r.all, i)
	r.uf = append(r.uf, len(r.uf))
	r.path[i] = epath
	return i
}

func (r *resolver) prefixes(path, obj string, in []string) []netip.Prefix {
	var out []netip.Prefix
	for j, s := range in {
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			r.c.add(fmt.Sprintf("%s[%d]", path, j), obj, "address %q is not in CIDR form like 10.0.0.1/24 or fd00::1/64", s)
			continue
		}
		if pfx.Addr() == pfx.Masked().Addr() && pfx.Bits() < pfx.Addr().BitLen()-1 {
			r.c.add(fmt.Sprintf("%s[%d]", path, j), obj, "address %s is the subnet's network address; give a host address", s)
			continue
		}
		if pfx.Addr().Is4() && pfx.Bits() < 31 && pfx.Addr() == LastAddr(pfx) {
			r.c.add(fmt.Sprintf("%s[%d]", path, j), obj, "address %s is the subnet's broadcast address; give a host address", s)
			continue
		}
		out = append(out, pfx)
	}
	return out
}

// assignNames gives every interface without a name one, and its index.
func (r *resolver) assignNames() {
	for _, n := range r.plan.Nodes {
		used := map[string]bool{"lo": true}
		if n.Bridge != "" {
			used[n.Bridge] = true
		}
		for _, i := range n.Ifaces {
			if i.Name == "" || i.Name == "lo" || i.Name == n.Bridge {
				continue // empty, or refused as taken already
			}
			if used[i.Name] {
				r.c.add(r.path[i], fmt.Sprintf("node %q", n.Name), "interface name %q is used twice", i.Name)
			}
			used[i.Name] = true
		}
		k := 0
		for _, i := range n.Ifaces {
			if i.Name != "" {
				continue
			}
			// A switch port is named after the node on its far end, when it can be.
			if i.Port && i.Peer != nil {
				cand := i.Peer.Node
				if cand == "" {
					cand = "host"
				}
				if ValidIfName(cand) == "" && !used[cand] {
					i.Name = cand
					used[cand] = true
					continue
				}
			}
			for {
				cand := "eth" + strconv.Itoa(k)
				k++
				if !used[cand] {
					i.Name = cand
					used[cand] = true
					break
				}
			}
		}
		switch {
		case n.Kind != KindSwitch:
		case n.Datapath == DatapathEBPF:
			if len(n.Ifaces) > MaxEBPFSwitchPorts {
				r.c.add(fmt.Sprintf("nodes[%d].datapath", r.specIdx[n.Name]), fmt.Sprintf("switch %q", n.Name),
					"%d ports: a switch with datapath %q takes at most %d (leave datapath out for a bridge)", len(n.Ifaces), DatapathEBPF, MaxEBPFSwitchPorts)
			}
		default:
			planTrunks(n, used)
		}
	}
	// Indexes: lo is 1 and a bridge 2 in their namespaces; every other
	// interface gets a number unique in the lab. The two ends of a veth
	// must differ: the kernel delays (by up to a second) the carrier
	// events of a device whose index equals its peer's.
	next := 3
	for _, n := range r.plan.Nodes {
		for _, i := range n.Ifaces {
			i.Index = next
			next++
		}
	}
	for _, n := range r.plan.Nodes {
		if n.Kind != KindSwitch {
			continue
		}
		mtu := 0
		for _, i := range n.Ifaces {
			mtu = max(mtu, i.MTU)
		}
		prev := 2
		for _, t := range n.Trunks {
			t.MTU = mtu
			t.Index, t.UpIndex, t.DownIndex, t.UpMaster = next, next+1, next+2, prev
			prev = t.Index
			next += 3
		}
		// The switch's bridge takes the first ports, each further bridge
		// the next chainPorts (all of them, for a switch of one bridge).
		j := 0
		for _, i := range n.Ifaces {
			if !i.Port || n.Bridge == "" {
				continue // an eBPF switch's ports have no master
			}
			i.Master = 2
			if len(n.Trunks) > 0 && j >= chainPorts {
				i.Master = n.Trunks[j/chainPorts-1].Index
			}
			j++
		}
	}
	if h := r.plan.Host; h != nil {
		h.Host.Index = 0 // chosen by the kernel in the host namespace
	}
}

func (r *resolver) find(x int) int {
	for r.uf[x] != x {
		r.uf[x] = r.uf[r.uf[x]]
		x = r.uf[x]
	}
	return x
}

func (r *resolver) union(a, b int) {
	a, b = r.find(a), r.find(b)
	if a != b {
		r.uf[b] = a
	}
}

// segments groups interfaces into L2 segments.
func (r *resolver) segments() {
	idx := map[*Iface]int{}
	for k, i := range r.all {
		idx[i] = k
	}
	for _, i := range r.all {
		if i.Peer != nil {
			r.union(idx[i], idx[i.Peer])
		}
	}
	for _, n := range r.plan.Nodes {
		if n.Kind != KindSwitch {
			continue
		}
		for k := 1; k < len(n.Ifaces); k++ {
			r.union(idx[n.Ifaces[0]], idx[n.Ifaces[k]])
		}
	}
	seg := map[int]*Segment{}
	for k, i := range r.all {
		root := r.find(k)
		s := seg[root]
		if s == nil {
			s = &Segment{Index: len(r.plan.Segments)}
			seg[root] = s
			r.plan.Segments = append(r.plan.Segments, s)
		}
		i.Segment = s.Index
		if !i.Port {
			s.Members = append(s.Members, i)
		}
	}
}

// addresses assigns automatic addresses and finds each segment's subnets.
func (r *resolver) addresses() {
	t, c := r.t, r.c
	a := t.Addressing
	pool4, pool6 := netip.MustParsePrefix("10.0.0.0/16"), netip.Prefix{}
	bits4, bits6 := 24, 64
	var err error
	if a.IPv4 != "" {
		if pool4, err = netip.ParsePrefix(a.IPv4); err != nil || !pool4.Addr().Is4() {
			c.add("addressing.ipv4", "addressing", "ipv4 pool %q is not an IPv4 prefix like 10.0.0.0/16", a.IPv4)
			pool4 = netip.Prefix{}
		}
	}
	if a.IPv6 != "" {
		if pool6, err = netip.ParsePrefix(a.IPv6); err != nil || !pool6.Addr().Is6() {
			c.add("addressing.ipv6", "addressing", "ipv6 pool %q is not an IPv6 prefix like fd00::/48", a.IPv6)
			pool6 = netip.Prefix{}
		}
	}
	if a.IPv4Subnet != 0 {
		bits4 = a.IPv4Subnet
	}
	if a.IPv6Subnet != 0 {
		bits6 = a.IPv6Subnet
	}
	if pool4.IsValid() && (bits4 < pool4.Bits() || bits4 > 30) {
		c.add("addressing.ipv4_subnet", "addressing", "ipv4_subnet /%d must be between the pool's /%d and /30", bits4, pool4.Bits())
		pool4 = netip.Prefix{}
	}
	if pool6.IsValid() && (bits6 < pool6.Bits() || bits6 > 126) {
		c.add("addressing.ipv6_subnet", "addressing", "ipv6_subnet /%d must be between the pool's /%d and /126", bits6, pool6.Bits())
		pool6 = netip.Prefix{}
	}

	r.pool6 = pool6.IsValid()
	r.dropRefused()

	// Subnets written by hand, per segment.
	var taken []netip.Prefix
	for _, s := range r.plan.Segments {
		for _, m := range s.Members {
			for _, p := range m.Addrs {
				if !containsPrefix(s.Subnets, p.Masked()) {
					s.Subnets = append(s.Subnets, p.Masked())
					taken = append(taken, p.Masked())
				}
			}
		}
	}
	if a.Disable {
		return
	}
	alloc4 := &subnetAlloc{pool: pool4, bits: bits4, taken: taken}
	alloc6 := &subnetAlloc{pool: pool6, bits: bits6, taken: taken}
	for _, s := range r.plan.Segments {
		if len(s.Members) == 0 {
			continue
		}
		for _, fam := range []struct {
			v4    bool
			alloc *subnetAlloc
		}{{true, alloc4}, {false, alloc6}} {
			var sub netip.Prefix
			for _, p := range s.Subnets {
				if p.Addr().Is4() == fam.v4 {
					sub = p
					break
				}
			}
			if !sub.IsValid() {
				if !fam.alloc.pool.IsValid() || !r.anyAllowed(s, fam.v4) {
					continue
				}
				var ok bool
				if sub, ok = fam.alloc.next(); !ok {
					c.add("addressing", "addressing", "the pool %s has no free /%d subnet left for segment %d", fam.alloc.pool, fam.alloc.bits, s.Index+1)
					continue
				}
				s.Subnets = append(s.Subnets, sub)
			}
			r.fill(s, sub, fam.v4)
		}
	}
}

// fill gives members of s that have no address of the family one from sub:
// routers first, then the rest, in the order they were written.
func (r *resolver) fill(s *Segment, sub netip.Prefix, v4 bool) {
	used := map[netip.Addr]bool{}
	need := []*Iface{}
	for _, m := range s.Members {
		has := false
		for _, a := range m.Addrs {
			if a.Addr().Is4() == v4 {
				has = true
				used[a.Addr()] = true
			}
		}
		if !has && r.allowed(m).has(v4) {
			need = append(need, m)
		}
	}
	sort.SliceStable(need, func(i, j int) bool {
		return r.isRouter(need[i]) && !r.isRouter(need[j])
	})
	addr := sub.Addr().Next()
	if sub.Bits() >= sub.Addr().BitLen()-1 {
		addr = sub.Addr() // a /31 or /127 uses both of its addresses (RFC 3021, 6164)
	}
	for _, m := range need {
		for used[addr] && sub.Contains(addr) {
			addr = addr.Next()
		}
		// Keep the broadcast address free, except in a /31 (RFC 3021).
		last := !sub.Contains(addr) || (v4 && sub.Bits() < 31 && !sub.Contains(addr.Next()))
		if last {
			r.c.add(r.path[m], fmt.Sprintf("segment %s", sub), "subnet %s has no free address left for %s", sub, ifaceName(m))
			return
		}
		m.Addrs = append(m.Addrs, netip.PrefixFrom(addr, sub.Bits()))
		used[addr] = true
	}
}

// anyAllowed reports whether a member of s may have family v4 (or 6).
func (r *resolver) anyAllowed(s *Segment, v4 bool) bool {
	for _, m := range s.Members {
		if r.allowed(m).has(v4) {
			return true
		}
	}
	return false
}

func (r *resolver) isRouter(i *Iface) bool {
	n := r.plan.byName[i.Node]
	return n != nil && n.Kind == KindRouter
}

func ifaceName(i *Iface) string {
	if i.Node == "" {
		return fmt.Sprintf("host interface %q", i.Name)
	}
	return fmt.Sprintf("%s:%s", i.Node, i.Name)
}

type subnetAlloc struct {
	pool  netip.Prefix
	bits  int
	taken []netip.Prefix
	cur   netip.Addr
}

func (a *subnetAlloc) next() (netip.Prefix, bool) {
	if !a.cur.IsValid() {
		a.cur = a.pool.Masked().Addr()
	}
	for a.cur.IsValid() && a.pool.Contains(a.cur) {
		p := netip.PrefixFrom(a.cur, a.bits).Masked()
		end := LastAddr(p)
		overlap := false
		for _, t := range a.taken {
			if t.Overlaps(p) {
				overlap = true
				if l := LastAddr(t); l.Compare(end) > 0 {
					end = l // jump past a bigger taken prefix at once
				}
			}
		}
		a.cur = end.Next()
		if overlap {
			continue
		}
		a.taken = append(a.taken, p)
		return p, true
	}
	return netip.Prefix{}, false
}

// LastAddr is the last address of p (its IPv4 broadcast address).
func LastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func addToAddr(a netip.Addr, n int) netip.Addr {
	for ; n > 0; n-- {
		nx := a.Next()
		if !nx.IsValid() {
			return netip.Addr{}
		}
		a = nx
	}
	return a
}

func containsPrefix(ps []netip.Prefix, p netip.Prefix) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

// checkSegments finds duplicate addresses and overlapping subnets.
func (r *resolver) checkSegments() {
	c := r.c
	for _, s := range r.plan.Segments {
		seen := map[netip.Addr]*Iface{}
		for _, m := range s.Members {
			for _, a := range m.Addrs {
				if o, dup := seen[a.Addr()]; dup {
					c.add(r.path[m], ifaceName(m), "address %s is also on %s in the same segment", a.Addr(), ifaceName(o))
					continue
				}
				seen[a.Addr()] = m
			}
		}
	}
	// A node's interfaces must not have overlapping subnets on different segments.
	check := func(obj string, ifs []*Iface) {
		for x := 0; x < len(ifs); x++ {
			for y := x + 1; y < len(ifs); y++ {
				if ifs[x].Segment == ifs[y].Segment {
					continue
				}
				for _, a := range ifs[x].Addrs {
					for _, b := range ifs[y].Addrs {
						if a.Masked().Overlaps(b.Masked()) {
							c.add(r.path[ifs[y]], obj, "subnet %s on %s overlaps %s on %s, which is on another segment", b.Masked(), ifs[y].Name, a.Masked(), ifs[x].Name)
						}
					}
				}
			}
		}
	}
	for _, n := range r.plan.Nodes {
		check(fmt.Sprintf("node %q", n.Name), n.Ifaces)
	}
	// With automatic routing every subnet must be unique in the lab.
	if r.plan.Routing == "auto" {
		for x, s := range r.plan.Segments {
			for _, t := range r.plan.Segments[x+1:] {
				for _, a := range s.Subnets {
					for _, b := range t.Subnets {
						if a.Overlaps(b) && len(t.Members) > 0 {
							c.add(r.path[t.Members[0]], fmt.Sprintf("segment %s", b), "subnet %s overlaps %s on another segment; automatic routing needs distinct subnets", b, a)
						}
					}
				}
			}
		}
	}
}

// onLink returns the interface of ifs whose subnet holds a.
func onLink(ifs []*Iface, a netip.Addr) *Iface {
	for _, i := range ifs {
		for _, p := range i.Addrs {
			if p.Masked().Contains(a) {
				return i
			}
		}
	}
	return nil
}

func (r *resolver) staticRoutes() {
	for si := range r.t.Nodes {
		ns := &r.t.Nodes[si]
		n := r.plan.byName[ns.Name]
		if n == nil || r.specIdx[ns.Name] != si || n.Kind == KindSwitch {
			continue
		}
		path := fmt.Sprintf("nodes[%d]", si)
		obj := fmt.Sprintf("node %q", n.Name)
		fr := r.nodeFam[n.Name]
		for _, g := range []struct{ key, val string }{{"gateway", ns.Gateway}, {"gateway6", ns.Gateway6}} {
			if g.val == "" {
				continue
			}
			if v4 := g.key == "gateway"; fr != nil && !fr.set.has(v4) {
				r.c.add(path+"."+g.key, obj, "%s is an IPv%d default route, but the node has families = %s", g.key, ipVersion(v4), fr.text)
				continue
			}
			rt, ok := r.route(path+"."+g.key, obj, n.Ifaces, RouteSpec{To: "default", Via: g.val}, g.key == "gateway6")
			if ok {
				n.Routes = append(n.Routes, rt)
			}
		}
		for j, rs := range ns.Routes {
			rpath := fmt.Sprintf("%s.routes[%d]", path, j)
			if v4, known := routeFamily(rs); known && fr != nil && !fr.set.has(v4) {
				r.c.add(rpath, obj, "route to %s is IPv%d, but the node has families = %s", rs.To, ipVersion(v4), fr.text)
				continue
			}
			rt, ok := r.route(rpath, obj, n.Ifaces, rs, false)
			if !ok {
				continue
			}
			if hasRoute(n.Routes, rt.Dst) {
				what := rt.Dst.String()
				if rt.Dst.Bits() == 0 {
					what = "default (also given by gateway or another route)"
				}
				r.c.add(rpath, obj, "a second route to %s", what)
				continue
			}
			n.Routes = append(n.Routes, rt)
		}
	}
	if h := r.plan.Host; h != nil {
		for j, rs := range r.t.Host.Routes {
			rpath := fmt.Sprintf("host.routes[%d]", j)
			rt, ok := r.route(rpath, "host attachment", []*Iface{h.Host}, rs, false)
			if !ok {
				continue
			}
			if hasRoute(h.Routes, rt.Dst) {
				r.c.add(rpath, "host attachment", "a second route to %s", rt.Dst)
				continue
			}
			h.Routes = append(h.Routes, rt)
		}
	}
}

func (r *resolver) route(path, obj string, ifs []*Iface, rs RouteSpec, want6 bool) (Route, bool) {
	c := r.c
	var rt Route
	var via netip.Addr
	if rs.Via != "" {
		var err error
		if via, err = netip.ParseAddr(rs.Via); err != nil {
			c.add(path, obj, "next hop %q is not an IP address", rs.Via)
			return rt, false
		}
		if want6 && !via.Is6() {
			c.add(path, obj, "gateway6 %s is not an IPv6 address", via)
			return rt, false
		}
		if strings.HasSuffix(path, ".gateway") && !via.Is4() {
			c.add(path, obj, "gateway %s is not an IPv4 address (use gateway6 for IPv6)", via)
			return rt, false
		}
	}
	switch {
	case rs.To == "":
		c.add(path, obj, "route has no destination: write to = \"10.1.0.0/16\" or to = \"default\"")
		return rt, false
	case rs.To == "default":
		if via.IsValid() && via.Is6() {
			rt.Dst = netip.MustParsePrefix("::/0")
		} else {
			rt.Dst = netip.MustParsePrefix("0.0.0.0/0")
		}
	default:
		p, err := netip.ParsePrefix(rs.To)
		if err != nil {
			c.add(path, obj, "route destination %q is not a prefix like 10.1.0.0/16 or \"default\"", rs.To)
			return rt, false
		}
		if p != p.Masked() {
			c.add(path, obj, "route destination %s has host bits set (did you mean %s?)", p, p.Masked())
			return rt, false
		}
		rt.Dst = p
	}
	if via.IsValid() {
		if via.Is4() != rt.Dst.Addr().Is4() {
			c.add(path, obj, "route to %s via %s mixes IPv4 and IPv6", rt.Dst, via)
			return rt, false
		}
		on := onLink(ifs, via)
		if on == nil {
			c.add(path, obj, "next hop %s is not on-link: no interface of the node has an address in its subnet", via)
			return rt, false
		}
		for _, i := range ifs {
			for _, a := range i.Addrs {
				if a.Addr() == via {
					c.add(path, obj, "next hop %s is the node's own address on %s", via, i.Name)
					return rt, false
				}
			}
		}
		if rs.Dev != "" && rs.Dev != on.Name {
			c.add(path, obj, "next hop %s is on %s, not on dev %s", via, on.Name, rs.Dev)
			return rt, false
		}
		rt.Via = via
		rt.Dev = on.Name
	}
	if rs.Dev != "" {
		found := false
		for _, i := range ifs {
			if i.Name == rs.Dev {
				found = true
			}
		}
		if !found {
			what := "the node"
			if obj == "host attachment" {
				what = "the host attachment"
			}
			c.add(path, obj, "route device %q is not an interface of %s", rs.Dev, what)
			return rt, false
		}
		rt.Dev = rs.Dev
	}
	if !via.IsValid() && rs.Dev == "" {
		c.add(path, obj, "route to %s needs a via or a dev", rt.Dst)
		return rt, false
	}
	return rt, true
}

// autoRoutes gives every host and router a route to every subnet of the
// lab that it is not on, through the first router of a shortest path. Each
// family has its own paths: an IPv4 path crosses only routers with IPv4
// addresses on both segments, so a router without IPv4 (families =
// ["ipv6"]) is never an IPv4 next hop.
func (r *resolver) autoRoutes() {
	p, c := r.plan, r.c
	// A router that must be a next hop needs an address on every segment
	// it joins, for each family the segment carries, unless a families
	// list keeps that family off it.
	for _, n := range p.Nodes {
		if n.Kind != KindRouter {
			continue
		}
		for _, i := range n.Ifaces {
			for _, sub := range p.Segments[i.Segment].Subnets {
				v4 := sub.Addr().Is4()
				if !hasFamily(i.Addrs, v4) && r.allowed(i).has(v4) {
					c.add(r.path[i], fmt.Sprintf("node %q", i.Node), "automatic routing: router interface %s has no IPv%d address on segment %s, so no route can go through it", i.Name, famNum(sub), sub)
				}
			}
		}
	}
	// Per family, the interfaces routers have on each segment with an
	// address of the family.
	segRouters := map[bool][][]*Iface{}
	for _, v4 := range []bool{true, false} {
		segRouters[v4] = make([][]*Iface, len(p.Segments))
		for _, rn := range p.Nodes {
			if rn.Kind != KindRouter {
				continue
			}
			for _, i := range rn.Ifaces {
				if hasFamily(i.Addrs, v4) {
					segRouters[v4][i.Segment] = append(segRouters[v4][i.Segment], i)
				}
			}
		}
	}
	for _, n := range p.Nodes {
		if n.Kind == KindSwitch || len(n.Ifaces) == 0 {
			continue
		}
		first := map[bool][]*hop{true: r.firstHops(n, true, segRouters[true]), false: r.firstHops(n, false, segRouters[false])}
		for si, seg := range p.Segments {
			for _, sub := range seg.Subnets {
				v4 := sub.Addr().Is4()
				h := first[v4][si]
				if h == nil {
					continue
				}
				var via netip.Addr
				for _, a := range h.nh.Addrs {
					if a.Addr().Is4() == v4 {
						via = a.Addr()
						break
					}
				}
				if !via.IsValid() || hasRoute(n.Routes, sub) {
					continue // a static route wins
				}
				n.Routes = append(n.Routes, Route{Dst: sub, Via: via, Dev: h.out.Name, Auto: true})
			}
		}
	}
}

// hop is the start of a route: out of the node's interface, to a router.
type hop struct {
	out *Iface // the node's own interface on the first segment
	nh  *Iface // the first router's interface on that segment
}

// firstHops finds, for family v4 (or 6), the first hop from n toward each
// segment it is not on, by a breadth-first search over segments that
// crosses routers only: from a segment where a router has an address of
// the family to its other segments where it has one too (segRouters
// lists those router interfaces per segment). Between equally short paths
// the first found wins (routers in file order). The result is indexed by
// segment; nil where no path goes.
func (r *resolver) firstHops(n *Node, v4 bool, segRouters [][]*Iface) []*hop {
	p := r.plan
	first := make([]*hop, len(p.Segments))
	dist := make([]int, len(p.Segments))
	for i := range dist {
		dist[i] = -1
	}
	var queue []int
	for _, i := range n.Ifaces {
		if dist[i.Segment] < 0 && hasFamily(i.Addrs, v4) {
			dist[i.Segment] = 0
			queue = append(queue, i.Segment)
		}
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		for _, ri := range segRouters[s] {
			if ri.Node == n.Name {
				continue
			}
			for _, oi := range p.byName[ri.Node].Ifaces {
				t := oi.Segment
				if dist[t] >= 0 || !hasFamily(oi.Addrs, v4) {
					continue
				}
				dist[t] = dist[s] + 1
				if dist[s] == 0 {
					first[t] = &hop{out: onSegmentFam(n.Ifaces, s, v4), nh: ri}
				} else {
					first[t] = first[s]
				}
				queue = append(queue, t)
			}
		}
	}
	return first
}

// onSegmentFam returns the interface of ifs on segment seg that has an
// address of family v4 (or 6).
func onSegmentFam(ifs []*Iface, seg int, v4 bool) *Iface {
	for _, i := range ifs {
		if i.Segment == seg && hasFamily(i.Addrs, v4) {
			return i
		}
	}
	return nil
}

// HasFamily reports whether the interface has an address of family fam
// (4 or 6).
func (i *Iface) HasFamily(fam int) bool { return hasFamily(i.Addrs, fam == 4) }

func hasFamily(ps []netip.Prefix, v4 bool) bool {
	for _, a := range ps {
		if a.Addr().Is4() == v4 {
			return true
		}
	}
	return false
}

func famNum(p netip.Prefix) int {
	if p.Addr().Is4() {
		return 4
	}
	return 6
}

func hasRoute(rs []Route, dst netip.Prefix) bool {
	for _, r := range rs {
		if r.Dst == dst {
			return true
		}
	}
	return false
}

// suggest returns ` (did you mean "x"?)` for the closest known name, or "".
func suggest(name string, known []string) string {
	best, bestD := "", 1<<30
	for _, k := range known {
		if d := text.Distance(name, k); d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" || bestD > (len(name)+2)/2 {
		if len(known) > 0 && len(known) <= 12 {
			return fmt.Sprintf(" (known: %s)", strings.Join(known, ", "))
		}
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// A switch of up to soloPorts ports is one bridge, whose flood fits the
// default backlog of 1,000 (see Trunk); a bigger one is a chain of bridges
// of up to chainPorts ports each (two floods at once fit the backlog).
const (
	soloPorts  = 1000
	chainPorts = 498
)

// trunkCount is how many further bridges a switch of ports ports needs.
func trunkCount(ports int) int {
	if ports <= soloPorts {
		return 0
	}
	return (ports+chainPorts-1)/chainPorts - 1
}

// planTrunks names the further bridges of a switch with more ports than
// one bridge serves well, and their pairs, avoiding the names used.
func planTrunks(n *Node, used map[string]bool) {
	k := trunkCount(len(n.Ifaces))
	for j, c := 1, 1; j <= k; c++ {
		t := &Trunk{Bridge: fmt.Sprintf("trunk%d", c), Up: fmt.Sprintf("trunk%d-up", c), Down: fmt.Sprintf("trunk%d-down", c)}
		if used[t.Bridge] || used[t.Up] || used[t.Down] {
			continue
		}
		used[t.Bridge], used[t.Up], used[t.Down] = true, true, true
		n.Trunks = append(n.Trunks, t)
		j++
	}
}

// NamespaceName is the name of a node's network namespace: "LAB.NODE". A
// lab name has no '.', so the first '.' ends it and no two labs' nodes
// share a name (with '-', lab "a" node "b-c" and lab "a-b" node "c" did).
func NamespaceName(lab, node string) string { return lab + "." + node }
