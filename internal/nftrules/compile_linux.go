package nftrules

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"github.com/nslab/nslab/topo"
	"golang.org/x/sys/unix"
)

// Table is the name of the one nftables table nslab makes in a node (one
// of family inet, and for NAT one of family ip): named after the lab, so
// that two labs never share a table.
func Table(lab string) string { return "nslab-" + lab }

// Compile returns the one nftables transaction that gives a node its
// firewall and NAT, as the netlink messages of its tables, chains, sets
// and rules in order (without the batch's begin and end, which Send
// adds), or nil when the node has neither. The tables are named table
// (Table gives the name nslab uses). Nothing is sent: it is the
// equivalent of the file of `nft -f` with:
//
//	table inet nslab-LAB {
//	  chain prerouting  { type nat hook prerouting priority dstnat; ... dnat ip to A:P }
//	  chain postrouting { type nat hook postrouting priority srcnat; oifname OUT masquerade }
//	  chain input/forward/output { type filter hook ... policy ...; ct state established,related accept; ... }
//	}
func Compile(table string, nat *topo.NAT, fw *topo.Firewall) ([]netlink.Message, error) {
	if nat == nil && fw == nil {
		return nil, nil
	}
	c, err := newBatch()
	if err != nil {
		return nil, err
	}
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: table})
	if fw == nil {
		fw = &topo.Firewall{Input: "accept", Forward: "accept", Output: "accept"}
	}
	chains := map[string]*nftables.Chain{}
	for _, ch := range []struct {
		name   string
		hook   *nftables.ChainHook
		policy string
	}{{"input", nftables.ChainHookInput, fw.Input}, {"forward", nftables.ChainHookForward, fw.Forward}, {"output", nftables.ChainHookOutput, fw.Output}} {
		pol := nftables.ChainPolicyAccept
		if ch.policy == "drop" {
			pol = nftables.ChainPolicyDrop
		}
		chains[ch.name] = c.AddChain(&nftables.Chain{Name: ch.name, Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: ch.hook, Priority: nftables.ChainPriorityFilter, Policy: &pol})
		// Replies to what was allowed are allowed, and the node talks to
		// itself; then the user's rules, in order.
		c.AddRule(&nftables.Rule{Table: t, Chain: chains[ch.name], Exprs: ctStateAccept()})
		if ch.name == "input" || ch.name == "output" {
			key := expr.MetaKeyIIFNAME
			if ch.name == "output" {
				key = expr.MetaKeyOIFNAME
			}
			c.AddRule(&nftables.Rule{Table: t, Chain: chains[ch.name], Exprs: append(ifname(key, "lo"), accept())})
			// IPv6 needs neighbour discovery (ICMPv6 types 133-137) whatever
			// the policy, as IPv4 needs ARP, which nftables does not see.
			c.AddRule(&nftables.Rule{Table: t, Chain: chains[ch.name], Exprs: append(matchL4("icmpv6"),
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
				&expr.Cmp{Op: expr.CmpOpGte, Register: 1, Data: []byte{133}},
				&expr.Cmp{Op: expr.CmpOpLte, Register: 1, Data: []byte{137}},
				accept())})
		}
	}
	for _, r := range fw.Rules {
		c.AddRule(&nftables.Rule{Table: t, Chain: chains[r.Chain], Exprs: ruleExprs(r)})
	}
	if nat != nil {
		// NAT is IPv4: its chains go in an ip table of the same name,
		// where conntrack addresses are 4 bytes (maps need that).
		ipt := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: table})
		if err := natRules(c, ipt, chains, nat); err != nil {
			return nil, fmt.Errorf("NAT: %w", err)
		}
	}
	if err := c.Conn.Flush(); err != nil {
		return nil, err
	}
	return c.msgs, nil
}

// batch is the one nftables transaction of a node. google/nftables
// encodes the tables, chains, sets and most rules: its Conn, dialled with
// the test dialer, hands each batch it would send to encode, which keeps
// the messages. addRule adds the rules that google/nftables v0.3.0 cannot
// encode (see ctAddr), in their place among the others. Send sends
// everything to the node's namespace as one batch, so that the kernel
// takes all of it or nothing.
type batch struct {
	*nftables.Conn
	msgs []netlink.Message
}

