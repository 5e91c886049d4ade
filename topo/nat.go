package topo

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// NATSpec is the NAT of a gateway (a router), as written in a topology:
// the equivalent of `nft add rule inet T postrouting oifname OUT masquerade`
// and `... prerouting iifname OUT tcp dport P dnat ip to A:P`.
type NATSpec struct {
	// Outside is the gateway's interface toward the outside (required).
	Outside string `toml:"outside"`
	// Masquerade translates inside sources to the outside interface's
	// address.
	Masquerade bool `toml:"masquerade,omitempty"`
	// SNAT translates inside sources to a fixed address, or a range
	// "203.0.113.5-203.0.113.9" (instead of Masquerade).
	SNAT string `toml:"snat,omitempty"`
	// Ports limits the translated source ports: "1024-65535".
	Ports string `toml:"ports,omitempty"`
	// Flags change the choice of source port: "persistent", "random",
	// "fully-random".
	Flags []string `toml:"flags,omitempty"`
	// Sources limits translation to these prefixes (default: everything
	// that did not come in on the outside interface, the gateway's own
	// traffic included).
	Sources []string `toml:"sources,omitempty"`
	// Inbound is what happens to new connections from the outside to the
	// inside that no forward asked for: "drop" (the default, what a home
	// gateway does) or "accept".
	Inbound string `toml:"inbound,omitempty"`
	// Forwards are port forwards (destination NAT) from the outside in.
	Forwards []ForwardSpec `toml:"forwards,omitempty"`

	// Profile names a NAT behaviour in RFC 4787 terms: "full-cone",
	// "restricted-cone", "port-restricted" or "symmetric". It sets Mapping
	// and Filtering; it needs masquerade (or snat to one address).
	Profile string `toml:"profile,omitempty"`
	// Mapping is "endpoint-independent" or "address-and-port-dependent".
	Mapping Behaviour `toml:"mapping,omitempty"`
	// Filtering is "endpoint-independent", "address-dependent" or
	// "address-and-port-dependent".
	Filtering Behaviour `toml:"filtering,omitempty"`
	// PortPreservation keeps the inside source port as the mapped port
	// when it is free (default: on for endpoint-independent mapping, off
	// for address-and-port-dependent, which picks random ports).
	PortPreservation *bool `toml:"port_preservation,omitempty"`
	// Hairpinning lets inside hosts reach each other through the
	// gateway's outside address and mapped ports (needs
	// endpoint-independent mapping).
	Hairpinning bool `toml:"hairpinning,omitempty"`
	// MappingTimeout is how long an idle UDP mapping lives ("30s").
	MappingTimeout string `toml:"mapping_timeout,omitempty"`
}

// Behaviour is a NAT's mapping or filtering behaviour, in RFC 4787's
// terms.
type Behaviour string

// RFC 4787 behaviours.
const (
	EndpointIndependent     Behaviour = "endpoint-independent"
	AddressDependent        Behaviour = "address-dependent"
	AddressAndPortDependent Behaviour = "address-and-port-dependent"
)

// natProfiles are the presets: mapping and filtering.
var natProfiles = map[string][2]Behaviour{
	"full-cone":       {EndpointIndependent, EndpointIndependent},
	"restricted-cone": {EndpointIndependent, AddressDependent},
	"port-restricted": {EndpointIndependent, AddressAndPortDependent},
	"symmetric":       {AddressAndPortDependent, AddressAndPortDependent},
}

// NATProfiles lists the preset names.
func NATProfiles() []string {
	return []string{"full-cone", "restricted-cone", "port-restricted", "symmetric"}
}

// ForwardSpec is one port forward: traffic to Address:Port on the
// outside goes to To.
type ForwardSpec struct {
	// Proto is "tcp" or "udp".
	Proto string `toml:"proto"`
	// Port is the outside port.
	Port int `toml:"port"`
	// Address is the outside address to match (default: the first
	// address of the outside interface).
	Address string `toml:"address,omitempty"`
	// To is "node:port" (the node's first IPv4 address) or "addr:port".
	To string `toml:"to"`
}

