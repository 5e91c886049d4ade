//go:build !netem

// The tests of the kernel side that need no netem: they run natively on
// any kernel with TBF, HTB, clsact and cls_bpf (and use eBPF for loss even
// where netem exists). Built with the netem tag (make test-netem, which
// may run in an emulated VM), only netem_linux_test.go's tests run.

package impair

import (
	"bufio"
	"compress/gzip"
	"errors"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// kernelConfig reads /proc/config.gz into a map of CONFIG_X -> "y", "m"
// or "n"; nil where the kernel does not offer it.
func kernelConfig(t *testing.T) map[string]string {
	f, err := os.Open("/proc/config.gz")
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	cfg := map[string]string{}
	s := bufio.NewScanner(z)
	for s.Scan() {
		line := s.Text()
		if k, v, ok := strings.Cut(line, "="); ok && strings.HasPrefix(k, "CONFIG_") {
			cfg[k] = v
		} else if strings.HasPrefix(line, "# CONFIG_") && strings.HasSuffix(line, " is not set") {
			cfg[strings.TrimSuffix(strings.TrimPrefix(line, "# "), " is not set")] = "n"
		}
	}
	return cfg
}

// TestDetectKernel checks DetectKernel against two independent witnesses:
// the kernel's own configuration where it publishes one (on this build
// machine: no netem, everything else built in), and a netem qdisc added
// through vishvananda/netlink's own types on a veth.
func TestDetectKernel(t *testing.T) {
	t.Parallel()
	k := detect(t)
	t.Logf("DetectKernel: %+v", k)
	if cfg := kernelConfig(t); cfg != nil {
		for _, c := range []struct {
			name   string
			got    bool
			config string
		}{
			{"netem", k.Netem, "CONFIG_NET_SCH_NETEM"},
			{"tbf", k.TBF, "CONFIG_NET_SCH_TBF"},
			{"htb", k.HTB, "CONFIG_NET_SCH_HTB"},
			{"clsact", k.Clsact, "CONFIG_NET_SCH_INGRESS"},
			{"cls_bpf", k.BPF, "CONFIG_NET_CLS_BPF"},
		} {
			want := cfg[c.config] == "y" || cfg[c.config] == "m" && cfg["CONFIG_MODULES"] == "y"
			if c.name == "cls_bpf" {
				want = want && cfg["CONFIG_BPF_SYSCALL"] == "y"
			}
			if c.got != want {
				t.Errorf("DetectKernel says %s %v, but %s=%q", c.name, c.got, c.config, cfg[c.config])
			}
		}
	}
	l := newVethLab(t)
	q := netlink.NewNetem(netlink.QdiscAttrs{LinkIndex: l.ia, Handle: netlink.MakeHandle(1, 0), Parent: netlink.HANDLE_ROOT}, netlink.NetemQdiscAttrs{Latency: 1000})
	err := l.ha.QdiscAdd(q)
	if witness := err == nil; witness != k.Netem {
		t.Errorf("DetectKernel says netem %v, but adding one with vishvananda/netlink gave %v", k.Netem, err)
	}
	if err == nil {
		l.ha.QdiscDel(q)
	}
}

// TestCheck: Check's errors name the field, the missing kernel part and
// what to install, and only what is missing is refused.
func TestCheck(t *testing.T) {
	t.Parallel()
	all := Kernel{Netem: true, TBF: true, HTB: true, Clsact: true, BPF: true, Release: "6.1.0-42-amd64"}
	bare := Kernel{Release: "6.1.0-42-amd64"}
	without := func(k Kernel, f func(*Kernel)) Kernel { f(&k); return k }
	for _, c := range []struct {
		name string
		k    Kernel
		d    Direction
		want string // "" for no error
	}{
		{"delay without netem", noNetem(all), Direction{Delay: 50 * time.Millisecond},
			"link delay needs the kernel's netem qdisc (sch_netem), which this kernel lacks: install your distribution's extra kernel modules (Debian/Ubuntu: linux-modules-extra-6.1.0-42-amd64) or use a kernel with CONFIG_NET_SCH_NETEM"},
		{"delay and jitter without netem", noNetem(all), Direction{Delay: 50 * time.Millisecond, Jitter: time.Millisecond},
			"link delay and jitter need the kernel's netem qdisc (sch_netem), which this kernel lacks: install your distribution's extra kernel modules (Debian/Ubuntu: linux-modules-extra-6.1.0-42-amd64) or use a kernel with CONFIG_NET_SCH_NETEM"},
		{"duplicate, corrupt, reorder without netem", noNetem(all), Direction{Duplicate: 1, Corrupt: 1, Reorder: 1, Loss: 1},
			"link duplicate, corrupt and reorder need the kernel's netem qdisc (sch_netem), which this kernel lacks: install your distribution's extra kernel modules (Debian/Ubuntu: linux-modules-extra-6.1.0-42-amd64) or use a kernel with CONFIG_NET_SCH_NETEM"},
		{"release unknown", Kernel{}, Direction{Delay: time.Millisecond},
			"link delay needs the kernel's netem qdisc (sch_netem), which this kernel lacks: install your distribution's extra kernel modules (Debian/Ubuntu: linux-modules-extra-$(uname -r)) or use a kernel with CONFIG_NET_SCH_NETEM"},
		{"loss without netem: eBPF", noNetem(all), Direction{Loss: 1, LossCorrelation: 25}, ""},
		{"burst loss without netem: eBPF", noNetem(all), Direction{LossModel: &GilbertElliott{P: 1, R: 25}}, ""},
		{"loss with neither netem nor cls_bpf", without(all, func(k *Kernel) { k.Netem, k.BPF = false, false }), Direction{Loss: 1},
			"link loss needs the kernel's netem qdisc (sch_netem), which this kernel lacks: install your distribution's extra kernel modules (Debian/Ubuntu: linux-modules-extra-6.1.0-42-amd64) or use a kernel with CONFIG_NET_SCH_NETEM (nslab's loss without netem, an eBPF classifier, needs the clsact qdisc and cls_bpf (CONFIG_NET_SCH_INGRESS, CONFIG_NET_CLS_BPF, CONFIG_BPF_SYSCALL), and this kernel or user lacks them too)"},
		{"rate with neither tbf nor htb", bare, Direction{Rate: 10e6},
			"link rate needs the kernel's TBF or HTB qdisc (sch_tbf, sch_htb), which this kernel lacks: install your distribution's extra kernel modules (Debian/Ubuntu: linux-modules-extra-6.1.0-42-amd64) or use a kernel with CONFIG_NET_SCH_TBF"},
		{"rate with htb only", without(bare, func(k *Kernel) { k.HTB = true }), Direction{Rate: 10e6}, ""},
		{"everything with everything", all, Direction{Rate: 1e6, Delay: 1, Jitter: 1, Loss: 1, Duplicate: 1, Corrupt: 1, Reorder: 1}, ""},
		{"a plain link on a bare kernel", bare, Direction{}, ""},
	} {
		err := c.k.Check(c.d)
		got := ""
		if err != nil {
			got = err.Error()
			if !errors.Is(err, errors.ErrUnsupported) {
				t.Errorf("%s: errors.Is(err, errors.ErrUnsupported) is false", c.name)
			}
		}
		if got != c.want {
			t.Errorf("%s:\n got  %q\n want %q", c.name, got, c.want)
		}
	}
}

// TestApplyRefusedBuildsNothing: Apply of what the kernel cannot do (a
// delay without netem) returns Check's error, and of what is invalid
// (a loss over 100 %) Validate's, and either leaves the link as it was.
func TestApplyRefusedBuildsNothing(t *testing.T) {
	t.Parallel()
	k := noNetem(detect(t))
	l := newVethLab(t)
	for _, c := range []struct {
		d    Direction
		want string
	}{
		{Direction{Rate: 10e6, Delay: 50 * time.Millisecond, Loss: 1}, "link delay needs the kernel's netem qdisc (sch_netem)"},
		{Direction{Rate: 10e6, Loss: 150}, "loss: 150 is not a percentage from 0 to 100"},
	} {
		before, err := l.ha.QdiscList(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: l.ia}})
		if err != nil {
			t.Fatal(err)
		}
		err = Apply(l.ha, l.ia, c.d, k)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Apply %+v: %v, want an error with %q", c.d, err, c.want)
		}
		after, err := l.ha.QdiscList(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: l.ia}})
		if err != nil {
			t.Fatal(err)
		}
		if len(after) != len(before) {
			t.Errorf("qdiscs before %v, after a refused Apply %v", before, after)
		}
		if d, err := Read(l.ha, l.ia); err != nil || !d.IsZero() {
			t.Errorf("Read after a refused Apply: %v, %v; want a plain link", d, err)
		}
	}
}

