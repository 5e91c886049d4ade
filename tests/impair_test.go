package tests

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/emulator/nslabtest"
	"github.com/nslab/nslab/impair"
	"github.com/nslab/nslab/topo"
	"github.com/stretchr/testify/require"
)

// impairLab is two hosts on a switch and a point-to-point pair; what this
// kernel can do without netem: a rate on the switch port, loss one way.
const impairLab = `
name = "imp"

[[nodes]]
name = "s1"
kind = "switch"

[[nodes]]
name = "a"

[[nodes]]
name = "b"

[[nodes]]
name = "c"

[[links]]
endpoints = ["a", "s1"]
impair = { rate = "10mbit" }

[[links]]
endpoints = ["b", "s1"]

[[links]]
endpoints = ["b", "c"]
[links.impair.from.b]
loss = "30%"
`

func startImpairLab(t *testing.T, body string) *emulator.Lab {
	t.Helper()
	return startTOML(t, "imp", body)
}

// startTOML builds the topology in body, written to a file as a user
// would, under a unique name starting with prefix.
func startTOML(t *testing.T, prefix, body string) *emulator.Lab {
	t.Helper()
	p := filepath.Join(t.TempDir(), prefix+".toml")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	top, err := topo.LoadFile(p)
	require.NoError(t, err)
	top.Name = uniqueName(prefix)
	return startLab(t, top, emptyOpts())
}

// A topology's impairments are on the links when Up returns, each
// direction on its sending end, and the kernel reads them back.
func TestImpairFromTopology(t *testing.T) {
	needsLoss(t)
	t.Parallel()
	lab := startImpairLab(t, impairLab)
	im, err := lab.Impairment("a", "s1")
	require.NoError(t, err)
	require.Equal(t, "a:eth0", im.A)
	require.True(t, strings.HasPrefix(im.Now.AB.String(), "rate 10Mbit"), im.Now.AB.String())
	require.True(t, strings.HasPrefix(im.Now.BA.String(), "rate 10Mbit"), "the switch port's direction too: %s", im.Now.BA)
	im, err = lab.Impairment("b", "c")
	require.NoError(t, err)
	require.Equal(t, "loss 30%", im.Now.AB.String())
	require.True(t, im.Now.BA.IsZero(), "c -> b is plain: %s", im.Now.BA)
	im, err = lab.Impairment("b", "s1")
	require.NoError(t, err)
	require.True(t, im.Now.AB.IsZero() && im.Now.BA.IsZero())

	// nslab status shows it on the interface that sends it.
	st, err := lab.Status()
	require.NoError(t, err)
	shown := map[string]string{}
	for _, n := range st.Nodes {
		for _, i := range n.Interfaces {
			if i.Impair != nil {
				shown[n.Name+":"+i.Name] = i.Impair.String()
			}
		}
	}
	require.Len(t, shown, 3, "%v", shown) // a:eth0, its switch port, b:eth1
	require.True(t, strings.HasPrefix(shown["a:eth0"], "rate 10Mbit"), "%v", shown)
	require.Equal(t, "loss 30%", shown["b:eth1"], "%v", shown)

	// tc, the kernel's own view, agrees: a TBF at the root of a's eth0.
	out, err := inNetns(netnsPath(lab.Plan.Node("a").Namespace), "tc", "qdisc", "show", "dev", "eth0").CombinedOutput()
	require.NoError(t, err, string(out))
	require.Contains(t, string(out), "rate 10Mbit")

	// 30 % loss from b to c: the echo requests die on the way out, the
	// replies come back whole. Within 4 sigma of 400 draws, once the
	// neighbours are known (ARP crosses the lossy link too).
	warmUp(t, lab, "b", "c")
	r, err := lab.Ping(context.Background(), "b", "c", emulator.PingOptions{Count: 400, Interval: 200 * time.Microsecond, Timeout: time.Second})
	require.NoError(t, err)
	n, p := 400.0, 0.3
	lost := n - float64(r.Received)
	sigma := math.Sqrt(n * p * (1 - p))
	require.InDelta(t, n*p, lost, 4*sigma, "lost %v of 400 at 30%%", lost)
}

