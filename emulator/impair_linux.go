package emulator

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nslab/nslab/impair"
	"github.com/nslab/nslab/internal/rtnl"
	"github.com/nslab/nslab/topo"
	"github.com/vishvananda/netlink"
)

// A link's impairment is applied per direction on the egress of the
// sending end: the direction from A to B on A's interface, in A's node
// (`tc qdisc replace dev IF root ...` there), so that each direction is
// shaped where its packets queue. The host attachment's direction from the
// host is applied on the host's end, in the host namespace.

// impairedEnd is one direction of one link: the interface that sends it
// and what it does to packets.
type impairedEnd struct {
	iface *topo.Iface // the sending end
	host  bool        // the end is the host attachment's, in the host namespace
	d     impair.Direction
}

func (e impairedEnd) String() string {
	from := e.iface.Node
	if e.host {
		from = topo.HostEnd
	}
	return fmt.Sprintf("%s:%s -> %s", from, e.iface.Name, peerName(e.iface))
}

func peerName(i *topo.Iface) string {
	if i.Peer == nil {
		return "?"
	}
	if i.Peer.Node == "" {
		return topo.HostEnd
	}
	return i.Peer.Node
}

// impairedEnds lists every direction of the plan that has an impairment.
func impairedEnds(p *topo.Plan) []impairedEnd {
	var out []impairedEnd
	for _, k := range p.Links {
		out = appendEnd(out, k.A, false, k.Impair.AB)
		out = appendEnd(out, k.B, false, k.Impair.BA)
	}
	if h := p.Host; h != nil {
		out = appendEnd(out, h.Host, true, h.Impair.AB)
		out = appendEnd(out, h.Lab, false, h.Impair.BA)
	}
	return out
}

func appendEnd(out []impairedEnd, i *topo.Iface, host bool, d impair.Direction) []impairedEnd {
	if d.IsZero() {
		return out
	}
	return append(out, impairedEnd{iface: i, host: host, d: d})
}

