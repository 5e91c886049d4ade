package emulator

import (
	"fmt"
	"net/netip"
	"sort"
	"time"
)

// PingOptions tune an ICMP echo probe. The zero value sends one echo
// request and waits up to a second for the reply.
type PingOptions struct {
	// Count is the number of echo requests (default 1).
	Count int
	// Interval between requests (default 0: back to back).
	Interval time.Duration
	// Timeout is how long to wait for the last reply (default 1s).
	Timeout time.Duration
	// Family is 4 or 6; 0 picks IPv4 when both nodes have it.
	Family int
	// Target overrides the destination address (default: the destination
	// node's first address of the family).
	Target netip.Addr
	// NeighbourRoom bounds how many neighbour (ARP and NDP) entries
	// PingAll may add at once, all namespaces together. The kernel's
	// table is shared by every namespace of the machine and refuses new
	// entries past net.ipv4.neigh.default.gc_thresh3 (1,024 by default);
	// a matrix that needs more runs in waves, removing each wave's
	// entries before the next. 0 (or less) means what that limit leaves
	// free. A matrix of N nodes needs room for at least 2*(N-1).
	NeighbourRoom int
	// Progress, when set, is called by PingAll after each wave of
	// sources with the probes done so far and the matrix's total (each
	// ordered pair is one probe), while no probe is in flight and before
	// the wave's neighbour entries are removed.
	Progress func(done, total int)
}

func (o PingOptions) withDefaults() PingOptions {
	if o.Count <= 0 {
		o.Count = 1
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	return o
}

// PingResult is the typed outcome of an ICMP probe between two nodes.
type PingResult struct {
	From      string          `json:"from"`
	To        string          `json:"to"`
	Target    netip.Addr      `json:"target"`              // address pinged
	Responder netip.Addr      `json:"responder,omitempty"` // address the replies came from
	Sent      int             `json:"sent"`
	Received  int             `json:"received"`
	Loss      float64         `json:"loss"` // 0..1
	RTTs      []time.Duration `json:"rtts_ns,omitempty"`
	Min       time.Duration   `json:"min_ns"`
	Avg       time.Duration   `json:"avg_ns"`
	Max       time.Duration   `json:"max_ns"`
}

// OK reports whether every request got a reply.
func (r PingResult) OK() bool { return r.Sent > 0 && r.Received == r.Sent }

func (r PingResult) String() string {
	if r.Received == 0 {
		return fmt.Sprintf("%s -> %s (%s): %d sent, no reply", r.From, r.To, r.Target, r.Sent)
	}
	return fmt.Sprintf("%s -> %s (%s): %d/%d replies from %s, rtt min/avg/max %s/%s/%s",
		r.From, r.To, r.Target, r.Received, r.Sent, r.Responder, fmtDur(r.Min), fmtDur(r.Avg), fmtDur(r.Max))
}

func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%.3fms", float64(d)/float64(time.Millisecond))
}

func (r *PingResult) finish() {
	r.Loss = 1
	if r.Sent > 0 {
		r.Loss = float64(r.Sent-r.Received) / float64(r.Sent)
	}
	if len(r.RTTs) == 0 {
		return
	}
	s := append([]time.Duration(nil), r.RTTs...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	r.Min, r.Max, r.Avg = s[0], s[len(s)-1], sum/time.Duration(len(s))
}

// Matrix is the result of probing every ordered pair of a set of nodes.
type Matrix struct {
	Nodes []string `json:"nodes"`
	// Results[i][j] is the probe from Nodes[i] to Nodes[j]; nil when i == j.
	Results [][]*PingResult `json:"results"`
}

// Counts returns how many probes were made and how many got every reply.
func (m *Matrix) Counts() (probes, ok int) {
	for i := range m.Results {
		for j, r := range m.Results[i] {
			if i == j || r == nil {
				continue
			}
			probes++
			if r.OK() {
				ok++
			}
		}
	}
	return probes, ok
}

// Get returns the result from a to b, or nil.
func (m *Matrix) Get(a, b string) *PingResult {
	ia, ib := -1, -1
	for i, n := range m.Nodes {
		if n == a {
			ia = i
		}
		if n == b {
			ib = i
		}
	}
	if ia < 0 || ib < 0 {
		return nil
	}
	return m.Results[ia][ib]
}

// pingWaves splits the sources 0..n-1 of an all-pairs matrix into waves
// [first, last). In a wave, each source probes the nodes after it, and
// they probe it back: each pair adds one entry at each end, so source a
// adds 2*(n-1-a). A wave adds at most room entries, unless a single
// source needs more (PingAll refuses that case before planning).
func pingWaves(n, room int) [][2]int {
	if n <= 0 {
		return nil
	}
	if n*(n-1) <= room {
		return [][2]int{{0, n}}
	}
	var w [][2]int
	for first := 0; first < n; {
		size := n - first
		if rest := n - first - 1; rest > 0 {
			size = min(size, max(1, room/(2*rest)))
		}
		w = append(w, [2]int{first, first + size})
		first += size
	}
	return w
}
