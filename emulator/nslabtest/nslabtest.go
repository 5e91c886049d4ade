// Package nslabtest starts nslab labs inside Go tests and asserts on them,
// in the spirit of net/http/httptest: Start builds a lab from a topology
// (a file or an topo.Builder), gives it a name no parallel test uses,
// and tears it down in t.Cleanup; the Require methods probe in process
// (ICMP, TCP, UDP: no external binaries) and fail the test with what was
// sent, what came back, and the source node's routes and neighbours.
//
// Run tests with -nslab.keep to keep a failed test's lab up for a look:
// the test log says how to enter it.
package nslabtest

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/topo"
	"github.com/stretchr/testify/require"
)

var keep = flag.Bool("nslab.keep", false, "keep the lab of a failed test up, and print how to enter it")

var seq atomic.Int64

// Lab is a running lab owned by a test. Its methods are the test-friendly
// ones: they fail the test instead of returning an error. Engine gives the
// engine's lab, for everything else.
type Lab struct {
	t      testing.TB
	engine *emulator.Lab
}

// Engine returns the engine's lab this test lab holds, for the operations
// nslabtest has no helper for (Probe, PingAll, Serve, ListenUDP, Status,
// Neighbours, Start, and the engine's own Ping and Punch with options).
func (l *Lab) Engine() *emulator.Lab { return l.engine }

// Name returns the lab's name: the topology's name made unique (see
// UniqueName).
func (l *Lab) Name() string { return l.engine.Name() }

// Plan returns the resolved plan the lab was built from: its nodes,
// interfaces, addresses and routes.
func (l *Lab) Plan() *topo.Plan { return l.engine.Plan }

var unsafeName = regexp.MustCompile(`[^a-z0-9-]+`)

// UniqueName turns base into a lab name no other running test uses:
// lowercase, with this process's ID and a counter, at most 32 bytes.
func UniqueName(base string) string {
	suffix := fmt.Sprintf("-%d-%d", time.Now().UnixNano()%100000, seq.Add(1))
	base = strings.Trim(unsafeName.ReplaceAllString(strings.ToLower(base), "-"), "-")
	if base == "" {
		base = "lab"
	}
	if max := 32 - len(suffix); len(base) > max {
		base = strings.Trim(base[:max], "-")
	}
	return base + suffix
}

// Start builds top (renamed with UniqueName) and tears it down when the
// test ends. Problems in top and build failures fail the test at once.
func Start(t testing.TB, top *topo.Topology) *Lab {
	t.Helper()
	if missing := emulator.MissingCapabilities(true); len(missing) > 0 {
		require.FailNow(t, fmt.Sprintf("nslabtest: building a lab needs %s: run the tests as root (sudo go test ...)", strings.Join(missing, ", ")))
	}
	cp := *top
	cp.Origin, cp.Name = top.Name, UniqueName(top.Name)
	plan, err := topo.Resolve(&cp)
	if err != nil {
		require.FailNow(t, fmt.Sprintf("nslabtest: topology %q: %v", top.Name, err))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	lab, err := emulator.Up(ctx, plan, emulator.Options{Held: true})
	if err != nil {
		require.FailNow(t, fmt.Sprintf("nslabtest: build lab %q: %v", cp.Name, err))
	}
	l := &Lab{t: t, engine: lab}
	t.Cleanup(func() {
		if *keep && t.Failed() {
			node := ""
			for _, n := range plan.Nodes {
				if n.Kind != topo.KindSwitch {
					node = n.Name
					break
				}
			}
			t.Logf("nslabtest: lab %s kept up (-nslab.keep): enter it with `nslab shell %s %s`, remove it with `nslab down %s`", cp.Name, cp.Name, node, cp.Name)
			return
		}
		if err := lab.Down(); err != nil {
			t.Errorf("nslabtest: tear down lab %q: %v", cp.Name, err)
		}
	})
	return l
}

// StartFile builds the topology in a TOML file (see docs/topology.md).
func StartFile(t testing.TB, path string) *Lab {
	t.Helper()
	top, err := topo.LoadFile(path)
	if err != nil {
		require.FailNow(t, fmt.Sprintf("nslabtest: %v", err))
	}
	return Start(t, top)
}

// fatalf fails the test through testify, with the message as its own.
func (l *Lab) fatalf(format string, args ...any) {
	l.t.Helper()
	require.FailNow(l.t, fmt.Sprintf(format, args...))
}

// ExecTimeout bounds Exec (default 30s).
var ExecTimeout = 30 * time.Second

// Exec runs argv in node and returns its output and exit code; failing to
// start it fails the test. A non-zero exit code does not.
func (l *Lab) Exec(node string, argv ...string) emulator.ExecResult {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ExecTimeout)
	defer cancel()
	res, err := l.engine.Exec(ctx, node, argv...)
	if err != nil {
		l.fatalf("nslabtest: %v", err)
	}
	return res
}