// A run-time change reaches the next packet and rebuilds nothing; a zero
// direction gives the plain link back.
func TestImpairAtRunTime(t *testing.T) {
	needsLoss(t)
	t.Parallel()
	lab := startImpairLab(t, impairLab)
	all := impair.Direction{Loss: 100}
	_, err := lab.SetImpairment("b", "c", all)
	require.NoError(t, err)
	r, err := lab.Ping(context.Background(), "b", "c", emulator.PingOptions{Count: 20, Timeout: 300 * time.Millisecond})
	require.NoError(t, err)
	require.Zero(t, r.Received, "100%% loss drops every request: %s", r)

	_, err = lab.SetImpairment("b", "c", impair.Direction{})
	require.NoError(t, err)
	im, err := lab.Impairment("b", "c")
	require.NoError(t, err)
	require.True(t, im.Now.AB.IsZero() && im.Now.BA.IsZero(), "%+v", im.Now)
	r, err = lab.Ping(context.Background(), "b", "c", emulator.PingOptions{Count: 20, Timeout: time.Second})
	require.NoError(t, err)
	require.True(t, r.OK(), "plain again: %s", r)

	// One direction, named by its sender: c -> b takes loss, b -> c not.
	_, err = lab.SetImpairment("c", "b", all)
	require.NoError(t, err)
	im, err = lab.Impairment("b", "c")
	require.NoError(t, err)
	require.True(t, im.Now.AB.IsZero(), "%+v", im.Now)
	require.Equal(t, "loss 100%", im.Now.BA.String())

	// Bad values are refused as bad input and change nothing.
	_, err = lab.SetImpairment("b", "c", impair.Direction{Loss: 120})
	require.Error(t, err)
	require.True(t, topo.IsBadInput(err), "%v", err)
}

// What this kernel cannot do is refused before anything is built, with
// the kernel feature and what to install: never a lab that silently lacks
// its delay.
func TestImpairMissingKernelFeature(t *testing.T) {
	t.Parallel()
	k, err := impair.DetectKernel()
	require.NoError(t, err)
	if k.Netem {
		// A kernel with netem builds the lab: check that instead.
		lab := startImpairLab(t, strings.Replace(impairLab, `rate = "10mbit"`, `delay = "10ms"`, 1))
		im, err := lab.Impairment("a", "s1")
		require.NoError(t, err)
		require.Equal(t, "delay 10ms", im.Now.AB.String())
		return
	}
	p := filepath.Join(t.TempDir(), "imp.toml")
	require.NoError(t, os.WriteFile(p, []byte(strings.Replace(impairLab, `rate = "10mbit"`, `delay = "10ms"`, 1)), 0o644))
	name := uniqueName("impnetem")
	_, errs, code := cli(t, "", "up", p, "--name", name)
	require.Equal(t, 1, code, errs)
	require.Contains(t, errs, "sch_netem")
	require.Contains(t, errs, "a:eth0 -> s1")
	require.False(t, namespaceExists(name+".a"), "nothing was built")
}

// warmUp pings until one reply comes back, so that the neighbour entries
// exist before a measurement: ARP pays a link's loss and delay too.
func warmUp(t *testing.T, lab *emulator.Lab, from, to string) {
	t.Helper()
	for i := 0; i < 50; i++ {
		r, err := lab.Ping(context.Background(), from, to, emulator.PingOptions{Timeout: 200 * time.Millisecond})
		require.NoError(t, err)
		if r.OK() {
			return
		}
	}
	t.Fatalf("%s never reached %s in 50 tries", from, to)
}