func newBatch() (*batch, error) {
	b := &batch{}
	c, err := nftables.New(nftables.WithTestDial(b.encode))
	if err != nil {
		return nil, err
	}
	b.Conn = c
	return b, nil
}

// encode keeps the messages of a batch that google/nftables flushes, and
// acknowledges them: nothing reaches the kernel before commit.
func (b *batch) encode(req []netlink.Message) ([]netlink.Message, error) {
	if len(req) > 0 {
		if len(req) < 2 || req[0].Header.Type != netlink.HeaderType(unix.NFNL_MSG_BATCH_BEGIN) || req[len(req)-1].Header.Type != netlink.HeaderType(unix.NFNL_MSG_BATCH_END) {
			return nil, errors.New("nftables: only batches are encoded, not queries")
		}
		for _, m := range req[1 : len(req)-1] {
			m.Header.Length, m.Header.Sequence, m.Header.PID = 0, 0, 0 // set when sent
			b.msgs = append(b.msgs, m)
		}
	}
	return []netlink.Message{{Header: netlink.Header{Type: netlink.Error}, Data: make([]byte, 4)}}, nil
}

// addRule appends a rule to chain, like Conn.AddRule, from expressions
// that are expr.Any or ctAddr.
func (b *batch) addRule(t *nftables.Table, chain *nftables.Chain, exprs []any) error {
	// What google/nftables holds comes first: the rule goes after it.
	if err := b.Conn.Flush(); err != nil {
		return err
	}
	list := make([]netlink.Attribute, len(exprs))
	for i, e := range exprs {
		var data []byte
		var err error
		switch e := e.(type) {
		case ctAddr:
			data, err = e.marshal()
		case expr.Any:
			data, err = expr.Marshal(byte(t.Family), e)
		default:
			err = fmt.Errorf("%T is not an nftables expression", e)
		}
		if err != nil {
			return fmt.Errorf("rule in chain %q: %w", chain.Name, err)
		}
		list[i] = netlink.Attribute{Type: unix.NLA_F_NESTED | unix.NFTA_LIST_ELEM, Data: data}
	}
	encoded, err := netlink.MarshalAttributes(list)
	if err != nil {
		return err
	}
	data, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_RULE_TABLE, Data: []byte(t.Name + "\x00")},
		{Type: unix.NFTA_RULE_CHAIN, Data: []byte(chain.Name + "\x00")},
		{Type: unix.NLA_F_NESTED | unix.NFTA_RULE_EXPRESSIONS, Data: encoded},
	})
	if err != nil {
		return err
	}
	b.msgs = append(b.msgs, netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWRULE),
			Flags: netlink.Request | netlink.Acknowledge | netlink.Create | unix.NLM_F_APPEND,
		},
		Data: append(nfgenmsg(byte(t.Family)), data...),
	})
	return nil
}

// nfgenmsg is the header of every nfnetlink message: family, version,
// resource id.
func nfgenmsg(family byte) []byte { return []byte{family, unix.NFNETLINK_V0, 0, 0} }

// ctAddr is `ct original ip saddr` (or `ct original ip daddr` with Dst)
// into a register: the conntrack keys NFT_CT_SRC_IP and NFT_CT_DST_IP,
// which are IPv4 by themselves, in the original direction.
//
// google/nftables v0.3.0 cannot encode it: its expr.Ct sends a direction
// only with the generic keys NFT_CT_SRC and NFT_CT_DST (`ct original
// saddr`), and the kernel refuses NFT_CT_SRC_IP without one. The generic
// key works in the kernel, but names no family: nft cannot tell its
// length inside a concatenation and aborts listing the ruleset
// (netlink_parse_concat_expr: Assertion `consumed > 0' failed, nft
// 1.0.6), and nft itself never writes it ("specify either ip or ip6").
type ctAddr struct {
	Register uint32
	Dst      bool
}

func (e ctAddr) marshal() ([]byte, error) {
	key := uint32(unix.NFT_CT_SRC_IP)
	if e.Dst {
		key = unix.NFT_CT_DST_IP
	}
	data, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_CT_KEY, Data: binaryutil.BigEndian.PutUint32(key)},
		{Type: unix.NFTA_CT_DREG, Data: binaryutil.BigEndian.PutUint32(e.Register)},
		{Type: unix.NFTA_CT_DIRECTION, Data: []byte{0}}, // IP_CT_DIR_ORIGINAL, a u8
	})
	if err != nil {
		return nil, err
	}
	return netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_EXPR_NAME, Data: []byte("ct\x00")},
		{Type: unix.NLA_F_NESTED | unix.NFTA_EXPR_DATA, Data: data},
	})
}