// FirewallSpec is a node's packet filter: a default policy per hook and
// rules tried in order before it. Replies to allowed traffic are always
// accepted (`ct state established,related accept`).
type FirewallSpec struct {
	// Input, Forward and Output are the default policies: "accept" (the
	// default) or "drop".
	Input   string         `toml:"input,omitempty"`
	Forward string         `toml:"forward,omitempty"`
	Output  string         `toml:"output,omitempty"`
	Rules   []FirewallRule `toml:"rules,omitempty"`
}

// FirewallRule matches packets and accepts, drops or rejects them.
type FirewallRule struct {
	// Chain is "input", "forward" or "output".
	Chain string `toml:"chain"`
	// Action is "accept", "drop" or "reject".
	Action string `toml:"action"`
	// Proto is "tcp", "udp" or "icmp" (any when empty).
	Proto string `toml:"proto,omitempty"`
	// Src and Dst are addresses or prefixes.
	Src string `toml:"src,omitempty"`
	Dst string `toml:"dst,omitempty"`
	// SPort and DPort are ports (tcp or udp only).
	SPort int `toml:"sport,omitempty"`
	DPort int `toml:"dport,omitempty"`
	// IIF and OIF are interface names.
	IIF string `toml:"iif,omitempty"`
	OIF string `toml:"oif,omitempty"`
}

// NAT is a resolved gateway NAT.
type NAT struct {
	Outside    string
	Masquerade bool
	// SNATMin and SNATMax are the source NAT range (equal for one address).
	SNATMin, SNATMax netip.Addr
	PortMin, PortMax uint16
	Persistent       bool
	Random           bool
	FullyRandom      bool
	Sources          []netip.Prefix
	DropInbound      bool
	Forwards         []Forward
	// Profile is the preset's name, or "" when none was given.
	Profile string
	// Mapping and Filtering are the RFC 4787 behaviours promised for UDP
	// ("" when none was asked for: plain Linux NAT).
	Mapping, Filtering Behaviour
	PortPreservation   bool
	Hairpinning        bool
	MappingTimeout     time.Duration
	OutsideAddr        netip.Addr // first IPv4 address of the outside interface
	OutsideSubnets     []netip.Prefix
	InsideInterfaces   []string
}

// Forward is a resolved port forward.
type Forward struct {
	Proto  string // "tcp" or "udp"
	Addr   netip.Addr
	Port   uint16
	ToAddr netip.Addr
	ToPort uint16
	ToNode string // "" when written as an address
}

// Firewall is a resolved packet filter.
type Firewall struct {
	Input, Forward, Output string // "accept" or "drop"
	Rules                  []Rule
}

// Rule is a resolved firewall rule.
type Rule struct {
	Chain, Action, Proto string
	Src, Dst             netip.Prefix
	SPort, DPort         uint16
	IIF, OIF             string
}

var natFlags = []string{"persistent", "random", "fully-random"}

func (r *resolver) natAndFirewall() {
	for si := range r.t.Nodes {
		ns := &r.t.Nodes[si]
		n := r.plan.byName[ns.Name]
		if n == nil || r.specIdx[ns.Name] != si {
			continue
		}
		path := fmt.Sprintf("nodes[%d]", si)
		obj := fmt.Sprintf("node %q", n.Name)
		if ns.NAT != nil {
			n.NAT = r.resolveNAT(path+".nat", obj, n, ns.NAT)
		}
		if ns.Firewall != nil {
			n.Firewall = r.resolveFirewall(path+".firewall", obj, n, ns.Firewall)
		}
	}
}

