package impair

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestParse reads run-time words into one direction; every problem of a
// bad list is checked whole.
func TestParse(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		words string
		want  Direction
		err   string
	}{
		{"", Direction{}, ""},
		{"delay=50ms loss=1%", Direction{Delay: 50 * ms, Loss: 1}, ""},
		{"rate=10mbit burst=32kb limit=64kb", Direction{Rate: 10e6, Burst: 32 << 10, LimitBytes: 64 << 10}, ""},
		{"rate=10mbit limit=100", Direction{Rate: 10e6, Limit: 100}, ""},
		{"delay=40ms jitter=5ms distribution=normal delay_correlation=25%",
			Direction{Delay: 40 * ms, Jitter: 5 * ms, Distribution: Normal, DelayCorrelation: 25}, ""},
		{"loss=1% loss_correlation=25% duplicate=1% duplicate_correlation=5% corrupt=0.1% corrupt_correlation=2%",
			Direction{Loss: 1, LossCorrelation: 25, Duplicate: 1, DuplicateCorrelation: 5, Corrupt: 0.1, CorruptCorrelation: 2}, ""},
		{"delay=10ms reorder=25% reorder_correlation=50% gap=5",
			Direction{Delay: 10 * ms, Reorder: 25, ReorderCorrelation: 50, Gap: 5}, ""},
		{"loss_model.p=1% loss_model.r=25%", Direction{LossModel: &GilbertElliott{P: 1, R: 25, H: 0, K: 0}}, ""},
		{"loss_model.model=gilbert-elliott loss_model.p=2% loss_model.r=20% loss_model.bad_loss=60% loss_model.good_loss=0.5%",
			Direction{LossModel: &GilbertElliott{P: 2, R: 20, H: 40, K: 0.5}}, ""},
		{"delay=0 loss=0", Direction{}, ""},

		{"delay=50 loss=1", Direction{},
			"delay: \"50\" has no unit: write \"50ms\" (a bare number is microseconds to tc)\n" +
				"loss: \"1\" has no % sign: write \"1%\""},
		{"jitter=5ms gap=2", Direction{},
			"jitter: 5ms without a delay: netem varies the delay by up to the jitter\n" +
				"gap: 2 without reorder: gap says how many packets are delayed between two sent at once by reorder"},
		{"delay=1ms delay=2ms", Direction{}, "delay: given twice"},
		{"delay= loss", Direction{},
			"delay: no value: write delay=VALUE, or delay=0 for none\n" +
				`"loss" is not key=value, such as delay=40ms (keys: ` + strings.Join(Keys(), ", ") + ")"},
		{"=5ms", Direction{}, `"=5ms" is not key=value, such as delay=40ms (keys: ` + strings.Join(Keys(), ", ") + ")"},
		{"dealy=5ms", Direction{}, `dealy: unknown key (did you mean "delay"?); keys: ` + strings.Join(Keys(), ", ")},
		{"loss_model=1%", Direction{}, "loss_model: write loss_model.p=1% loss_model.r=25% (and loss_model.bad_loss, loss_model.good_loss)"},
		{"loss_model.h=1%", Direction{}, "loss_model.h: unknown key: write loss_model.bad_loss, the loss in the bad state (netem's 1-h), such as 100%"},
		{"loss_model.k=1%", Direction{}, "loss_model.k: unknown key: write loss_model.good_loss, the loss in the good state (netem's 1-k), such as 0%"},
		{"loss_model.pp=1%", Direction{}, `loss_model.pp: unknown key (did you mean "loss_model.p"?); loss_model takes p, r, bad_loss, good_loss and model`},
		{"loss_model.p=1%", Direction{}, `loss_model: r is missing: write r, the chance per packet to come back to the good state, such as r = "25%"`},
		{"loss=1% loss_model.p=1% loss_model.r=10%", Direction{}, "loss_model: set together with loss 1%: netem takes one loss model; keep one"},
		{"profile=dsl user=home from.home.rate=1mbit", Direction{},
			"profile: \"dsl\" sets both directions of a link; here one direction is set\n" +
				"user: \"home\" goes with a profile, which sets both directions of a link; here one direction is set\n" +
				"from.home: names one direction of a link; here the direction is given already"},
		{"from.home=1", Direction{}, "from.home: write from.NODE.KEY=VALUE, such as from.home.rate=1mbit"},
	} {
		t.Run(tc.words, func(t *testing.T) {
			got, err := Parse(strings.Fields(tc.words))
			if errText(err) != tc.err {
				t.Errorf("error:\n%s\nwant:\n%s", errText(err), tc.err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v, want %#v", got, tc.want)
			}
			if err != nil {
				if _, ok := err.(Problems); !ok {
					t.Errorf("error is %T, want Problems", err)
				}
				return
			}
			if back, err := Parse(got.Words()); err != nil || !sameDirection(back, got) {
				t.Errorf("Parse(Words()) = %v, %v", back, err)
			}
		})
	}
}

