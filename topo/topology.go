package topo

import (
	"fmt"
	"sort"
	"strings"

	"github.com/nslab/nslab/impair"
)

// Topology is the model of a lab as a user writes it: the TOML file decodes
// into it, and the Builder produces it from Go code. It holds names and
// strings exactly as written; Validate checks it and Resolve turns it into a
// Plan with every address, interface name and route decided.
type Topology struct {
	// Name names the lab. Namespaces are called "<name>.<node>" (a lab
	// name has no '.', so no two labs' names meet), so keep it short:
	// lowercase letters, digits and '-', at most 32 bytes.
	Name string `toml:"name"`
	// Routing is "static" (only what the file says, the default) or "auto"
	// (every router and host gets a route to every lab subnet along the
	// shortest path).
	Routing string `toml:"routing,omitempty"`
	// Addressing holds the base prefixes for automatic addresses.
	Addressing Addressing `toml:"addressing,omitempty"`
	// Nodes are the hosts, routers and switches, in order.
	Nodes []NodeSpec `toml:"nodes"`
	// Links are cables: a veth pair between two nodes, or a switch port.
	Links []LinkSpec `toml:"links"`
	// Host, when set, places one interface of the lab in the namespace
	// nslab runs in (the "host"), with addresses and routes.
	Host *HostSpec `toml:"host,omitempty"`
	// Origin is the name the topology was written with, when the lab runs
	// under another (nslab run --name, nslabtest's unique names): a
	// script's `lab` line may name either. It is not part of the file.
	Origin string `toml:"-" json:"origin,omitempty"`
	// Test is the lab's own test, run by `nslab run` once the lab is up:
	// a file that carries one is a complete network test.
	Test *TestSpec `toml:"test,omitempty"`
	// Capture names interfaces `nslab run` captures to a pcapng file while
	// the lab runs.
	Capture *CaptureSpec `toml:"capture,omitempty"`

	// source tells where each field was written, for error messages. It is
	// empty for topologies built in Go.
	source *sourceMap
}

// TestSpec is the [test] table of a topology file.
type TestSpec struct {
	// Script holds checks and experiment steps in the nslab script
	// language (docs/scripting.md), one command per line.
	Script string `toml:"script"`
	// KeepGoing runs the lines after a failing one (default: stop).
	KeepGoing bool `toml:"keep_going,omitempty"`
}

// ScriptSource tells where the embedded script starts: the topology's file
// and the line of the script's first line, so that a failing script line is
// reported at its place in the topology file. For a topology built in Go it
// returns "" and 1.
func (t *Topology) ScriptSource() (file string, line int) {
	if t.source == nil || t.source.scriptLine == 0 {
		return "", 1
	}
	return t.source.file, t.source.scriptLine
}

// Addressing gives the pools that automatic addresses come from. A segment
// (a point-to-point link, or a switch with everything on it) that has no
// address written gets the next subnet of the pool.
type Addressing struct {
	// IPv4 is the pool for IPv4 subnets (default "10.0.0.0/16").
	IPv4 string `toml:"ipv4,omitempty"`
	// IPv4Subnet is the prefix length of each IPv4 subnet (default 24).
	IPv4Subnet int `toml:"ipv4_subnet,omitempty"`
	// IPv6 is the pool for IPv6 subnets; empty means no automatic IPv6.
	IPv6 string `toml:"ipv6,omitempty"`
	// IPv6Subnet is the prefix length of each IPv6 subnet (default 64).
	IPv6Subnet int `toml:"ipv6_subnet,omitempty"`
	// Disable turns automatic addresses off: only written ones are used.
	Disable bool `toml:"disable,omitempty"`
}

// The address families a node or link may list in Families.
const (
	FamilyIPv4 = "ipv4"
	FamilyIPv6 = "ipv6"
)