func (r *resolver) resolveNAT(path, obj string, n *Node, s *NATSpec) *NAT {
	c := r.c
	switch n.Kind {
	case KindRouter:
	case KindSwitch:
		c.add(path, obj, "a switch cannot do NAT: make a router the gateway")
		return nil
	default:
		c.add(path, obj, "NAT needs a gateway that forwards: set kind = \"router\" on node %q", n.Name)
		return nil
	}
	out := &NAT{Outside: s.Outside, Masquerade: s.Masquerade, DropInbound: true}
	if s.Outside == "" {
		c.add(path, obj, "nat needs outside = \"IFACE\", the interface toward the outside")
		return nil
	}
	oi := n.Iface(s.Outside)
	if oi == nil {
		var names []string
		for _, i := range n.Ifaces {
			names = append(names, i.Name)
		}
		c.add(path+".outside", obj, "nat outside %q is not an interface of the node (it has: %s)", s.Outside, strings.Join(names, ", "))
		return nil
	}
	for _, a := range oi.Addrs {
		if a.Addr().Is4() {
			if !out.OutsideAddr.IsValid() {
				out.OutsideAddr = a.Addr()
			}
			out.OutsideSubnets = append(out.OutsideSubnets, a.Masked())
		}
	}
	if len(n.Ifaces) < 2 {
		c.add(path, obj, "a gateway needs an inside interface besides %q", s.Outside)
	}
	for _, i := range n.Ifaces {
		if i.Name != s.Outside {
			out.InsideInterfaces = append(out.InsideInterfaces, i.Name)
		}
	}
	if s.Masquerade && s.SNAT != "" {
		c.add(path+".snat", obj, "write masquerade = true or snat = \"ADDR\", not both")
	}
	if !out.OutsideAddr.IsValid() && (s.Masquerade || len(s.Forwards) > 0) {
		c.add(path+".outside", obj, "outside interface %q has no IPv4 address to translate to", s.Outside)
	}
	if s.SNAT != "" {
		lo, hi, ok := parseAddrRange(s.SNAT)
		if !ok {
			c.add(path+".snat", obj, "snat %q is not an IPv4 address or a range like 203.0.113.5-203.0.113.9", s.SNAT)
		} else {
			out.SNATMin, out.SNATMax = lo, hi
		}
	}
	if s.Ports != "" {
		lo, hi, ok := parsePortRange(s.Ports)
		if !ok {
			c.add(path+".ports", obj, "ports %q is not a port range like 1024-65535 (ports are 1-65535)", s.Ports)
		} else if !s.Masquerade && s.SNAT == "" {
			c.add(path+".ports", obj, "ports only applies with masquerade or snat")
		} else {
			out.PortMin, out.PortMax = lo, hi
		}
	}
	for j, f := range s.Flags {
		switch f {
		case "persistent":
			out.Persistent = true
		case "random":
			out.Random = true
		case "fully-random":
			out.FullyRandom = true
		default:
			c.add(fmt.Sprintf("%s.flags[%d]", path, j), obj, "unknown nat flag %q (known: %s)", f, strings.Join(natFlags, ", "))
		}
	}
	if s.Masquerade && s.Ports != "" && len(s.Flags) > 0 {
		c.add(path+".flags", obj, "masquerade takes ports or flags, not both (use snat for both)")
	}
	if len(s.Flags) > 0 && !s.Masquerade && s.SNAT == "" {
		c.add(path+".flags", obj, "nat flags only apply with masquerade or snat")
	}
	for j, src := range s.Sources {
		p, err := netip.ParsePrefix(src)
		if err != nil || !p.Addr().Is4() {
			c.add(fmt.Sprintf("%s.sources[%d]", path, j), obj, "source %q is not an IPv4 prefix like 192.168.1.0/24", src)
			continue
		}
		out.Sources = append(out.Sources, p.Masked())
	}
	switch s.Inbound {
	case "", "drop":
	case "accept":
		out.DropInbound = false
	default:
		c.add(path+".inbound", obj, "inbound %q is not \"drop\" or \"accept\"", s.Inbound)
	}
	r.natBehaviour(path, obj, n, s, out)
	seen := map[string]int{}
	for j, f := range s.Forwards {
		fpath := fmt.Sprintf("%s.forwards[%d]", path, j)
		fw, ok := r.resolveForward(fpath, obj, n, out, f)
		if !ok {
			continue
		}
		key := fmt.Sprintf("%s %s:%d", fw.Proto, fw.Addr, fw.Port)
		if k, dup := seen[key]; dup {
			c.add(fpath, obj, "port forward %s conflicts with forward %d, which takes the same address and port", key, k+1)
			continue
		}
		seen[key] = j
		out.Forwards = append(out.Forwards, fw)
	}
	return out
}

