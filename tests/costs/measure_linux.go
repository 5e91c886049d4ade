package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/nslab/nslab/internal/netns"
	"github.com/nslab/nslab/internal/rtnl"
	"github.com/nslab/nslab/topo"
	"golang.org/x/sys/unix"
)

// measurer runs nslab as a child process and accounts for the machine's
// CPU around it.
type measurer struct {
	nslab   string
	cores   int
	timeout time.Duration // for the kernel's work after down
	seq     int
	logf    func(format string, args ...any)
	// probe is a namespace of the measurer's own with a route socket in
	// it: setting its loopback up takes the rtnl lock, which every
	// interface change on the machine takes.
	probe    *netns.NS
	probeRt  *rtnl.Conn
	gated    time.Duration // time spent waiting for a quiet kernel
	sentinel int
}

func (m *measurer) open() error {
	var err error
	m.probe, err = netns.New(func() (err error) {
		m.probeRt, err = rtnl.Open()
		return err
	})
	if err != nil {
		m.probeRt.Close()
		return fmt.Errorf("probe namespace: %w", err)
	}
	return nil
}

// sentinels puts a veth between the probe namespace and three of the
// lab's namespaces (its first, middle and last node), both ends down:
// when the kernel dismantles those namespaces it deletes the veths, and
// their ends in the probe namespace go with them, which the probe sees
// without any count of the whole machine (which other programs' labs
// move). They return the probe ends' indexes.
func (m *measurer) sentinels(lab string, nodes []string) ([]int, error) {
	var idx []int
	for _, node := range []string{nodes[0], nodes[len(nodes)/2], nodes[len(nodes)-1]} {
		ns, err := netns.Open("/run/netns/" + topo.NamespaceName(lab, node))
		if err != nil {
			return idx, fmt.Errorf("sentinel in %s: %w", node, err)
		}
		m.sentinel++
		i := 1000 + m.sentinel
		err = m.probeRt.VethAdd(rtnl.VethEnd{Name: fmt.Sprintf("s%d", i), Index: i},
			rtnl.VethEnd{Name: "costs-sentinel", NsFd: ns.Fd()})
		ns.Close()
		if err != nil {
			return idx, fmt.Errorf("sentinel in %s: %w", node, err)
		}
		idx = append(idx, i)
	}
	return idx, nil
}

// sentinelsGone waits until the kernel has deleted every sentinel and
// takes a snapshot then.
func (m *measurer) sentinelsGone(idx []int) (snapshot, error) {
	deadline := time.Now().Add(m.timeout)
	for len(idx) > 0 {
		_, err := m.probeRt.LinkGet(idx[0])
		switch {
		case errors.Is(err, unix.ENODEV):
			idx = idx[1:]
			continue
		case err != nil:
			return snapshot{}, fmt.Errorf("sentinel %d: %w", idx[0], err)
		case time.Now().After(deadline):
			return snapshot{}, fmt.Errorf("the kernel did not dismantle the lab within %v", m.timeout)
		}
		time.Sleep(500 * time.Microsecond)
	}
	return take()
}

func (m *measurer) close() {
	m.probeRt.Close()
	m.probe.Close()
}

