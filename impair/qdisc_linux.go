package impair

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
)

// Encoders and decoders of the qdiscs nslab uses, in the kernel's units:
// rates in bytes a second, bursts in scheduler ticks, probabilities as
// fractions of 2^32-1, delays in nanoseconds.

func tcAttrs(as ...*nl.RtAttr) []byte {
	var b []byte
	for _, a := range as {
		b = append(b, a.Serialize()...)
	}
	return b
}

// tcTBF is `tc qdisc ... tbf rate R burst B limit L`.
type tcTBF struct {
	rate   uint64 // bytes a second
	buffer uint32 // ticks: the burst, as the time it takes at rate
	limit  uint32 // the queue of its fifo child (see tcPlan.tbfLimit)
}

func (t tcTBF) qdisc() tcQdisc {
	opt := nl.TcTbfQopt{Limit: t.limit, Buffer: t.buffer}
	opt.Rate = nl.TcRateSpec{Rate: uint32(min(t.rate, 1<<32-1)), Linklayer: nl.LINKLAYER_ETHERNET}
	as := []*nl.RtAttr{nl.NewRtAttr(nl.TCA_TBF_PARMS, opt.Serialize())}
	if t.rate >= 1<<32 {
		as = append(as, nl.NewRtAttr(nl.TCA_TBF_RATE64, nl.Uint64Attr(t.rate)))
	}
	return tcQdisc{kind: "tbf", handle: netlink.MakeHandle(tcShaperMajor, 0), parent: netlink.HANDLE_ROOT, options: tcAttrs(as...)}
}

func tcParseTBF(b []byte) (tcTBF, error) {
	attrs, err := nl.ParseRouteAttr(b)
	if err != nil {
		return tcTBF{}, fmt.Errorf("parse tbf options: %w", err)
	}
	var t tcTBF
	for _, a := range attrs {
		switch a.Attr.Type {
		case nl.TCA_TBF_PARMS:
			if len(a.Value) < nl.SizeofTcTbfQopt {
				return t, fmt.Errorf("parse tbf options: short parameters")
			}
			opt := nl.DeserializeTcTbfQopt(a.Value)
			if t.rate == 0 {
				t.rate = uint64(opt.Rate.Rate)
			}
			t.buffer, t.limit = opt.Buffer, opt.Limit
		case nl.TCA_TBF_RATE64:
			if len(a.Value) >= 8 {
				t.rate = binary.NativeEndian.Uint64(a.Value)
			}
		}
	}
	return t, nil
}

// tcHTBQdisc is `tc qdisc ... root handle 51ab: htb default 1`.
func tcHTBQdisc() tcQdisc {
	opt := nl.TcHtbGlob{Version: 3, Rate2Quantum: 10, Defcls: 1}
	return tcQdisc{kind: "htb", handle: netlink.MakeHandle(tcShaperMajor, 0), parent: netlink.HANDLE_ROOT,
		options: tcAttrs(nl.NewRtAttr(nl.TCA_HTB_INIT, opt.Serialize()))}
}

// tcHTBClass is `tc class ... parent 51ab: classid 51ab:1 htb rate R ceil R
// burst B cburst B`.
func tcHTBClass(ifindex int, rate uint64, buffer uint32) *netlink.HtbClass {
	quantum := min(max(rate/10, 1514), 200000) // r2q's choice, kept where the kernel does not warn
	return &netlink.HtbClass{
		ClassAttrs: netlink.ClassAttrs{LinkIndex: ifindex, Handle: netlink.MakeHandle(tcShaperMajor, 1), Parent: netlink.MakeHandle(tcShaperMajor, 0)},
		Rate:       rate, Ceil: rate, Buffer: buffer, Cbuffer: buffer, Quantum: uint32(quantum),
	}
}

// tcFifo is `tc qdisc ... parent 51ab:1 handle 51ac: pfifo limit N` (or
// bfifo, in bytes, under 51ad:).
func tcFifo(kind string, limit uint32) tcQdisc {
	major := uint16(tcPfifoMajor)
	if kind == "bfifo" {
		major = tcBfifoMajor
	}
	b := make([]byte, 4)
	binary.NativeEndian.PutUint32(b, limit)
	return tcQdisc{kind: kind, handle: netlink.MakeHandle(major, 0), parent: netlink.MakeHandle(tcShaperMajor, 1), options: b}
}

func tcParseFifo(b []byte) uint32 {
	if len(b) < 4 {
		return 0
	}
	return binary.NativeEndian.Uint32(b)
}

// tcClsact is `tc qdisc add dev IF clsact`.
func tcClsact() tcQdisc {
	return tcQdisc{kind: "clsact", handle: netlink.MakeHandle(0xffff, 0), parent: netlink.HANDLE_CLSACT}
}