// TestEffective: what Apply makes of a direction is itself a valid
// direction that Apply makes the same of, on a kernel with netem and on
// one without (no kernel is touched: the netem side's round trip through
// the kernel is TestNetemRoundTrip's).
func TestEffective(t *testing.T) {
	t.Parallel()
	withNetem := Kernel{Netem: true, TBF: true, HTB: true, Clsact: true, BPF: true}
	ds := []Direction{
		{Loss: 1},
		{Loss: 10, LossCorrelation: 25},
		{LossModel: &GilbertElliott{P: 1, R: 25, H: 10, K: 0.1}},
		{Duplicate: 1, Corrupt: 0.1},
		{Delay: 50 * time.Millisecond},
		{Delay: 40 * time.Millisecond, Jitter: 10 * time.Millisecond, Distribution: Normal, Limit: 10},
		{Delay: 10 * time.Millisecond, Reorder: 25, Gap: 5},
		{Rate: 10e6, Delay: 40 * time.Millisecond, LimitBytes: 30000},
		{Rate: 10e6, Loss: 1},
		{Rate: 10e6, LimitBytes: 30000},
		{Rate: 1e9, Burst: 100},
	}
	for _, k := range []Kernel{withNetem, noNetem(withNetem), {HTB: true, Clsact: true, BPF: true}} {
		for _, d := range ds {
			if k.Check(d) != nil {
				continue
			}
			e, err := Effective(d, k)
			if err != nil {
				t.Errorf("Effective(%+v) on %+v: %v", d, k, err)
				continue
			}
			if err := e.Validate(); err != nil {
				t.Errorf("Effective(%+v) on %+v = %+v, which Validate refuses: %v", d, k, e, err)
			}
			if again, err := Effective(e, k); err != nil || !sameDir(again, e) {
				t.Errorf("Effective is not idempotent on %+v:\n %+v\n %+v (%v)", k, e, again, err)
			}
		}
	}
}

