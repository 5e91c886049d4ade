package impair

import (
	"fmt"
	"math"
	"math/big"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nslab/nslab/internal/text"
)

// The unit parsers shared by the topology file (Spec.Resolve) and the
// run-time words (Parse). Each takes a value as decoded from TOML (a
// string, an integer, a float, or anything else the file may hold) and
// returns the resolved number, or an error whose text names the value as
// written and says what is allowed.
//
// Every quantity carries its unit, because a bare number means different
// things to the tools people come from (a bare rate is bits per second to
// tc and megabits per second to Mininet's bw; a bare time is microseconds
// to tc). Zero is the exception: it is zero in every unit. Units are read
// without regard to case, as tc reads them, and a space may stand between
// the number and its unit.

// quantity is a number as written: a sign, a decimal and a unit.
type quantity struct {
	neg  bool
	num  *big.Rat // the magnitude, exact
	int  bool     // written without a decimal point
	unit string   // as written, trimmed
}

// scan reads "1.5gbit", "-3 ms", "0.5%", ".5s". ok is false when s does
// not start with a decimal number.
func scanQuantity(s string) (q quantity, ok bool) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "-") {
		q.neg = true
		s = strings.TrimLeft(s[1:], " ")
	}
	i, digits, dot := 0, 0, false
	for ; i < len(s); i++ {
		c := s[i]
		if c >= '0' && c <= '9' {
			digits++
			continue
		}
		if c == '.' && !dot {
			dot = true
			continue
		}
		break
	}
	if digits == 0 {
		return quantity{}, false
	}
	q.num, ok = new(big.Rat).SetString(strings.TrimSuffix(s[:i], "."))
	if !ok {
		return quantity{}, false
	}
	q.int = !dot
	q.unit = strings.TrimSpace(s[i:])
	return q, true
}

// show writes a value as the user wrote it: a string quoted, a number bare.
func show(v any) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32)
	}
	return fmt.Sprint(v)
}

// kindOf names what a value that is no string and no number is.
func kindOf(v any) string {
	switch reflect.ValueOf(v).Kind() {
	case reflect.Bool:
		return "a boolean"
	case reflect.Map, reflect.Struct, reflect.Pointer:
		if _, ok := v.(time.Time); ok {
			return "a date or time"
		}
		return "a table"
	case reflect.Slice, reflect.Array:
		return "a list"
	}
	return fmt.Sprintf("a %T", v)
}

// number returns the value of an integer or float, and whether v is one.
func numberOf(v any) (f float64, isInt, ok bool) {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return float64(rv.Int()), true, true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return float64(rv.Uint()), true, true
	case reflect.Float32, reflect.Float64:
		return rv.Float(), false, true
	}
	return 0, false, false
}

// unitSet is the units of one kind of quantity, each with its factor to
// the base unit (bits per second, bytes, nanoseconds).
type unitSet struct {
	what    string // "rate", "size", "time"
	example string // "10mbit"
	factor  map[string]*big.Rat
	known   string   // for messages
	order   []string // for suggestions, most likely first
	max     *big.Rat // largest value accepted, in the base unit
	maxText string   // the same, as written
	bare    string   // why a bare number is refused
	// bareUnit is the unit suggested for a bare number: "10" -> "10mbit".
	bareUnit string
	// prefixes maps the first letters of a unit to the unit they most
	// likely abbreviate: "m" of "mbs" to "mbit".
	prefixes map[string]string
}

func ratOf(n int64) *big.Rat { return new(big.Rat).SetInt64(n) }

func ratU(n uint64) *big.Rat { return new(big.Rat).SetUint64(n) }

func powOf(base int64, n int) *big.Rat {
	r := ratOf(1)
	for range n {
		r.Mul(r, ratOf(base))
	}
	return r
}

// rates are tc's rate units (tc(8), RATES): bits and bytes per second,
// SI and IEC prefixes, plus "/s" spellings of the bit units.
var rates = func() *unitSet {
	u := &unitSet{
		what: "rate", example: "10mbit",
		factor: map[string]*big.Rat{"bit": ratOf(1), "bit/s": ratOf(1), "bps": ratOf(8)},
		known: "bit, kbit, mbit, gbit, tbit (bits per second); bps, kbps, mbps, gbps, tbps (bytes per second, as tc reads them); " +
			"kibit, mibit, gibit, tibit, kibps, mibps, gibps, tibps (powers of 1024)",
		order:    []string{"bit", "kbit", "mbit", "gbit", "tbit", "bps", "kbps", "mbps", "gbps", "tbps"},
		max:      ratU(math.MaxUint64),
		maxText:  "18446744073709551615bit",
		bare:     "a bare number is bits per second to tc but megabits per second to Mininet's bw",
		bareUnit: "mbit",
		prefixes: map[string]string{"by": "bps"},
	}
	for i, p := range []string{"k", "m", "g", "t"} {
		si, iec := powOf(1000, i+1), powOf(1024, i+1)
		u.factor[p+"bit"] = si
		u.factor[p+"bit/s"] = si
		u.factor[p+"ibit"] = iec
		u.factor[p+"bps"] = new(big.Rat).Mul(si, ratOf(8))
		u.factor[p+"ibps"] = new(big.Rat).Mul(iec, ratOf(8))
		u.prefixes[p] = p + "bit"
		u.prefixes[p+"i"] = p + "ibit"
		u.prefixes[p+"by"] = p + "bps"
	}
	u.prefixes["b"] = "bit"
	return u
}()

