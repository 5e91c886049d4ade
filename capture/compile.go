package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"

	"golang.org/x/net/bpf"
)

// DefaultSnapLen is how many bytes of each packet a capture keeps, as
// tcpdump's default: all of any packet a lab sends.
const DefaultSnapLen = 262144

// Filter is a compiled filter: a classic BPF program for Ethernet frames,
// which the kernel runs on every packet of a capture socket before it
// queues the packet.
type Filter struct {
	expr string
	e    expr // lowered, for programs of other snap lengths
	prog []bpf.Instruction
	raw  []bpf.RawInstruction
}

// Compile compiles a filter in the language of tcpdump (pcap-filter(7)):
// primitives host, net, port, portrange and proto, qualified by src or dst
// and by a protocol (ip, ip6, arp, tcp, udp, icmp, icmp6), which alone is a
// primitive too, joined by and (&&), or (||), not (!) and parentheses. A
// bare id after and/or takes over the qualifiers before it (port 53 or
// 5353). An empty filter accepts every packet. Errors are *SyntaxError,
// with the column of the word at fault.
func Compile(src string, o FilterOptions) (*Filter, error) {
	e, err := parse(src)
	if err != nil {
		return nil, err
	}
	if e != nil {
		if e, err = lower(src, e, o); err != nil {
			return nil, err
		}
	} else {
		e = constExpr(true)
	}
	prog, err := generate(e, DefaultSnapLen)
	if err != nil {
		return nil, &SyntaxError{src, 1, err.Error()}
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("filter %q: assemble: %w", src, err)
	}
	return &Filter{expr: src, e: e, prog: prog, raw: raw}, nil
}

// rawSnap is the program with accept returning snap: the kernel trims
// each accepted packet to it before queueing it, so a short snap length
// saves the socket's buffer as well as copies.
func (f *Filter) rawSnap(snap int) ([]bpf.RawInstruction, error) {
	var e expr = constExpr(true)
	if f != nil {
		if snap == DefaultSnapLen {
			return f.raw, nil
		}
		e = f.e
	}
	prog, err := generate(e, uint32(snap))
	if err != nil {
		return nil, err
	}
	return bpf.Assemble(prog)
}

// String returns the filter as written.
func (f *Filter) String() string { return f.expr }

// Instructions returns the program, as tcpdump -d would list it.
func (f *Filter) Instructions() []bpf.Instruction { return f.prog }

// Raw returns the assembled program, for SO_ATTACH_FILTER.
func (f *Filter) Raw() []bpf.RawInstruction { return f.raw }

// Match runs the program on an Ethernet frame, in Go, as the kernel runs
// it: for tests and for reading files.
func (f *Filter) Match(frame []byte) bool {
	vm, err := bpf.NewVM(f.prog)
	if err != nil {
		return false
	}
	n, err := vm.Run(frame)
	return err == nil && n > 0
}

// test is one comparison of the packet's bytes: a load of size bytes at
// off (from the frame's start, or with ind from the start of the IPv4
// header's payload), masked, compared by op with val.
type test struct {
	size int
	off  uint32
	ind  bool
	mask uint32 // 0: none
	op   bpf.JumpTest
	val  uint32
}

type constExpr bool

func (test) isExpr()      {}
func (constExpr) isExpr() {}

// Offsets in an Ethernet frame.
const (
	offEtherType = 12
	offIP4Proto  = 14 + 9
	offIP4Frag   = 14 + 6
	offIP4Src    = 14 + 12
	offIP4Dst    = 14 + 16
	offARPSPA    = 14 + 14
	offARPTPA    = 14 + 24
	offIP6Next   = 14 + 6
	offIP6Src    = 14 + 8
	offIP6Dst    = 14 + 24
	offIP6L4     = 14 + 40
)

const (
	etherIP4 = 0x0800
	etherIP6 = 0x86dd
	etherARP = 0x0806
)

var protoNumbers = map[string]uint32{"icmp": 1, "tcp": 6, "udp": 17, "icmp6": 58}