// checkImpairments finds out, before anything is built, whether this
// kernel can do every impairment the plan asks for: a lab whose links
// would silently lack their delay is never built. A plan without
// impairments costs nothing (no detection).
func checkImpairments(p *topo.Plan) (*impair.Kernel, error) {
	ends := impairedEnds(p)
	if len(ends) == 0 {
		return nil, nil
	}
	k, err := impair.DetectKernel()
	if err != nil {
		return nil, fmt.Errorf("find out what the kernel can do for link impairments: %w", err)
	}
	var errs []error
	for _, e := range ends {
		if err := k.Check(e.d); err != nil {
			errs = append(errs, fmt.Errorf("link %s: %w", e, err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &k, nil
}

// impairments is the build's phase that applies every impairment of the
// plan, with what checkImpairments found the kernel can do at Up. It has
// no undo: the qdiscs are on the lab's interfaces and go with them (the
// host's end is deleted with its pair). The directions are grouped by the
// namespace that sends them: each group goes through one netlink handle
// of its namespace, and the groups run on the build's workers, as the
// other per-node phases do (docs/performance.md, "Link impairments").
func (b *builder) impairments(ctx context.Context) error {
	l := b.lab
	if l.kernel == nil {
		return nil
	}
	groups := endsBySender(impairedEnds(l.Plan))
	return parallel(ctx, len(groups), b.opts.Workers, func(i int) error {
		g := groups[i]
		return l.onEnd(g[0], func(h *netlink.Handle) error {
			for _, e := range g {
				if err := ctx.Err(); err != nil {
					return err
				}
				if err := l.applyOn(h, e, e.d, *l.kernel, true); err != nil {
					return err
				}
			}
			return nil
		})
	})
}

// endsBySender groups ends by the namespace they are in (the sending
// node's, or the host's), in the order of ends.
func endsBySender(ends []impairedEnd) [][]impairedEnd {
	var groups [][]impairedEnd
	at := map[string]int{}
	for _, e := range ends {
		key := "node " + e.iface.Node
		if e.host {
			key = "host"
		}
		i, ok := at[key]
		if !ok {
			i = len(groups)
			at[key] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], e)
	}
	return groups
}

func (l *Lab) applyEnd(e impairedEnd, d impair.Direction) error {
	return l.onEnd(e, func(h *netlink.Handle) error {
		return l.applyOn(h, e, d, *l.kernel, false)
	})
}

// applyOn sets d on e's sending end (clears it for a zero d) through h, a
// handle in that end's namespace; fresh says the end was just made (the
// build: impair.ApplyNew).
func (l *Lab) applyOn(h *netlink.Handle, e impairedEnd, d impair.Direction, k impair.Kernel, fresh bool) error {
	idx, err := ifIndex(h, e.iface)
	if err != nil {
		return fmt.Errorf("link %s: %w", e, err)
	}
	// The lab's interfaces have indexes unique across the lab, so one
	// loss program serves them all; the host's end, numbered by the
	// kernel, gets its own.
	shared := &l.loss
	if e.host {
		shared = nil
	}
	switch {
	case d.IsZero():
		err = impair.Clear(h, idx)
	case fresh:
		err = impair.ApplyNew(h, idx, d, k, shared)
	default:
		err = impair.ApplyShared(h, idx, d, k, shared)
	}
	if err != nil {
		return fmt.Errorf("impair link %s: %w", e, err)
	}
	return nil
}

// onEnd runs fn with a route netlink handle in the namespace of e's
// sending end: the node's handle, or the host namespace's.
func (l *Lab) onEnd(e impairedEnd, fn func(h *netlink.Handle) error) error {
	if !e.host {
		h, err := l.node(e.iface.Node)
		if err != nil {
			return err
		}
		return h.netlink(fn)
	}
	ns, err := l.hostNetns()
	if err != nil {
		return fmt.Errorf("link %s: open the host namespace: %w", e, err)
	}
	defer ns.Close()
	h, err := rtnl.NewHandle(ns)
	if err != nil {
		return fmt.Errorf("link %s: netlink: %w", e, err)
	}
	defer h.Close()
	return fn(h)
}

// ifIndex is the interface's index: the planned one for a lab end, looked
// up by name for the host's end (the kernel chose it there).
func ifIndex(h *netlink.Handle, i *topo.Iface) (int, error) {
	if i.Index > 0 && i.Node != "" {
		return i.Index, nil
	}
	lk, err := h.LinkByName(i.Name)
	if err != nil {
		return 0, fmt.Errorf("interface %q: %w", i.Name, err)
	}
	return lk.Attrs().Index, nil
}

// Impairment is what a link does now, read from the kernel: AB from the
// link's first end to its second (Plan.FindLink's order), BA back.
type Impairment struct {
	Link *topo.Link  `json:"-"`
	A    string      `json:"a"` // "node:interface"
	B    string      `json:"b"`
	Now  impair.Link `json:"impair"`
}

// Impairment reads what the link between a and b does now (`tc qdisc show
// dev IF` on both ends). a and b are as in Plan.FindLink.
func (l *Lab) Impairment(a, b string) (*Impairment, error) {
	k, err := l.Plan.FindLink(a, b)
	if err != nil {
		return nil, err
	}
	out := &Impairment{Link: k, A: k.A.Node + ":" + k.A.Name, B: k.B.Node + ":" + k.B.Name}
	for _, x := range []struct {
		i *topo.Iface
		d *impair.Direction
	}{{k.A, &out.Now.AB}, {k.B, &out.Now.BA}} {
		e := impairedEnd{iface: x.i}
		if err := l.onEnd(e, func(h *netlink.Handle) (err error) {
			*x.d, err = impair.Read(h, x.i.Index)
			return err
		}); err != nil {
			return nil, fmt.Errorf("read link %s: %w", e, err)
		}
	}
	return out, nil
}

// SetImpairment changes what the direction from node from to node to
// does while the lab runs, without rebuilding anything (`tc qdisc replace
// dev IF root ...` on from's end); a zero Direction gives that direction
// its plain link back (`tc qdisc del dev IF root`). from and to are node
// names, or "node:interface" as in Plan.FindLink. Both directions are two
// calls. It returns the link.
func (l *Lab) SetImpairment(from, to string, d impair.Direction) (*topo.Link, error) {
	k, err := l.Plan.FindLink(from, to)
	if err != nil {
		return nil, err
	}
	if err := l.needKernel(d); err != nil {
		return k, err
	}
	end := k.A
	if node, _, _ := strings.Cut(from, ":"); node != k.A.Node {
		end = k.B
	}
	return k, l.applyEnd(impairedEnd{iface: end}, d)
}

// needKernel finds out once what the kernel can do, and checks d.
func (l *Lab) needKernel(d impair.Direction) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.kernel == nil {
		k, err := impair.DetectKernel()
		if err != nil {
			return fmt.Errorf("find out what the kernel can do for link impairments: %w", err)
		}
		l.kernel = &k
	}
	if d.IsZero() {
		return nil
	}
	if err := d.Validate(); err != nil {
		return topo.BadInput(err)
	}
	return l.kernel.Check(d)
}