// rtnlQuiet waits until the rtnl lock is free: three probes in a row, 10
// ms apart, each served within 2 ms. Other programs on the machine (a
// lab of someone else's being torn down: each bridge holds the lock for
// an RCU barrier) otherwise stall nslab's build and are billed to it.
// It gives up after limit.
func (m *measurer) rtnlQuiet(limit time.Duration) error {
	t0 := time.Now()
	defer func() { m.gated += time.Since(t0) }()
	for ok := 0; ok < 3; {
		if time.Since(t0) > limit {
			m.logf("the rtnl lock stayed busy for %v: going on", limit)
			return nil
		}
		p := time.Now()
		if err := m.probeRt.LinkSetUp(1, true); err != nil {
			return fmt.Errorf("rtnl probe: %w", err)
		}
		if time.Since(p) < 2*time.Millisecond {
			ok++
		} else {
			ok = 0
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// child is one run of the CLI: its wall time and its own CPU (getrusage).
type child struct {
	wall, user, sys time.Duration
	maxRSSKiB       int64
}

func (m *measurer) run(ctx context.Context, args ...string) (child, error) {
	cmd := exec.CommandContext(ctx, m.nslab, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Interrupted, nslab rolls its build back (a killed one would leave
	// the lab behind).
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = time.Minute
	t0 := time.Now()
	err := cmd.Run()
	c := child{wall: time.Since(t0)}
	if err != nil {
		return c, fmt.Errorf("nslab %s: %w\n%s", strings.Join(args, " "), err, out.Bytes())
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		c.user = time.Duration(ru.Utime.Nano())
		c.sys = time.Duration(ru.Stime.Nano())
		c.maxRSSKiB = ru.Maxrss
	}
	return c, nil
}

// split accounts for the time between two snapshots; kids are the nslab
// processes that ran in it.
func (m *measurer) split(a, b snapshot, kids ...child) Split {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	var user, sys time.Duration
	for _, k := range kids {
		user += k.user
		sys += k.sys
	}
	busy := (b.user - a.user) + (b.system - a.system) + (b.irq - a.irq) + (b.softirq - a.softirq)
	d := kthreadDelta(a, b)
	kw := d[kworker]
	kt := d[ksoftirqd] + d[rcuThread] + d[otherThread]
	other := busy - user - sys - kw - kt - (b.self - a.self)
	return Split{
		WallMS:      ms(b.at.Sub(a.at)),
		NslabUserMS: ms(user),
		NslabSysMS:  ms(sys),
		KworkerMS:   ms(kw),
		KthreadMS:   ms(kt),
		OtherMS:     max(0, ms(other)),
		IdleMS:      ms(b.idle - a.idle),
		SoftirqMS:   ms(b.softirq - a.softirq),
	}
}

func (m *measurer) name() string {
	m.seq++
	return fmt.Sprintf("costs-%d-%d", os.Getpid()%100000, m.seq)
}

// quiet waits for the kernel to have freed the namespaces released
// before (or to make no more progress at it) and for the rtnl lock to be
// free, so that the next measurement starts on a quiet kernel.
func (m *measurer) quiet(netnsBase int) error {
	if _, ok, err := drained("net_namespace", netnsBase+1, m.timeout, true); err != nil {
		return err
	} else if !ok {
		m.logf("namespaces: %d before, not back to that (other programs' labs?): going on", netnsBase)
	}
	return m.rtnlQuiet(m.timeout)
}

// lab measures one size: reps isolated up/down/gone, then cycles back to
// back.
func (m *measurer) lab(ctx context.Context, spec string, reps, cycles int) (Lab, error) {
	top, err := topo.Generate(spec, "costs")
	if err != nil {
		return Lab{}, err
	}
	fam, _, _ := strings.Cut(spec, ",")
	l := Lab{Spec: spec, Family: fam, Nodes: len(top.Nodes)}
	fmt.Sscanf(spec[len(fam)+1:], "%d", &l.N)
	var nodes []string
	for _, n := range top.Nodes {
		nodes = append(nodes, n.Name)
		if n.Kind == topo.KindSwitch {
			l.Bridges++
		}
	}
	netnsBase, err := slabObjects("net_namespace")
	if err != nil {
		return l, err
	}
	var ups, downs, gones []Split
	var kmem, rss []float64
	for i := 0; i < reps; i++ {
		if err := m.quiet(netnsBase); err != nil {
			return l, err
		}
		sysfs, err := slabObjects("kernfs_node_cache")
		if err != nil {
			return l, err
		}
		name := m.name()
		mem0, err := m.memSettled()
		if err != nil {
			return l, err
		}
		s0, err := take()
		if err != nil {
			return l, err
		}
		up, err := m.run(ctx, "up", "--topo", spec, "--name", name)
		if err != nil {
			return l, err
		}
		s1, err := take()
		if err != nil {
			return l, err
		}
		mem1, err := kernelMemKiB()
		if err != nil {
			m.run(ctx, "down", name)
			return l, err
		}
		kmem = append(kmem, float64(mem1-mem0)/1024)
		rss = append(rss, float64(up.maxRSSKiB)/1024)
		sent, err := m.sentinels(name, nodes)
		if err != nil {
			m.run(ctx, "down", name)
			return l, err
		}
		s1b, err := take()
		if err != nil {
			return l, err
		}
		down, err := m.run(ctx, "down", name)
		if err != nil {
			return l, err
		}
		s2, err := take()
		if err != nil {
			return l, err
		}
		s3, err := m.sentinelsGone(sent)
		if err != nil {
			return l, err
		}
		if n, err := slabObjects("kernfs_node_cache"); err == nil && n > sysfs {
			l.GoneSettled++
		}
		ups = append(ups, m.split(s0, s1, up))
		downs = append(downs, m.split(s1b, s2, down))
		gones = append(gones, m.split(s2, s3))
	}
	l.Up, l.Down, l.Gone = medianSplit(ups), medianSplit(downs), medianSplit(gones)
	l.KernelMiB, l.NslabRSSMiB = median(kmem), median(rss)

	if err := m.quiet(netnsBase); err != nil {
		return l, err
	}
	var cyc, upw, downw []float64
	var kids []child
	var sent []int
	s0, err := take()
	if err != nil {
		return l, err
	}
	for i := 0; i < cycles; i++ {
		name := m.name()
		up, err := m.run(ctx, "up", "--topo", spec, "--name", name)
		kids = append(kids, up)
		if err != nil {
			// A failed build is rolled back: a finding, not the end of
			// the run (back to back, the kernel's leftover work can
			// delay the next lab past its readiness timeout).
			if ctx.Err() != nil {
				return l, err
			}
			l.B2B.Failed++
			if l.B2B.Error == "" {
				l.B2B.Error = fmt.Sprintf("cycle %d: %v", i+1, err)
			}
			m.logf("%s cycle %d: %v", spec, i+1, err)
			continue
		}
		if i == cycles-1 {
			// The loop's last lab is the last the kernel dismantles.
			if sent, err = m.sentinels(name, nodes); err != nil {
				m.run(ctx, "down", name)
				return l, err
			}
		}
		down, err := m.run(ctx, "down", name)
		if err != nil {
			return l, err
		}
		kids = append(kids, down)
		cyc = append(cyc, float64((up.wall+down.wall).Microseconds())/1000)
		upw = append(upw, float64(up.wall.Microseconds())/1000)
		downw = append(downw, float64(down.wall.Microseconds())/1000)
	}
	loop := time.Since(s0.at)
	s1, err := take()
	if sent != nil {
		s1, err = m.sentinelsGone(sent)
	}
	if err != nil {
		return l, err
	}
	all := m.split(s0, s1, kids...)
	per := func(v float64) float64 { return v / float64(cycles) }
	l.B2B = B2B{
		Failed: l.B2B.Failed, Error: l.B2B.Error,
		CycleMS: median(cyc), UpMS: median(upw), DownMS: median(downw),
		MeanMS:  float64(loop.Microseconds()) / 1000 / float64(cycles),
		DrainMS: float64(s1.at.Sub(s0.at).Microseconds()-loop.Microseconds()) / 1000,
		PerCycle: Split{
			WallMS: per(all.WallMS), NslabUserMS: per(all.NslabUserMS), NslabSysMS: per(all.NslabSysMS),
			KworkerMS: per(all.KworkerMS), KthreadMS: per(all.KthreadMS), OtherMS: per(all.OtherMS),
			IdleMS: per(all.IdleMS), SoftirqMS: per(all.SoftirqMS),
		},
	}
	return l, m.quiet(netnsBase)
}

// memSettled waits until the kernel's memory (kernelMemKiB) has stopped
// falling, the last lab's objects freed (the kernel frees a namespace's
// memory after an RCU grace period, in work items, seconds after the
// namespace itself is gone): two reads half a second apart within 1 MiB,
// or m.timeout. It returns the last read.
func (m *measurer) memSettled() (int64, error) {
	t0 := time.Now()
	last, err := kernelMemKiB()
	if err != nil {
		return 0, err
	}
	for time.Since(t0) < m.timeout {
		time.Sleep(500 * time.Millisecond)
		v, err := kernelMemKiB()
		if err != nil {
			return 0, err
		}
		if last-v < 1024 {
			return v, nil
		}
		last = v
	}
	m.logf("kernel memory still falling after %v: going on", m.timeout)
	return last, nil
}