// netem's attributes that vishvananda/netlink does not name.
const (
	tcaNetemLatency64 = 10
	tcaNetemJitter64  = 11
	netemLossGE       = 2 // NETEM_LOSS_GE in TCA_NETEM_LOSS
)

// tcNetem is netem's configuration in the kernel's units. It is
// comparable, so that Apply sends a change only when something changed.
type tcNetem struct {
	latency, jitter      int64 // ns
	dist                 Distribution
	limit                uint32 // packets
	loss, lossCorr       uint32
	ge                   bool
	geP, geR, geH, geK   uint32 // p, r, h (kept in the bad state), 1-k (lost in the good state)
	gap                  uint32
	duplicate, dupCorr   uint32
	delayCorr            uint32
	reorder, reorderCorr uint32
	corrupt, corruptCorr uint32
}

// tcNetemDistMajor is the major of a netem qdisc with distribution d, at
// the root or under the shaper. The two sets differ, so that moving netem
// between the two places never names a qdisc that is still in the tree
// (the kernel would try to move that one instead of making a new one).
func tcNetemDistMajor(d Distribution, child bool) (uint16, error) {
	base := uint16(tcNetemMajor)
	if child {
		base = tcNetemChildMajor
	}
	switch d {
	case Uniform:
		return base, nil
	case Normal:
		return base + 1, nil
	case Pareto:
		return base + 2, nil
	case ParetoNormal:
		return base + 3, nil
	}
	return 0, fmt.Errorf("unknown jitter distribution %q (want normal, pareto, paretonormal or none for uniform)", string(d))
}

// tcNetemMajorDist is the distribution a netem major records, and
// whether the major is one of nslab's netem majors at all.
func tcNetemMajorDist(major uint16) (Distribution, bool) {
	if major < tcNetemMajor || major > tcNetemChildMajor+3 {
		return "", false
	}
	return []Distribution{Uniform, Normal, Pareto, ParetoNormal}[(major-tcNetemMajor)%4], true
}

// qdisc encodes n; withTable adds the jitter distribution's table, which
// the kernel keeps across a change when it is left out.
func (n tcNetem) qdisc(major uint16) tcQdisc {
	toTicks := func(ns int64) uint32 { return uint32(min(max(ns/tcTickNs, 0), 1<<32-1)) }
	opt := nl.TcNetemQopt{Latency: toTicks(n.latency), Limit: n.limit, Loss: n.loss, Gap: n.gap, Duplicate: n.duplicate, Jitter: toTicks(n.jitter)}
	// Every attribute is sent, zero or not: netem keeps the old
	// correlation, reordering and corruption when one is left out of a
	// change.
	corr := nl.TcNetemCorr{DelayCorr: n.delayCorr, LossCorr: n.lossCorr, DupCorr: n.dupCorr}
	reorder := nl.TcNetemReorder{Probability: n.reorder, Correlation: n.reorderCorr}
	corrupt := nl.TcNetemCorrupt{Probability: n.corrupt, Correlation: n.corruptCorr}
	lat := make([]byte, 8)
	binary.NativeEndian.PutUint64(lat, uint64(n.latency))
	jit := make([]byte, 8)
	binary.NativeEndian.PutUint64(jit, uint64(n.jitter))
	b := opt.Serialize()
	b = append(b, tcAttrs(
		nl.NewRtAttr(nl.TCA_NETEM_CORR, corr.Serialize()),
		nl.NewRtAttr(nl.TCA_NETEM_REORDER, reorder.Serialize()),
		nl.NewRtAttr(nl.TCA_NETEM_CORRUPT, corrupt.Serialize()),
		nl.NewRtAttr(tcaNetemLatency64, lat),
		nl.NewRtAttr(tcaNetemJitter64, jit),
	)...)
	if n.ge {
		ge := make([]byte, 16)
		for i, v := range []uint32{n.geP, n.geR, n.geH, n.geK} {
			binary.NativeEndian.PutUint32(ge[4*i:], v)
		}
		loss := nl.NewRtAttr(nl.TCA_NETEM_LOSS, nil)
		loss.AddRtAttr(netemLossGE, ge)
		b = append(b, loss.Serialize()...)
	}
	return tcQdisc{kind: "netem", handle: netlink.MakeHandle(major, 0), options: b}
}

// withTable adds the distribution table to an encoded netem qdisc.
func (q tcQdisc) withTable(d Distribution) tcQdisc {
	t := tcDistTable(d)
	if t == nil {
		return q
	}
	b := make([]byte, 2*len(t))
	for i, v := range t {
		binary.NativeEndian.PutUint16(b[2*i:], uint16(v))
	}
	q.options = append(append([]byte(nil), q.options...), nl.NewRtAttr(nl.TCA_NETEM_DELAY_DIST, b).Serialize()...)
	return q
}