// natBehaviour resolves the profile, mapping, filtering, hairpinning and
// timeout, refusing what nftables cannot express, with the reason.
func (r *resolver) natBehaviour(path, obj string, n *Node, s *NATSpec, out *NAT) {
	c := r.c
	behaviours := []string{string(EndpointIndependent), string(AddressDependent), string(AddressAndPortDependent)}
	// An empty name is not the same as no name: `profile = ""` written in a
	// file is refused, rather than read as "no behaviour" (plain
	// masquerade, which hole punching cannot rely on).
	empty := false
	for _, x := range []struct {
		key, v string
		known  []string
	}{{"profile", s.Profile, NATProfiles()}, {"mapping", string(s.Mapping), behaviours}, {"filtering", string(s.Filtering), behaviours}} {
		if x.v == "" && r.written(path+"."+x.key) {
			c.add(path+"."+x.key, obj, "%s is empty: write one of %s, or leave %s out", x.key, strings.Join(x.known, ", "), x.key)
			empty = true
		}
	}
	if empty {
		return
	}
	if s.Profile == "" && s.Mapping == "" && s.Filtering == "" && !s.Hairpinning && s.MappingTimeout == "" && s.PortPreservation == nil {
		return
	}
	mapping, filtering := s.Mapping, s.Filtering
	if s.Profile != "" {
		pr, ok := natProfiles[s.Profile]
		if !ok {
			c.add(path+".profile", obj, "unknown NAT profile %q (known: %s)%s", s.Profile, strings.Join(NATProfiles(), ", "), didYouMean(s.Profile, NATProfiles()))
			return
		}
		for _, x := range []struct {
			key           string
			given, preset Behaviour
		}{{"mapping", mapping, pr[0]}, {"filtering", filtering, pr[1]}} {
			if x.given != "" && x.given != x.preset {
				c.add(path+"."+x.key, obj, "profile %q has %s %s; drop %s or the profile", s.Profile, x.key, x.preset, x.key)
			}
		}
		mapping, filtering = pr[0], pr[1]
		out.Profile = s.Profile
	}
	if mapping == "" {
		mapping = EndpointIndependent
	}
	if filtering == "" {
		filtering = AddressAndPortDependent
	}
	for _, x := range []struct {
		key string
		v   Behaviour
	}{{"mapping", mapping}, {"filtering", filtering}} {
		if !containsStr(behaviours, string(x.v)) {
			c.add(path+"."+x.key, obj, "unknown %s %q (known: %s)", x.key, x.v, strings.Join(behaviours, ", "))
			return
		}
	}
	switch {
	case !s.Masquerade && (s.SNAT == "" || out.SNATMin != out.SNATMax):
		c.add(path, obj, "a NAT behaviour needs masquerade = true or snat to one address")
	case len(s.Flags) > 0 || s.Ports != "":
		c.add(path+".flags", obj, "a NAT behaviour chooses the ports itself: remove flags and ports")
	case mapping == AddressDependent:
		c.add(path+".mapping", obj, "address-dependent mapping is not offered yet: it needs the mapped port chosen by a hash of the inside address and port and the remote address, which nslab does not build yet")
	case mapping == AddressAndPortDependent && filtering != AddressAndPortDependent:
		c.add(path+".filtering", obj, "%s filtering needs endpoint-independent mapping: inbound packets are matched by their mapped port, and an address-and-port-dependent mapping has one per destination", filtering)
	case mapping == AddressAndPortDependent && s.Hairpinning:
		c.add(path+".hairpinning", obj, "hairpinning needs endpoint-independent mapping: with a mapping per destination there is no one mapped address to hairpin to")
	}
	out.Mapping, out.Filtering, out.Hairpinning = mapping, filtering, s.Hairpinning
	out.PortPreservation = mapping == EndpointIndependent
	if s.PortPreservation != nil {
		if *s.PortPreservation && mapping == AddressAndPortDependent {
			c.add(path+".port_preservation", obj, "address-and-port-dependent mapping here picks a random port for every flow: it cannot preserve ports")
		}
		out.PortPreservation = *s.PortPreservation
	}
	if out.Hairpinning && !out.OutsideAddr.IsValid() {
		c.add(path+".hairpinning", obj, "hairpinning needs an IPv4 address on the outside interface")
	}
	out.MappingTimeout = 120 * time.Second
	if s.MappingTimeout != "" {
		d, err := time.ParseDuration(s.MappingTimeout)
		if err != nil || d < time.Second || d > 24*time.Hour {
			c.add(path+".mapping_timeout", obj, "mapping_timeout %q is not a duration from 1s to 24h like \"30s\"", s.MappingTimeout)
		} else {
			out.MappingTimeout = d
		}
		secs := strconv.Itoa(int(out.MappingTimeout / time.Second))
		// Conntrack's UDP timeouts are the mappings' life for what no map
		// holds; they are per network namespace.
		n.Sysctls = append(n.Sysctls, Sysctl{"net.netfilter.nf_conntrack_udp_timeout", secs}, Sysctl{"net.netfilter.nf_conntrack_udp_timeout_stream", secs})
	}
}