// Ping probes from one node to another with ICMP echo (3 requests, 1s).
func (l *Lab) Ping(from, to string) emulator.PingResult {
	l.t.Helper()
	r, err := l.engine.Ping(context.Background(), from, to, emulator.PingOptions{Count: 3, Timeout: time.Second})
	if err != nil {
		l.fatalf("nslabtest: ping %s -> %s: %v", from, to, err)
	}
	return r
}

// RequireReachable fails the test unless every echo request from from to
// to is answered.
func (l *Lab) RequireReachable(from, to string) emulator.PingResult {
	l.t.Helper()
	r := l.Ping(from, to)
	if !r.OK() {
		l.fatalf("nslabtest: %s should reach %s, but: %s\n%s", from, to, r, l.Diagnose(from))
	}
	return r
}

// RequireUnreachable fails the test if any echo request is answered.
func (l *Lab) RequireUnreachable(from, to string) emulator.PingResult {
	l.t.Helper()
	r, err := l.engine.Ping(context.Background(), from, to, emulator.PingOptions{Count: 2, Timeout: 300 * time.Millisecond})
	if err != nil {
		l.fatalf("nslabtest: ping %s -> %s: %v", from, to, err)
	}
	if r.Received > 0 {
		l.fatalf("nslabtest: %s should not reach %s, but: %s\n%s", from, to, r, l.Diagnose(from))
	}
	return r
}

// RequireMatrix fails the test unless every ordered pair of nodes (every
// host and router when none are given) reaches the other.
func (l *Lab) RequireMatrix(nodes ...string) *emulator.Matrix {
	l.t.Helper()
	m, err := l.engine.PingAll(context.Background(), nodes, emulator.PingOptions{})
	if err != nil {
		l.fatalf("nslabtest: pingall: %v", err)
	}
	var failed []string
	for i := range m.Results {
		for j, r := range m.Results[i] {
			if i != j && r != nil && !r.OK() {
				failed = append(failed, r.String())
			}
		}
	}
	if len(failed) > 0 {
		l.fatalf("nslabtest: %d pairs do not answer:\n  %s", len(failed), strings.Join(failed, "\n  "))
	}
	return m
}

// EventuallyReachable waits up to within for from to reach to (for tests
// that change a lab while it runs) and fails the test if it never does.
func (l *Lab) EventuallyReachable(from, to string, within time.Duration) emulator.PingResult {
	l.t.Helper()
	deadline := time.Now().Add(within)
	for {
		r, err := l.engine.Ping(context.Background(), from, to, emulator.PingOptions{Timeout: 100 * time.Millisecond})
		if err != nil {
			l.fatalf("nslabtest: ping %s -> %s: %v", from, to, err)
		}
		if r.OK() {
			return r
		}
		if time.Now().After(deadline) {
			l.fatalf("nslabtest: %s did not reach %s within %s: %s\n%s", from, to, within, r, l.Diagnose(from))
		}
	}
}

// Transport probes: a temporary echo service on the far node and one
// probe from the near one.

// RequireTCP fails the test unless a TCP connection from from reaches
// port on to's first IPv4 address; it returns what the far side saw.
func (l *Lab) RequireTCP(from, to string, port int) emulator.ProbeResult {
	l.t.Helper()
	return l.requireProbe("tcp", from, to, port, true)
}

