//go:build !netem

package impair

import (
	"fmt"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// BenchmarkApply: impairing a plain link (the time of Apply alone; the
// Clear that follows each one is not counted). Another link keeps a loss
// classifier throughout, as the other links of a lab would: the machine's
// first clsact qdisc costs more (the kernel switches its egress hook on
// for every device), see BenchmarkApplyFirstClsact.
func BenchmarkApply(b *testing.B) {
	k := detect(b)
	other := newVethLab(b)
	if err := Apply(other.ha, other.ia, Direction{Loss: 1}, noNetem(k)); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		k    Kernel
		d    Direction
	}{
		{"rate-tbf", noNetem(k), Direction{Rate: 10e6}},
		{"rate-htb", Kernel{HTB: true}, Direction{Rate: 10e6}},
		{"loss-ebpf", noNetem(k), Direction{Loss: 1}},
		{"rate+loss-ebpf", noNetem(k), Direction{Rate: 10e6, Loss: 1}},
		{"nothing", noNetem(k), Direction{}},
	} {
		b.Run(c.name, func(b *testing.B) {
			l := newVethLab(b)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := Apply(l.ha, l.ia, c.d, c.k); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := Clear(l.ha, l.ia); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}

// BenchmarkApplyFirstClsact: loss on a plain link of a machine where no
// other clsact qdisc exists (run it alone).
func BenchmarkApplyFirstClsact(b *testing.B) {
	k := noNetem(detect(b))
	l := newVethLab(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := Apply(l.ha, l.ia, Direction{Loss: 1}, k); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := Clear(l.ha, l.ia); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkChange: changing a running link's values (each Apply differs
// from the one before), and Apply of what is already there.
func BenchmarkChange(b *testing.B) {
	k := detect(b)
	for _, c := range []struct {
		name string
		k    Kernel
		a, b Direction
	}{
		{"rate-tbf", noNetem(k), Direction{Rate: 10e6}, Direction{Rate: 20e6}},
		{"rate-htb", Kernel{HTB: true}, Direction{Rate: 10e6}, Direction{Rate: 20e6}},
		{"loss-ebpf", noNetem(k), Direction{Loss: 1}, Direction{Loss: 2}},
		{"rate+loss-ebpf", noNetem(k), Direction{Rate: 10e6, Loss: 1}, Direction{Rate: 20e6, Loss: 2}},
		{"same", noNetem(k), Direction{Rate: 10e6, Loss: 1}, Direction{Rate: 10e6, Loss: 1}},
	} {
		b.Run(c.name, func(b *testing.B) {
			l := newVethLab(b)
			if err := Apply(l.ha, l.ia, c.a, c.k); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				d := c.a
				if i%2 == 0 {
					d = c.b
				}
				if err := Apply(l.ha, l.ia, d, c.k); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRead: what `nslab status` pays an interface.
func BenchmarkRead(b *testing.B) {
	k := noNetem(detect(b))
	l := newVethLab(b)
	if err := Apply(l.ha, l.ia, Direction{Rate: 10e6, Loss: 1}, k); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Read(l.ha, l.ia); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApplyNewParts is where ApplyNew's time goes when a build
// impairs many new interfaces with a rate and eBPF loss (what linear,100
// asks of its 200 directions): 200 veths, up, in one namespace, each given
// the four requests ApplyNew sends, timed one kind at a time. Reports the
// mean of each, in µs: tbf-us (the root TBF, which makes the kernel
// deactivate the running interface's queue), fifo-us (its pfifo),
// clsact-us (the clsact qdisc: two filter blocks bound), filter-us (the
// loss classifier) and map-us (its entry in the shared map); total-ms is
// the 200 interfaces. "up" applies to interfaces that are up, as after a
// build's addresses phase; "down" to interfaces not up yet.
func BenchmarkApplyNewParts(b *testing.B) {
	for _, up := range []bool{true, false} {
		name := "down"
		if up {
			name = "up"
		}
		b.Run(name, func(b *testing.B) { benchApplyNewParts(b, up) })
	}
}

func benchApplyNewParts(b *testing.B, up bool) {
	k := noNetem(detect(b))
	k.HTB = false
	d := Direction{Rate: 100e6, Loss: 1}
	p, err := tcPlanFor(d, k)
	if err != nil {
		b.Fatal(err)
	}
	const n = 200
	var tbf, fifo, cls, filter, mp, total time.Duration
	for it := 0; it < b.N; it++ {
		b.StopTimer()
		l := newVethLab(b)
		idx := make([]int, n)
		for i := range idx {
			la := netlink.NewLinkAttrs()
			la.Name = fmt.Sprintf("x%d", i)
			if err := l.ha.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: fmt.Sprintf("y%d", i), PeerNamespace: netlink.NsFd(l.b)}); err != nil {
				b.Fatal(err)
			}
			lk, err := l.ha.LinkByName(la.Name)
			if err != nil {
				b.Fatal(err)
			}
			if up {
				if err := l.ha.LinkSetUp(lk); err != nil {
					b.Fatal(err)
				}
			}
			idx[i] = lk.Attrs().Index
		}
		var s LossPrograms
		prog, m, err := s.get()
		if err != nil {
			b.Fatal(err)
		}
		c, err := tcConnOf(l.ha)
		if err != nil {
			b.Fatal(err)
		}
		leaf, err := p.leafQdisc()
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		t00 := time.Now()
		for _, i := range idx {
			t0 := time.Now()
			if err := c.qdiscModify(i, unix.RTM_NEWQDISC, tcReplace, tcTBF{rate: p.rate, buffer: p.buffer, limit: p.tbfLimit()}.qdisc()); err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			if err := c.qdiscModify(i, unix.RTM_NEWQDISC, tcReplace, leaf); err != nil {
				b.Fatal(err)
			}
			t2 := time.Now()
			if err := c.qdiscModify(i, unix.RTM_NEWQDISC, unix.NLM_F_CREATE|unix.NLM_F_EXCL, tcClsact()); err != nil {
				b.Fatal(err)
			}
			t3 := time.Now()
			if err := m.Update(uint32(i), p.bpf.config(), ebpf.UpdateAny); err != nil {
				b.Fatal(err)
			}
			t4 := time.Now()
			if err := l.ha.FilterAdd(bpfFilter(i, prog.FD())); err != nil {
				b.Fatal(err)
			}
			t5 := time.Now()
			tbf, fifo, cls, mp, filter = tbf+t1.Sub(t0), fifo+t2.Sub(t1), cls+t3.Sub(t2), mp+t4.Sub(t3), filter+t5.Sub(t4)
		}
		total += time.Since(t00)
		b.StopTimer()
		s.Close()
		time.Sleep(time.Second) // let the kernel free the last namespaces' interfaces
		b.StartTimer()
	}
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(b.N*n) }
	b.ReportMetric(per(tbf), "tbf-us")
	b.ReportMetric(per(fifo), "fifo-us")
	b.ReportMetric(per(cls), "clsact-us")
	b.ReportMetric(per(mp), "map-us")
	b.ReportMetric(per(filter), "filter-us")
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "total-ms")
}
