// Package nslabtest starts nslab labs inside Go tests and asserts on them,
// in the spirit of net/http/httptest: Start builds a lab from a topology
// (a file or an topo.Builder), gives it a name no parallel test uses,
// and tears it down in t.Cleanup; the Require methods probe in process
// (ICMP, TCP, UDP: no external binaries) and fail the test with what was
// sent, what came back, and the source node's routes and neighbours.
// NewUnstarted returns a lab whose Options can be set before Lab.Start
// builds it, as httptest's NewUnstartedServer.
// RunScripts runs a directory of script files (docs/scripting.md), each
// on a lab of its own, as rsc.io/script/scripttest.
//
// A test package that builds labs has one line more, for Main:
//
//	func TestMain(m *testing.M) { nslabtest.Main(m) }
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

// Lab is a lab owned by a test: built by Start (or NewUnstarted, then
// Lab.Start) and torn down when the test ends. Its methods are the
// test-friendly ones: they fail the test instead of returning an error, and
// run under the test's context (t.Context()), so they stop when the test
// ends. Engine gives the engine's lab, for everything else.
type Lab struct {
	// Options are the lab's settings, read by Start: set them between
	// NewUnstarted and Start, as httptest's Server.Config.
	Options Options

	t      testing.TB
	plan   *topo.Plan
	engine *emulator.Lab // nil until Start
}

// Options are a test lab's settings: the engine's (emulator.Options) and
// the test helpers' own. NewUnstarted fills in the defaults.
type Options struct {
	// Options are the engine's settings (the zero value: its defaults).
	// Held is always set: a test's lab lives as long as the test.
	emulator.Options
	// StartTimeout bounds the build (default 2m).
	StartTimeout time.Duration
	// ExecTimeout bounds each Exec (default: the package's ExecTimeout, 30s).
	ExecTimeout time.Duration
	// ScriptTimeout bounds each RunScript and Script (default: the
	// package's ScriptTimeout, 5m).
	ScriptTimeout time.Duration
	// Keep keeps the lab up when the test fails, and logs how to enter it
	// (default: the -nslab.keep flag).
	Keep bool
}

// StartTimeout is Options.StartTimeout's default.
const StartTimeout = 2 * time.Minute

// Engine returns the engine's lab this test lab holds, for the operations
// nslabtest has no helper for (Probe, PingAll, Serve, ListenUDP, Status,
// Neighbours, Start, and the engine's own Ping and Punch with options).
// It fails the test when the lab is not started.
func (l *Lab) Engine() *emulator.Lab {
	l.t.Helper()
	return l.lab()
}

// lab returns the engine's lab, failing the test when Start has not built
// it yet.
func (l *Lab) lab() *emulator.Lab {
	l.t.Helper()
	if l.engine == nil {
		l.fatalf("nslabtest: lab %q is not started: call its Start after NewUnstarted", l.Name())
	}
	return l.engine
}

// Name returns the lab's name: the topology's name made unique (see
// UniqueName).
func (l *Lab) Name() string { return l.plan.Lab }

// Plan returns the resolved plan the lab was built from: its nodes,
// interfaces, addresses and routes.
func (l *Lab) Plan() *topo.Plan { return l.plan }

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
// test ends. Problems in top and build failures fail the test at once. It
// is NewUnstarted followed by Lab.Start.
func Start(t testing.TB, top *topo.Topology) *Lab {
	t.Helper()
	l := NewUnstarted(t, top)
	l.Start()
	return l
}

// NewUnstarted resolves top (renamed with UniqueName) and returns a lab
// that is not built yet, with default Options: set them, then call Start,
// as httptest's NewUnstartedServer. Problems in top fail the test at once.
func NewUnstarted(t testing.TB, top *topo.Topology) *Lab {
	t.Helper()
	if missing := emulator.MissingCapabilities(true); len(missing) > 0 {
		require.FailNow(t, fmt.Sprintf("nslabtest: building a lab needs %s: run the tests as root (sudo go test ...), or make the package's TestMain nslabtest.Main(m), which runs them without root in a user namespace of their own", strings.Join(missing, ", ")))
	}
	cp := *top
	cp.Origin, cp.Name = top.Name, UniqueName(top.Name)
	plan, err := topo.Resolve(&cp)
	if err != nil {
		require.FailNow(t, fmt.Sprintf("nslabtest: topology %q: %v", top.Name, err))
	}
	return &Lab{t: t, plan: plan, Options: Options{
		StartTimeout:  StartTimeout,
		ExecTimeout:   ExecTimeout,
		ScriptTimeout: ScriptTimeout,
		Keep:          *keep,
	}}
}

