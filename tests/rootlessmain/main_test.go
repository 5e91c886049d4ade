// Package rootlessmain is a user's test package, run by
// tests/rootless_test.go as an ordinary user (uid 65534) and by `go test
// ./...` as whoever runs it: its TestMain is the one line of nslabtest,
// which runs the tests in a user namespace of their own when the
// capabilities are missing. With NSLAB_EXPECT_ROOTLESS=1 the tests also
// check that they really run that way.
package rootlessmain

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/emulator/nslabtest"
	"github.com/nslab/nslab/internal/netns"
	"github.com/nslab/nslab/internal/rootless"
	"github.com/nslab/nslab/topo"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { nslabtest.Main(m) }

// Run by an ordinary user, the tests run as root of a user namespace that
// maps that user alone, with the state and namespaces in a tmpfs of their
// own mount namespace.
func TestRunsWhereExpected(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("/proc/self/uid_map")
	require.NoError(t, err)
	f := strings.Fields(string(data))
	require.Len(t, f, 3)
	require.Equal(t, 0, os.Geteuid())
	if os.Getenv("NSLAB_EXPECT_ROOTLESS") != "1" {
		return
	}
	require.Equal(t, []string{"0", os.Getenv("NSLAB_EXPECT_UID"), "1"}, f, "the user is root of a user namespace of its own")
	require.NotEmpty(t, os.Getenv("NSLAB_STATE_DIR"))
	require.True(t, strings.HasSuffix(os.Getenv("NSLAB_STATE_DIR"), "/mnt/state"), os.Getenv("NSLAB_STATE_DIR"))
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	require.NoError(t, err)
	require.Contains(t, string(mounts), strings.TrimSuffix(os.Getenv("NSLAB_STATE_DIR"), "/state")+" ", "the tmpfs")
}

var cleaned atomic.Int64

// Parallel tests each build a lab; cleanups run.
func TestParallelLabs(t *testing.T) {
	for i := range 4 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			lab := nslabtest.Start(t, topo.NewBuilder("par").Switch("s1").Host("a").Host("b").Link("a", "s1").Link("b", "s1").Topology())
			lab.RequireReachable("a", "b")
			lab.RequireTCP("a", "b", 8080)
			res := lab.Exec("a", "hostname")
			require.Equal(t, 0, res.ExitCode, res.Stderr)
			require.Equal(t, "a\n", string(res.Stdout))
			t.Cleanup(func() { cleaned.Add(1) })
		})
	}
	t.Cleanup(func() { require.EqualValues(t, 4, cleaned.Load()) })
}

// The NAT classifier finds what each profile promises.
func TestNATClassifier(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		profile            string
		mapping, filtering topo.Behaviour
	}{
		{"full-cone", topo.EndpointIndependent, topo.EndpointIndependent},
		{"port-restricted", topo.EndpointIndependent, topo.AddressAndPortDependent},
		{"symmetric", topo.AddressAndPortDependent, topo.AddressAndPortDependent},
	} {
		t.Run(tc.profile, func(t *testing.T) {
			t.Parallel()
			lab := nslabtest.Start(t, natLab(tc.profile))
			b := lab.RequireNAT("client", "net", tc.mapping, tc.filtering)
			require.Equal(t, "203.0.113.1", b.Mapped.Addr().String())
		})
	}
}

// A hole punch through two NATs, with the rendezvous's echo service run
// as this binary inside a node.
func TestHolePunch(t *testing.T) {
	t.Parallel()
	lab := nslabtest.StartFile(t, "../../topologies/p2p.toml")
	r := lab.RequirePunch("alice", "bob", "rendezvous")
	require.True(t, r.Direct, "%s", r)
}

// Failure diagnostics read the node as under root.
func TestDiagnose(t *testing.T) {
	t.Parallel()
	lab := nslabtest.StartFile(t, "../../topologies/routed.toml")
	d := lab.Diagnose("h1")
	require.Contains(t, d, "h1")
	require.Contains(t, d, "route 10.2.0.0/24 via 10.1.0.1")
}

// A lab of a hundred hosts comes up and goes down.
func TestHundredHosts(t *testing.T) {
	t.Parallel()
	top, err := topo.Generate("single,100", "hundred")
	require.NoError(t, err)
	lab := nslabtest.Start(t, top)
	m := lab.RequireMatrix("h1", "h50", "h100")
	probes, ok := m.Counts()
	require.Equal(t, probes, ok)
}