// sizes are tc's size units (tc(8), PARAMETERS: b, k/kb, m/mb, g/gb are
// bytes and powers of 1024; kbit, mbit, gbit are 1024-based bits), plus
// kib, mib, gib for the IEC spelling.
var sizes = func() *unitSet {
	u := &unitSet{
		what: "size", example: "32kb",
		factor:   map[string]*big.Rat{"b": ratOf(1)},
		known:    "b (bytes); k or kb or kib, m or mb or mib, g or gb or gib (1024, 1024², 1024³ bytes); kbit, mbit, gbit (1024-based bits, as tc reads them)",
		order:    []string{"b", "kb", "mb", "gb", "k", "m", "g", "kib", "mib", "gib", "kbit", "mbit", "gbit"},
		max:      ratU(math.MaxUint32),
		maxText:  "4294967295b (just under 4gb)",
		bare:     "b is bytes; kb, mb and gb are 1024, 1024² and 1024³ bytes",
		bareUnit: "b",
		prefixes: map[string]string{"by": "b"},
	}
	for i, p := range []string{"k", "m", "g"} {
		f := powOf(1024, i+1)
		u.factor[p] = f
		u.factor[p+"b"] = f
		u.factor[p+"ib"] = f
		u.factor[p+"bit"] = new(big.Rat).Quo(f, ratOf(8))
		u.prefixes[p] = p + "b"
		u.prefixes[p+"bi"] = p + "bit"
	}
	return u
}()

// maxDelay bounds delay and jitter: more is surely a typo (an hour of
// delay), and the oldest netem attribute keeps delays in 32-bit ticks of
// 64 ns, about 274 s.
const maxDelay = 60 * time.Second

// times are tc's time units (tc(8), TIMES) and Go's ns and µs.
var times = func() *unitSet {
	u := &unitSet{
		what: "time", example: "40ms",
		factor:   map[string]*big.Rat{},
		known:    "ns, us (or µs, usec), ms (or msec), s (or sec)",
		order:    []string{"ms", "us", "s", "ns", "sec", "msec", "usec"},
		max:      ratOf(int64(maxDelay)),
		maxText:  "60s",
		bare:     "a bare number is microseconds to tc",
		bareUnit: "ms",
		prefixes: map[string]string{"m": "ms", "u": "us", "n": "ns", "se": "s", "mi": "", "h": "", "d": ""},
	}
	for unit, ns := range map[string]int64{
		"ns": 1, "nsec": 1, "nsecs": 1,
		"us": 1e3, "µs": 1e3, "μs": 1e3, "usec": 1e3, "usecs": 1e3,
		"ms": 1e6, "msec": 1e6, "msecs": 1e6,
		"s": 1e9, "sec": 1e9, "secs": 1e9,
	} {
		u.factor[unit] = ratOf(ns)
	}
	return u
}()

// parseQuantity reads a value with a unit of u into its base unit,
// rounded to the nearest whole base unit.
func parseQuantity(u *unitSet, v any) (uint64, error) {
	s, isString := v.(string)
	if !isString {
		f, _, isNum := numberOf(v)
		switch {
		case !isNum:
			return 0, fmt.Errorf("%s is %s: write a %s as a string such as %q", show(v), kindOf(v), u.what, u.example)
		case f == 0:
			return 0, nil
		case f < 0:
			return 0, fmt.Errorf("%s is negative", show(v))
		}
		return 0, fmt.Errorf("%s has no unit: write %q (%s)", show(v), show(v)+u.bareUnit, u.bare)
	}
	q, ok := scanQuantity(s)
	if !ok || strings.HasPrefix(strings.TrimSpace(s), "+") {
		if strings.TrimSpace(s) == "" {
			return 0, fmt.Errorf("%s is empty: write a %s such as %q, or 0 for none", show(v), u.what, u.example)
		}
		return 0, fmt.Errorf("%s is not a %s: write a number and a unit, such as %q", show(v), u.what, u.example)
	}
	if q.neg && q.num.Sign() != 0 {
		return 0, fmt.Errorf("%s is negative", show(v))
	}
	if q.unit == "" {
		if q.num.Sign() == 0 {
			return 0, nil
		}
		return 0, fmt.Errorf("%s has no unit: write %q (%s)", show(v), strings.TrimSpace(s)+u.bareUnit, u.bare)
	}
	f, ok := u.factor[strings.ToLower(q.unit)]
	if !ok {
		return 0, fmt.Errorf("unknown %s unit %q in %s%s; known: %s", u.what, q.unit, show(v), u.suggest(q.unit), u.known)
	}
	x := new(big.Rat).Mul(q.num, f)
	if x.Cmp(u.max) > 0 {
		return 0, fmt.Errorf("%s is too large: at most %s", show(v), u.maxText)
	}
	return roundRat(x), nil
}