// anyExprs turns expressions into parts of a rule for batch.addRule.
func anyExprs(ex []expr.Any) []any {
	out := make([]any, len(ex))
	for i, e := range ex {
		out[i] = e
	}
	return out
}

func natRules(c *batch, t *nftables.Table, filter map[string]*nftables.Chain, nat *topo.NAT) error {
	forward := filter["forward"]
	pre := c.AddChain(&nftables.Chain{Name: "prerouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest})
	post := c.AddChain(&nftables.Chain{Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource})

	// Port forwards: iifname OUT ip daddr A tcp dport P dnat ip to B:Q
	for _, f := range nat.Forwards {
		// The NAT table is of family ip: no nfproto test is needed (and
		// nft fails to print a payload match that follows one there).
		ex := ifname(expr.MetaKeyIIFNAME, nat.Outside)
		ex = append(ex, matchAddr(16, netip.PrefixFrom(f.Addr, 32))...)
		ex = append(ex, matchL4(f.Proto)...)
		ex = append(ex, matchPort(2, f.Port)...)
		ex = append(ex,
			&expr.Immediate{Register: 1, Data: f.ToAddr.AsSlice()},
			&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(f.ToPort)},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
		)
		c.AddRule(&nftables.Rule{Table: t, Chain: pre, Exprs: ex})
	}

	// The mapping map: mapped UDP port -> inside address . port, filled
	// from each packet that leaves (after translation) and used to let
	// inbound packets in (endpoint-independent or address-dependent
	// filtering) and to hairpin.
	var postnat *nftables.Chain
	postNAT := func() *nftables.Chain {
		if postnat == nil {
			postnat = c.AddChain(&nftables.Chain{Name: "postnat", Table: t, Type: nftables.ChainTypeFilter,
				Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityRef(110)})
		}
		return postnat
	}
	if nat.Filtering == topo.EndpointIndependent || nat.Filtering == topo.AddressDependent || nat.Hairpinning {
		if err := mappingMap(c, t, pre, post, postNAT(), nat); err != nil {
			return err
		}
	}
	if nat.Mapping == topo.EndpointIndependent && !nat.PortPreservation {
		if err := keptMappings(c, t, post, postNAT(), nat); err != nil {
			return err
		}
	}

	// Source translation out of the outside interface.
	if nat.Masquerade || nat.SNATMin.IsValid() {
		sources := nat.Sources
		if len(sources) == 0 {
			sources = []netip.Prefix{{}} // any source not from the outside
		}
		for _, src := range sources {
			ex := ifname(expr.MetaKeyOIFNAME, nat.Outside)
			if src.IsValid() {
				ex = append(ex, matchAddr(12, src)...)
			} else {
				// Not traffic that came in from the outside (forwarded replies
				// keep their translation through conntrack anyway).
				ex = append(ex, ifnameNot(expr.MetaKeyIIFNAME, nat.Outside)...)
			}
			ex = append(ex, sourceNAT(nat)...)
			c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: ex})
		}
	}

	// What a home gateway does: nothing new comes in from the outside
	// unless a forward (or the mapping map) let it in.
	ft := forward.Table
	if nat.DropInbound {
		c.AddRule(&nftables.Rule{Table: ft, Chain: forward, Exprs: append(append(ifname(expr.MetaKeyIIFNAME, nat.Outside), ctStatusDNAT()...), accept())})
		c.AddRule(&nftables.Rule{Table: ft, Chain: forward, Exprs: append(ifname(expr.MetaKeyIIFNAME, nat.Outside), &expr.Verdict{Kind: expr.VerdictDrop})})
	}
	// A gateway with a NAT behaviour drops new traffic to itself from the
	// outside before conntrack confirms it: otherwise a peer's early
	// hole-punching packet would take the tuple an inside host's mapping
	// needs, and masquerade would move that host to another port.
	if nat.Mapping != "" {
		c.AddRule(&nftables.Rule{Table: ft, Chain: filter["input"], Exprs: append(append(ifname(expr.MetaKeyIIFNAME, nat.Outside), ctStateNew()...), &expr.Verdict{Kind: expr.VerdictDrop})})
	}
	return nil
}

