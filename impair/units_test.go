package impair

import (
	"math"
	"testing"
	"time"
)

// TestParseUnits reads each kind of value, good and bad; every message is
// checked whole.
func TestParseUnits(t *testing.T) {
	type result struct {
		v   uint64
		err string
	}
	rate := func(v any) result { r, err := parseRate(v); return result{r, errText(err)} }
	size := func(v any) result { r, err := parseSize(v); return result{uint64(r), errText(err)} }
	dur := func(v any) result { r, err := parseTime(v); return result{uint64(r), errText(err)} }
	gap := func(v any) result { r, err := parseGap(v); return result{uint64(r), errText(err)} }
	limit := func(v any) result {
		p, b, err := parseLimit(v)
		if b > 0 {
			return result{uint64(b) << 32, errText(err)} // bytes in the high half
		}
		return result{uint64(p), errText(err)}
	}
	noUnitRate := " (a bare number is bits per second to tc but megabits per second to Mininet's bw)"
	rateUnits := "; known: bit, kbit, mbit, gbit, tbit (bits per second); bps, kbps, mbps, gbps, tbps (bytes per second, as tc reads them); " +
		"kibit, mibit, gibit, tibit, kibps, mibps, gibps, tibps (powers of 1024)"
	timeUnits := "; known: ns, us (or µs, usec), ms (or msec), s (or sec)"
	sizeUnits := "; known: b (bytes); k or kb or kib, m or mb or mib, g or gb or gib (1024, 1024², 1024³ bytes); kbit, mbit, gbit (1024-based bits, as tc reads them)"
	for _, tc := range []struct {
		name string
		f    func(any) result
		in   any
		want result
	}{
		{"rate", rate, "10mbit", result{10_000_000, ""}},
		{"rate", rate, "10Mbit", result{10_000_000, ""}},
		{"rate", rate, "10 MBIT", result{10_000_000, ""}},
		{"rate", rate, "1.5gbit", result{1_500_000_000, ""}},
		{"rate", rate, "1.6mbit", result{1_600_000, ""}},
		{"rate", rate, "750kbit", result{750_000, ""}},
		{"rate", rate, "100mbit/s", result{100_000_000, ""}},
		{"rate", rate, "8bit", result{8, ""}},
		{"rate", rate, "1tbit", result{1_000_000_000_000, ""}},
		{"rate", rate, "1kibit", result{1024, ""}},
		{"rate", rate, "1mibit", result{1 << 20, ""}},
		{"rate", rate, "1bps", result{8, ""}},
		{"rate", rate, "10kbps", result{80_000, ""}},
		{"rate", rate, "10mbps", result{80_000_000, ""}},
		{"rate", rate, "1gbps", result{8_000_000_000, ""}},
		{"rate", rate, "1kibps", result{8192, ""}},
		{"rate", rate, ".5mbit", result{500_000, ""}},
		{"rate", rate, "0", result{0, ""}},
		{"rate", rate, "0mbit", result{0, ""}},
		{"rate", rate, "-0", result{0, ""}},
		{"rate", rate, 0, result{0, ""}},
		{"rate", rate, 0.0, result{0, ""}},
		{"rate", rate, "1.0000001bit", result{0, `"1.0000001bit" is below 8bit, the smallest rate the kernel keeps (it counts bytes per second)`}},
		{"rate", rate, 10, result{0, `10 has no unit: write "10mbit"` + noUnitRate}},
		{"rate", rate, 1.5, result{0, `1.5 has no unit: write "1.5mbit"` + noUnitRate}},
		{"rate", rate, "10", result{0, `"10" has no unit: write "10mbit"` + noUnitRate}},
		{"rate", rate, -10, result{0, `-10 is negative`}},
		{"rate", rate, "-10mbit", result{0, `"-10mbit" is negative`}},
		{"rate", rate, "10m", result{0, `unknown rate unit "m" in "10m" (did you mean "mbit"?)` + rateUnits}},
		{"rate", rate, "10mb", result{0, `unknown rate unit "mb" in "10mb" (did you mean "mbit"?)` + rateUnits}},
		{"rate", rate, "10Mbits", result{0, `unknown rate unit "Mbits" in "10Mbits" (did you mean "mbit"?)` + rateUnits}},
		{"rate", rate, "10mbyte", result{0, `unknown rate unit "mbyte" in "10mbyte" (did you mean "mbps"?)` + rateUnits}},
		{"rate", rate, "10bits", result{0, `unknown rate unit "bits" in "10bits" (did you mean "bit"?)` + rateUnits}},
		{"rate", rate, "10xyz", result{0, `unknown rate unit "xyz" in "10xyz"` + rateUnits}},
		{"rate", rate, "1e6bit", result{0, `unknown rate unit "e6bit" in "1e6bit"` + rateUnits}},
		{"rate", rate, "fast", result{0, `"fast" is not a rate: write a number and a unit, such as "10mbit"`}},
		{"rate", rate, "+1mbit", result{0, `"+1mbit" is not a rate: write a number and a unit, such as "10mbit"`}},
		{"rate", rate, "", result{0, `"" is empty: write a rate such as "10mbit", or 0 for none`}},
		{"rate", rate, "  ", result{0, `"  " is empty: write a rate such as "10mbit", or 0 for none`}},
		{"rate", rate, true, result{0, `true is a boolean: write a rate as a string such as "10mbit"`}},
		{"rate", rate, []any{1}, result{0, `[1] is a list: write a rate as a string such as "10mbit"`}},
		{"rate", rate, map[string]any{}, result{0, `map[] is a table: write a rate as a string such as "10mbit"`}},
		{"rate", rate, time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC), result{0, `2024-01-02 00:00:00 +0000 UTC is a date or time: write a rate as a string such as "10mbit"`}},
		{"rate", rate, "18446744073709551615bit", result{math.MaxUint64, ""}},
		{"rate", rate, "18446744073709551616bit", result{0, `"18446744073709551616bit" is too large: at most 18446744073709551615bit`}},
		{"rate", rate, "99999999tbit", result{0, `"99999999tbit" is too large: at most 18446744073709551615bit`}},

		{"size", size, "32kb", result{32 << 10, ""}},
		{"size", size, "32k", result{32 << 10, ""}},
		{"size", size, "32KiB", result{32 << 10, ""}},
		{"size", size, "1500b", result{1500, ""}},
		{"size", size, "1.5kb", result{1536, ""}},
		{"size", size, "2mb", result{2 << 20, ""}},
		{"size", size, "1g", result{1 << 30, ""}},
		{"size", size, "8kbit", result{1024, ""}},
		{"size", size, "32", result{0, `"32" has no unit: write "32b" (b is bytes; kb, mb and gb are 1024, 1024² and 1024³ bytes)`}},
		{"size", size, 1500, result{0, `1500 has no unit: write "1500b" (b is bytes; kb, mb and gb are 1024, 1024² and 1024³ bytes)`}},
		{"size", size, "4gb", result{0, `"4gb" is too large: at most 4294967295b (just under 4gb)`}},
		{"size", size, "32kbyte", result{0, `unknown size unit "kbyte" in "32kbyte" (did you mean "kb"?)` + sizeUnits}},
		{"size", size, "32kbits", result{0, `unknown size unit "kbits" in "32kbits" (did you mean "kbit"?)` + sizeUnits}},
		{"size", size, "32 bytes", result{0, `unknown size unit "bytes" in "32 bytes" (did you mean "b"?)` + sizeUnits}},

		{"time", dur, "40ms", result{uint64(40 * time.Millisecond), ""}},
		{"time", dur, "250us", result{uint64(250 * time.Microsecond), ""}},
		{"time", dur, "250µs", result{uint64(250 * time.Microsecond), ""}},
		{"time", dur, "1.5s", result{uint64(1500 * time.Millisecond), ""}},
		{"time", dur, "1.5 sec", result{uint64(1500 * time.Millisecond), ""}},
		{"time", dur, "20msecs", result{uint64(20 * time.Millisecond), ""}},
		{"time", dur, "100ns", result{100, ""}},
		{"time", dur, "0.0000015ms", result{2, ""}}, // 1.5 ns, rounded half up
		{"time", dur, "60s", result{uint64(60 * time.Second), ""}},
		{"time", dur, "60.000000001s", result{0, `"60.000000001s" is too large: at most 60s`}},
		{"time", dur, "40", result{0, `"40" has no unit: write "40ms" (a bare number is microseconds to tc)`}},
		{"time", dur, 40, result{0, `40 has no unit: write "40ms" (a bare number is microseconds to tc)`}},
		{"time", dur, "1m", result{0, `unknown time unit "m" in "1m" (did you mean "ms"?)` + timeUnits}},
		{"time", dur, "1min", result{0, `unknown time unit "min" in "1min"` + timeUnits}},
		{"time", dur, "2 seconds", result{0, `unknown time unit "seconds" in "2 seconds" (did you mean "s"?)` + timeUnits}},
		{"time", dur, "1h", result{0, `unknown time unit "h" in "1h"` + timeUnits}},
		{"time", dur, "-5ms", result{0, `"-5ms" is negative`}},

		{"gap", gap, 5, result{5, ""}},
		{"gap", gap, "5", result{5, ""}},
		{"gap", gap, 5.0, result{5, ""}},
		{"gap", gap, int64(4294967295), result{4294967295, ""}},
		{"gap", gap, int64(4294967296), result{0, `4294967296 is too large: at most 4294967295`}},
		{"gap", gap, "4294967296", result{0, `"4294967296" is too large: at most 4294967295`}},
		{"gap", gap, "5.5", result{0, `"5.5" is not a whole number of packets, such as 5`}},
		{"gap", gap, "5p", result{0, `"5p" is not a whole number of packets, such as 5`}},
		{"gap", gap, -1, result{0, `-1 is negative`}},
		{"gap", gap, "-1", result{0, `"-1" is negative`}},
		{"gap", gap, false, result{0, `false is a boolean, not a whole number of packets, such as 5`}},

		{"limit", limit, 1000, result{1000, ""}},
		{"limit", limit, "1000", result{1000, ""}},
		{"limit", limit, "64kb", result{64 << 10 << 32, ""}},
		{"limit", limit, "1500b", result{1500 << 32, ""}},
		{"limit", limit, "64kbyte", result{0, `unknown size unit "kbyte" in "64kbyte" (did you mean "kb"?)` + sizeUnits + "; or a number of packets, such as 1000"}},
		{"limit", limit, 10.5, result{0, `10.5 is not a number of packets, such as 1000, or a size, such as "64kb"`}},
	} {
		if got := tc.f(tc.in); got != tc.want {
			t.Errorf("%s %s:\n got  %d %q\n want %d %q", tc.name, show(tc.in), got.v, got.err, tc.want.v, tc.want.err)
		}
	}
}

