package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The kernel's clock ticks, in which /proc/stat and /proc/PID/stat count
// CPU time (USER_HZ: 100 on every Linux architecture that matters here).
const userHZ = 100

// pfKthread is the task flag of a kernel thread (PF_KTHREAD).
const pfKthread = 0x00200000

// snapshot is the machine's CPU accounting at one instant: the whole
// machine from /proc/stat, the kernel threads from /proc/PID/stat, and
// this process's own use (so that the measurer is not billed to others).
type snapshot struct {
	at                               time.Time
	user, system, idle, irq, softirq time.Duration   // all CPUs; user includes nice, idle includes iowait
	kthreads                         map[int]kthread // by pid
	self                             time.Duration   // this process, user + system
}

// kthread is one kernel thread's kind (by name) and CPU time.
type kthread struct {
	kind int // kworker, ksoftirqd, rcu or other
	cpu  time.Duration
}

const (
	kworker = iota
	ksoftirqd
	rcuThread
	otherThread
)

// kthreadDelta is the CPU the kernel threads spent between a and b, by
// kind: for each thread of b, what it has more than in a (a thread that
// ended meanwhile takes its time with it: the figures are lower bounds;
// kworkers come and go, but the pool keeps most).
func kthreadDelta(a, b snapshot) (d [4]time.Duration) {
	for pid, t := range b.kthreads {
		prev, ok := a.kthreads[pid]
		if ok && prev.kind == t.kind && prev.cpu <= t.cpu {
			d[t.kind] += t.cpu - prev.cpu
		} else if !ok {
			d[t.kind] += t.cpu
		}
	}
	return d
}

func ticks(s string) (time.Duration, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, err
	}
	return time.Duration(n) * time.Second / userHZ, nil
}

func take() (snapshot, error) {
	s := snapshot{at: time.Now()}
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s, err
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 8 || f[0] != "cpu" {
		return s, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var v [7]time.Duration
	for i := range v {
		if v[i], err = ticks(f[i+1]); err != nil {
			return s, fmt.Errorf("/proc/stat: %w", err)
		}
	}
	s.user, s.system, s.idle, s.irq, s.softirq = v[0]+v[1], v[2], v[3]+v[4], v[5], v[6]
	if err := s.readKthreads(); err != nil {
		return s, err
	}
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return s, fmt.Errorf("getrusage: %w", err)
	}
	s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return s, nil
}

// readKthreads reads the CPU time of every kernel thread.
func (s *snapshot) readKthreads() error {
	s.kthreads = map[int]kthread{}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		open, close := bytes.IndexByte(data, '('), bytes.LastIndexByte(data, ')')
		if open < 0 || close < open {
			continue
		}
		comm := string(data[open+1 : close])
		f := strings.Fields(string(data[close+1:]))
		// f[0] is field 3 (state): flags is field 9, utime 14, stime 15.
		if len(f) < 13 {
			continue
		}
		flags, err := strconv.ParseUint(f[6], 10, 64)
		if err != nil || flags&pfKthread == 0 {
			continue
		}
		u, err1 := ticks(f[11])
		st, err2 := ticks(f[12])
		if err1 != nil || err2 != nil {
			continue
		}
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		kind := otherThread
		switch {
		case strings.HasPrefix(comm, "kworker"):
			kind = kworker
		case strings.HasPrefix(comm, "ksoftirqd"):
			kind = ksoftirqd
		case strings.HasPrefix(comm, "rcu"):
			kind = rcuThread
		}
		s.kthreads[pid] = kthread{kind: kind, cpu: u + st}
	}
	return nil
}

// slabObjects reads the objects in use in one of the kernel's slab caches,
// after asking SLUB to flush its per-CPU caches.
func slabObjects(cache string) (int, error) {
	dir := "/sys/kernel/slab/" + cache + "/"
	os.WriteFile(dir+"shrink", []byte("1"), 0)
	data, err := os.ReadFile(dir + "objects")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return 0, fmt.Errorf("empty %sobjects", dir)
	}
	return strconv.Atoi(f[0])
}

// The kernel's leftover work is followed by counting objects in two slab
// caches: kernfs nodes (every interface has sysfs entries, made at
// registration and removed at unregistration) and network namespaces.
// Both count the whole machine, and other programs may be making
// interfaces and namespaces meanwhile, so "done" is either the count back
// to where it was before the lab, or no drop for settle: then the work
// ended at the last drop.
const settle = time.Second

// drained follows one cache's count down to base. It returns the
// snapshot taken within 25 ms after the last drop (or when the count
// reached base), and whether the count did reach base. With nudge, a
// stall of the count destroys a throwaway namespace (unshare -n true):
// the kernel frees a batch of released namespaces only when its cleanup
// runs again, so the last batch would otherwise wait for someone else's.
func drained(cache string, base int, limit time.Duration, nudge bool) (snapshot, bool, error) {
	deadline := time.Now().Add(limit)
	snap, err := take()
	if err != nil {
		return snap, false, err
	}
	last, err := slabObjects(cache)
	if err != nil {
		return snap, false, err
	}
	lastDrop, dirty := time.Now(), false
	patience, nudged := 5*time.Millisecond, time.Now()
	for {
		n, err := slabObjects(cache)
		if err != nil {
			return snap, false, err
		}
		if n <= base {
			s, err := take()
			return s, true, err
		}
		now := time.Now()
		if n < last {
			lastDrop, dirty = now, true
			patience = 5 * time.Millisecond
		}
		last = n
		if dirty && now.Sub(snap.at) >= 25*time.Millisecond {
			if snap, err = take(); err != nil {
				return snap, false, err
			}
			dirty = false
		}
		if now.Sub(lastDrop) > settle || now.After(deadline) {
			return snap, false, nil
		}
		if nudge && now.Sub(lastDrop) > patience && now.Sub(nudged) > patience {
			exec.Command("unshare", "-n", "true").Run()
			nudged = time.Now()
			patience = min(2*patience, 500*time.Millisecond)
		}
		time.Sleep(time.Millisecond)
	}
}

// loadavg is the first field of /proc/loadavg.
func loadavg() float64 {
	data, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

func kernelRelease() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

// kernelMemKiB is the kernel's own memory in /proc/meminfo: SUnreclaim
// (the slab objects the kernel cannot drop: netdevs, namespaces, sysfs
// nodes; the reclaimable part, dentry and inode caches, comes and goes
// with the page cache), Percpu (each device's and namespace's per-CPU
// counters), KernelStack and PageTables.
func kernelMemKiB() (int64, error) {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	var sum int64
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "SUnreclaim:", "Percpu:", "KernelStack:", "PageTables:":
			v, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/meminfo: %s: %w", line, err)
			}
			sum += v
		}
	}
	return sum, nil
}
