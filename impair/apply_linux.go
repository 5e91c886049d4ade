package impair

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ErrForeignQdisc is wrapped by Apply's and Read's errors when an
// interface carries a root qdisc that nslab did not set: nslab neither
// replaces nor reports it.
var ErrForeignQdisc = errors.New("root qdisc not set by nslab")

// Sizing. See docs/impairments.md, "How nslab applies impairments".
const (
	tcFrameBytes   = 1514         // a full frame at MTU 1500, as qdiscs count it (with its Ethernet header)
	tcDefaultQueue = 1000         // packets: Linux's txqueuelen, netem's own default and Mininet's
	tcMinBurst     = 15000        // bytes: Mininet's burst, ten frames
	tcBurstNs      = 2e6          // a burst of at least 2 ms at the rate
	tcNominalRate  = 10e9 / 8     // bytes a second: what a veth carries, for a netem with no rate above it
	tcMaxLimit     = 1<<31 - 1    // netem's limit is a u32; keep far from overflow
	tcBurstFloor   = tcFrameBytes // a smaller burst would drop every full frame
)

// tcPlan is what nslab puts on an interface's egress, in the kernel's
// units:
//
//	shaper "tbf"|"htb" at the root (handle 51ab:), and under it (51ab:1)
//	  a leaf: netem, or a pfifo/bfifo queue;
//	or netem alone at the root;
//	and, beside either, an eBPF loss classifier on clsact egress.
type tcPlan struct {
	shaper string // "", "tbf" or "htb"
	rate   uint64 // bytes a second
	buffer uint32 // ticks
	leaf   string // "", "pfifo", "bfifo" or "netem"
	limit  uint32 // of a fifo leaf: packets (pfifo) or bytes (bfifo)
	netem  tcNetem
	bpf    *bpfLossValue
}

// Effective is what Apply makes of d on a kernel k, as Read will report
// it: the burst and queue limit chosen where d leaves them at zero,
// values rounded to what the kernel keeps (rates to bytes a second,
// bursts to scheduler ticks, percentages to netem's 32-bit fractions),
// and fields that mean nothing in d's company dropped (a gap without
// reordering, a limit without rate or netem, a distribution without
// jitter, Loss beside a LossModel). Read(Apply(d)) == Effective(d, k), and
// Effective(Effective(d, k), k) == Effective(d, k). Its errors are
// Apply's: what Validate refuses, and what k cannot do.
func Effective(d Direction, k Kernel) (Direction, error) {
	if err := d.Validate(); err != nil {
		return Direction{}, err
	}
	if err := k.Check(d); err != nil {
		return Direction{}, err
	}
	p, err := tcPlanFor(d, k)
	if err != nil {
		return Direction{}, err
	}
	return p.direction(), nil
}

func tcUsesNetem(d Direction, k Kernel) bool {
	return k.Netem && (d.Delay != 0 || d.Jitter != 0 || d.Duplicate != 0 || d.Corrupt != 0 || d.Reorder != 0 || tcWantsLoss(d))
}

func tcPlanFor(d Direction, k Kernel) (tcPlan, error) {
	var p tcPlan
	if d.Rate != 0 {
		p.shaper = "tbf"
		if !k.TBF && k.HTB {
			p.shaper = "htb"
		}
		p.rate = max(d.Rate/8, 1)
		burst := d.Burst
		if burst == 0 {
			burst = uint32(min(max(tcMinBurst, float64(p.rate)*tcBurstNs/1e9), math.MaxUint32))
		}
		burst = max(burst, tcBurstFloor)
		p.buffer = max(tcTicks(burst, p.rate), 1)
	}
	switch {
	case tcUsesNetem(d, k):
		n, err := tcNetemOf(d)
		if err != nil {
			return p, err
		}
		queue := d.Limit
		if queue == 0 && d.LimitBytes != 0 {
			queue = (d.LimitBytes + tcFrameBytes - 1) / tcFrameBytes
		}
		if queue == 0 {
			queue = tcDefaultQueue
		}
		n.limit = uint32(min(uint64(queue)+uint64(tcInflight(p.rateOrNominal(), n)), tcMaxLimit))
		p.leaf, p.netem = "netem", n
	case p.shaper != "":
		if d.Limit == 0 && d.LimitBytes != 0 {
			p.leaf, p.limit = "bfifo", max(d.LimitBytes, tcFrameBytes)
		} else {
			p.leaf, p.limit = "pfifo", d.Limit
			if p.limit == 0 {
				p.limit = tcDefaultQueue
			}
		}
	}
	if !k.Netem && tcWantsLoss(d) {
		v := bpfValueOf(d)
		p.bpf = &v
	}
	return p, nil
}

