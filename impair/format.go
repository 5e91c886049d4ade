package impair

import (
	"strconv"
	"strings"
	"time"
)

// String writes d in tc's words, the way `tc qdisc show` would put the
// same settings: "rate 10Mbit delay 40ms 5ms distribution normal loss 1%".
// A plain direction (IsZero) is the empty string. Rates are in bits per
// second (10Mbit, never tc's ambiguous "bps"), sizes in bytes and powers
// of 1024 (32Kb is 32768 bytes, as tc writes it), times in s, ms, us or
// ns, and every figure is exact.
func (d Direction) String() string {
	var w []string
	add := func(s ...string) { w = append(w, s...) }
	if d.Rate > 0 {
		add("rate", FormatRate(d.Rate))
	}
	if d.Burst > 0 {
		add("burst", FormatSize(d.Burst))
	}
	if d.Limit > 0 {
		add("limit", strconv.FormatUint(uint64(d.Limit), 10))
	}
	if d.LimitBytes > 0 {
		add("limit", FormatSize(d.LimitBytes))
	}
	if d.Delay > 0 || d.Jitter > 0 || d.DelayCorrelation > 0 {
		add("delay", FormatTime(d.Delay))
		if d.Jitter > 0 || d.DelayCorrelation > 0 {
			add(FormatTime(d.Jitter))
		}
		if d.DelayCorrelation > 0 {
			add(FormatPercent(d.DelayCorrelation))
		}
	}
	if d.Distribution != Uniform {
		add("distribution", string(d.Distribution))
	}
	if d.Loss > 0 || d.LossCorrelation > 0 {
		add("loss", FormatPercent(d.Loss))
		if d.LossCorrelation > 0 {
			add(FormatPercent(d.LossCorrelation))
		}
	}
	if m := d.LossModel; m != nil {
		add("loss", "gemodel", "p", FormatPercent(m.P), "r", FormatPercent(m.R),
			"1-h", FormatPercent(100-m.H), "1-k", FormatPercent(m.K))
	}
	pair := func(name string, p, corr float64) {
		if p > 0 || corr > 0 {
			add(name, FormatPercent(p))
			if corr > 0 {
				add(FormatPercent(corr))
			}
		}
	}
	pair("duplicate", d.Duplicate, d.DuplicateCorrelation)
	pair("corrupt", d.Corrupt, d.CorruptCorrelation)
	pair("reorder", d.Reorder, d.ReorderCorrelation)
	if d.Gap > 0 {
		add("gap", strconv.FormatUint(uint64(d.Gap), 10))
	}
	return strings.Join(w, " ")
}

// Words writes d as the key=value words that Parse reads back, one word
// per key that is set, in the order of the keys in docs/impairments.md:
// ["rate=10Mbit", "delay=40ms", "loss=1%"]. A plain direction has none.
func (d Direction) Words() []string {
	var w []string
	add := func(key, value string) { w = append(w, key+"="+value) }
	if d.Rate > 0 {
		add("rate", FormatRate(d.Rate))
	}
	if d.Burst > 0 {
		add("burst", FormatSize(d.Burst))
	}
	if d.Limit > 0 {
		add("limit", strconv.FormatUint(uint64(d.Limit), 10))
	}
	if d.LimitBytes > 0 {
		add("limit", FormatSize(d.LimitBytes))
	}
	if d.Delay > 0 {
		add("delay", FormatTime(d.Delay))
	}
	if d.Jitter > 0 {
		add("jitter", FormatTime(d.Jitter))
	}
	if d.Distribution != Uniform {
		add("distribution", string(d.Distribution))
	}
	percent := func(key string, p float64) {
		if p > 0 {
			add(key, FormatPercent(p))
		}
	}
	percent("delay_correlation", d.DelayCorrelation)
	percent("loss", d.Loss)
	percent("loss_correlation", d.LossCorrelation)
	if m := d.LossModel; m != nil {
		add("loss_model.p", FormatPercent(m.P))
		add("loss_model.r", FormatPercent(m.R))
		add("loss_model.bad_loss", FormatPercent(100-m.H))
		add("loss_model.good_loss", FormatPercent(m.K))
	}
	percent("duplicate", d.Duplicate)
	percent("duplicate_correlation", d.DuplicateCorrelation)
	percent("corrupt", d.Corrupt)
	percent("corrupt_correlation", d.CorruptCorrelation)
	percent("reorder", d.Reorder)
	percent("reorder_correlation", d.ReorderCorrelation)
	if d.Gap > 0 {
		add("gap", strconv.FormatUint(uint64(d.Gap), 10))
	}
	return w
}