// TestParseSpec reads the words of a whole link and resolves them as a
// file would be.
func TestParseSpec(t *testing.T) {
	s, err := ParseSpec(strings.Fields("profile=dsl user=isp loss=1% from.home.rate=2mbit from.home.loss_model.p=1% from.home.loss_model.r=20%"))
	if err != nil {
		t.Fatal(err)
	}
	l, ps := s.Resolve("home", "isp")
	if ps != nil {
		t.Fatal(ps)
	}
	want := "home -> isp: rate 2Mbit delay 25ms loss gemodel p 1% r 20% 1-h 100% 1-k 0%; isp -> home: rate 384Kbit delay 25ms loss 1%"
	if got := l.Format("home", "isp"); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	// Words that are no key=value are refused at once; values wait for
	// Resolve, which names them by key.
	if _, err := ParseSpec([]string{"rate"}); err == nil {
		t.Error(`ParseSpec("rate") gave no error`)
	}
	s, err = ParseSpec([]string{"from.carol.rate=1x"})
	if err != nil {
		t.Fatal(err)
	}
	_, ps = s.Resolve("home", "isp")
	wantPs := "from.carol: \"carol\" is not an endpoint of this link: from names the sending end, \"home\" or \"isp\"\n" +
		"from.carol.rate: unknown rate unit \"x\" in \"1x\"; known: " + rates.known
	if errText(ps.err()) != wantPs {
		t.Errorf("got:\n%v\nwant:\n%s", ps, wantPs)
	}
}

// TestValidate checks directions built in Go by the file's rules.
func TestValidate(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		d   Direction
		err string
	}{
		{Direction{}, ""},
		{Direction{Rate: 10e6, Delay: 40 * ms, Jitter: 5 * ms, Distribution: Pareto, Loss: 1}, ""},
		{Direction{Loss: 101}, "loss: 101 is not a percentage from 0 to 100"},
		{Direction{Duplicate: -1, Reorder: 5, Delay: ms}, "duplicate: -1 is not a percentage from 0 to 100"},
		{Direction{Delay: -ms}, "delay: -1ms is not from 0 to 60s"},
		{Direction{Delay: time.Minute + 1}, "delay: 1m0.000000001s is not from 0 to 60s"},
		{Direction{Rate: 7}, "rate: 7bit is below 8bit, the smallest rate the kernel keeps"},
		{Direction{Delay: ms, Jitter: ms, Distribution: "gauss"}, `distribution: unknown distribution "gauss"; netem has "uniform", "normal", "pareto", "paretonormal"`},
		{Direction{LossModel: &GilbertElliott{P: 1, R: 200, H: -1}},
			"loss_model.r: 200 is not a percentage from 0 to 100\nloss_model.bad_loss: 101 is not a percentage from 0 to 100"},
		{Direction{Burst: 1500}, "burst: 1500b without a rate: a burst is what may pass at line rate above the rate, and rate 0 is no limit"},
		{Direction{LimitBytes: 1 << 16}, "limit: 64Kb without a rate or a delay: a queue builds only behind a rate limit or a delay"},
		{Direction{Reorder: 1}, "reorder: 1% without a delay: netem reorders by sending some packets at once while the others wait out the delay"},
		{Direction{Loss: 1, LossModel: &GilbertElliott{P: 1, R: 1}}, "loss_model: set together with loss 1%: netem takes one loss model; keep one"},
		{Direction{LossCorrelation: 5, LossModel: &GilbertElliott{P: 1, R: 1}},
			"loss_correlation: 5% applies to loss, not to loss_model (the Gilbert-Elliott model makes its own bursts)"},
	} {
		if got := errText(tc.d.Validate()); got != tc.err {
			t.Errorf("%#v:\n got  %s\n want %s", tc.d, got, tc.err)
		}
	}
}

// TestString writes directions in tc's words.
func TestString(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		d    Direction
		want string
	}{
		{Direction{}, ""},
		{Direction{Rate: 10e6, Delay: 40 * ms, Jitter: 5 * ms, Distribution: Normal, Loss: 1},
			"rate 10Mbit delay 40ms 5ms distribution normal loss 1%"},
		{Direction{Rate: 1e6, Burst: 32 << 10, Limit: 50}, "rate 1Mbit burst 32Kb limit 50"},
		{Direction{Rate: 1e6, LimitBytes: 1500}, "rate 1Mbit limit 1500b"},
		{Direction{Delay: 10 * ms, Jitter: ms, DelayCorrelation: 25}, "delay 10ms 1ms 25%"},
		{Direction{Loss: 0.5, LossCorrelation: 25}, "loss 0.5% 25%"},
		{Direction{LossModel: &GilbertElliott{P: 1, R: 25, H: 40, K: 0.5}}, "loss gemodel p 1% r 25% 1-h 60% 1-k 0.5%"},
		{Direction{Delay: ms, Duplicate: 1, DuplicateCorrelation: 2, Corrupt: 0.1, Reorder: 25, ReorderCorrelation: 50, Gap: 5},
			"delay 1ms duplicate 1% 2% corrupt 0.1% reorder 25% 50% gap 5"},
	} {
		if got := tc.d.String(); got != tc.want {
			t.Errorf("got  %q\nwant %q", got, tc.want)
		}
	}
	l := Link{AB: Direction{Delay: 25 * ms}}
	if got, want := l.Format("a", "b"), "a -> b: delay 25ms; b -> a: none"; got != want {
		t.Errorf("Format: %q, want %q", got, want)
	}
}

func TestMeanLoss(t *testing.T) {
	for _, tc := range []struct {
		g    GilbertElliott
		want float64
	}{
		{GilbertElliott{P: 1, R: 99, H: 0, K: 0}, 1},      // bad 1 % of the time, losing all
		{GilbertElliott{P: 10, R: 30, H: 50, K: 0}, 12.5}, // bad 25 %, losing half
		{GilbertElliott{P: 0, R: 0, K: 2}, 2},             // never leaves the good state
		{GilbertElliott{P: 5, R: 0, H: 20}, 80},           // stays bad
	} {
		if got := tc.g.MeanLoss(); got < tc.want-1e-9 || got > tc.want+1e-9 {
			t.Errorf("%+v: MeanLoss %v, want %v", tc.g, got, tc.want)
		}
	}
}