// roundRat rounds a non-negative rational to the nearest integer, halves
// up.
func roundRat(x *big.Rat) uint64 {
	n := new(big.Int).Mul(x.Num(), big.NewInt(2))
	n.Add(n, x.Denom())
	n.Quo(n, new(big.Int).Mul(x.Denom(), big.NewInt(2)))
	if !n.IsUint64() {
		return math.MaxUint64
	}
	return n.Uint64()
}

// suggest names the unit most likely meant by an unknown one.
func (u *unitSet) suggest(unit string) string {
	l := strings.ToLower(unit)
	// The longest known prefix: "mbs" and "mbits" are mbit, "kbyte" kb.
	if strings.ContainsAny(l, "0123456789") {
		return "" // 1e6bit: no unit is meant
	}
	best := ""
	for p := range u.prefixes {
		if strings.HasPrefix(l, p) && len(p) > len(best) {
			best = p
		}
	}
	if best != "" {
		if u.prefixes[best] == "" {
			return "" // min, h: no unit of this kind is meant
		}
		return fmt.Sprintf(" (did you mean %q?)", u.prefixes[best])
	}
	return didYouMean(l, u.order)
}

// parseRate reads a rate into bits per second; "0" is no limit.
func parseRate(v any) (uint64, error) {
	r, err := parseQuantity(rates, v)
	if err == nil && r > 0 && r < 8 {
		return 0, fmt.Errorf("%s is below 8bit, the smallest rate the kernel keeps (it counts bytes per second)", show(v))
	}
	return r, err
}

// parseSize reads a size into bytes.
func parseSize(v any) (uint32, error) {
	n, err := parseQuantity(sizes, v)
	return uint32(n), err
}

// parseTime reads a duration, at most maxDelay.
func parseTime(v any) (time.Duration, error) {
	n, err := parseQuantity(times, v)
	return time.Duration(n), err
}

// parsePercent reads a percentage, 0 to 100. The % sign is required: a
// bare 0.5 is 0.5 % to tc and to Mininet, 50 % to anyone who writes
// fractions.
func parsePercent(v any) (float64, error) {
	s, isString := v.(string)
	if !isString {
		f, _, isNum := numberOf(v)
		switch {
		case !isNum:
			return 0, fmt.Errorf("%s is %s: write a percentage as a string such as \"1%%\"", show(v), kindOf(v))
		case f == 0:
			return 0, nil
		case f < 0:
			return 0, fmt.Errorf("%s is negative", show(v))
		}
		return 0, noPercentSign(show(v), show(v))
	}
	q, ok := scanQuantity(s)
	if !ok || strings.HasPrefix(strings.TrimSpace(s), "+") {
		if strings.TrimSpace(s) == "" {
			return 0, fmt.Errorf("%s is empty: write a percentage such as \"1%%\", or 0 for none", show(v))
		}
		return 0, fmt.Errorf("%s is not a percentage: write a number and a %% sign, such as \"0.5%%\"", show(v))
	}
	if q.neg && q.num.Sign() != 0 {
		return 0, fmt.Errorf("%s is negative", show(v))
	}
	switch q.unit {
	case "%":
	case "":
		if q.num.Sign() == 0 {
			return 0, nil
		}
		return 0, noPercentSign(show(v), strings.TrimSpace(s))
	default:
		return 0, fmt.Errorf("unknown unit %q in %s: a percentage ends with %%, such as \"1%%\"", q.unit, show(v))
	}
	if q.num.Cmp(ratOf(100)) > 0 {
		return 0, fmt.Errorf("%s is over 100%%", show(v))
	}
	f, _ := q.num.Float64()
	return f, nil
}

func noPercentSign(shown, num string) error {
	f, _ := strconv.ParseFloat(num, 64)
	if f < 1 {
		return fmt.Errorf("%s has no %% sign: write \"%s%%\" for %s %%, or \"%s%%\" if %s is a fraction", shown, num, num,
			strconv.FormatFloat(f*100, 'f', -1, 64), num)
	}
	return fmt.Errorf("%s has no %% sign: write \"%s%%\"", shown, num)
}