// Set IDs name a node's sets within its one transaction. They are given
// here because google/nftables otherwise numbers sets from a package
// variable without a lock, a data race when two gateways are configured
// at once.
const (
	setIDKept uint32 = iota + 1
	setIDMappings
	setIDPeers
)

// keptMappings gives endpoint-independent mapping without port
// preservation: the first flow of an inside endpoint gets a random port,
// recorded after translation, and every later flow of that endpoint is
// translated to the same port:
//
//	map kept { type ipv4_addr . inet_service : inet_service; flags dynamic,timeout }
//	chain postnat { oifname OUT udp update @kept { ct original ip saddr . ct original proto-src : udp sport } }
//	chain postrouting { oifname OUT udp snat ip to OUTADDR : ip saddr . udp sport map @kept; ... masquerade fully-random }
func keptMappings(c *batch, t *nftables.Table, post, postnat *nftables.Chain, nat *topo.NAT) error {
	key, err := nftables.ConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService)
	if err != nil {
		return err
	}
	kept := &nftables.Set{Table: t, Name: "kept", ID: setIDKept, IsMap: true, Dynamic: true, HasTimeout: true, Concatenation: true,
		Timeout: nat.MappingTimeout, KeyType: key, DataType: nftables.TypeInetService}
	if err := c.AddSet(kept, nil); err != nil {
		return fmt.Errorf("add map: %w", err)
	}
	out := append(ifname(expr.MetaKeyOIFNAME, nat.Outside), matchL4("udp")...)
	if err := c.addRule(t, postnat, append(anyExprs(out),
		ctAddr{Register: 8},
		&expr.Ct{Register: 9, Key: expr.CtKeyPROTOSRC, Direction: 0},
		&expr.Payload{DestRegister: 2, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2},
		&expr.Dynset{SrcRegKey: 8, SrcRegData: 2, SetName: kept.Name, SetID: kept.ID, Operation: unix.NFT_DYNSET_OP_UPDATE, Timeout: nat.MappingTimeout},
	)); err != nil {
		return err
	}
	c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: append(append([]expr.Any{}, out...),
		&expr.Payload{DestRegister: 8, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Payload{DestRegister: 9, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2},
		&expr.Lookup{SourceRegister: 8, DestRegister: 2, IsDestRegSet: true, SetName: kept.Name, SetID: kept.ID},
		&expr.Immediate{Register: 1, Data: nat.MappedAddr().AsSlice()},
		&expr.NAT{Type: expr.NATTypeSourceNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	)})
	return nil
}