func eq(size int, off, val uint32) expr {
	return test{size: size, off: off, op: bpf.JumpEqual, val: val}
}

func and(a, b expr) expr {
	if c, ok := a.(constExpr); ok {
		if c {
			return b
		}
		return a
	}
	if c, ok := b.(constExpr); ok {
		if c {
			return a
		}
		return b
	}
	return andExpr{a, b}
}

func or(a, b expr) expr {
	if c, ok := a.(constExpr); ok {
		if c {
			return a
		}
		return b
	}
	if c, ok := b.(constExpr); ok {
		if c {
			return b
		}
		return a
	}
	return orExpr{a, b}
}

func not(a expr) expr {
	if c, ok := a.(constExpr); ok {
		return !c
	}
	return notExpr{a}
}

func anyOf(es ...expr) expr {
	var r expr = constExpr(false)
	for _, e := range es {
		r = or(r, e)
	}
	return r
}

var (
	isIP4 = eq(2, offEtherType, etherIP4)
	isIP6 = eq(2, offEtherType, etherIP6)
	isARP = eq(2, offEtherType, etherARP)
	// isFragment is a later IPv4 fragment, which has no ports.
	isFragment = test{size: 2, off: offIP4Frag, op: bpf.JumpBitsSet, val: 0x1fff}
)

func ip4Proto(n uint32) expr { return and(isIP4, eq(1, offIP4Proto, n)) }
func ip6Proto(n uint32) expr { return and(isIP6, eq(1, offIP6Next, n)) }

// lower turns the parsed filter into tests on bytes.
func lower(src string, e expr, o FilterOptions) (expr, error) {
	switch e := e.(type) {
	case andExpr:
		a, err := lower(src, e.a, o)
		if err != nil {
			return nil, err
		}
		b, err := lower(src, e.b, o)
		if err != nil {
			return nil, err
		}
		return and(a, b), nil
	case orExpr:
		a, err := lower(src, e.a, o)
		if err != nil {
			return nil, err
		}
		b, err := lower(src, e.b, o)
		if err != nil {
			return nil, err
		}
		return or(a, b), nil
	case notExpr:
		a, err := lower(src, e.a, o)
		if err != nil {
			return nil, err
		}
		return not(a), nil
	case prim:
		l := &lowering{src: src, p: e, o: o}
		return l.prim()
	}
	return nil, fmt.Errorf("filter %q: cannot lower %T", src, e)
}

type lowering struct {
	src string
	p   prim
	o   FilterOptions
}

func (l *lowering) errID(format string, args ...any) error {
	return &SyntaxError{l.src, l.p.idCol, fmt.Sprintf(format, args...)}
}

func (l *lowering) errPrim(format string, args ...any) error {
	return &SyntaxError{l.src, l.p.col, fmt.Sprintf(format, args...)}
}

// dir joins the tests of the source and the destination as the
// primitive's direction says.
func (l *lowering) dir(src, dst expr) expr {
	switch l.p.q.dir {
	case "src":
		return src
	case "dst":
		return dst
	case "src and dst":
		return and(src, dst)
	}
	return or(src, dst)
}

func (l *lowering) prim() (expr, error) {
	q := l.p.q
	switch q.typ {
	case "":
		return protoOnly(q.proto), nil
	case "host":
		return l.host()
	case "net":
		pfx, err := netip.ParsePrefix(l.p.id)
		if err != nil {
			if a, aerr := netip.ParseAddr(l.p.id); aerr == nil {
				pfx = netip.PrefixFrom(a, a.BitLen())
			} else {
				return nil, l.errID("%q is not a network: write it as 10.0.0.0/8 or fd00::/64", l.p.id)
			}
		}
		if pfx.Masked() != pfx {
			return nil, l.errID("%s has bits set past its /%d: the network is %s", l.p.id, pfx.Bits(), pfx.Masked())
		}
		if err := l.familyFits(pfx.Addr()); err != nil {
			return nil, err
		}
		return l.addr(pfx), nil
	case "port", "portrange":
		return l.port()
	case "proto":
		return l.proto()
	}
	return nil, l.errPrim("unknown primitive %q", q.typ)
}

