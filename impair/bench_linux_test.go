//go:build !netem

package impair

import (
	"testing"
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