// TestApplyReadRoundTrip: Read gives back Effective(d), through creation
// and through changes in place, for both shapers and eBPF loss; Apply of
// what Read gave changes nothing.
func TestApplyReadRoundTrip(t *testing.T) {
	t.Parallel()
	k := noNetem(detect(t))
	htb := k
	htb.TBF = false
	seq := []Direction{
		{Rate: 10e6},
		{Rate: 100e6, Burst: 30000},
		{Rate: 100e6, Burst: 30000, Limit: 50},
		{Rate: 1e9 + 3, LimitBytes: 100000},
		{Rate: 40e9},
		{Loss: 1.5},
		{Loss: 10, LossCorrelation: 25},
		{LossModel: &GilbertElliott{P: 2, R: 25, H: 10, K: 0.5}},
		{Rate: 10e6, Loss: 1},
		{Rate: 10e6, Loss: 100},
		{Rate: 10e6, Limit: 10, Loss: 0.001},
		{Rate: 10e6, Burst: 100, LossModel: &GilbertElliott{P: 1, R: 99}},
		{},
		{Rate: 5e6, LimitBytes: 3000},
	}
	for _, kc := range []struct {
		name string
		k    Kernel
	}{{"tbf", k}, {"htb", htb}} {
		t.Run(kc.name, func(t *testing.T) {
			t.Parallel()
			l := newVethLab(t)
			// every step from every other: creations, changes in place
			// and changes of structure
			for i, d := range append(seq, seq[3], seq[0], seq[7], seq[5], seq[1]) {
				if err := Apply(l.ha, l.ia, d, kc.k); err != nil {
					t.Fatalf("step %d: Apply %v: %v", i, d, err)
				}
				want, err := Effective(d, kc.k)
				if err != nil {
					t.Fatal(err)
				}
				got, err := Read(l.ha, l.ia)
				if err != nil {
					t.Fatalf("step %d: Read: %v", i, err)
				}
				if !sameDir(got, want) {
					t.Errorf("step %d: Apply %+v then Read:\n got  %+v\n want %+v", i, d, got, want)
				}
				if again, _ := Effective(want, kc.k); !sameDir(again, want) {
					t.Errorf("step %d: Effective is not idempotent:\n %+v\n %+v", i, want, again)
				}
				if err := Apply(l.ha, l.ia, got, kc.k); err != nil {
					t.Fatalf("step %d: Apply what Read gave: %v", i, err)
				}
				if again, _ := Read(l.ha, l.ia); !sameDir(again, want) {
					t.Errorf("step %d: Apply(Read()) changed the link:\n got  %+v\n want %+v", i, again, want)
				}
			}
		})
	}
}

