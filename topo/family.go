package topo

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// famSet is a set of address families.
type famSet uint8

const (
	fam4    famSet = 1 << iota // IPv4
	fam6                       // IPv6
	famBoth = fam4 | fam6
)

func famOf(v4 bool) famSet {
	if v4 {
		return fam4
	}
	return fam6
}

func (f famSet) has(v4 bool) bool { return f&famOf(v4) != 0 }

// famRule is a families list written on a node, a switch or a link: the
// families the interfaces it covers may have.
type famRule struct {
	set  famSet
	path string // where the list is written: "nodes[2].families"
	obj  string // what wrote it: `node "h1"`, `switch "s1"`, `link a -- b`
	text string // the list as written: ["ipv6"]
	// ifaces are the interfaces it covers, filled by applyFamilies.
	ifaces []*Iface
}

func (fr *famRule) String() string { return fmt.Sprintf("%s has families = %s", fr.obj, fr.text) }

// parseFamilies reads a families list; nil when none is written (or it
// is wrong, which is reported).
func (r *resolver) parseFamilies(path, obj string, in []string) *famRule {
	if in == nil {
		return nil
	}
	if len(in) == 0 {
		r.c.add(path+".families", obj, "families is empty: list %q, %q or both, or leave it out for every family the lab hands out", FamilyIPv4, FamilyIPv6)
		return nil
	}
	known := []string{FamilyIPv4, FamilyIPv6}
	fr := &famRule{path: path + ".families", obj: obj}
	quoted := make([]string, len(in))
	ok := true
	for j, f := range in {
		quoted[j] = strconv.Quote(f)
		var bit famSet
		switch f {
		case FamilyIPv4:
			bit = fam4
		case FamilyIPv6:
			bit = fam6
		default:
			r.c.add(fmt.Sprintf("%s.families[%d]", path, j), obj, "unknown address family %q%s", f, suggestFamily(f, known))
			ok = false
			continue
		}
		if fr.set&bit != 0 {
			r.c.add(fmt.Sprintf("%s.families[%d]", path, j), obj, "family %q is listed twice", f)
			ok = false
		}
		fr.set |= bit
	}
	if !ok {
		return nil
	}
	fr.text = "[" + strings.Join(quoted, ", ") + "]"
	return fr
}

// suggestFamily is suggest that also knows "4", "v6", "inet6" and the
// like.
func suggestFamily(f string, known []string) string {
	switch strings.TrimPrefix(strings.ToLower(f), "ip") {
	case "4", "v4", "inet":
		return fmt.Sprintf(" (did you mean %q?)", FamilyIPv4)
	case "6", "v6", "inet6":
		return fmt.Sprintf(" (did you mean %q?)", FamilyIPv6)
	}
	if s := suggest(f, known); strings.HasPrefix(s, " (did you mean") {
		return s
	}
	return fmt.Sprintf(" (known: %s)", strings.Join(known, ", "))
}

// applyFamilies decides, once the segments are known, which families
// each interface may have: the intersection of its node's list, its
// link's list and the lists of the switches of its segment. A switch port
// has no addresses, so a switch's list covers the members of its
// segment instead.
func (r *resolver) applyFamilies() {
	r.allow = map[*Iface][]*famRule{}
	bySeg := map[int][]*famRule{}
	for _, n := range r.plan.Nodes {
		fr := r.nodeFam[n.Name]
		if fr == nil || n.Kind != KindSwitch {
			continue
		}
		seen := map[int]bool{}
		for _, i := range n.Ifaces {
			if !seen[i.Segment] {
				seen[i.Segment] = true
				bySeg[i.Segment] = append(bySeg[i.Segment], fr)
			}
		}
	}
	for _, s := range r.plan.Segments {
		for _, m := range s.Members {
			var rules []*famRule
			if n := r.plan.byName[m.Node]; n != nil && n.Kind != KindSwitch && r.nodeFam[n.Name] != nil {
				rules = append(rules, r.nodeFam[n.Name])
			}
			if fr := r.linkFam[m]; fr != nil {
				rules = append(rules, fr)
			}
			rules = append(rules, bySeg[s.Index]...)
			for _, fr := range rules {
				fr.ifaces = append(fr.ifaces, m)
			}
			r.allow[m] = rules
			if r.allowed(m) == 0 {
				why := make([]string, len(rules))
				for k, fr := range rules {
					why[k] = fr.String()
				}
				r.c.add(r.path[m], ifaceName(m), "no address family is left for it: %s", strings.Join(why, " and "))
			}
		}
	}
}