// A host attachment goes to the network namespace the tests run in: without
// root the test binary's own (docs/rootless.md), which the test process
// reaches the lab from, as it would the machine's under root; here a UDP
// exchange between the test process and a socket in node a. Under root
// the machine's namespace is left alone: the attachment goes to a
// namespace made for the test, where the test's socket is opened.
func TestHostAttachment(t *testing.T) {
	t.Parallel()
	iface := fmt.Sprintf("nsrl%d", os.Getpid()%1000000)
	top, err := topo.Decode("rlhost.toml", []byte(`name = "rlhost"
[[nodes]]
name = "s1"
kind = "switch"
[[nodes]]
name = "a"
[[links]]
endpoints = ["a", "s1"]
[host]
node = "s1"
interface = "`+iface+`"
`))
	require.NoError(t, err)
	inHost := func(fn func() error) error { return fn() }
	lab := nslabtest.NewUnstarted(t, top)
	if !rootless.InUserNS() {
		ns, err := netns.New(nil)
		require.NoError(t, err)
		path := filepath.Join(t.TempDir(), "host")
		require.NoError(t, netns.Pin(ns.Fd(), path))
		t.Cleanup(func() { netns.Unpin(path); ns.Close() })
		lab.Options.HostNetns = path
		inHost = ns.Do
	} else if os.Getenv("NSLAB_EXPECT_ROOTLESS") == "1" {
		mine, err := os.Readlink("/proc/thread-self/ns/net")
		require.NoError(t, err)
		require.NotEqual(t, os.Getenv("NSLAB_EXPECT_MACHINE_NETNS"), mine, "not the machine's namespace")
	}
	lab.Start()
	require.NoError(t, inHost(func() error { _, err := net.InterfaceByName(iface); return err }), "the host end")
	a, err := lab.Engine().ListenUDP("a", netip.AddrPort{})
	require.NoError(t, err)
	defer a.Close()
	var me *net.UDPConn
	require.NoError(t, inHost(func() (err error) { me, err = net.ListenUDP("udp4", nil); return err }))
	defer me.Close()
	to := netip.AddrPortFrom(lab.Plan().Node("a").Ifaces[0].Addrs[0].Addr(), uint16(a.LocalAddr().(*net.UDPAddr).Port))
	go func() {
		buf := make([]byte, 64)
		n, from, err := a.ReadFromUDPAddrPort(buf)
		if err == nil {
			a.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	var got []byte
	for i := 0; i < 50 && got == nil; i++ {
		_, err := me.WriteToUDPAddrPort([]byte("hi"), to)
		require.NoError(t, err)
		me.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		buf := make([]byte, 64)
		if n, _, err := me.ReadFromUDPAddrPort(buf); err == nil {
			got = buf[:n]
		}
	}
	require.Equal(t, "hi", string(got))
}

func natLab(profile string) *topo.Topology {
	nat := topo.NATSpec{Profile: profile, Outside: "wan", Masquerade: true}
	return &topo.Topology{
		Name: "rlnat",
		Nodes: []topo.NodeSpec{
			{Name: "lan", Kind: topo.KindSwitch},
			{Name: "client", Gateway: "192.168.1.1"},
			{Name: "gw", Kind: topo.KindRouter, NAT: &nat},
			{Name: "net"},
		},
		Links: []topo.LinkSpec{
			{A: &topo.EndpointSpec{Node: "gw", Interface: "lan", Addresses: []string{"192.168.1.1/24"}}, B: &topo.EndpointSpec{Node: "lan"}},
			{A: &topo.EndpointSpec{Node: "client", Addresses: []string{"192.168.1.2/24"}}, B: &topo.EndpointSpec{Node: "lan"}},
			{A: &topo.EndpointSpec{Node: "gw", Interface: "wan", Addresses: []string{"203.0.113.1/24"}},
				B: &topo.EndpointSpec{Node: "net", Addresses: []string{"203.0.113.10/24", "203.0.113.11/24", "203.0.113.12/24"}}},
		},
	}
}

// BenchmarkUpDownSingle100 and BenchmarkUpDownLinear100 build and remove
// single,100 and linear,100, reporting the median up and down: make bench
// runs them as root and as an ordinary user, side by side
// (docs/rootless.md). Each build waits for the last one's teardown to be
// over in the kernel (bridges go one by one, about 19 ms each), so that
// it is timed alone.
func BenchmarkUpDownSingle100(b *testing.B) { benchUpDown(b, "single,100", 300*time.Millisecond) }
func BenchmarkUpDownLinear100(b *testing.B) { benchUpDown(b, "linear,100", 3*time.Second) }

func benchUpDown(b *testing.B, spec string, settle time.Duration) {
	top, err := topo.Generate(spec, "rlbench")
	require.NoError(b, err)
	top.Name = nslabtest.UniqueName("rlbench")
	plan, err := topo.Resolve(top)
	require.NoError(b, err)
	var ups, downs []time.Duration
	for range b.N {
		t0 := time.Now()
		lab, err := emulator.Up(context.Background(), plan, emulator.Options{})
		require.NoError(b, err)
		t1 := time.Now()
		require.NoError(b, lab.Down())
		ups, downs = append(ups, t1.Sub(t0)), append(downs, time.Since(t1))
		b.StopTimer()
		time.Sleep(settle)
		b.StartTimer()
	}
	b.ReportMetric(medianMS(ups), "up-ms")
	b.ReportMetric(medianMS(downs), "down-ms")
}

// BenchmarkExecTrue runs /bin/true in a node, as tests/bench_test.go's.
func BenchmarkExecTrue(b *testing.B) {
	top, err := topo.Generate("single,2", "rlexec")
	require.NoError(b, err)
	lab := nslabtest.Start(b, top)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var took []time.Duration
	for range b.N {
		t0 := time.Now()
		res, err := lab.Engine().Exec(ctx, "h1", "/bin/true")
		took = append(took, time.Since(t0))
		require.NoError(b, err)
		require.Equal(b, 0, res.ExitCode)
	}
	b.ReportMetric(medianMS(took), "median-ms")
}

func medianMS(d []time.Duration) float64 {
	slices.Sort(d)
	return float64(d[len(d)/2].Microseconds()) / 1000
}