func (p tcPlan) rateOrNominal() uint64 {
	if p.shaper != "" {
		return p.rate
	}
	return tcNominalRate
}

// tcInflight is how many full frames netem holds while they wait out the
// longest delay it gives, at rate: its limit must hold them on top of the
// queue, or a fast, long link drops below its rate (netem's default
// limit of 1000 packets does so above 1000 frames, 12 Mbit at 1 s or
// 242 Mbit/s at 50 ms).
func tcInflight(rate uint64, n tcNetem) uint32 {
	longest := n.latency + n.jitter
	if n.dist != Uniform {
		longest = n.latency + 4*n.jitter // the tables reach about 4 jitters
	}
	if longest <= 0 {
		return 0
	}
	return uint32(min(math.Ceil(float64(rate)*float64(longest)/1e9/tcFrameBytes), tcMaxLimit))
}

func tcNetemOf(d Direction) (tcNetem, error) {
	n := tcNetem{latency: int64(d.Delay), jitter: int64(d.Jitter)}
	if n.jitter != 0 {
		n.dist = d.Distribution
		n.delayCorr = tcPct32(d.DelayCorrelation)
		if _, err := tcNetemDistMajor(n.dist, false); err != nil {
			return n, err
		}
	}
	if m := d.LossModel; m != nil {
		n.ge = true
		n.geP, n.geR, n.geH, n.geK = tcPct32(m.P), tcPct32(m.R), tcPct32(m.H), tcPct32(m.K)
	} else if n.loss = tcPct32(d.Loss); n.loss != 0 {
		n.lossCorr = tcPct32(d.LossCorrelation)
	}
	if n.duplicate = tcPct32(d.Duplicate); n.duplicate != 0 {
		n.dupCorr = tcPct32(d.DuplicateCorrelation)
	}
	if n.corrupt = tcPct32(d.Corrupt); n.corrupt != 0 {
		n.corruptCorr = tcPct32(d.CorruptCorrelation)
	}
	if n.reorder = tcPct32(d.Reorder); n.reorder != 0 {
		n.reorderCorr = tcPct32(d.ReorderCorrelation)
		n.gap = max(d.Gap, 1) // tc's default: any packet may be sent early
	}
	return n, nil
}

// direction is the Direction p applies.
func (p tcPlan) direction() Direction {
	var d Direction
	if p.shaper != "" {
		d.Rate = p.rate * 8
		d.Burst = tcTicksBytes(p.buffer, p.rate)
	}
	switch p.leaf {
	case "pfifo":
		d.Limit = p.limit
	case "bfifo":
		d.LimitBytes = p.limit
	case "netem":
		n := p.netem
		d.Delay, d.Jitter, d.Distribution = time.Duration(n.latency), time.Duration(n.jitter), n.dist
		d.DelayCorrelation = tcPctOf32(n.delayCorr)
		if n.ge {
			d.LossModel = &GilbertElliott{P: tcPctOf32(n.geP), R: tcPctOf32(n.geR), H: tcPctOf32(n.geH), K: tcPctOf32(n.geK)}
		} else {
			d.Loss, d.LossCorrelation = tcPctOf32(n.loss), tcPctOf32(n.lossCorr)
		}
		d.Duplicate, d.DuplicateCorrelation = tcPctOf32(n.duplicate), tcPctOf32(n.dupCorr)
		d.Corrupt, d.CorruptCorrelation = tcPctOf32(n.corrupt), tcPctOf32(n.corruptCorr)
		d.Reorder, d.ReorderCorrelation, d.Gap = tcPctOf32(n.reorder), tcPctOf32(n.reorderCorr), n.gap
		// The queue means something only behind a rate or a delay (and
		// Validate refuses a limit without either); netem's own limit is
		// then the default, which Apply chooses again.
		if inflight := tcInflight(p.rateOrNominal(), n); n.limit > inflight && (p.shaper != "" || n.latency != 0) {
			d.Limit = n.limit - inflight
		}
	}
	if p.bpf != nil {
		p.bpf.fill(&d)
	}
	return d
}

// tbfLimit is the limit sent in TBF's own parameters. TBF hands it to its
// child whenever it changes, if the child is a fifo: so it must be the
// fifo's own limit. Under netem it only sizes the bfifo TBF makes for
// itself until netem replaces it.
func (p tcPlan) tbfLimit() uint32 {
	if p.leaf == "netem" {
		return uint32(min(uint64(p.netem.limit)*tcFrameBytes, math.MaxUint32))
	}
	return p.limit
}