// Format writes both directions of a link whose endpoints are a and b:
// "a -> b: rate 1Mbit delay 25ms; b -> a: ..."; a plain direction is
// "none".
func (l Link) Format(a, b string) string {
	one := func(d Direction) string {
		if d.IsZero() {
			return "none"
		}
		return d.String()
	}
	return a + " -> " + b + ": " + one(l.AB) + "; " + b + " -> " + a + ": " + one(l.BA)
}

// IsZero reports whether neither direction of l changes anything.
func (l Link) IsZero() bool { return l.AB.IsZero() && l.BA.IsZero() }

// FormatRate writes a rate in bits per second as tc writes rates: 10Mbit,
// 1.6Mbit, 750Kbit, 1.5Gbit; exact, in the largest unit it reaches.
func FormatRate(bps uint64) string {
	units := []struct {
		name string
		n    uint64
	}{{"Tbit", 1e12}, {"Gbit", 1e9}, {"Mbit", 1e6}, {"Kbit", 1e3}}
	for _, u := range units {
		if bps >= u.n {
			return decimalString(bps, u.n) + u.name
		}
	}
	return strconv.FormatUint(bps, 10) + "bit"
}

// FormatSize writes a size in bytes as tc does: in Gb, Mb or Kb (powers of
// 1024) when it is a whole number of them, else in bytes: 32Kb, 1500b.
func FormatSize(b uint32) string {
	n := uint64(b)
	for _, u := range []struct {
		name string
		n    uint64
	}{{"Gb", 1 << 30}, {"Mb", 1 << 20}, {"Kb", 1 << 10}} {
		if n >= u.n && n%u.n == 0 {
			return strconv.FormatUint(n/u.n, 10) + u.name
		}
	}
	return strconv.FormatUint(n, 10) + "b"
}

// FormatTime writes a duration in tc's units, exactly: 1.5s, 40ms, 250us,
// 100ns; "0ms" for none.
func FormatTime(d time.Duration) string {
	if d <= 0 {
		return "0ms"
	}
	n := uint64(d)
	for _, u := range []struct {
		name string
		n    uint64
	}{{"s", 1e9}, {"ms", 1e6}, {"us", 1e3}} {
		if n >= u.n {
			return decimalString(n, u.n) + u.name
		}
	}
	return strconv.FormatUint(n, 10) + "ns"
}

// FormatPercent writes a percentage with its sign, in the fewest digits
// that read back the same: 1%, 0.5%, 33.333333333333336%.
func FormatPercent(p float64) string {
	return strconv.FormatFloat(p, 'f', -1, 64) + "%"
}

// decimal writes n/unit exactly, unit a power of ten: decimal(1600000,
// 1e6) is "1.6".
func decimalString(n, unit uint64) string {
	s := strconv.FormatUint(n/unit, 10)
	rem := n % unit
	if rem == 0 {
		return s
	}
	digits := len(strconv.FormatUint(unit, 10)) - 1
	frac := strconv.FormatUint(rem, 10)
	frac = strings.Repeat("0", digits-len(frac)) + frac
	return s + "." + strings.TrimRight(frac, "0")
}

// MeanLoss is the share of packets the model loses in the long run, in
// percent: the bad state's share of the time, p/(p+r), times its loss
// (100-H), plus the good state's share times its loss (K).
func (g GilbertElliott) MeanLoss() float64 {
	if g.P+g.R == 0 {
		return g.K // it never leaves the good state
	}
	bad := g.P / (g.P + g.R)
	return bad*(100-g.H) + (1-bad)*g.K
}