// protoOnly is a lone protocol: "udp", "ip6".
func protoOnly(p string) expr {
	switch p {
	case "ip":
		return isIP4
	case "ip6":
		return isIP6
	case "arp":
		return isARP
	case "icmp":
		return ip4Proto(1)
	case "icmp6":
		return ip6Proto(58)
	}
	n := protoNumbers[p]
	return or(ip4Proto(n), ip6Proto(n))
}

// familyFits says whether an address of a's family can match under the
// primitive's protocol qualifier.
func (l *lowering) familyFits(a netip.Addr) error {
	switch p := l.p.q.proto; {
	case a.Is4() && (p == "ip6" || p == "icmp6"):
		return l.errID("%s is an IPv4 address, which %s packets do not carry", a, p)
	case a.Is6() && (p == "ip" || p == "arp" || p == "icmp"):
		return l.errID("%s is an IPv6 address, which %s packets do not carry", a, p)
	}
	return nil
}

func (l *lowering) host() (expr, error) {
	if a, err := netip.ParseAddr(l.p.id); err == nil {
		a = a.Unmap().WithZone("")
		if err := l.familyFits(a); err != nil {
			return nil, err
		}
		return l.addr(netip.PrefixFrom(a, a.BitLen())), nil
	}
	if _, err := netip.ParsePrefix(l.p.id); err == nil {
		return nil, l.errID("%q is a network: write net %s", l.p.id, l.p.id)
	}
	if l.o.Resolve == nil {
		return nil, l.errID("%q is not an address", l.p.id)
	}
	addrs, ok := l.o.Resolve(l.p.id)
	if !ok {
		return nil, l.errID("%q is neither an address nor a node of the lab", l.p.id)
	}
	var e expr = constExpr(false)
	fits := 0
	for _, a := range addrs {
		a = a.Unmap().WithZone("")
		if l.familyFits(a) != nil {
			continue
		}
		fits++
		e = or(e, l.addr(netip.PrefixFrom(a, a.BitLen())))
	}
	if fits == 0 {
		fam := "an address"
		switch l.p.q.proto {
		case "ip", "arp", "icmp":
			fam = "an IPv4 address"
		case "ip6", "icmp6":
			fam = "an IPv6 address"
		}
		return nil, l.errID("node %q has no %s", l.p.id, fam[len("an "):])
	}
	return e, nil
}

// addr matches an address or network, in IP packets (and for IPv4, ARP's
// sender and target) as the protocol qualifier allows.
func (l *lowering) addr(p netip.Prefix) expr {
	if p.Addr().Is4() {
		ip := l.dir(match4(offIP4Src, p), match4(offIP4Dst, p))
		switch q := l.p.q.proto; q {
		case "":
			arp := l.dir(match4(offARPSPA, p), match4(offARPTPA, p))
			return or(and(isIP4, ip), and(isARP, arp))
		case "ip":
			return and(isIP4, ip)
		case "arp":
			return and(isARP, l.dir(match4(offARPSPA, p), match4(offARPTPA, p)))
		default:
			return and(ip4Proto(protoNumbers[q]), ip)
		}
	}
	ip := l.dir(match6(offIP6Src, p), match6(offIP6Dst, p))
	switch q := l.p.q.proto; q {
	case "", "ip6":
		return and(isIP6, ip)
	default:
		return and(ip6Proto(protoNumbers[q]), ip)
	}
}

func mask32(bits int) uint32 {
	if bits <= 0 {
		return 0
	}
	return ^uint32(0) << (32 - bits)
}

// match4 compares the 4 bytes at off with an IPv4 network.
func match4(off uint32, p netip.Prefix) expr {
	return word(off, binary.BigEndian.Uint32(p.Addr().AsSlice()), p.Bits())
}

