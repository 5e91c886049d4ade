package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestFloor(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    Split
		want string
	}{
		{"waiting", Split{WallMS: 100, NslabSysMS: 30, IdleMS: 150}, "waiting (75% idle)"},
		{"kernel", Split{WallMS: 100, NslabUserMS: 10, NslabSysMS: 90, KworkerMS: 60, IdleMS: 40}, "kernel CPU (75%)"},
		{"nslab", Split{WallMS: 100, NslabUserMS: 120, NslabSysMS: 40, IdleMS: 40}, "nslab CPU (60%)"},
		// Other load is left out of the shares: 100 of 200 core-ms.
		{"other load", Split{WallMS: 100, NslabSysMS: 80, OtherMS: 100, IdleMS: 20}, "kernel CPU (80%)"},
		{"empty", Split{}, "-"},
	} {
		if got := tc.s.Floor(2); got != tc.want {
			t.Errorf("%s: Floor = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestMedianSplit(t *testing.T) {
	got := medianSplit([]Split{{WallMS: 3, IdleMS: 10}, {WallMS: 1, IdleMS: 30}, {WallMS: 2, IdleMS: 20}})
	if got.WallMS != 2 || got.IdleMS != 20 {
		t.Errorf("medianSplit = %+v, want wall 2 and idle 20 (each field on its own)", got)
	}
	if m := median([]float64{4, 1, 3, 2}); m != 2.5 {
		t.Errorf("median of an even count = %g, want 2.5", m)
	}
}

func TestKthreadDelta(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	a := snapshot{kthreads: map[int]kthread{
		10: {kworker, ms(100)},
		11: {kworker, ms(500)}, // exits: its time goes with it
		12: {rcuThread, ms(40)},
		13: {kworker, ms(900)}, // its pid is reused by another kind
	}}
	b := snapshot{kthreads: map[int]kthread{
		10: {kworker, ms(130)},
		12: {rcuThread, ms(45)},
		13: {ksoftirqd, ms(7)},
		14: {kworker, ms(20)}, // new: all of it counts
	}}
	d := kthreadDelta(a, b)
	if d[kworker] != ms(50) || d[rcuThread] != ms(5) || d[ksoftirqd] != 0 {
		t.Errorf("kthreadDelta = %v, want kworker 50ms, rcu 5ms, ksoftirqd 0", d)
	}
}

func TestWriteMarkdown(t *testing.T) {
	r := &Report{When: "now", Cores: 2, Reps: 3, Cycles: 5, Labs: []Lab{{
		Spec: "linear,5", Family: "linear", N: 5, Nodes: 10, Bridges: 5,
		Up: Split{WallMS: 50}, Down: Split{WallMS: 5}, Gone: Split{WallMS: 100}, GoneSettled: 1,
		B2B: B2B{CycleMS: 160, Failed: 1, Error: "cycle 4: nslab up: exit status 1\n"},
	}}}
	var out bytes.Buffer
	r.WriteMarkdown(&out)
	for _, want := range []string{"| linear,5 | 10 | 5 | 50 |", "100 (1 of 3: sysfs still above)", "160 (1 of 5 builds failed)", "linear,5 back to back: cycle 4: nslab up: exit status 1\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the tables lack %q:\n%s", want, out.String())
		}
	}
}

func TestPerNode(t *testing.T) {
	labs := []Lab{
		{Spec: "single,1000", Family: "single", Nodes: 1001, Up: Split{WallMS: 1000, NslabUserMS: 100, NslabSysMS: 900}, Down: Split{WallMS: 400}, Gone: Split{WallMS: 1000}, KernelMiB: 300, NslabRSSMiB: 25},
		{Spec: "linear,10", Family: "linear", Nodes: 20, Up: Split{WallMS: 10}},
		{Spec: "single,10000", Family: "single", Nodes: 10010, Up: Split{WallMS: 12000, NslabUserMS: 1000, NslabSysMS: 9000}, Down: Split{WallMS: 2000}, Gone: Split{WallMS: 10000}, KernelMiB: 3000, NslabRSSMiB: 80},
	}
	got := PerNode(labs)
	if len(got) != 1 {
		t.Fatalf("PerNode = %+v, want one row: single,10000 against single,1000 (linear has one size)", got)
	}
	x := got[0]
	near := func(name string, v, want float64) {
		if v < want-0.005 || v > want+0.005 {
			t.Errorf("%s = %.3f, want %.2f", name, v, want)
		}
	}
	if x.Lab != "single,10000" || x.Base != "single,1000" {
		t.Errorf("row compares %s with %s", x.Lab, x.Base)
	}
	near("up", x.Up, 1.2)
	near("nslab CPU", x.NslabCPU, 1.0)
	near("down", x.Down, 0.5)
	near("gone", x.Gone, 1.0)
	near("kernel memory", x.KernelMem, 1.0)
	near("nslab RSS", x.NslabRSS, 0.32)
	var out bytes.Buffer
	(&Report{Labs: labs}).WriteMarkdown(&out)
	if !strings.Contains(out.String(), "| single,10000 | single,1000 | 1.20× | 1.00× | 0.50× | 1.00× | 1.00× | 0.32× |") {
		t.Errorf("the per-node table is missing or wrong:\n%s", out.String())
	}
}