// TestRate: a TCP transfer over a rate-limited veth reaches the rate
// within 10 %, through TBF and through HTB.
func TestRate(t *testing.T) {
	t.Parallel()
	k := noNetem(detect(t))
	htb := k
	htb.TBF = false
	for _, c := range []struct {
		name string
		k    Kernel
		rate uint64
	}{
		{"tbf 10mbit", k, 10e6},
		{"tbf 100mbit", k, 100e6},
		{"htb 10mbit", htb, 10e6},
		{"htb 100mbit", htb, 100e6},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			l := newVethLab(t)
			if err := Apply(l.ha, l.ia, Direction{Rate: c.rate}, c.k); err != nil {
				t.Fatal(err)
			}
			got := l.goodput(t, 500*time.Millisecond, 2*time.Second)
			ratio := got / float64(c.rate)
			t.Logf("rate %d bit/s: TCP goodput %.2f Mbit/s (%.3f of the rate)", c.rate, got/1e6, ratio)
			if math.Abs(ratio-1) > 0.10 {
				t.Errorf("goodput %.2f Mbit/s is not within 10%% of %.0f Mbit/s", got/1e6, float64(c.rate)/1e6)
			}
		})
	}
}

// TestEBPFLoss: loss without netem, measured one way over UDP probes,
// falls within 4 sigma of the rate asked; 0 % loses nothing and 100 %
// everything.
func TestEBPFLoss(t *testing.T) {
	t.Parallel()
	k := noNetem(detect(t))
	for _, c := range []struct {
		loss float64
		n    int
	}{{0, 500}, {1, 3000}, {10, 2000}, {50, 1000}, {100, 300}} {
		t.Run(FormatPercent(c.loss), func(t *testing.T) {
			t.Parallel()
			l := newVethLab(t)
			if err := Apply(l.ha, l.ia, Direction{Loss: c.loss}, k); err != nil {
				t.Fatal(err)
			}
			got, _, _ := l.oneWay(t, c.n, 0)
			lost := c.n - got
			p := c.loss / 100
			band := 4 * sigma(p, c.n) * float64(c.n)
			t.Logf("loss %v%%: %d of %d lost (expected %.0f +- %.0f)", c.loss, lost, c.n, p*float64(c.n), band)
			if math.Abs(float64(lost)-p*float64(c.n)) > band {
				t.Errorf("%d of %d lost, outside %.0f +- %.0f", lost, c.n, p*float64(c.n), band)
			}
		})
	}
	t.Run("correlated", func(t *testing.T) {
		// netem's correlated draw smooths the random numbers: at 50 %
		// and a correlation of 90 %, about half is still lost, in runs
		// much longer than the 2 packets of independent draws.
		t.Parallel()
		l := newVethLab(t)
		if err := Apply(l.ha, l.ia, Direction{Loss: 50, LossCorrelation: 90}, k); err != nil {
			t.Fatal(err)
		}
		lost, bursts := l.lossRuns(t, 3000)
		mean := float64(lost) / float64(max(bursts, 1))
		t.Logf("loss 50%% correlation 90%%: %d of 3000 lost in %d runs of %.2f on average (2 without correlation)", lost, bursts, mean)
		if f := float64(lost) / 3000; f < 0.35 || f > 0.65 || mean < 4 {
			t.Errorf("lost %.1f%% in runs of %.2f: want 35..65%% in runs of at least 4", 100*f, mean)
		}
	})
	t.Run("gilbert-elliott", func(t *testing.T) {
		t.Parallel()
		l := newVethLab(t)
		ge := GilbertElliott{P: 2, R: 25} // bursts of 4 on average, 7.4 % lost
		if err := Apply(l.ha, l.ia, Direction{LossModel: &ge}, k); err != nil {
			t.Fatal(err)
		}
		const n = 5000
		lost, bursts := l.lossRuns(t, n)
		mean := float64(lost) / float64(max(bursts, 1))
		t.Logf("Gilbert-Elliott p 2%% r 25%%: %d of %d lost (%.2f%%, theory %.2f%%), %d bursts of %.2f on average (theory 4)",
			lost, n, 100*float64(lost)/n, ge.MeanLoss(), bursts, mean)
		if f := 100 * float64(lost) / n; f < 4 || f > 11 {
			t.Errorf("lost %.2f%%, want 4..11%% (7.4%% in theory)", f)
		}
		if mean < 2.5 || mean > 6 {
			t.Errorf("mean burst %.2f, want 2.5..6 (4 in theory)", mean)
		}
	})
}