// match6 compares the 16 bytes at off with an IPv6 network, a word at a
// time.
func match6(off uint32, p netip.Prefix) expr {
	b := p.Addr().As16()
	var e expr = constExpr(true)
	for i := 0; i < 4; i++ {
		e = and(e, word(off+uint32(4*i), binary.BigEndian.Uint32(b[4*i:]), p.Bits()-32*i))
	}
	return e
}

// word compares a 32-bit word with the first bits of val.
func word(off, val uint32, bits int) expr {
	switch {
	case bits <= 0:
		return constExpr(true)
	case bits >= 32:
		return eq(4, off, val)
	}
	m := mask32(bits)
	return test{size: 4, off: off, mask: m, op: bpf.JumpEqual, val: val & m}
}

func (l *lowering) port() (expr, error) {
	var lo, hi uint32
	if l.p.q.typ == "port" {
		n, ok := parsePort(l.p.id)
		if !ok {
			if _, _, r := parseRange(l.p.id); r {
				return nil, l.errID("%q is a range: write portrange %s", l.p.id, l.p.id)
			}
			return nil, l.errID("%q is not a port number (0-65535)", l.p.id)
		}
		lo, hi = n, n
	} else {
		var ok bool
		if lo, hi, ok = parseRange(l.p.id); !ok {
			return nil, l.errID("%q is not a range of ports: write LOW-HIGH, as 5000-5100, LOW <= HIGH <= 65535", l.p.id)
		}
	}
	var protos []uint32
	v4, v6 := true, true
	switch q := l.p.q.proto; q {
	case "", "ip", "ip6":
		protos = []uint32{6, 17}
		v4, v6 = q != "ip6", q != "ip"
	case "tcp", "udp":
		protos = []uint32{protoNumbers[q]}
	default:
		return nil, l.errPrim("%s has no ports: port needs tcp or udp", q)
	}
	cmp := func(t test) expr {
		if lo == hi {
			t.op, t.val = bpf.JumpEqual, lo
			return t
		}
		a, b := t, t
		a.op, a.val = bpf.JumpGreaterOrEqual, lo
		b.op, b.val = bpf.JumpLessOrEqual, hi
		return and(a, b)
	}
	var e expr = constExpr(false)
	if v4 {
		var ps []expr
		for _, n := range protos {
			ps = append(ps, eq(1, offIP4Proto, n))
		}
		ports := l.dir(cmp(test{size: 2, off: 0, ind: true}), cmp(test{size: 2, off: 2, ind: true}))
		e = or(e, and(isIP4, and(anyOf(ps...), and(not(isFragment), ports))))
	}
	if v6 {
		var ps []expr
		for _, n := range protos {
			ps = append(ps, eq(1, offIP6Next, n))
		}
		ports := l.dir(cmp(test{size: 2, off: offIP6L4}), cmp(test{size: 2, off: offIP6L4 + 2}))
		e = or(e, and(isIP6, and(anyOf(ps...), ports)))
	}
	return e, nil
}

func (l *lowering) proto() (expr, error) {
	if l.p.q.dir != "" {
		return nil, l.errPrim("%s does not apply to proto", l.p.q.dir)
	}
	n, ok := protoNumbers[l.p.id]
	if !ok {
		v, err := strconv.ParseUint(l.p.id, 10, 8)
		if err != nil {
			return nil, l.errID("%q is not a protocol: give a number (0-255) or tcp, udp, icmp, icmp6", l.p.id)
		}
		n = uint32(v)
	}
	switch l.p.q.proto {
	case "":
		return or(ip4Proto(n), ip6Proto(n)), nil
	case "ip":
		return ip4Proto(n), nil
	case "ip6":
		return ip6Proto(n), nil
	}
	return nil, l.errPrim("proto applies to ip or ip6, not %s", l.p.q.proto)
}

// The code generator: every test jumps to a true or a false label, and
// labels become forward skips once the program is laid out.