func tcParseNetem(b []byte) (tcNetem, error) {
	var n tcNetem
	if len(b) < nl.SizeofTcNetemQopt {
		return n, fmt.Errorf("parse netem options: short parameters")
	}
	opt := nl.DeserializeTcNetemQopt(b)
	n.latency, n.jitter = int64(opt.Latency)*tcTickNs, int64(opt.Jitter)*tcTickNs
	n.limit, n.loss, n.gap, n.duplicate = opt.Limit, opt.Loss, opt.Gap, opt.Duplicate
	attrs, err := nl.ParseRouteAttr(b[nl.SizeofTcNetemQopt:])
	if err != nil {
		return n, fmt.Errorf("parse netem options: %w", err)
	}
	for _, a := range attrs {
		switch a.Attr.Type {
		case nl.TCA_NETEM_CORR:
			if len(a.Value) >= nl.SizeofTcNetemCorr {
				c := nl.DeserializeTcNetemCorr(a.Value)
				n.delayCorr, n.lossCorr, n.dupCorr = c.DelayCorr, c.LossCorr, c.DupCorr
			}
		case nl.TCA_NETEM_REORDER:
			if len(a.Value) >= nl.SizeofTcNetemReorder {
				r := nl.DeserializeTcNetemReorder(a.Value)
				n.reorder, n.reorderCorr = r.Probability, r.Correlation
			}
		case nl.TCA_NETEM_CORRUPT:
			if len(a.Value) >= nl.SizeofTcNetemCorrupt {
				r := nl.DeserializeTcNetemCorrupt(a.Value)
				n.corrupt, n.corruptCorr = r.Probability, r.Correlation
			}
		case tcaNetemLatency64:
			if len(a.Value) >= 8 {
				n.latency = int64(binary.NativeEndian.Uint64(a.Value))
			}
		case tcaNetemJitter64:
			if len(a.Value) >= 8 {
				n.jitter = int64(binary.NativeEndian.Uint64(a.Value))
			}
		case nl.TCA_NETEM_LOSS:
			inner, err := nl.ParseRouteAttr(a.Value)
			if err != nil {
				return n, fmt.Errorf("parse netem loss model: %w", err)
			}
			for _, m := range inner {
				if m.Attr.Type == netemLossGE && len(m.Value) >= 16 {
					n.ge = true
					n.geP = binary.NativeEndian.Uint32(m.Value[0:])
					n.geR = binary.NativeEndian.Uint32(m.Value[4:])
					n.geH = binary.NativeEndian.Uint32(m.Value[8:])
					n.geK = binary.NativeEndian.Uint32(m.Value[12:])
				}
			}
		}
	}
	if !n.ge {
		n.geP, n.geR, n.geH, n.geK = 0, 0, 0, 0
	}
	return n, nil
}

// The jitter distributions' tables: netem draws an entry t at random and
// delays by delay + jitter*t/8192. Each table holds 4096 quantiles of its
// distribution, taken at the middle of each 1/4096 slice, scaled by 8192
// and clipped to an int16 (so at most about 4 jitters from the delay).
// The shapes are the ones `tc` ships (iproute2's netem/*.dist, from NIST
// Net): normal is the standard normal; pareto is a Pareto of shape 3
// shifted by its mean 1.5 and scaled by 4/3; paretonormal takes a quarter
// of the normal quantile and three quarters of the pareto one.
const (
	tcDistSize  = 4096
	tcDistScale = 8192 // NETEM_DIST_SCALE
)

func tcDistTable(d Distribution) []int16 {
	if d == Uniform {
		return nil
	}
	t := make([]int16, tcDistSize)
	for i := range t {
		u := (float64(i) + 0.5) / tcDistSize
		normal := math.Sqrt2 * math.Erfinv(2*u-1) * tcDistScale
		pareto := (math.Pow(1-u, -1.0/3) - 1.5) * 4 / 3 * tcDistScale
		var v float64
		switch d {
		case Normal:
			v = normal
		case Pareto:
			v = pareto
		case ParetoNormal:
			v = (math.Round(normal) + 3*math.Round(pareto)) / 4
		}
		t[i] = int16(max(min(math.Round(v), math.MaxInt16), math.MinInt16))
	}
	return t
}

// Probabilities: a percentage as netem's fraction of 2^32-1, and back,
// rounded to a millionth of a percent so that "1.5%" reads back as 1.5.
func tcPct32(p float64) uint32 {
	if p <= 0 {
		return 0
	}
	if p >= 100 {
		return math.MaxUint32
	}
	return uint32(math.Round(p / 100 * math.MaxUint32))
}

func tcPctOf32(v uint32) float64 {
	return math.Round(float64(v)/math.MaxUint32*100*1e6) / 1e6
}
