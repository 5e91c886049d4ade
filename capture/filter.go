package capture

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/nslab/nslab/internal/text"
)

// SyntaxError is a filter that does not parse, or names what is not
// there: Col is the 1-based column of the word at fault in Expr.
type SyntaxError struct {
	Expr string
	Col  int
	Msg  string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("filter %q: column %d: %s", e.Expr, e.Col, e.Msg)
}

// FilterOptions are what a filter's words may refer to beyond addresses.
type FilterOptions struct {
	// Resolve returns the addresses of a host name (in a lab: a node's
	// name), or false when there is no such host. Without it, host names
	// are an error: a filter never asks the machine's resolver.
	Resolve func(name string) ([]netip.Addr, bool)
}

// token is one word of a filter, with its column.
type token struct {
	text string
	col  int
}

// lex splits a filter into words, parentheses and the operators !, &&, ||.
func lex(s string) ([]token, error) {
	var toks []token
	rs := []rune(s)
	for i := 0; i < len(rs); {
		r := rs[i]
		switch {
		case r == ' ' || r == '\t' || r == '\n' || r == '\r':
			i++
		case r == '(' || r == ')' || r == '!':
			toks = append(toks, token{string(r), i + 1})
			i++
		case r == '&' || r == '|':
			if i+1 >= len(rs) || rs[i+1] != r {
				return nil, &SyntaxError{s, i + 1, fmt.Sprintf("%q alone: write %q (or %q)", string(r), string([]rune{r, r}), map[rune]string{'&': "and", '|': "or"}[r])}
			}
			toks = append(toks, token{string([]rune{r, r}), i + 1})
			i += 2
		case isWordRune(r):
			j := i
			for j < len(rs) && isWordRune(rs[j]) {
				j++
			}
			toks = append(toks, token{string(rs[i:j]), i + 1})
			i = j
		default:
			return nil, &SyntaxError{s, i + 1, fmt.Sprintf("unexpected character %q", string(r))}
		}
	}
	return toks, nil
}

func isWordRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
		r == '.' || r == ':' || r == '/' || r == '-' || r == '_' || r == '%'
}

// The qualifiers of a primitive, as pcap-filter(7) names them.
var (
	protoWords = map[string]bool{"ip": true, "ip6": true, "arp": true, "tcp": true, "udp": true, "icmp": true, "icmp6": true}
	dirWords   = map[string]bool{"src": true, "dst": true}
	typeWords  = map[string]bool{"host": true, "net": true, "port": true, "portrange": true, "proto": true}
	// unsupported are pcap-filter's words nslab's filters lack.
	unsupported = map[string]bool{"ether": true, "vlan": true, "mpls": true, "gateway": true, "broadcast": true, "multicast": true,
		"less": true, "greater": true, "len": true, "sctp": true, "rarp": true, "decnet": true, "inbound": true, "outbound": true, "ifname": true}
	operators = map[string]bool{"and": true, "or": true, "not": true, "&&": true, "||": true, "!": true, "(": true, ")": true}
)

func isKeyword(w string) bool {
	return protoWords[w] || dirWords[w] || typeWords[w] || operators[w]
}

// quals are a primitive's qualifiers: pcap-filter's proto, dir and type.
type quals struct {
	proto string // "", ip, ip6, arp, tcp, udp, icmp, icmp6
	dir   string // "", src, dst, "src or dst", "src and dst"
	typ   string // "", host, net, port, portrange, proto
}

// expr is a parsed filter, and after lowering, a tree of tests on bytes.
type expr interface{ isExpr() }

type andExpr struct{ a, b expr }
type orExpr struct{ a, b expr }
type notExpr struct{ a expr }

// prim is a primitive as written: qualifiers and an id (none for a lone
// protocol such as "udp").
type prim struct {
	q     quals
	id    string
	col   int // of the primitive's first word
	idCol int
}

func (andExpr) isExpr() {}
func (orExpr) isExpr()  {}
func (notExpr) isExpr() {}
func (prim) isExpr()    {}

type parser struct {
	src  string
	toks []token
	i    int
	last *quals // the qualifiers a bare id after and/or takes over
}