func TestParsePercent(t *testing.T) {
	for _, tc := range []struct {
		in   any
		want float64
		err  string
	}{
		{"1%", 1, ""},
		{"0.5%", 0.5, ""},
		{"0.5 %", 0.5, ""},
		{"100%", 100, ""},
		{"0.001%", 0.001, ""},
		{"0", 0, ""},
		{0, 0, ""},
		{"0%", 0, ""},
		{"100.1%", 0, `"100.1%" is over 100%`},
		{"-1%", 0, `"-1%" is negative`},
		{-1, 0, `-1 is negative`},
		{"1", 0, `"1" has no % sign: write "1%"`},
		{1, 0, `1 has no % sign: write "1%"`},
		{"0.5", 0, `"0.5" has no % sign: write "0.5%" for 0.5 %, or "50%" if 0.5 is a fraction`},
		{0.01, 0, `0.01 has no % sign: write "0.01%" for 0.01 %, or "1%" if 0.01 is a fraction`},
		{"1 percent", 0, `unknown unit "percent" in "1 percent": a percentage ends with %, such as "1%"`},
		{"%", 0, `"%" is not a percentage: write a number and a % sign, such as "0.5%"`},
		{"", 0, `"" is empty: write a percentage such as "1%", or 0 for none`},
		{true, 0, `true is a boolean: write a percentage as a string such as "1%"`},
	} {
		got, err := parsePercent(tc.in)
		if got != tc.want || errText(err) != tc.err {
			t.Errorf("parsePercent(%s) = %v, %q; want %v, %q", show(tc.in), got, errText(err), tc.want, tc.err)
		}
	}
}