// parseCount reads a whole number of packets, from an integer or a
// string of digits; what names what is counted in messages.
func parseCount(v any, what string) (uint32, error) {
	if s, ok := v.(string); ok {
		q, ok := scanQuantity(s)
		if !ok || q.unit != "" || !q.int || strings.HasPrefix(strings.TrimSpace(s), "+") {
			return 0, fmt.Errorf("%s is not %s", show(v), what)
		}
		if q.neg && q.num.Sign() != 0 {
			return 0, fmt.Errorf("%s is negative", show(v))
		}
		if q.num.Cmp(ratU(math.MaxUint32)) > 0 {
			return 0, fmt.Errorf("%s is too large: at most %d", show(v), uint32(math.MaxUint32))
		}
		return uint32(q.num.Num().Uint64()), nil
	}
	f, isInt, isNum := numberOf(v)
	switch {
	case !isNum:
		return 0, fmt.Errorf("%s is %s, not %s", show(v), kindOf(v), what)
	case f < 0:
		return 0, fmt.Errorf("%s is negative", show(v))
	case !isInt && f != math.Trunc(f):
		return 0, fmt.Errorf("%s is not %s", show(v), what)
	case f > math.MaxUint32:
		return 0, fmt.Errorf("%s is too large: at most %d", show(v), uint32(math.MaxUint32))
	}
	return uint32(f), nil
}

// parseGap reads netem's reorder gap.
func parseGap(v any) (uint32, error) {
	return parseCount(v, "a whole number of packets, such as 5")
}

// parseLimit reads a queue limit: a number of packets (1000, "1000") or a
// size in bytes ("64kb").
func parseLimit(v any) (packets, bytes uint32, err error) {
	if s, ok := v.(string); ok {
		if q, ok := scanQuantity(s); ok && q.unit != "" {
			b, err := parseSize(v)
			if err != nil {
				return 0, 0, fmt.Errorf("%w; or a number of packets, such as 1000", err)
			}
			return 0, b, nil
		}
	}
	n, err := parseCount(v, `a number of packets, such as 1000, or a size, such as "64kb"`)
	return n, 0, err
}

// distributions are netem's, by the name tc gives them.
var distributions = map[string]Distribution{
	"uniform": Uniform, "normal": Normal, "pareto": Pareto, "paretonormal": ParetoNormal,
}

func distributionNames() []string {
	return []string{"uniform", "normal", "pareto", "paretonormal"}
}

func parseDistribution(v any) (Distribution, error) {
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%s is %s: write one of %s", show(v), kindOfAny(v), strings.Join(quoteAll(distributionNames()), ", "))
	}
	if d, ok := distributions[strings.ToLower(strings.TrimSpace(s))]; ok {
		return d, nil
	}
	return "", fmt.Errorf("unknown distribution %s%s; netem has %s", show(v), didYouMean(strings.ToLower(s), distributionNames()),
		strings.Join(quoteAll(distributionNames()), ", "))
}

// kindOfAny is kindOf, also for numbers.
func kindOfAny(v any) string {
	if _, _, ok := numberOf(v); ok {
		return "a number"
	}
	return kindOf(v)
}

func quoteAll(names []string) []string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return q
}

// didYouMean is ` (did you mean "x"?)` naming the known names closest
// to name, or "".
func didYouMean(name string, known []string) string {
	c := closest(name, known)
	if len(c) == 0 {
		return ""
	}
	return " (did you mean " + strings.Join(quoteAll(c), " or ") + "?)"
}

// closest returns the known names that name most likely meant: one that
// differs only in case; else those that start with it (at most three);
// else the nearest in spelling, within a third of its length in edits.
func closest(name string, known []string) []string {
	l := strings.ToLower(name)
	for _, k := range known {
		if strings.ToLower(k) == l {
			return []string{k}
		}
	}
	var starts []string
	for _, k := range known {
		if len(l) >= 2 && strings.HasPrefix(strings.ToLower(k), l) {
			starts = append(starts, k)
		}
	}
	if len(starts) > 0 && len(starts) <= 3 {
		return starts
	}
	best, bestD := "", math.MaxInt
	for _, k := range known {
		if d := text.Distance(l, strings.ToLower(k)); d < bestD {
			best, bestD = k, d
		}
	}
	if best != "" && bestD <= len([]rune(l))/2 {
		return []string{best}
	}
	return nil
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	paramKeys := make([]string, 0, len(m))
	for k := range m {
		paramKeys = append(paramKeys, k)
	}
	sort.Strings(paramKeys)
	return paramKeys
}