func (p *parser) peek() (token, bool) {
	if p.i < len(p.toks) {
		return p.toks[p.i], true
	}
	return token{col: len([]rune(p.src)) + 1}, false
}

func (p *parser) errAt(col int, format string, args ...any) error {
	return &SyntaxError{p.src, col, fmt.Sprintf(format, args...)}
}

// parse reads a whole filter: or-expressions of and-expressions of
// (possibly negated) primitives and parenthesised expressions.
func parse(src string) (expr, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	if len(toks) == 0 {
		return nil, nil
	}
	p := &parser{src: src, toks: toks}
	e, err := p.or()
	if err != nil {
		return nil, err
	}
	if t, ok := p.peek(); ok {
		if t.text == ")" {
			return nil, p.errAt(t.col, "%q without its %q", ")", "(")
		}
		return nil, p.errAt(t.col, "%q: expected and, or, or the end of the filter%s", t.text, didYouMean(t.text))
	}
	return e, nil
}

// didYouMean names the keywords a misspelt word is closest to (at most
// two).
func didYouMean(w string) string {
	if isKeyword(w) || len(w) < 2 {
		return ""
	}
	type cand struct {
		k string
		d int
	}
	var cs []cand
	for _, set := range []map[string]bool{protoWords, dirWords, typeWords, operators} {
		for k := range set {
			d := text.Distance(w, k)
			if swapped(w, k) {
				d = 1
			}
			if d <= 2 && d <= (len(w)+1)/2 {
				cs = append(cs, cand{k, d})
			}
		}
	}
	if len(cs) == 0 {
		return ""
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].d < cs[j].d || cs[i].d == cs[j].d && cs[i].k < cs[j].k })
	if len(cs) == 1 || cs[1].d > cs[0].d {
		return fmt.Sprintf(" (did you mean %q?)", cs[0].k)
	}
	return fmt.Sprintf(" (did you mean %q or %q?)", cs[0].k, cs[1].k)
}

// swapped says whether b is a with two neighbouring letters swapped.
func swapped(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i+1 < len(a); i++ {
		if a[i] != b[i] {
			return a[i] == b[i+1] && a[i+1] == b[i] && a[i+2:] == b[i+2:]
		}
	}
	return false
}

func (p *parser) or() (expr, error) {
	a, err := p.and()
	if err != nil {
		return nil, err
	}
	for {
		t, ok := p.peek()
		if !ok || (t.text != "or" && t.text != "||") {
			return a, nil
		}
		p.i++
		b, err := p.and()
		if err != nil {
			return nil, err
		}
		a = orExpr{a, b}
	}
}

func (p *parser) and() (expr, error) {
	a, err := p.unary()
	if err != nil {
		return nil, err
	}
	for {
		t, ok := p.peek()
		if !ok || (t.text != "and" && t.text != "&&") {
			return a, nil
		}
		p.i++
		b, err := p.unary()
		if err != nil {
			return nil, err
		}
		a = andExpr{a, b}
	}
}

func (p *parser) unary() (expr, error) {
	t, ok := p.peek()
	if !ok {
		return nil, p.errAt(t.col, "the filter ends where a primitive was expected (host, net, port, portrange, proto, ip, ip6, arp, tcp, udp, icmp, icmp6)")
	}
	switch t.text {
	case "not", "!":
		p.i++
		a, err := p.unary()
		if err != nil {
			return nil, err
		}
		return notExpr{a}, nil
	case "(":
		p.i++
		e, err := p.or()
		if err != nil {
			return nil, err
		}
		c, ok := p.peek()
		if !ok || c.text != ")" {
			return nil, p.errAt(c.col, "expected %q to close the %q at column %d", ")", "(", t.col)
		}
		p.i++
		return e, nil
	}
	return p.primitive()
}