// NodeSpec is one node of the lab.
type NodeSpec struct {
	// Name is unique in the lab; it becomes the hostname inside the node.
	Name string `toml:"name"`
	// Kind is "host" (the default), "router" or "switch".
	Kind Kind `toml:"kind,omitempty"`
	// Families lists the address families the node has, "ipv4" and/or
	// "ipv6" (FamilyIPv4, FamilyIPv6); empty means every family the lab
	// hands out. A node without "ipv4" gets no IPv4 address and is no
	// IPv4 next hop. On a switch it applies to every interface of the
	// switch's segment.
	Families []string `toml:"families,omitempty"`
	// Gateway is the IPv4 default gateway ("ip route add default via ...").
	Gateway string `toml:"gateway,omitempty"`
	// Gateway6 is the IPv6 default gateway.
	Gateway6 string `toml:"gateway6,omitempty"`
	// Routes are static routes ("ip route add TO via VIA").
	Routes []RouteSpec `toml:"routes,omitempty"`
	// Sysctls are written in the node's namespace before any link exists,
	// for example "net.ipv4.conf.all.rp_filter" = "0".
	Sysctls map[string]string `toml:"sysctls,omitempty"`
	// Start lists commands started in the background (through /bin/sh -c)
	// once the lab is up; they are stopped at teardown.
	Start []string `toml:"start,omitempty"`
	// Echo lists ports (1-65535) on which nslab's built-in echo service
	// answers, over UDP and TCP, once the lab is up: the rendezvous of a
	// hole punch (docs/nat.md). It runs as a process in the node and is
	// stopped at teardown.
	Echo []int `toml:"echo,omitempty"`
	// NAT makes a router a gateway: masquerade or source NAT out of its
	// outside interface, and port forwards in (see docs/nat.md).
	NAT *NATSpec `toml:"nat,omitempty"`
	// Firewall filters what the node receives, forwards and sends.
	Firewall *FirewallSpec `toml:"firewall,omitempty"`
	// Datapath is what forwards a switch's frames: "bridge" (a Linux
	// bridge, the default) or "ebpf" (nslab's eBPF learning switch: no
	// bridge device, at most MaxEBPFSwitchPorts ports, no STP or `bridge
	// fdb`; much cheaper for the kernel to remove, see docs/topology.md,
	// "datapath").
	Datapath string `toml:"datapath,omitempty"`
}

// The datapaths of a switch (NodeSpec.Datapath).
const (
	DatapathBridge = "bridge"
	DatapathEBPF   = "ebpf"
)

// MaxEBPFSwitchPorts is the most ports a switch with the "ebpf" datapath
// takes (its flood is unrolled in the program, one step a port).
const MaxEBPFSwitchPorts = 64

// RouteSpec is a static route.
type RouteSpec struct {
	// To is the destination prefix, or "default".
	To string `toml:"to"`
	// Via is the next hop; it must be on one of the node's subnets.
	Via string `toml:"via,omitempty"`
	// Dev is the interface, for a route with no next hop.
	Dev string `toml:"dev,omitempty"`
}

// LinkSpec is one cable. Write it either briefly, as two endpoints
// ("node" or "node:interface"), or with an A and a B endpoint table that can
// carry addresses and a MAC.
type LinkSpec struct {
	Endpoints []string      `toml:"endpoints,omitempty"`
	A         *EndpointSpec `toml:"a,omitempty"`
	B         *EndpointSpec `toml:"b,omitempty"`
	// MTU of both ends (default: the kernel's, 1500).
	MTU int `toml:"mtu,omitempty"`
	// Families lists the address families of the link's ends, as
	// NodeSpec.Families does for a node: "ipv6" alone makes an
	// IPv6-only link.
	Families []string `toml:"families,omitempty"`
	// Impair makes the link behave like a real one: rate, delay, jitter,
	// loss, ... for both directions, or per sending node under from.NODE
	// (docs/impairments.md).
	Impair *impair.Spec `toml:"impair,omitempty"`
}