// mappingMap builds the dynamic map of UDP mappings and the rules around
// it, as
//
//	map m { type inet_service : ipv4_addr . inet_service; flags dynamic,timeout; timeout T }
//	chain postnat { type filter hook postrouting priority srcnat + 10;
//	  oifname OUT udp update @m { udp sport : ct original ip saddr . ct original proto-src } }
//	chain prerouting { ... iifname OUT [ip saddr . udp dport @peers] dnat ip to udp dport map @m }
func mappingMap(c *batch, t *nftables.Table, pre, post, postnat *nftables.Chain, nat *topo.NAT) error {
	data, err := nftables.ConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService)
	if err != nil {
		return err
	}
	m := &nftables.Set{Table: t, Name: "mappings", ID: setIDMappings, IsMap: true, Dynamic: true, HasTimeout: true,
		Timeout: nat.MappingTimeout, KeyType: nftables.TypeInetService, DataType: data}
	if err := c.AddSet(m, nil); err != nil {
		return fmt.Errorf("add map: %w", err)
	}
	var peers *nftables.Set
	if nat.Filtering == topo.AddressDependent {
		key, err := nftables.ConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService)
		if err != nil {
			return err
		}
		peers = &nftables.Set{Table: t, Name: "peers", ID: setIDPeers, Dynamic: true, HasTimeout: true, Concatenation: true,
			Timeout: nat.MappingTimeout, KeyType: key}
		if err := c.AddSet(peers, nil); err != nil {
			return fmt.Errorf("add set: %w", err)
		}
	}
	out := append(ifname(expr.MetaKeyOIFNAME, nat.Outside), matchL4("udp")...)
	if err := c.addRule(t, postnat, append(anyExprs(out),
		// The key in register 2 (reg32 04-07): register 1 overlaps the
		// 32-bit registers 8 and 9 that hold the concatenated data.
		&expr.Payload{DestRegister: 2, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2},
		ctAddr{Register: 8},
		&expr.Ct{Register: 9, Key: expr.CtKeyPROTOSRC, Direction: 0},
		&expr.Dynset{SrcRegKey: 2, SrcRegData: 8, SetName: m.Name, SetID: m.ID, Operation: unix.NFT_DYNSET_OP_UPDATE, Timeout: nat.MappingTimeout},
	)); err != nil {
		return err
	}
	if peers != nil {
		c.AddRule(&nftables.Rule{Table: t, Chain: postnat, Exprs: append(append([]expr.Any{}, out...),
			&expr.Payload{DestRegister: 8, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Payload{DestRegister: 9, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2},
			&expr.Dynset{SrcRegKey: 8, SetName: peers.Name, SetID: peers.ID, Operation: unix.NFT_DYNSET_OP_UPDATE, Timeout: nat.MappingTimeout},
		)})
	}
	viaMap := []expr.Any{
		&expr.Payload{DestRegister: 2, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: 2, DestRegister: 8, IsDestRegSet: true, SetName: m.Name, SetID: m.ID},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 8, RegProtoMin: 9, Specified: true},
	}
	if nat.Filtering == topo.EndpointIndependent || nat.Filtering == topo.AddressDependent {
		in := append(ifname(expr.MetaKeyIIFNAME, nat.Outside), matchL4("udp")...)
		if peers != nil {
			in = append(in,
				&expr.Payload{DestRegister: 8, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
				&expr.Payload{DestRegister: 9, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
				&expr.Lookup{SourceRegister: 8, SetName: peers.Name, SetID: peers.ID})
		}
		c.AddRule(&nftables.Rule{Table: t, Chain: pre, Exprs: append(in, viaMap...)})
	}
	if nat.Hairpinning {
		// Inside to the gateway's outside address and a mapped port: to the
		// inside host behind it, seen as coming from the outside address.
		in := append(ifnameNot(expr.MetaKeyIIFNAME, nat.Outside), matchAddr(16, netip.PrefixFrom(nat.MappedAddr(), 32))...)
		in = append(in, matchL4("udp")...)
		c.AddRule(&nftables.Rule{Table: t, Chain: pre, Exprs: append(in, viaMap...)})
		if err := c.addRule(t, post, append(anyExprs(ifnameNot(expr.MetaKeyOIFNAME, nat.Outside)),
			ctAddr{Register: 1, Dst: true},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: nat.MappedAddr().AsSlice()},
			&expr.Immediate{Register: 1, Data: nat.MappedAddr().AsSlice()},
			&expr.NAT{Type: expr.NATTypeSourceNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1},
		)); err != nil {
			return err
		}
	}
	return nil
}

func sourceNAT(nat *topo.NAT) []expr.Any {
	if nat.Mapping == topo.AddressAndPortDependent || (nat.Mapping == topo.EndpointIndependent && !nat.PortPreservation) {
		// A random port for every new flow: a mapping per destination, or,
		// with the kept map in front, the first mapping of an endpoint.
		if nat.Masquerade {
			return []expr.Any{&expr.Masq{FullyRandom: true}}
		}
		return []expr.Any{&expr.Immediate{Register: 1, Data: nat.SNATMin.AsSlice()},
			&expr.NAT{Type: expr.NATTypeSourceNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, FullyRandom: true}}
	}
	if nat.Masquerade {
		if nat.PortMin != 0 {
			return []expr.Any{
				&expr.Immediate{Register: 1, Data: binaryutil.BigEndian.PutUint16(nat.PortMin)},
				&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(nat.PortMax)},
				&expr.Masq{ToPorts: true, RegProtoMin: 1, RegProtoMax: 2},
			}
		}
		return []expr.Any{&expr.Masq{Random: nat.Random, FullyRandom: nat.FullyRandom, Persistent: nat.Persistent}}
	}
	ex := []expr.Any{&expr.Immediate{Register: 1, Data: nat.SNATMin.AsSlice()}}
	n := &expr.NAT{Type: expr.NATTypeSourceNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1,
		Random: nat.Random, FullyRandom: nat.FullyRandom, Persistent: nat.Persistent}
	if nat.SNATMax != nat.SNATMin {
		ex = append(ex, &expr.Immediate{Register: 2, Data: nat.SNATMax.AsSlice()})
		n.RegAddrMax = 2
	}
	if nat.PortMin != 0 {
		ex = append(ex,
			&expr.Immediate{Register: 3, Data: binaryutil.BigEndian.PutUint16(nat.PortMin)},
			&expr.Immediate{Register: 4, Data: binaryutil.BigEndian.PutUint16(nat.PortMax)})
		n.RegProtoMin, n.RegProtoMax, n.Specified = 3, 4, true
	}
	return append(ex, n)
}