// RequireUDP is RequireTCP for a UDP datagram and its answer.
func (l *Lab) RequireUDP(from, to string, port int) emulator.ProbeResult {
	l.t.Helper()
	return l.requireProbe("udp", from, to, port, true)
}

// RequireNoTCP fails the test if a TCP connection gets through.
func (l *Lab) RequireNoTCP(from, to string, port int) {
	l.t.Helper()
	l.requireProbe("tcp", from, to, port, false)
}

// RequireNoUDP fails the test if a UDP probe gets an answer.
func (l *Lab) RequireNoUDP(from, to string, port int) {
	l.t.Helper()
	l.requireProbe("udp", from, to, port, false)
}

func (l *Lab) requireProbe(proto, from, to string, port int, want bool) emulator.ProbeResult {
	l.t.Helper()
	target, err := l.engine.AddrOf(to, 4, port)
	if err != nil {
		l.fatalf("nslabtest: %v", err)
	}
	svc, err := l.engine.Serve(to, proto, port)
	if err != nil {
		l.fatalf("nslabtest: %v", err)
	}
	defer svc.Close()
	timeout := time.Second
	if !want {
		timeout = 300 * time.Millisecond
	}
	r, err := l.engine.Probe(context.Background(), from, target, proto, emulator.ProbeOptions{Timeout: timeout})
	switch {
	case want && err != nil:
		l.fatalf("nslabtest: %s should reach %s (%s) over %s: %v\n%s", from, to, target, proto, err, l.Diagnose(from))
	case !want && err == nil:
		l.fatalf("nslabtest: %s should not reach %s (%s) over %s, but: %s\n%s", from, to, target, proto, r, l.Diagnose(from))
	}
	return r
}

// ObservedSource probes from from to an echo service on to (UDP, port)
// and returns the source address and port the far side saw: behind a
// NAT, the mapping.
func (l *Lab) ObservedSource(from, to string, port int) netip.AddrPort {
	l.t.Helper()
	return l.RequireUDP(from, to, port).Observed
}

// Diagnose describes a node for a failure message: its interfaces,
// routes and neighbours as the kernel has them now.
func (l *Lab) Diagnose(node string) string {
	st, err := l.engine.Status()
	if err != nil {
		return fmt.Sprintf("(no state of node %q: %v)", node, err)
	}
	var b strings.Builder
	for _, n := range st.Nodes {
		if n.Name != node {
			continue
		}
		fmt.Fprintf(&b, "node %s (netns %s):\n", n.Name, n.Namespace)
		for _, i := range n.Interfaces {
			fmt.Fprintf(&b, "  %s %s %s\n", i.Name, i.State, strings.Join(i.Addrs, " "))
		}
		for _, r := range n.Routes {
			fmt.Fprintf(&b, "  route %s\n", r)
		}
		neigh, err := l.engine.Neighbours(node)
		if err != nil {
			fmt.Fprintf(&b, "  (neighbours: %v)\n", err)
		}
		for _, nb := range neigh {
			fmt.Fprintf(&b, "  neighbour %s\n", nb)
		}
	}
	return b.String()
}

// ClassifyNAT runs RFC 4787's probe table from inside to outside and
// returns the behaviour observed (see emulator.Lab.ClassifyNAT); a path
// without NAT, or an outside node with fewer than three addresses, fails
// the test.
func (l *Lab) ClassifyNAT(inside, outside string) emulator.NATBehaviour {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := l.engine.ClassifyNAT(ctx, inside, outside)
	if err != nil {
		l.fatalf("nslabtest: %v", err)
	}
	return b
}

// RequireNAT fails the test unless the path from inside to outside shows
// the given mapping and filtering behaviour (topo.EndpointIndependent,
// AddressDependent or AddressAndPortDependent).
func (l *Lab) RequireNAT(inside, outside, mapping, filtering string) emulator.NATBehaviour {
	l.t.Helper()
	b := l.ClassifyNAT(inside, outside)
	if b.Mapping != mapping || b.Filtering != filtering {
		l.fatalf("nslabtest: NAT from %s to %s: want mapping %s, filtering %s; observed %s\n%s", inside, outside, mapping, filtering, b, l.Diagnose(inside))
	}
	return b
}