// EndpointSpec is one end of a link.
type EndpointSpec struct {
	Node string `toml:"node"`
	// Interface is the name inside the node (at most 15 bytes); by default
	// eth0, eth1, ... in the order the node's links are written.
	Interface string `toml:"interface,omitempty"`
	// MAC is the hardware address, for example "02:00:00:00:00:01".
	MAC string `toml:"mac,omitempty"`
	// Addresses in CIDR form, IPv4 or IPv6.
	Addresses []string `toml:"addresses,omitempty"`
}

// HostSpec is the opt-in host attachment: one end of a veth pair stays in
// the namespace nslab runs in, the other joins a lab node (the classic
// "ip link add veth-host type veth peer ...; ip addr add 192.168.15.5/24
// dev veth-host" step).
type HostSpec struct {
	// Node is the lab node the host is cabled to (usually a switch).
	Node string `toml:"node"`
	// Interface is the name of the host's end (at most 15 bytes).
	Interface string `toml:"interface"`
	// Addresses of the host's end.
	Addresses []string `toml:"addresses,omitempty"`
	// Routes added in the host namespace (through the lab).
	Routes []RouteSpec `toml:"routes,omitempty"`
	// MTU of the pair.
	MTU int `toml:"mtu,omitempty"`
	// Impair is the attachment's impairment, as a link's: from.host is
	// the direction from the host into the lab, from.NODE the other.
	Impair *impair.Spec `toml:"impair,omitempty"`
}

// Kind says what a node is.
type Kind string

// The kinds of node nslab knows.
const (
	// KindHost is an end system: a namespace with addresses and routes,
	// forwarding off.
	KindHost Kind = "host"
	// KindRouter is a namespace with IPv4 and IPv6 forwarding on.
	KindRouter Kind = "router"
	// KindSwitch is a Linux bridge in a namespace of its own.
	KindSwitch Kind = "switch"
)

// kindInfo describes a registered kind.
type kindInfo struct {
	forwards bool // routes packets between its interfaces
	bridge   bool // an L2 switch: no addresses, a bridge joins its ports
	about    string
}

// kinds is the explicit registry of node kinds. It is never modified.
func kinds() map[Kind]kindInfo {
	return map[Kind]kindInfo{
		KindHost:   {about: "an end system: addresses and routes, no forwarding"},
		KindRouter: {forwards: true, about: "forwards IPv4 and IPv6 between its interfaces"},
		KindSwitch: {bridge: true, about: "a Linux bridge in its own namespace"},
	}
}

// KnownKinds lists the registered kinds, sorted.
func KnownKinds() []Kind {
	var out []Kind
	for k := range kinds() {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func knownKindsText() string {
	var s []string
	for _, k := range KnownKinds() {
		s = append(s, string(k))
	}
	return strings.Join(s, ", ")
}

// kindOf returns the node's kind, host when empty.
func (n *NodeSpec) kindOf() Kind {
	if n.Kind == "" {
		return KindHost
	}
	return n.Kind
}

// endpoints returns the link's two ends in the long form, whichever form the
// link was written in. ok is false when the link has neither two brief
// endpoints nor an A and a B.
func (l *LinkSpec) endpoints() (a, b EndpointSpec, ok bool) {
	if len(l.Endpoints) == 2 && l.A == nil && l.B == nil {
		return parseBrief(l.Endpoints[0]), parseBrief(l.Endpoints[1]), true
	}
	if len(l.Endpoints) == 0 && l.A != nil && l.B != nil {
		return *l.A, *l.B, true
	}
	return EndpointSpec{}, EndpointSpec{}, false
}

func parseBrief(s string) EndpointSpec {
	node, iface, _ := strings.Cut(s, ":")
	return EndpointSpec{Node: node, Interface: iface}
}

// String gives "node:interface" or "node".
func (e EndpointSpec) String() string {
	if e.Interface == "" {
		return e.Node
	}
	return fmt.Sprintf("%s:%s", e.Node, e.Interface)
}