// written reports whether the topology file wrote the value at path
// (false for a topology built in Go, where "" and absent are the same).
func (r *resolver) written(path string) bool {
	if r.c.src == nil {
		return false
	}
	_, ok := r.c.src.pos[path]
	return ok
}

// didYouMean is ` (did you mean "x"?)` when a known name is close to name,
// else "": for messages that list the known names themselves (suggest
// would add the list a second time).
func didYouMean(name string, known []string) string {
	if s := suggest(name, known); strings.HasPrefix(s, " (did you mean") {
		return s
	}
	return ""
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (r *resolver) resolveForward(path, obj string, n *Node, nat *NAT, f ForwardSpec) (Forward, bool) {
	c := r.c
	fw := Forward{Proto: f.Proto}
	ok := true
	if f.Proto != "tcp" && f.Proto != "udp" {
		c.add(path+".proto", obj, "port forward proto %q is not \"tcp\" or \"udp\"", f.Proto)
		ok = false
	}
	if f.Port < 1 || f.Port > 65535 {
		c.add(path+".port", obj, "port forward port %d is outside 1-65535", f.Port)
		ok = false
	}
	fw.Port = uint16(f.Port)
	fw.Addr = nat.OutsideAddr
	if f.Address != "" {
		a, err := netip.ParseAddr(f.Address)
		if err != nil || !a.Is4() {
			c.add(path+".address", obj, "port forward address %q is not an IPv4 address", f.Address)
			ok = false
		} else {
			fw.Addr = a
		}
	}
	host, port, found := strings.Cut(f.To, ":")
	pn, err := strconv.Atoi(port)
	if !found || err != nil || pn < 1 || pn > 65535 {
		c.add(path+".to", obj, "port forward to %q is not NODE:PORT or ADDRESS:PORT with a port in 1-65535", f.To)
		return fw, false
	}
	fw.ToPort = uint16(pn)
	if a, err := netip.ParseAddr(host); err == nil {
		fw.ToAddr = a
	} else {
		t := r.plan.byName[host]
		if t == nil {
			c.add(path+".to", obj, "port forward to unknown node %q%s", host, suggest(host, r.plan.NodeNames()))
			return fw, false
		}
		a, has := t.FirstAddr(4)
		if !has {
			c.add(path+".to", obj, "port forward target %q has no IPv4 address", host)
			return fw, false
		}
		fw.ToAddr, fw.ToNode = a, host
	}
	for _, s := range nat.OutsideSubnets {
		if s.Contains(fw.ToAddr) {
			c.add(path+".to", obj, "port forward target %s is on the outside (%s), not on the inside of %q", f.To, s, n.Name)
			return fw, false
		}
	}
	return fw, ok
}

func (r *resolver) resolveFirewall(path, obj string, n *Node, s *FirewallSpec) *Firewall {
	c := r.c
	fw := &Firewall{Input: "accept", Forward: "accept", Output: "accept"}
	for _, p := range []struct {
		key string
		val string
		dst *string
	}{{"input", s.Input, &fw.Input}, {"forward", s.Forward, &fw.Forward}, {"output", s.Output, &fw.Output}} {
		switch p.val {
		case "":
		case "accept", "drop":
			*p.dst = p.val
		default:
			c.add(path+"."+p.key, obj, "firewall %s policy %q is not \"accept\" or \"drop\"", p.key, p.val)
		}
	}
	if n.Kind == KindSwitch {
		c.add(path, obj, "a switch has no firewall: put the rules on a host or router")
		return nil
	}
	for j, rs := range s.Rules {
		rpath := fmt.Sprintf("%s.rules[%d]", path, j)
		ru := Rule{Chain: rs.Chain, Action: rs.Action, Proto: rs.Proto, IIF: rs.IIF, OIF: rs.OIF}
		ok := true
		bad := func(key, format string, args ...any) {
			c.add(rpath+"."+key, obj, format, args...)
			ok = false
		}
		switch rs.Chain {
		case "input", "forward", "output":
		default:
			bad("chain", "firewall rule chain %q is not input, forward or output", rs.Chain)
		}
		switch rs.Action {
		case "accept", "drop", "reject":
		default:
			bad("action", "firewall rule action %q is not accept, drop or reject", rs.Action)
		}
		switch rs.Proto {
		case "", "tcp", "udp", "icmp":
		default:
			bad("proto", "firewall rule proto %q is not tcp, udp or icmp", rs.Proto)
		}
		if (rs.SPort != 0 || rs.DPort != 0) && rs.Proto != "tcp" && rs.Proto != "udp" {
			bad("proto", "a firewall rule with a port needs proto = \"tcp\" or \"udp\"")
		}
		for _, p := range []struct {
			key string
			v   int
			dst *uint16
		}{{"sport", rs.SPort, &ru.SPort}, {"dport", rs.DPort, &ru.DPort}} {
			if p.v < 0 || p.v > 65535 {
				bad(p.key, "firewall rule %s %d is outside 1-65535 (0 or none: any port)", p.key, p.v)
			}
			*p.dst = uint16(p.v)
		}
		for _, p := range []struct {
			key, v string
			dst    *netip.Prefix
		}{{"src", rs.Src, &ru.Src}, {"dst", rs.Dst, &ru.Dst}} {
			if p.v == "" {
				continue
			}
			pf, err := netip.ParsePrefix(p.v)
			if err != nil {
				a, aerr := netip.ParseAddr(p.v)
				if aerr != nil {
					bad(p.key, "firewall rule %s %q is not an address or prefix", p.key, p.v)
					continue
				}
				pf = netip.PrefixFrom(a, a.BitLen())
			}
			*p.dst = pf.Masked()
		}
		for _, p := range []struct{ key, v string }{{"iif", rs.IIF}, {"oif", rs.OIF}} {
			if p.v != "" && n.Iface(p.v) == nil {
				bad(p.key, "firewall rule %s %q is not an interface of the node", p.key, p.v)
			}
		}
		if ru.Src.IsValid() && ru.Dst.IsValid() && ru.Src.Addr().Is4() != ru.Dst.Addr().Is4() {
			bad("dst", "firewall rule mixes IPv4 and IPv6 addresses (src %s, dst %s)", ru.Src, ru.Dst)
		}
		if rs.IIF != "" && rs.Chain == "output" {
			bad("iif", "an output rule has no input interface")
		}
		if rs.OIF != "" && rs.Chain == "input" {
			bad("oif", "an input rule has no output interface")
		}
		if ok {
			fw.Rules = append(fw.Rules, ru)
		}
	}
	return fw
}

// MappedAddr is the outside address mappings use: the snat address, or
// the outside interface's first IPv4 address for masquerade.
func (n *NAT) MappedAddr() netip.Addr {
	if n.SNATMin.IsValid() {
		return n.SNATMin
	}
	return n.OutsideAddr
}

func parseAddrRange(s string) (lo, hi netip.Addr, ok bool) {
	a, b, isRange := strings.Cut(s, "-")
	lo, err := netip.ParseAddr(strings.TrimSpace(a))
	if err != nil || !lo.Is4() {
		return lo, hi, false
	}
	hi = lo
	if isRange {
		if hi, err = netip.ParseAddr(strings.TrimSpace(b)); err != nil || !hi.Is4() || hi.Less(lo) {
			return lo, hi, false
		}
	}
	return lo, hi, true
}

func parsePortRange(s string) (lo, hi uint16, ok bool) {
	a, b, isRange := strings.Cut(s, "-")
	x, err := strconv.Atoi(strings.TrimSpace(a))
	if err != nil || x < 1 || x > 65535 {
		return 0, 0, false
	}
	y := x
	if isRange {
		if y, err = strconv.Atoi(strings.TrimSpace(b)); err != nil || y < x || y > 65535 {
			return 0, 0, false
		}
	}
	return uint16(x), uint16(y), true
}