// leafQdisc is the qdisc under the shaper, or netem at the root.
func (p tcPlan) leafQdisc() (tcQdisc, error) {
	if p.leaf == "netem" {
		major, err := tcNetemDistMajor(p.netem.dist, p.shaper != "")
		if err != nil {
			return tcQdisc{}, err
		}
		q := p.netem.qdisc(major)
		q.parent = netlink.MakeHandle(tcShaperMajor, 1)
		if p.shaper == "" {
			q.parent = netlink.HANDLE_ROOT
		}
		return q, nil
	}
	return tcFifo(p.leaf, p.limit), nil
}

// tcState is what an interface carries now.
type tcState struct {
	root   *tcQdisc // the root qdisc, if it has a handle (a kernel default has none)
	leaf   *tcQdisc // the qdisc under 51ab:1
	ours   bool     // root is nslab's
	clsact bool
}

func (c tcConn) state(ifindex int) (tcState, error) {
	qs, err := c.qdiscs(ifindex)
	if err != nil {
		return tcState{}, fmt.Errorf("list qdiscs: %w", err)
	}
	var st tcState
	for i := range qs {
		q := &qs[i]
		switch {
		case q.kind == "clsact":
			st.clsact = true
		case q.parent == netlink.HANDLE_ROOT && q.handle != 0:
			st.root = q
		case q.parent == netlink.MakeHandle(tcShaperMajor, 1):
			st.leaf = q
		}
	}
	if st.root != nil {
		major, _ := netlink.MajorMinor(st.root.handle)
		st.ours = (major == tcShaperMajor && (st.root.kind == "tbf" || st.root.kind == "htb")) ||
			(major >= tcNetemMajor && major <= tcNetemMajor+3 && st.root.kind == "netem")
	}
	return st, nil
}

func (st tcState) foreign(ifindex int) error {
	if st.root == nil || st.ours {
		return nil
	}
	return fmt.Errorf("interface %d has a %s root qdisc %s: %w", ifindex, st.root.kind, netlink.HandleStr(st.root.handle), ErrForeignQdisc)
}

// Apply makes the egress of interface ifindex (in the namespace of h,
// which must be a route handle: netlink.NewHandleAt(ns,
// unix.NETLINK_ROUTE)) do what d says, replacing whatever nslab set there
// before, and checks first that the kernel k can (Kernel.Check). The zero
// Direction clears it. A change of values is sent as a change of the
// qdiscs in place (or one eBPF map update for loss without netem), so
// packets queued on the link stay; a change of structure (adding a rate
// to a delay, changing the jitter distribution) replaces qdiscs, which
// drops what they held. A root qdisc nslab did not set is never touched:
// the error wraps ErrForeignQdisc. A d that Direction.Validate refuses,
// or that the kernel cannot do, changes nothing.
func Apply(h *netlink.Handle, ifindex int, d Direction, k Kernel) error {
	return ApplyShared(h, ifindex, d, k, nil)
}

// ApplyShared is Apply with loss programs shared among interfaces (see
// LossPrograms): where the kernel has no netem, the loss of ifindex is
// one more entry of s's program instead of a program of its own. A nil s
// is Apply.
func ApplyShared(h *netlink.Handle, ifindex int, d Direction, k Kernel, s *LossPrograms) error {
	return apply(h, ifindex, d, k, s, false)
}

// ApplyNew is ApplyShared for an interface just made, which carries the
// kernel's default qdisc only: it does not read first what the interface
// carries (one qdisc dump each), which a lab's build would do for every
// impaired direction.
func ApplyNew(h *netlink.Handle, ifindex int, d Direction, k Kernel, s *LossPrograms) error {
	return apply(h, ifindex, d, k, s, true)
}

func apply(h *netlink.Handle, ifindex int, d Direction, k Kernel, s *LossPrograms, fresh bool) error {
	if err := d.Validate(); err != nil {
		return err
	}
	if err := k.Check(d); err != nil {
		return err
	}
	p, err := tcPlanFor(d, k)
	if err != nil {
		return err
	}
	c, err := tcConnOf(h)
	if err != nil {
		return err
	}
	var st tcState // a new interface's: the kernel's default root, no clsact
	if !fresh {
		if st, err = c.state(ifindex); err != nil {
			return fmt.Errorf("impair interface %d: %w", ifindex, err)
		}
		if err := st.foreign(ifindex); err != nil {
			return err
		}
	}
	if err := c.applyQdiscs(h, ifindex, p, st); err != nil {
		return fmt.Errorf("impair interface %d: %w", ifindex, err)
	}
	if err := bpfApply(h, c, ifindex, p.bpf, st.clsact, s); err != nil {
		return fmt.Errorf("impair interface %d: %w", ifindex, err)
	}
	return nil
}