// allowed is the set of families interface i may have.
func (r *resolver) allowed(i *Iface) famSet {
	set := famBoth
	for _, fr := range r.allow[i] {
		set &= fr.set
	}
	return set
}

// refuser is the first rule that keeps family v4 (or 6) off i, or nil.
func (r *resolver) refuser(i *Iface, v4 bool) *famRule {
	for _, fr := range r.allow[i] {
		if !fr.set.has(v4) {
			return fr
		}
	}
	return nil
}

// dropRefused reports and removes written addresses of a family that a
// families list keeps off their interface.
func (r *resolver) dropRefused() {
	for _, s := range r.plan.Segments {
		for _, m := range s.Members {
			var keep []netip.Prefix
			for k, a := range m.Addrs {
				if fr := r.refuser(m, a.Addr().Is4()); fr != nil {
					r.c.add(fmt.Sprintf("%s.addresses[%d]", r.path[m], k), ifaceName(m), "address %s is IPv%d, but %s", a, famNum(a), fr)
					continue
				}
				keep = append(keep, a)
			}
			m.Addrs = keep
		}
	}
}

// checkFamilies reports a families list that asks for a family none of
// its interfaces got.
func (r *resolver) checkFamilies() {
	var rules []*famRule
	seen := map[*famRule]bool{}
	for _, n := range r.plan.Nodes {
		if fr := r.nodeFam[n.Name]; fr != nil && !seen[fr] {
			seen[fr] = true
			rules = append(rules, fr)
		}
	}
	for _, l := range r.plan.Links {
		for _, i := range []*Iface{l.A, l.B} {
			if fr := r.linkFam[i]; fr != nil && !seen[fr] {
				seen[fr] = true
				rules = append(rules, fr)
			}
		}
	}
	for _, fr := range rules {
		if len(fr.ifaces) == 0 {
			continue
		}
		empty := false
		for _, i := range fr.ifaces {
			if r.allowed(i) == 0 {
				empty = true // reported by applyFamilies
			}
		}
		if empty {
			continue
		}
		for _, v4 := range []bool{true, false} {
			if !fr.set.has(v4) {
				continue
			}
			got := false
			for _, i := range fr.ifaces {
				if hasFamily(i.Addrs, v4) {
					got = true
				}
			}
			if got {
				continue
			}
			name := map[bool]string{true: FamilyIPv4, false: FamilyIPv6}[v4]
			hint := ""
			switch {
			case r.t.Addressing.Disable:
				hint = ": addressing.disable is set, so write one on a link"
			case !v4 && !r.pool6:
				hint = ": set addressing.ipv6 for automatic IPv6 addresses, or write one on a link"
			}
			r.c.add(fr.path, fr.obj, "families lists %q, but no IPv%d address is written or handed out for it%s", name, ipVersion(v4), hint)
		}
	}
}

func ipVersion(v4 bool) int {
	if v4 {
		return 4
	}
	return 6
}

// routeFamily tells the family of a written route, when it can be told
// before the route is checked: false for ok when it cannot.
func routeFamily(rs RouteSpec) (v4, ok bool) {
	if rs.To != "default" {
		if p, err := netip.ParsePrefix(rs.To); err == nil {
			return p.Addr().Is4(), true
		}
	}
	if a, err := netip.ParseAddr(rs.Via); err == nil {
		return a.Is4(), true
	}
	return false, false
}