type insn struct {
	ins    bpf.Instruction
	jt, jf int // labels of a conditional jump; jt alone for ja
	jump   bool
}

type codegen struct {
	code   []insn
	labels []int
}

func (g *codegen) label() int {
	g.labels = append(g.labels, -1)
	return len(g.labels) - 1
}

func (g *codegen) place(l int) { g.labels[l] = len(g.code) }

func (g *codegen) emit(i bpf.Instruction) { g.code = append(g.code, insn{ins: i, jt: -1, jf: -1}) }

func (g *codegen) cond(e expr, t, f int) {
	switch e := e.(type) {
	case constExpr:
		to := f
		if e {
			to = t
		}
		g.code = append(g.code, insn{ins: bpf.Jump{}, jt: to, jf: -1, jump: true})
	case andExpr:
		mid := g.label()
		g.cond(e.a, mid, f)
		g.place(mid)
		g.cond(e.b, t, f)
	case orExpr:
		mid := g.label()
		g.cond(e.a, t, mid)
		g.place(mid)
		g.cond(e.b, t, f)
	case notExpr:
		g.cond(e.a, f, t)
	case test:
		if e.ind {
			g.emit(bpf.LoadMemShift{Off: 14})
			g.emit(bpf.LoadIndirect{Off: 14 + e.off, Size: e.size})
		} else {
			g.emit(bpf.LoadAbsolute{Off: e.off, Size: e.size})
		}
		if e.mask != 0 {
			g.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: e.mask})
		}
		g.code = append(g.code, insn{ins: bpf.JumpIf{Cond: e.op, Val: e.val}, jt: t, jf: f})
	}
}

// maxInsns is the kernel's limit on a classic BPF program (BPF_MAXINSNS).
const maxInsns = 4096

var errTooLong = errors.New("the filter is too long for a classic BPF program (4,096 instructions): split it, or capture more and filter the file")

// generate lays out the program: the tests, then accept and reject. A
// conditional jump reaches at most 255 instructions ahead; one that must
// go further jumps to a ja (32-bit reach) put right after it.
func generate(e expr, snap uint32) ([]bpf.Instruction, error) {
	g := &codegen{}
	accept, reject := g.label(), g.label()
	g.cond(e, accept, reject)
	g.place(accept)
	g.emit(bpf.RetConstant{Val: snap})
	g.place(reject)
	g.emit(bpf.RetConstant{Val: 0})
	for {
		if len(g.code) > maxInsns {
			return nil, errTooLong
		}
		far := -1
		for i, c := range g.code {
			if !c.jump && c.jt >= 0 && (g.labels[c.jt]-(i+1) > 255 || g.labels[c.jf]-(i+1) > 255) {
				far = i
				break
			}
		}
		if far < 0 {
			break
		}
		g.trampoline(far)
	}
	out := make([]bpf.Instruction, len(g.code))
	for i, c := range g.code {
		switch {
		case c.jump:
			out[i] = bpf.Jump{Skip: uint32(g.labels[c.jt] - (i + 1))}
		case c.jt >= 0:
			j := c.ins.(bpf.JumpIf)
			j.SkipTrue, j.SkipFalse = uint8(g.labels[c.jt]-(i+1)), uint8(g.labels[c.jf]-(i+1))
			out[i] = j
		default:
			out[i] = c.ins
		}
	}
	return out, nil
}

// trampoline puts a ja right after the conditional jump at i, to its
// farther target, and points that branch at the ja.
func (g *codegen) trampoline(i int) {
	c := &g.code[i]
	target := &c.jt
	if g.labels[c.jf] > g.labels[c.jt] {
		target = &c.jf
	}
	far := *target
	for l, pos := range g.labels {
		if pos > i {
			g.labels[l] = pos + 1
		}
	}
	tramp := g.label()
	g.labels[tramp] = i + 1
	*target = tramp
	g.code = append(g.code[:i+1], append([]insn{{ins: bpf.Jump{}, jt: far, jf: -1, jump: true}}, g.code[i+1:]...)...)
}
