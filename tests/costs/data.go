package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// Report is what one run of costs measured: the data file in bench-out/
// and the input of the plot.
type Report struct {
	When   string  `json:"when"`
	Kernel string  `json:"kernel"`
	Cores  int     `json:"cores"`
	Load   float64 `json:"load_before"` // load average (1 min) when the run started
	Reps   int     `json:"reps"`        // isolated up/down measurements per lab, medians below
	Cycles int     `json:"cycles"`      // back-to-back cycles per lab
	Labs   []Lab   `json:"labs"`
	// QuietWaitS is how long the run waited, before its measurements,
	// for the rtnl lock to be free of other programs' work.
	QuietWaitS float64 `json:"quiet_wait_s"`
	Comment    string  `json:"comment,omitempty"`
}

// Lab is one lab size.
type Lab struct {
	Spec    string `json:"spec"`   // e.g. "linear,100"
	Family  string `json:"family"` // "single" or "linear"
	N       int    `json:"n"`
	Nodes   int    `json:"nodes"`    // namespaces: hosts and switches
	Bridges int    `json:"switches"` // one bridge each
	// Up is `nslab up` (a process of its own), Down `nslab down`, Gone the
	// kernel's work after down returned, until it has removed every
	// interface of the lab. Medians of Reps, each on a quiet kernel (the
	// previous lab's namespaces freed).
	Up   Split `json:"up"`
	Down Split `json:"down"`
	Gone Split `json:"gone"`
	// Gone ends when the kernel has deleted three sentinel veths the
	// measurer put between a namespace of its own and the lab's first,
	// middle and last node. GoneSettled counts the reps after which the
	// machine's sysfs count was still above its value before the lab
	// (another program's interfaces, or the lab's not all gone yet).
	GoneSettled int `json:"gone_settled,omitempty"`
	// KernelMiB is how much the kernel's own memory (SUnreclaim, Percpu,
	// KernelStack and PageTables in /proc/meminfo) rose while the lab was
	// up, NslabRSSMiB the peak resident memory of `nslab up`: medians.
	KernelMiB   float64 `json:"kernel_mib"`
	NslabRSSMiB float64 `json:"nslab_rss_mib"`
	B2B         B2B     `json:"back_to_back"`
}

// B2B is Cycles of `nslab up` then `nslab down`, each cycle at once after
// the last.
type B2B struct {
	CycleMS float64 `json:"cycle_ms"` // median cycle (up + down, wall)
	UpMS    float64 `json:"up_ms"`    // median up within the loop
	DownMS  float64 `json:"down_ms"`  // median down within the loop
	MeanMS  float64 `json:"mean_ms"`  // the loop's wall time over its cycles
	DrainMS float64 `json:"drain_ms"` // after the last down, until the interfaces are gone
	// Failed counts the cycles whose nslab up failed (rolled back; their
	// time is in MeanMS and PerCycle, not in the medians), Error is the
	// first one's message.
	Failed int    `json:"failed,omitempty"`
	Error  string `json:"error,omitempty"`
	// PerCycle is the CPU of the whole loop and its drain, divided by the
	// cycles: what one test of a suite pays, and who spends it.
	PerCycle Split `json:"per_cycle"`
}

// Split is where the time of one stretch went: its wall time, and the
// CPU time of every core in it, by who spent it. Core time adds up to
// Cores × WallMS (within the 10 ms ticks the kernel counts in).
type Split struct {
	WallMS float64 `json:"wall_ms"`
	// The nslab processes (getrusage of the children): in user space, and
	// in the kernel on their behalf (system calls: netlink, namespaces).
	NslabUserMS float64 `json:"nslab_user_ms"`
	NslabSysMS  float64 `json:"nslab_sys_ms"`
	// Kernel threads (/proc/PID/stat): kworkers (the namespace cleanup,
	// sysfs and RCU work items among them), and the rest (ksoftirqd, rcu*
	// and others).
	KworkerMS float64 `json:"kworker_ms"`
	KthreadMS float64 `json:"kthread_ms"`
	// Other is the rest of the busy time (/proc/stat): other processes on
	// the machine and softirqs run from interrupts on an idle core.
	OtherMS float64 `json:"other_ms"`
	// Idle is time no core had anything to run: the kernel waiting (an
	// RCU grace period, a timer), or nothing to do.
	IdleMS float64 `json:"idle_ms"`
	// SoftirqMS is the softirq column of /proc/stat, for information: it
	// is counted inside the others (the task a softirq interrupted).
	SoftirqMS float64 `json:"softirq_ms"`
}

// KernelMS is the CPU the kernel spent: on nslab's behalf in its system
// calls and in its own threads.
func (s Split) KernelMS() float64 { return s.NslabSysMS + s.KworkerMS + s.KthreadMS }

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// medianSplit takes the median of each field on its own.
func medianSplit(ss []Split) Split {
	f := func(get func(Split) float64) float64 {
		v := make([]float64, len(ss))
		for i, s := range ss {
			v[i] = get(s)
		}
		return median(v)
	}
	return Split{
		WallMS:      f(func(s Split) float64 { return s.WallMS }),
		NslabUserMS: f(func(s Split) float64 { return s.NslabUserMS }),
		NslabSysMS:  f(func(s Split) float64 { return s.NslabSysMS }),
		KworkerMS:   f(func(s Split) float64 { return s.KworkerMS }),
		KthreadMS:   f(func(s Split) float64 { return s.KthreadMS }),
		OtherMS:     f(func(s Split) float64 { return s.OtherMS }),
		IdleMS:      f(func(s Split) float64 { return s.IdleMS }),
		SoftirqMS:   f(func(s Split) float64 { return s.SoftirqMS }),
	}
}