// Start builds the lab of NewUnstarted with its Options and tears it down
// when the test ends. A build failure, or a second Start, fails the test.
func (l *Lab) Start() {
	l.t.Helper()
	t, plan, name := l.t, l.plan, l.plan.Lab
	if l.engine != nil {
		l.fatalf("nslabtest: lab %q is already started", name)
	}
	o := l.Options.Options
	o.Held = true
	ctx, cancel := context.WithTimeout(t.Context(), orDefault(l.Options.StartTimeout, StartTimeout))
	defer cancel()
	lab, err := emulator.Up(ctx, plan, o)
	if err != nil {
		require.FailNow(t, fmt.Sprintf("nslabtest: build lab %q: %v", name, err))
	}
	l.engine = lab
	keepFailed := l.Options.Keep
	t.Cleanup(func() {
		if keepFailed && t.Failed() {
			node := ""
			for _, n := range plan.Nodes {
				if n.Kind != topo.KindSwitch {
					node = n.Name
					break
				}
			}
			t.Logf("nslabtest: lab %s kept up (-nslab.keep): enter it with `nslab shell %s %s`, remove it with `nslab down %s`", name, name, node, name)
			return
		}
		if err := lab.Down(); err != nil {
			t.Errorf("nslabtest: tear down lab %q: %v", name, err)
		}
	})
}

// orDefault is d unless it is zero or negative, then def.
func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
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

// ExecTimeout is Options.ExecTimeout's default (30s): how long Exec waits.
var ExecTimeout = 30 * time.Second

// Exec runs argv in node and returns its output and exit code; failing to
// start it fails the test. A non-zero exit code does not.
func (l *Lab) Exec(node string, argv ...string) emulator.ExecResult {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(l.t.Context(), orDefault(l.Options.ExecTimeout, ExecTimeout))
	defer cancel()
	res, err := l.lab().Exec(ctx, node, argv...)
	if err != nil {
		l.fatalf("nslabtest: %v", err)
	}
	return res
}

// Ping probes from one node to another with ICMP echo (3 requests, 1s).
func (l *Lab) Ping(from, to string) emulator.PingResult {
	l.t.Helper()
	r, err := l.lab().Ping(l.t.Context(), from, to, emulator.PingOptions{Count: 3, Timeout: time.Second})
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
	r, err := l.lab().Ping(l.t.Context(), from, to, emulator.PingOptions{Count: 2, Timeout: 300 * time.Millisecond})
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
	m, err := l.lab().PingAll(l.t.Context(), nodes, emulator.PingOptions{})
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
		r, err := l.lab().Ping(l.t.Context(), from, to, emulator.PingOptions{Timeout: 100 * time.Millisecond})
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
	target, err := l.lab().AddrOf(to, 4, port)
	if err != nil {
		l.fatalf("nslabtest: %v", err)
	}
	svc, err := l.lab().Serve(to, proto, port)
	if err != nil {
		l.fatalf("nslabtest: %v", err)
	}
	defer svc.Close()
	timeout := time.Second
	if !want {
		timeout = 300 * time.Millisecond
	}
	r, err := l.lab().Probe(l.t.Context(), from, target, proto, emulator.ProbeOptions{Timeout: timeout})
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
	st, err := l.lab().Status()
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
		neigh, err := l.lab().Neighbours(node)
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
	ctx, cancel := context.WithTimeout(l.t.Context(), 10*time.Second)
	defer cancel()
	b, err := l.lab().ClassifyNAT(ctx, inside, outside)
	if err != nil {
		l.fatalf("nslabtest: %v", err)
	}
	return b
}

// RequireNAT fails the test unless the path from inside to outside shows
// the given mapping and filtering behaviour (topo.EndpointIndependent,
// AddressDependent or AddressAndPortDependent).
func (l *Lab) RequireNAT(inside, outside string, mapping, filtering topo.Behaviour) emulator.NATBehaviour {
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
		for _, n := range l.plan.Nodes {
			if n.Kind != topo.KindSwitch {
				nodes = append(nodes, n.Name)
			}
		}
	}
	for _, n := range nodes {
		svc, err := l.lab().Serve(n, proto, port)
		if err != nil {
			l.fatalf("nslabtest: %v", err)
		}
		defer svc.Close()
	}
	lab := l.lab()
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
				target, err := lab.AddrOf(b, 4, port)
				if err == nil {
					_, err = lab.Probe(l.t.Context(), a, target, proto, emulator.ProbeOptions{Timeout: time.Second})
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
	ctx, cancel := context.WithTimeout(l.t.Context(), 10*time.Second)
	defer cancel()
	ok, err := l.lab().Hairpins(ctx, inside, other, outside)
	if err != nil {
		l.fatalf("nslabtest: %v", err)
	}
	return ok
}

// Close tears the lab down now, as httptest's Server.Close; the cleanup
// registered by Start then has nothing left to do. A lab that was never
// started has nothing to tear down.
func (l *Lab) Close() {
	l.t.Helper()
	if l.engine == nil {
		return
	}
	if err := l.engine.Down(); err != nil {
		l.t.Errorf("nslabtest: tear down lab %q: %v", l.Name(), err)
	}
}

// Punch runs a UDP hole punch between hosts a and b, meeting at via (a
// node with echo ports; "" for the one such node), and returns the result
// whatever it is; bad input fails the test. See emulator.Lab.Punch.
func (l *Lab) Punch(a, b, via string) emulator.PunchResult {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(l.t.Context(), 10*time.Second)
	defer cancel()
	r, err := l.lab().Punch(ctx, a, b, emulator.PunchOptions{Via: via})
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