// primitive reads [proto] [dir] [type] [id], as pcap-filter(7) does; a bare
// id takes over the qualifiers of the primitive before it ("port 53 or
// 5353"), and a bare id first is a host.
func (p *parser) primitive() (expr, error) {
	start, _ := p.peek()
	var q quals
	t, ok := p.peek()
	if ok && protoWords[t.text] {
		q.proto = t.text
		p.i++
		t, ok = p.peek()
	}
	if ok && dirWords[t.text] {
		q.dir = t.text
		p.i++
		t, ok = p.peek()
		// "src or dst" and "src and dst" are one qualifier when a type follows.
		if ok && (t.text == "or" || t.text == "and") && p.i+2 < len(p.toks) && dirWords[p.toks[p.i+1].text] && p.toks[p.i+1].text != q.dir && typeWords[p.toks[p.i+2].text] {
			q.dir = "src " + t.text + " dst"
			p.i += 2
			t, ok = p.peek()
		}
	}
	if ok && typeWords[t.text] {
		q.typ = t.text
		p.i++
		t, ok = p.peek()
	}
	qualified := q != quals{}
	if ok && !qualified && unsupported[t.text] {
		return nil, p.errAt(t.col, "%q: nslab's filters do not have it (they have host, net, port, portrange, proto, ip, ip6, arp, tcp, udp, icmp, icmp6)", t.text)
	}
	if !qualified {
		// A bare id: the qualifiers of the last primitive, or host.
		if !ok || isKeyword(t.text) {
			hint := ""
			if ok {
				hint = didYouMean(t.text)
			}
			return nil, p.errAt(t.col, "%s: expected a primitive (host, net, port, portrange, proto, ip, ip6, arp, tcp, udp, icmp, icmp6)%s", describe(t, ok), hint)
		}
		if next := p.i + 1; next < len(p.toks) && !operators[p.toks[next].text] {
			// A bare id followed by more than an operator was meant as
			// a keyword: "prot 53".
			if hint := didYouMean(t.text); hint != "" {
				return nil, p.errAt(t.col, "%q is not a word of the filter language%s", t.text, hint)
			}
		}
		if p.last != nil {
			q = *p.last
		} else {
			q.typ = "host"
		}
	}
	pr := prim{q: q, col: start.col}
	if q.typ == "" && q.dir == "" {
		// A lone protocol: "udp", "ip6".
		p.last = nil
		return pr, nil
	}
	if q.typ == "" {
		q.typ = "host" // "src 10.0.0.1"
		pr.q = q
	}
	protoID := q.typ == "proto" && ok && protoNumbers[t.text] != 0
	if !ok || (isKeyword(t.text) && !protoID) {
		return nil, p.errAt(t.col, "%s: %q needs %s after it", describe(t, ok), q.typ, idWant(q.typ))
	}
	pr.id, pr.idCol = t.text, t.col
	p.i++
	p.last = &pr.q
	return pr, nil
}

func describe(t token, ok bool) string {
	if !ok {
		return "the filter ends"
	}
	return fmt.Sprintf("%q", t.text)
}

func idWant(typ string) string {
	switch typ {
	case "host":
		return "an address or a node's name"
	case "net":
		return "a network, as 10.0.0.0/8 or fd00::/64"
	case "port":
		return "a port number"
	case "portrange":
		return "a range of ports, as 5000-5100"
	case "proto":
		return "a protocol number or name (tcp, udp, icmp, icmp6)"
	}
	return "a value"
}

// parsePort reads a port number.
func parsePort(s string) (uint32, bool) {
	n, err := strconv.ParseUint(s, 10, 16)
	return uint32(n), err == nil
}

// parseRange reads lo-hi.
func parseRange(s string) (lo, hi uint32, ok bool) {
	a, b, found := strings.Cut(s, "-")
	if !found {
		return 0, 0, false
	}
	lo, ok1 := parsePort(a)
	hi, ok2 := parsePort(b)
	return lo, hi, ok1 && ok2 && lo <= hi
}

// StartsFilter says whether a command-line word begins a filter rather
// than naming what to capture: a word of the filter language, an
// operator, a parenthesis or an address.
func StartsFilter(word string) bool {
	if isKeyword(word) || unsupported[word] || strings.HasPrefix(word, "(") || strings.HasPrefix(word, "!") {
		return true
	}
	if _, err := netip.ParseAddr(word); err == nil {
		return true
	}
	_, err := netip.ParsePrefix(word)
	return err == nil
}