const (
	tcReplace = unix.NLM_F_CREATE | unix.NLM_F_REPLACE
	tcChange  = 0
)

func (c tcConn) applyQdiscs(h *netlink.Handle, ifindex int, p tcPlan, st tcState) error {
	if p.shaper == "" && p.leaf == "" {
		if st.ours {
			if err := c.qdiscDelete(ifindex, st.root.handle, netlink.HANDLE_ROOT); err != nil {
				return fmt.Errorf("delete root qdisc %s: %w", st.root.kind, err)
			}
		}
		return nil
	}
	leaf, err := p.leafQdisc()
	if err != nil {
		return err
	}
	if p.shaper == "" { // netem alone, at the root
		return c.applyNetem(ifindex, p.netem, leaf, st.root, st.ours)
	}
	same := st.ours && st.root.handle == netlink.MakeHandle(tcShaperMajor, 0) && st.root.kind == p.shaper
	if !same {
		if err := c.newShaper(h, ifindex, p); err != nil {
			return err
		}
		st.leaf = nil // the new shaper's leaf is its own default
	}
	// The leaf first, then the shaper: a TBF change resizes a fifo child
	// to the limit it carries, which is the new leaf's.
	if p.leaf == "netem" {
		if err := c.applyNetem(ifindex, p.netem, leaf, st.leaf, true); err != nil {
			return err
		}
	} else if st.leaf == nil || st.leaf.handle != leaf.handle || st.leaf.kind != leaf.kind {
		if err := c.qdiscModify(ifindex, unix.RTM_NEWQDISC, tcReplace, leaf); err != nil {
			return fmt.Errorf("%s limit %d under the shaper: %w", leaf.kind, p.limit, err)
		}
	} else if tcParseFifo(st.leaf.options) != p.limit {
		if err := c.qdiscModify(ifindex, unix.RTM_NEWQDISC, tcChange, leaf); err != nil {
			return fmt.Errorf("change %s limit to %d: %w", leaf.kind, p.limit, err)
		}
	}
	if !same {
		return nil
	}
	switch p.shaper {
	case "tbf":
		want := tcTBF{rate: p.rate, buffer: p.buffer, limit: p.tbfLimit()}
		cur, err := tcParseTBF(st.root.options)
		if err != nil {
			return err
		}
		if cur != want {
			if err := c.qdiscModify(ifindex, unix.RTM_NEWQDISC, tcChange, want.qdisc()); err != nil {
				return fmt.Errorf("change tbf rate %d bytes/s: %w", p.rate, err)
			}
		}
	case "htb":
		rate, buffer, err := tcReadHTBClass(h, ifindex)
		if err != nil {
			return err
		}
		if rate != p.rate || buffer != p.buffer {
			if err := h.ClassChange(tcHTBClass(ifindex, p.rate, p.buffer)); err != nil {
				return fmt.Errorf("change htb class rate %d bytes/s: %w", p.rate, err)
			}
		}
	}
	return nil
}

// newShaper replaces the root with a new TBF or HTB (the kernel grafts it
// in one step, dropping the old tree).
func (c tcConn) newShaper(h *netlink.Handle, ifindex int, p tcPlan) error {
	switch p.shaper {
	case "tbf":
		q := tcTBF{rate: p.rate, buffer: p.buffer, limit: p.tbfLimit()}.qdisc()
		if err := c.qdiscModify(ifindex, unix.RTM_NEWQDISC, tcReplace, q); err != nil {
			return fmt.Errorf("root tbf rate %d bytes/s: %w", p.rate, err)
		}
	case "htb":
		if err := c.qdiscModify(ifindex, unix.RTM_NEWQDISC, tcReplace, tcHTBQdisc()); err != nil {
			return fmt.Errorf("root htb: %w", err)
		}
		if err := h.ClassAdd(tcHTBClass(ifindex, p.rate, p.buffer)); err != nil {
			return fmt.Errorf("htb class rate %d bytes/s: %w", p.rate, err)
		}
	}
	return nil
}