func TestParseDistribution(t *testing.T) {
	for _, tc := range []struct {
		in   any
		want Distribution
		err  string
	}{
		{"normal", Normal, ""},
		{"Normal", Normal, ""},
		{"uniform", Uniform, ""},
		{"pareto", Pareto, ""},
		{"paretonormal", ParetoNormal, ""},
		{"paretonrmal", "", `unknown distribution "paretonrmal" (did you mean "paretonormal"?); netem has "uniform", "normal", "pareto", "paretonormal"`},
		{"gaussian", "", `unknown distribution "gaussian"; netem has "uniform", "normal", "pareto", "paretonormal"`},
		{1, "", `1 is a number: write one of "uniform", "normal", "pareto", "paretonormal"`},
	} {
		got, err := parseDistribution(tc.in)
		if got != tc.want || errText(err) != tc.err {
			t.Errorf("parseDistribution(%s) = %q, %q; want %q, %q", show(tc.in), got, errText(err), tc.want, tc.err)
		}
	}
}

// TestFormatUnits: each figure written exactly, in tc's units.
func TestFormatUnits(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{FormatRate(10_000_000), "10Mbit"},
		{FormatRate(1_600_000), "1.6Mbit"},
		{FormatRate(750_000), "750Kbit"},
		{FormatRate(1_500_000_000), "1.5Gbit"},
		{FormatRate(1_000_000_000_000), "1Tbit"},
		{FormatRate(999), "999bit"},
		{FormatRate(1_000_001), "1.000001Mbit"},
		{FormatRate(math.MaxUint64), "18446744.073709551615Tbit"},
		{FormatSize(32 << 10), "32Kb"},
		{FormatSize(1500), "1500b"},
		{FormatSize(1536), "1536b"},
		{FormatSize(2 << 20), "2Mb"},
		{FormatSize(1 << 30), "1Gb"},
		{FormatSize(math.MaxUint32), "4294967295b"},
		{FormatTime(40 * time.Millisecond), "40ms"},
		{FormatTime(1500 * time.Millisecond), "1.5s"},
		{FormatTime(250 * time.Microsecond), "250us"},
		{FormatTime(1250 * time.Microsecond), "1.25ms"},
		{FormatTime(100), "100ns"},
		{FormatTime(0), "0ms"},
		{FormatPercent(1), "1%"},
		{FormatPercent(0.5), "0.5%"},
		{FormatPercent(100.0 / 3), "33.333333333333336%"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

// TestFormatRoundTrip: what a Format function writes, the parser reads
// back to the same value.
func TestFormatRoundTrip(t *testing.T) {
	for _, r := range []uint64{8, 999, 1000, 1001, 1_600_000, 1_234_567_891, 87_000_000, math.MaxUint64} {
		if got, err := parseRate(FormatRate(r)); got != r || err != nil {
			t.Errorf("rate %d: %s read as %d, %v", r, FormatRate(r), got, err)
		}
	}
	for _, b := range []uint32{1, 1023, 1024, 1500, 1 << 20, math.MaxUint32} {
		if got, err := parseSize(FormatSize(b)); got != b || err != nil {
			t.Errorf("size %d: %s read as %d, %v", b, FormatSize(b), got, err)
		}
	}
	for _, d := range []time.Duration{1, 999, 1000, 1_234_567, 60 * time.Second} {
		if got, err := parseTime(FormatTime(d)); got != d || err != nil {
			t.Errorf("time %d: %s read as %d, %v", d, FormatTime(d), got, err)
		}
	}
	for _, p := range []float64{0.1, 0.5, 1, 100.0 / 3, 99.99999, 100, 1e-7} {
		if got, err := parsePercent(FormatPercent(p)); got != p || err != nil {
			t.Errorf("percent %v: %s read as %v, %v", p, FormatPercent(p), got, err)
		}
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestSuggestions: the closest name is offered, never a far one.
func TestSuggestions(t *testing.T) {
	for _, tc := range []struct {
		name  string
		known []string
		want  string
	}{
		{"3G", ProfileNames(), ` (did you mean "3g"?)`},
		{"sat-geo", ProfileNames(), ""},
		{"satelite-geo", ProfileNames(), ` (did you mean "satellite-geo"?)`},
		{"wifi", ProfileNames(), ` (did you mean "wifi-lossy"?)`},
		{"satellite", ProfileNames(), ` (did you mean "satellite-geo" or "satellite-leo"?)`},
		{"adsl", ProfileNames(), ` (did you mean "dsl"?)`},
		{"moon", ProfileNames(), ""},
		{"dealy", Keys(), ` (did you mean "delay"?)`},
		{"lossmodel", Keys(), ` (did you mean "loss_model.p"?)`},
		{"los", Keys(), ` (did you mean "loss"?)`}, // more than three start with it
	} {
		if got := didYouMean(tc.name, tc.known); got != tc.want {
			t.Errorf("didYouMean(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
}