// RequireMatrixTCP fails the test unless every ordered pair of nodes
// connects over TCP to port (an echo service runs on each node meanwhile).
func (l *Lab) RequireMatrixTCP(port int, nodes ...string) {
	l.t.Helper()
	l.requireMatrixProto("tcp", port, nodes)
}

// RequireMatrixUDP is RequireMatrixTCP over UDP.
func (l *Lab) RequireMatrixUDP(port int, nodes ...string) {
	l.t.Helper()
	l.requireMatrixProto("udp", port, nodes)
}

func (l *Lab) requireMatrixProto(proto string, port int, nodes []string) {
	l.t.Helper()
	if len(nodes) == 0 {
		for _, n := range l.engine.Plan.Nodes {
			if n.Kind != topo.KindSwitch {
				nodes = append(nodes, n.Name)
			}
		}
	}
	for _, n := range nodes {
		svc, err := l.engine.Serve(n, proto, port)
		if err != nil {
			l.fatalf("nslabtest: %v", err)
		}
		defer svc.Close()
	}
	type res struct {
		from, to string
		err      error
	}
	results := make(chan res)
	count := 0
	for _, a := range nodes {
		for _, b := range nodes {
			if a == b {
				continue
			}
			count++
			go func(a, b string) {
				target, err := l.engine.AddrOf(b, 4, port)
				if err == nil {
					_, err = l.engine.Probe(context.Background(), a, target, proto, emulator.ProbeOptions{Timeout: time.Second})
				}
				results <- res{a, b, err}
			}(a, b)
		}
	}
	var failed []string
	for i := 0; i < count; i++ {
		r := <-results
		if r.err != nil {
			failed = append(failed, fmt.Sprintf("%s -> %s: %v", r.from, r.to, r.err))
		}
	}
	if len(failed) > 0 {
		l.fatalf("nslabtest: %d of %d %s pairs do not connect:\n  %s", len(failed), count, proto, strings.Join(failed, "\n  "))
	}
}

// Hairpins reports whether a UDP packet from node other to the mapping of
// a socket in node inside (as seen from outside) comes back in through
// the gateway: the gateway hairpins.
func (l *Lab) Hairpins(inside, other, outside string) bool {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ok, err := l.engine.Hairpins(ctx, inside, other, outside)
	if err != nil {
		l.fatalf("nslabtest: %v", err)
	}
	return ok
}

// Close tears the lab down now, as httptest's Server.Close; the cleanup
// registered by Start then has nothing left to do.
func (l *Lab) Close() {
	l.t.Helper()
	if err := l.engine.Down(); err != nil {
		l.t.Errorf("nslabtest: tear down lab %q: %v", l.Name(), err)
	}
}

// Punch runs a UDP hole punch between hosts a and b, meeting at via (a
// node with echo ports; "" for the one such node), and returns the result
// whatever it is; bad input fails the test. See emulator.Lab.Punch.
func (l *Lab) Punch(a, b, via string) emulator.PunchResult {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := l.engine.Punch(ctx, a, b, emulator.PunchOptions{Via: via})
	if err != nil {
		l.fatalf("nslabtest: %v", err)
	}
	return r
}

// RequirePunch fails the test unless a and b connect directly through a
// hole punch; the failure shows each side's learned and seen endpoints.
func (l *Lab) RequirePunch(a, b, via string) emulator.PunchResult {
	l.t.Helper()
	r := l.Punch(a, b, via)
	if !r.Direct {
		l.fatalf("nslabtest: %s and %s should connect directly through a hole punch, but:\n%s\n%s%s", a, b, r, l.Diagnose(a), l.Diagnose(b))
	}
	return r
}

// RequireNoPunch fails the test if a and b connect directly: behind these
// NATs they should need a relay.
func (l *Lab) RequireNoPunch(a, b, via string) emulator.PunchResult {
	l.t.Helper()
	r := l.Punch(a, b, via)
	if r.Direct {
		l.fatalf("nslabtest: %s and %s should need a relay, but the hole punch connected them:\n%s", a, b, r)
	}
	return r
}