// nslab link LAB A B show|set|clear, on a lab that is up: the change is
// read back from the kernel; bad words are bad input (exit 2), what the
// kernel lacks exits 1 and changes nothing.
func TestCLILinkImpair(t *testing.T) {
	needsLoss(t)
	t.Parallel()
	p := filepath.Join(t.TempDir(), "imp.toml")
	require.NoError(t, os.WriteFile(p, []byte(impairLab), 0o644))
	name := uniqueName("implink")
	_, errs, code := cli(t, "", "up", p, "--name", name)
	require.Equal(t, 0, code, errs)
	t.Cleanup(func() { cli(t, "", "down", name) })

	out, errs, code := cli(t, "", "link", name, "a", "s1", "show")
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "a:eth0 -> s1: rate 10Mbit")

	out, errs, code = cli(t, "", "link", name, "b", "s1", "set", "loss=5%", "--from", "b")
	require.Equal(t, 0, code, errs)
	require.Equal(t, "b:eth0 -> s1: loss 5%\ns1:b -> b: plain\n", out)

	out, errs, code = cli(t, "", "link", name, "b", "s1", "set", "rate=2mbit", "from.s1.rate=1mbit")
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "b:eth0 -> s1: rate 2Mbit")
	require.Contains(t, out, "s1:b -> b: rate 1Mbit")

	out, errs, code = cli(t, "", "link", name, "b", "s1", "clear")
	require.Equal(t, 0, code, errs)
	require.Equal(t, "b:eth0 -> s1: plain\ns1:b -> b: plain\n", out)

	for _, args := range [][]string{
		{"set", "rate=10mbits"},
		{"set", "loss=1%", "--from", "c"},
		{"set"},
		{"wobble"},
	} {
		_, errs, code = cli(t, "", append([]string{"link", name, "a", "s1"}, args...)...)
		require.Equal(t, 2, code, "%v: %s", args, errs)
	}
	k, err := impair.DetectKernel()
	require.NoError(t, err)
	if !k.Netem {
		_, errs, code = cli(t, "", "link", name, "a", "s1", "set", "delay=5ms")
		require.Equal(t, 1, code, errs)
		require.Contains(t, errs, "sch_netem")
		out, _, _ = cli(t, "", "link", name, "a", "s1", "show")
		require.Contains(t, out, "a:eth0 -> s1: rate 10Mbit", "a refused change changes nothing")
	}
}

// nslabtest's Impair sets one direction with the file's words, and a
// run-time change reaches the next probe.
func TestNslabtestImpair(t *testing.T) {
	needsLoss(t)
	t.Parallel()
	lab := nslabtest.Start(t, topo.NewBuilder("nimp").Host("a").Host("b").Link("a", "b").Topology())
	lab.RequireReachable("a", "b")
	lab.Impair("a", "b", "loss=100%")
	require.Equal(t, "loss 100%", lab.Impairment("a", "b").AB.String())
	lab.RequireUnreachable("a", "b")
	lab.Impair("a", "b") // plain again
	require.True(t, lab.Impairment("a", "b").AB.IsZero())
	lab.RequireReachable("a", "b")
}

// The host attachment takes the same table: from.host is the direction
// from the host into the lab, applied on the host's end (here in a
// namespace standing in for the host), the other on the lab's end.
func TestImpairHostAttachment(t *testing.T) {
	t.Parallel()
	hostPath := standInHost(t)
	ifname := "nt" + tag + "i"
	top := loadTopology(t, "lan.toml")
	top.Host = &topo.HostSpec{Node: "s1", Interface: ifname, Addresses: []string{"10.0.0.100/24"},
		Impair: &impair.Spec{From: map[string]impair.Params{
			topo.HostEnd: {Rate: "20mbit"},
			"s1":         {Rate: "30mbit"}, // not loss: a user namespace cannot have it without netem (needsLoss)
		}}}
	lab := startLab(t, top, emulator.Options{HostNetns: hostPath})
	out, err := inNetns(hostPath, "tc", "qdisc", "show", "dev", ifname).CombinedOutput()
	require.NoError(t, err, string(out))
	require.Contains(t, string(out), "rate 20Mbit", "the host's end shapes what the host sends")
	st, err := lab.Status()
	require.NoError(t, err)
	var port string
	for _, n := range st.Nodes {
		for _, i := range n.Interfaces {
			if n.Name == "s1" && i.Impair != nil {
				port = i.Name + " " + i.Impair.String()
			}
		}
	}
	require.True(t, strings.HasPrefix(port, lab.Plan.Host.Lab.Name+" rate 30Mbit "), "the lab's end takes the other direction: %q", port)
}