// Floor names what bounds a stretch: of its core time not taken by other
// load on the machine, the largest share among idle (the kernel waiting:
// an RCU grace period, a timer), the kernel's CPU and nslab's own.
func (s Split) Floor(cores int) string {
	total := float64(cores)*s.WallMS - s.OtherMS
	if total <= 0 {
		return "-"
	}
	idle, kern, user := s.IdleMS/total, s.KernelMS()/total, s.NslabUserMS/total
	switch {
	case idle >= kern && idle >= user:
		return fmt.Sprintf("waiting (%.0f%% idle)", 100*idle)
	case kern >= user:
		return fmt.Sprintf("kernel CPU (%.0f%%)", 100*kern)
	default:
		return fmt.Sprintf("nslab CPU (%.0f%%)", 100*user)
	}
}

// WriteMarkdown writes the report as tables, for bench-out/report.md.
func (r *Report) WriteMarkdown(w io.Writer) {
	fmt.Fprintf(w, "Where the time goes (%s, %d cores, kernel %s, load %.2f at the start; medians of %d isolated runs, %d cycles back to back; %.1f s spent waiting for a free rtnl lock before measuring; ms):\n\n",
		r.When, r.Cores, r.Kernel, r.Load, r.Reps, r.Cycles, r.QuietWaitS)
	fmt.Fprintln(w, "| lab | nodes | switches | up | nslab user / sys | kworkers / other kthreads | idle | down | gone after down | its kworkers / idle | back to back: cycle | per cycle: nslab user / kernel / idle | floor of a cycle |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, l := range r.Labs {
		gone := fmt.Sprintf("%.0f", l.Gone.WallMS)
		if l.GoneSettled > 0 {
			gone += fmt.Sprintf(" (%d of %d: sysfs still above)", l.GoneSettled, r.Reps)
		}
		cycle := fmt.Sprintf("%.0f", l.B2B.CycleMS)
		if l.B2B.Failed > 0 {
			cycle += fmt.Sprintf(" (%d of %d builds failed)", l.B2B.Failed, r.Cycles)
		}
		p := l.B2B.PerCycle
		fmt.Fprintf(w, "| %s | %d | %d | %.0f | %.0f / %.0f | %.0f / %.0f | %.0f | %.0f | %s | %.0f / %.0f | %s | %.0f / %.0f / %.0f | %s |\n",
			l.Spec, l.Nodes, l.Bridges, l.Up.WallMS, l.Up.NslabUserMS, l.Up.NslabSysMS, l.Up.KworkerMS, l.Up.KthreadMS, l.Up.IdleMS,
			l.Down.WallMS, gone, l.Gone.KworkerMS, l.Gone.IdleMS, cycle,
			p.NslabUserMS, p.KernelMS(), p.IdleMS, strings.ReplaceAll(p.Floor(r.Cores), "|", "/"))
	}
	if rows := PerNode(r.Labs); len(rows) > 0 {
		fmt.Fprintln(w, "\nCost per node against the smallest lab of the same family (1.00: it grows linearly; up and down are wall time, nslab CPU is `nslab up`'s user + sys):")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| lab | against | up | nslab CPU in up | down | gone after down | kernel memory while up | nslab's peak RSS |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
		for _, x := range rows {
			fmt.Fprintf(w, "| %s | %s | %.2f× | %.2f× | %.2f× | %.2f× | %.2f× | %.2f× |\n",
				x.Lab, x.Base, x.Up, x.NslabCPU, x.Down, x.Gone, x.KernelMem, x.NslabRSS)
		}
	}
	for _, l := range r.Labs {
		if l.B2B.Error != "" {
			fmt.Fprintf(w, "\n%s back to back: %s\n", l.Spec, strings.TrimSpace(l.B2B.Error))
		}
	}
}

// Ratio is a lab's cost per node divided by that of a smaller lab of the
// same family (Base): 1 where the cost grows linearly with the nodes.
type Ratio struct {
	Lab, Base                                     string
	Up, NslabCPU, Down, Gone, KernelMem, NslabRSS float64
}

// PerNode compares each lab's cost per node with the smallest lab of its
// family (by nodes), for the families measured at more than one size.
func PerNode(labs []Lab) []Ratio {
	base := map[string]Lab{}
	for _, l := range labs {
		if b, ok := base[l.Family]; !ok || l.Nodes < b.Nodes {
			base[l.Family] = l
		}
	}
	var out []Ratio
	for _, l := range labs {
		b := base[l.Family]
		if l.Nodes == b.Nodes || b.Nodes == 0 {
			continue
		}
		k := float64(b.Nodes) / float64(l.Nodes)
		per := func(x, y float64) float64 {
			if y == 0 {
				return 0
			}
			return x / y * k
		}
		out = append(out, Ratio{
			Lab: l.Spec, Base: b.Spec,
			Up:        per(l.Up.WallMS, b.Up.WallMS),
			NslabCPU:  per(l.Up.NslabUserMS+l.Up.NslabSysMS, b.Up.NslabUserMS+b.Up.NslabSysMS),
			Down:      per(l.Down.WallMS, b.Down.WallMS),
			Gone:      per(l.Gone.WallMS, b.Gone.WallMS),
			KernelMem: per(l.KernelMiB, b.KernelMiB),
			NslabRSS:  per(l.NslabRSSMiB, b.NslabRSSMiB),
		})
	}
	return out
}