// TestRunTimeChange: a change of loss applied to a running link is seen
// by the very next probe, and a change of rate by the next transfer.
func TestRunTimeChange(t *testing.T) {
	t.Parallel()
	k := noNetem(detect(t))
	l := newVethLab(t)
	for i, loss := range []float64{0, 100, 0, 100, 0} {
		start := time.Now()
		if err := Apply(l.ha, l.ia, Direction{Rate: 100e6, Loss: loss}, k); err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		got, _, _ := l.oneWay(t, 1, 0)
		t.Logf("step %d: loss %v%% applied in %v; the next probe arrived: %v", i, loss, took, got == 1)
		if want := map[float64]int{0: 1, 100: 0}[loss]; got != want {
			t.Errorf("step %d: loss %v%%: %d of 1 probe arrived", i, loss, got)
		}
	}
	for _, rate := range []uint64{10e6, 50e6} {
		if err := Apply(l.ha, l.ia, Direction{Rate: rate}, k); err != nil {
			t.Fatal(err)
		}
		got := l.goodput(t, 500*time.Millisecond, 2*time.Second)
		t.Logf("rate changed to %d: goodput %.2f Mbit/s", rate, got/1e6)
		if math.Abs(got/float64(rate)-1) > 0.10 {
			t.Errorf("after a change to %d bit/s, goodput %.2f Mbit/s", rate, got/1e6)
		}
	}
}