func ruleExprs(r topo.Rule) []expr.Any {
	var ex []expr.Any
	if r.IIF != "" {
		ex = append(ex, ifname(expr.MetaKeyIIFNAME, r.IIF)...)
	}
	if r.OIF != "" {
		ex = append(ex, ifname(expr.MetaKeyOIFNAME, r.OIF)...)
	}
	if r.Src.IsValid() || r.Dst.IsValid() {
		v4 := (r.Src.IsValid() && r.Src.Addr().Is4()) || (r.Dst.IsValid() && r.Dst.Addr().Is4())
		if v4 {
			ex = append(ex, ipv4Only()...)
		} else {
			ex = append(ex, ipv6Only()...)
		}
		if r.Src.IsValid() {
			off := uint32(12)
			if !v4 {
				off = 8
			}
			ex = append(ex, matchAddr(off, r.Src)...)
		}
		if r.Dst.IsValid() {
			off := uint32(16)
			if !v4 {
				off = 24
			}
			ex = append(ex, matchAddr(off, r.Dst)...)
		}
	}
	if r.Proto != "" {
		ex = append(ex, matchL4(r.Proto)...)
	}
	if r.SPort != 0 {
		ex = append(ex, matchPort(0, r.SPort)...)
	}
	if r.DPort != 0 {
		ex = append(ex, matchPort(2, r.DPort)...)
	}
	switch r.Action {
	case "accept":
		ex = append(ex, accept())
	case "drop":
		ex = append(ex, &expr.Verdict{Kind: expr.VerdictDrop})
	case "reject":
		ex = append(ex, &expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_PORT_UNREACH})
	}
	return ex
}

func accept() expr.Any { return &expr.Verdict{Kind: expr.VerdictAccept} }

func ifnameBytes(name string) []byte {
	b := make([]byte, 16)
	copy(b, name)
	return b
}

// ifname matches `iifname NAME` or `oifname NAME`.
func ifname(key expr.MetaKey, name string) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifnameBytes(name)},
	}
}

func ifnameNot(key expr.MetaKey, name string) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: ifnameBytes(name)},
	}
}

func ipv4Only() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
	}
}

func ipv6Only() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV6}},
	}
}

// matchAddr matches the address at offset of the network header against
// a prefix: `ip saddr P` (offset 12) or `ip daddr P` (16).
func matchAddr(offset uint32, p netip.Prefix) []expr.Any {
	size := uint32(p.Addr().BitLen() / 8)
	ex := []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: size}}
	if p.Bits() < p.Addr().BitLen() {
		mask := make([]byte, size)
		for i := 0; i < p.Bits(); i++ {
			mask[i/8] |= 1 << (7 - i%8)
		}
		ex = append(ex, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: size, Mask: mask, Xor: make([]byte, size)})
	}
	return append(ex, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Masked().Addr().AsSlice()})
}

func matchL4(proto string) []expr.Any {
	num := map[string]byte{"tcp": unix.IPPROTO_TCP, "udp": unix.IPPROTO_UDP, "icmp": unix.IPPROTO_ICMP, "icmpv6": unix.IPPROTO_ICMPV6}[proto]
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{num}},
	}
}

// matchPort matches `th sport P` (offset 0) or `th dport P` (offset 2).
func matchPort(offset uint32, port uint16) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: offset, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(port)},
	}
}

// ctStateAccept is `ct state established,related accept`.
func ctStateAccept() []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
		accept(),
	}
}

// ctStateNew matches `ct state new`.
func ctStateNew() []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitNEW), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

// ctStatusDNAT matches `ct status dnat`: a connection a port forward made.
func ctStatusDNAT() []expr.Any {
	const ipsDstNAT = 1 << 5
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(ipsDstNAT), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}