// applyNetem puts netem q (configuration n) where cur is, changing cur in
// place when it is nslab's netem with the same distribution.
func (c tcConn) applyNetem(ifindex int, n tcNetem, q tcQdisc, cur *tcQdisc, ours bool) error {
	if ours && cur != nil && cur.kind == "netem" && cur.handle == q.handle {
		old, err := tcParseNetem(cur.options)
		if err != nil {
			return err
		}
		old.dist = n.dist // known from the handle, which matched
		if old == n {
			return nil
		}
		if err := c.qdiscModify(ifindex, unix.RTM_NEWQDISC, tcChange, q); err != nil {
			return fmt.Errorf("change netem: %w", err)
		}
		return nil
	}
	if err := c.qdiscModify(ifindex, unix.RTM_NEWQDISC, tcReplace, q.withTable(n.dist)); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("netem: %w (the kernel has no sch_netem)", err)
		}
		return fmt.Errorf("netem: %w", err)
	}
	return nil
}

func tcReadHTBClass(h *netlink.Handle, ifindex int) (rate uint64, buffer uint32, err error) {
	cs, err := h.ClassList(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: ifindex}}, 0)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return 0, 0, fmt.Errorf("list htb classes: %w", err)
	}
	for _, cl := range cs {
		if hc, ok := cl.(*netlink.HtbClass); ok && hc.Handle == netlink.MakeHandle(tcShaperMajor, 1) {
			return hc.Rate, hc.Buffer, nil
		}
	}
	return 0, 0, fmt.Errorf("htb class %s is missing", netlink.HandleStr(netlink.MakeHandle(tcShaperMajor, 1)))
}

// Read reports what nslab applied to the egress of interface ifindex, in
// the terms of Effective (the zero Direction for a plain link). A root
// qdisc that nslab did not set gives an error wrapping ErrForeignQdisc.
func Read(h *netlink.Handle, ifindex int) (Direction, error) {
	c, err := tcConnOf(h)
	if err != nil {
		return Direction{}, err
	}
	st, err := c.state(ifindex)
	if err != nil {
		return Direction{}, fmt.Errorf("read impairment of interface %d: %w", ifindex, err)
	}
	if err := st.foreign(ifindex); err != nil {
		return Direction{}, err
	}
	var p tcPlan
	if st.ours {
		if err := p.readQdiscs(h, ifindex, st); err != nil {
			return Direction{}, fmt.Errorf("read impairment of interface %d: %w", ifindex, err)
		}
	}
	if st.clsact {
		v, err := bpfRead(h, ifindex)
		if err != nil {
			return Direction{}, fmt.Errorf("read impairment of interface %d: %w", ifindex, err)
		}
		p.bpf = v
	}
	return p.direction(), nil
}

func (p *tcPlan) readQdiscs(h *netlink.Handle, ifindex int, st tcState) error {
	readNetem := func(q *tcQdisc) error {
		n, err := tcParseNetem(q.options)
		if err != nil {
			return err
		}
		major, _ := netlink.MajorMinor(q.handle)
		n.dist, _ = tcNetemMajorDist(major)
		p.leaf, p.netem = "netem", n
		return nil
	}
	switch st.root.kind {
	case "netem":
		return readNetem(st.root)
	case "tbf":
		t, err := tcParseTBF(st.root.options)
		if err != nil {
			return err
		}
		p.shaper, p.rate, p.buffer = "tbf", t.rate, t.buffer
	case "htb":
		rate, buffer, err := tcReadHTBClass(h, ifindex)
		if err != nil {
			return err
		}
		p.shaper, p.rate, p.buffer = "htb", rate, buffer
	}
	if st.leaf == nil {
		return nil
	}
	switch st.leaf.kind {
	case "netem":
		return readNetem(st.leaf)
	case "pfifo", "bfifo":
		p.leaf, p.limit = st.leaf.kind, tcParseFifo(st.leaf.options)
	}
	return nil
}

// Clear gives interface ifindex its plain egress back: it deletes the
// root qdisc nslab set (and with it what hangs below) and nslab's eBPF
// loss classifier, and leaves anything else alone.
func Clear(h *netlink.Handle, ifindex int) error {
	c, err := tcConnOf(h)
	if err != nil {
		return err
	}
	st, err := c.state(ifindex)
	if err != nil {
		return fmt.Errorf("clear interface %d: %w", ifindex, err)
	}
	if st.ours {
		if err := c.qdiscDelete(ifindex, st.root.handle, netlink.HANDLE_ROOT); err != nil {
			return fmt.Errorf("clear interface %d: delete root qdisc %s: %w", ifindex, st.root.kind, err)
		}
	}
	if err := bpfApply(h, c, ifindex, nil, st.clsact, nil); err != nil {
		return fmt.Errorf("clear interface %d: %w", ifindex, err)
	}
	return nil
}