// TestClear: Clear gives the plain link back (line rate, no loss, Read
// zero, no qdisc or filter of nslab's left); a root qdisc nslab did not
// set is neither replaced, reported nor removed.
func TestClear(t *testing.T) {
	t.Parallel()
	k := noNetem(detect(t))
	l := newVethLab(t)
	if err := Apply(l.ha, l.ia, Direction{Rate: 10e6, Loss: 50}, k); err != nil {
		t.Fatal(err)
	}
	if err := Clear(l.ha, l.ia); err != nil {
		t.Fatal(err)
	}
	if d, err := Read(l.ha, l.ia); err != nil || !d.IsZero() {
		t.Errorf("Read after Clear: %+v, %v", d, err)
	}
	qs, err := l.ha.QdiscList(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: l.ia}})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		if q.Attrs().Handle != 0 {
			t.Errorf("after Clear, interface still has qdisc %s %s", q.Type(), netlink.HandleStr(q.Attrs().Handle))
		}
	}
	got, _, _ := l.oneWay(t, 200, 0)
	g := l.goodput(t, 200*time.Millisecond, 500*time.Millisecond)
	t.Logf("after Clear: %d of 200 probes arrived, TCP goodput %.0f Mbit/s", got, g/1e6)
	if got != 200 {
		t.Errorf("after Clear, %d of 200 probes arrived", got)
	}
	if g < 1e9 {
		t.Errorf("after Clear, TCP goodput %.0f Mbit/s: not back to line rate (at least 1 Gbit/s on a veth)", g/1e6)
	}
	if err := Clear(l.ha, l.ia); err != nil {
		t.Errorf("Clear of a plain link: %v", err)
	}

	// Someone else's root qdisc.
	foreign := &netlink.Tbf{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: l.ia, Handle: netlink.MakeHandle(1, 0), Parent: netlink.HANDLE_ROOT},
		Rate: 1e6, Limit: 100000, Buffer: tcTicks(15000, 1e6)}
	if err := l.ha.QdiscAdd(foreign); err != nil {
		t.Fatal(err)
	}
	if err := Apply(l.ha, l.ia, Direction{Rate: 10e6}, k); !errors.Is(err, ErrForeignQdisc) {
		t.Errorf("Apply over a foreign root qdisc: %v, want ErrForeignQdisc", err)
	}
	if _, err := Read(l.ha, l.ia); !errors.Is(err, ErrForeignQdisc) {
		t.Errorf("Read of a foreign root qdisc: %v, want ErrForeignQdisc", err)
	}
	if err := Clear(l.ha, l.ia); err != nil {
		t.Errorf("Clear with a foreign root qdisc: %v", err)
	}
	qs, _ = l.ha.QdiscList(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: l.ia}})
	if len(qs) == 0 || qs[0].Attrs().Handle != netlink.MakeHandle(1, 0) {
		t.Errorf("Clear removed a root qdisc nslab did not set: %v", qs)
	}
}

// TestNetemEncoding: what Apply sends netem reads back the same, with
// every field set (the kernel side of netem is tested by
// netem_linux_test.go, in a VM where this machine has no netem).
func TestNetemEncoding(t *testing.T) {
	t.Parallel()
	for _, n := range []tcNetem{
		{latency: 50e6, limit: 1000},
		{latency: 40e6 + 7, jitter: 10e6 + 3, dist: Normal, limit: 5000, loss: tcPct32(1.5), lossCorr: tcPct32(25),
			gap: 5, duplicate: tcPct32(1), dupCorr: tcPct32(2), delayCorr: tcPct32(3),
			reorder: tcPct32(25), reorderCorr: tcPct32(50), corrupt: tcPct32(0.1), corruptCorr: tcPct32(5)},
		{latency: 300e9, ge: true, geP: tcPct32(1), geR: tcPct32(25), geH: tcPct32(10), geK: tcPct32(0.1), limit: 1 << 30},
	} {
		q := n.qdisc(tcNetemMajor).withTable(Pareto)
		got, err := tcParseNetem(q.options)
		if err != nil {
			t.Fatal(err)
		}
		got.dist = n.dist
		if got != n {
			t.Errorf("netem encoding round trip:\n got  %+v\n want %+v", got, n)
		}
	}
	// The tables: 4096 entries, ascending, normal with mean 0 and sd 1
	// (in units of 8192).
	for _, d := range []Distribution{Normal, Pareto, ParetoNormal} {
		tab := tcDistTable(d)
		if len(tab) != tcDistSize {
			t.Fatalf("%s table has %d entries", d, len(tab))
		}
		var mean, sq float64
		for i, v := range tab {
			if i > 0 && v < tab[i-1] {
				t.Errorf("%s table not ascending at %d", d, i)
				break
			}
			mean += float64(v) / tcDistScale
			sq += float64(v) / tcDistScale * float64(v) / tcDistScale
		}
		mean /= tcDistSize
		sd := math.Sqrt(sq/tcDistSize - mean*mean)
		t.Logf("%s table: mean %.3f sd %.3f (jitters), min %d max %d", d, mean, sd, tab[0], tab[len(tab)-1])
		if d == Normal && (math.Abs(mean) > 0.01 || math.Abs(sd-1) > 0.02) {
			t.Errorf("normal table: mean %.3f sd %.3f, want 0 and 1", mean, sd)
		}
	}
}
