package tests

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"
	"github.com/nslab/nslab/capture"
	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/emulator/nslabtest"
	"github.com/nslab/nslab/scripting"
	"github.com/nslab/nslab/topo"
	"github.com/stretchr/testify/require"
)

// captureTopology is h1 and h2 on either side of router r1, and h3 on a
// third leg: r1's interfaces are eth0 (h1), eth1 (h2), eth2 (h3).
func captureTopology(name string) *topo.Topology {
	return topo.NewBuilder(name).Router("r1").Host("h1").Host("h2").Host("h3").
		Link("r1", "h1").Link("r1", "h2").Link("r1", "h3").AutoRoutes().Topology()
}

func pingN(t *testing.T, lab *emulator.Lab, from, to string, n int) {
	t.Helper()
	r, err := lab.Ping(context.Background(), from, to, emulator.PingOptions{Count: n, Interval: time.Millisecond, Timeout: time.Second})
	require.NoError(t, err)
	require.Equal(t, n, r.Received, "%s", r)
}

// lockedBuffer is a command's stderr, read while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// startCapture runs nslab capture ARGS in the background and returns once
// it says it is capturing (its sockets are open).
func startCapture(t *testing.T, args ...string) (cmd *exec.Cmd, stdout io.Reader, stderr *lockedBuffer) {
	t.Helper()
	cmd = exec.Command(nslabBin, append([]string{"capture"}, args...)...)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	stderr = &lockedBuffer{}
	cmd.Stderr = stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(stderr.String(), "\n"); time.Sleep(5 * time.Millisecond) {
		require.True(t, time.Now().Before(deadline), "nslab capture %v said nothing", args)
	}
	require.True(t, strings.HasPrefix(stderr.String(), "capturing on "), stderr.String())
	return cmd, out, stderr
}

// A capture file written by nslab capture -w, ended by Ctrl-C, opens in
// Wireshark's tshark with every interface named node:iface and the
// kernel's timestamps, in nanoseconds, within the time the packets were
// sent.
func TestCaptureFileInTshark(t *testing.T) {
	t.Parallel()
	lab := nslabtest.Start(t, captureTopology("captshark"))
	pingN(t, lab.Engine(), "h1", "h2", 1) // neighbours resolved
	file := filepath.Join(t.TempDir(), "r1.pcapng")
	cmd, _, stderr := startCapture(t, lab.Name(), "r1", "h1:eth0", "-w", file, "icmp")
	before := time.Now()
	pingN(t, lab.Engine(), "h1", "h2", 3)
	after := time.Now()
	require.NoError(t, cmd.Process.Signal(os.Interrupt))
	require.NoError(t, cmd.Wait(), "Ctrl-C ends a capture cleanly: %s", stderr)
	require.Contains(t, stderr.String(), "capturing on r1:eth0, r1:eth1, r1:eth2, h1:eth0 (filter \"icmp\")")
	require.Contains(t, stderr.String(), "18 packets captured, 18 received by filter, 0 dropped by kernel")

	out, err := exec.Command("tshark", "-r", file, "-T", "fields", "-e", "frame.interface_name", "-e", "frame.time_epoch", "-e", "icmp.type").Output()
	require.NoError(t, err, "tshark -r %s", file)
	perIface := map[string]int{}
	stamp := regexp.MustCompile(`^\d+\.\d{9}$`)
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "\t")
		require.Len(t, f, 3, line)
		perIface[f[0]]++
		require.Regexp(t, stamp, f[1], "nanosecond timestamps")
		ts := epochNanos(t, f[1])
		require.True(t, ts >= before.UnixNano() && ts <= after.UnixNano(), "%s is within the pings (%v .. %v)", f[1], before, after)
		require.Contains(t, []string{"8", "0"}, f[2], "echo request or reply: %s", line)
	}
	require.Equal(t, map[string]int{"h1:eth0": 6, "r1:eth0": 6, "r1:eth1": 6}, perIface, "%s", out)

	// Every interface has its block, the quiet one too, with the filter.
	f, err := os.Open(file)
	require.NoError(t, err)
	defer f.Close()
	r, err := pcapgo.NewNgReader(f, pcapgo.NgReaderOptions{})
	require.NoError(t, err)
	for {
		if _, _, err := r.ReadPacketData(); err != nil {
			require.ErrorIs(t, err, io.EOF)
			break
		}
	}
	var names []string
	for i := 0; i < r.NInterfaces(); i++ {
		in, err := r.Interface(i)
		require.NoError(t, err)
		names = append(names, in.Name)
		require.Equal(t, "icmp", in.Filter)
	}
	require.Equal(t, []string{"r1:eth0", "r1:eth1", "r1:eth2", "h1:eth0"}, names)
}

// epochNanos reads tshark's "seconds.nanoseconds" exactly.
func epochNanos(t *testing.T, s string) int64 {
	sec, frac, _ := strings.Cut(s, ".")
	n, ok := new(big.Int).SetString(sec+frac, 10)
	require.True(t, ok, s)
	return n.Int64()
}

// countSink counts what a capture writes, and keeps copies of the frames.
type countSink struct {
	mu     sync.Mutex
	frames [][]byte
	closed []capture.Stats
}

func (s *countSink) WritePacket(p capture.Packet) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frames = append(s.frames, append([]byte(nil), p.Data...))
	return nil
}

func (s *countSink) Close(st []capture.Stats) error {
	s.closed = st
	return nil
}

// The kernel runs the filter: the socket's own counter (PACKET_STATISTICS,
// which counts what the filter let through) shows only the matching
// packets, while an unfiltered capture of the same interface saw the
// others go by.
func TestCaptureKernelFilters(t *testing.T) {
	t.Parallel()
	lab := nslabtest.Start(t, captureTopology("capfilter"))
	e := lab.Engine()
	pingN(t, e, "h1", "h2", 1)
	pingN(t, e, "h1", "h3", 1)
	filtered, err := e.OpenCapture([]string{"h1:eth0"}, emulator.CaptureOptions{Filter: "icmp and host h2"})
	require.NoError(t, err)
	all, err := e.OpenCapture([]string{"h1"}, emulator.CaptureOptions{})
	require.NoError(t, err)
	var fs, as countSink
	filtered.Start(&fs)
	all.Start(&as)
	pingN(t, e, "h1", "h3", 5) // not taken: 10 packets
	pingN(t, e, "h1", "h2", 3) // taken: 6 packets
	fres, err := filtered.Stop()
	require.NoError(t, err)
	ares, err := all.Stop()
	require.NoError(t, err)
	require.Equal(t, 6, fres.Packets, "%s", fres)
	require.Equal(t, uint64(6), fres.Received(), "the kernel queued only what the filter took: %s", fres)
	require.Zero(t, fres.Dropped())
	require.GreaterOrEqual(t, ares.Packets, 16, "%s", ares)
	require.Equal(t, uint64(ares.Packets), ares.Received(), "%s", ares)
	f, err := e.CaptureFilter("icmp and host h2")
	require.NoError(t, err)
	for _, fr := range fs.frames {
		require.True(t, f.Match(fr), capture.Describe(fr))
	}
	require.Equal(t, fres.Stats, fs.closed, "the sink is closed with the kernel's counters")
}

// Bad input exits 2 with the reason, and writes nothing: an unknown lab,
// node or interface, a filter that does not parse (its column), a file
// that cannot be written. An existing file named by -w is left as it was.
func TestCaptureBadInput(t *testing.T) {
	t.Parallel()
	lab := nslabtest.Start(t, captureTopology("capbad"))
	dir := t.TempDir()
	existing := filepath.Join(dir, "keep.pcapng")
	require.NoError(t, os.WriteFile(existing, []byte("before"), 0o644))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"nosuchlab-capbad", "r1"}, `no lab "nosuchlab-capbad"`},
		{[]string{lab.Name(), "r7", "-w", existing}, `has no node "r7" (did you mean "r1"?)`},
		{[]string{lab.Name(), "r1:eth9", "-w", existing}, `node "r1" has no interface "eth9" (it has: eth0, eth1, eth2)`},
		{[]string{lab.Name(), "r1", "-w", existing, "udp", "port", "dns"}, `filter "udp port dns": column 10: "dns" is not a port number`},
		{[]string{lab.Name(), "r1", "-w", existing, "host", "h9"}, `column 6: "h9" is neither an address nor a node of the lab`},
		{[]string{lab.Name(), "r1", "-w", filepath.Join(dir, "no", "such", "dir.pcapng")}, "no such file or directory"},
		{[]string{lab.Name(), "r1", "-w", dir}, "is a directory"},
		{[]string{lab.Name()}, "usage: nslab capture LAB NODE[:IFACE]..."},
	} {
		_, stderr, code := cli(t, "", append([]string{"capture"}, tc.args...)...)
		require.Equal(t, 2, code, "%v: %s", tc.args, stderr)
		require.Contains(t, stderr, tc.want, "%v", tc.args)
		data, err := os.ReadFile(existing)
		require.NoError(t, err)
		require.Equal(t, "before", string(data), "%v changed the file", tc.args)
	}
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, ents, 1, "nothing but the existing file")
}

// Without -w, a line per packet as tcpdump prints; -c stops the capture by
// itself.
func TestCaptureSummaryLines(t *testing.T) {
	t.Parallel()
	lab := nslabtest.Start(t, captureTopology("capsum"))
	pingN(t, lab.Engine(), "h1", "h2", 1)
	cmd, stdout, stderr := startCapture(t, lab.Name(), "h1", "-c", "4", "icmp")
	var lines []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
	}()
	pingN(t, lab.Engine(), "h1", "h2", 3)
	<-done
	require.NoError(t, cmd.Wait(), "-c 4 ends the capture: %s", stderr)
	require.Len(t, lines, 4, "%q", lines)
	h1, _ := lab.Plan().Node("h1").FirstAddr(4)
	h2, _ := lab.Plan().Node("h2").FirstAddr(4)
	line := regexp.MustCompile(`^\d\d:\d\d:\d\d\.\d{9} h1:eth0 (Out|In ) IP (\S+) > (\S+): ICMP echo (request|reply), id \d+, seq \d+, length 64$`)
	for i, l := range lines {
		m := line.FindStringSubmatch(l)
		require.NotNil(t, m, l)
		if i%2 == 0 {
			require.Equal(t, []string{"Out", h1.String(), h2.String(), "request"}, []string{m[1], m[2], m[3], m[4]}, l)
		} else {
			require.Equal(t, []string{"In ", h2.String(), h1.String(), "reply"}, []string{m[1], m[2], m[3], m[4]}, l)
		}
	}
	require.Contains(t, stderr.String(), "4 packets captured")
}

// -w - writes pcapng to stdout packet by packet, as a live reader
// (wireshark -k -i -) needs: each packet can be read while the capture
// still runs.
func TestCaptureLiveStdout(t *testing.T) {
	t.Parallel()
	lab := nslabtest.Start(t, captureTopology("caplive"))
	pingN(t, lab.Engine(), "h2", "h3", 1)
	cmd, stdout, stderr := startCapture(t, lab.Name(), "r1:eth1", "r1:eth2", "-w", "-")
	r, err := pcapgo.NewNgReader(stdout, pcapgo.NgReaderOptions{})
	require.NoError(t, err, "the header comes at once")
	pingN(t, lab.Engine(), "h2", "h3", 1)
	seen := map[int]int{}
	for len(seen) < 2 || seen[0] < 2 || seen[1] < 2 {
		data, ci, err := r.ReadPacketData()
		require.NoError(t, err)
		if strings.Contains(capture.Describe(data), "ICMP echo") {
			seen[ci.InterfaceIndex]++
		}
	}
	require.NoError(t, cmd.Process.Signal(os.Interrupt))
	io.Copy(io.Discard, stdout)
	require.NoError(t, cmd.Wait(), "%s", stderr)
	in, err := r.Interface(1)
	require.NoError(t, err)
	require.Equal(t, "r1:eth2", in.Name)
}

// nslabtest's Capture keeps the pcapng of a failed test and says where; a
// passing test leaves no file.
func TestCaptureNslabtest(t *testing.T) {
	if os.Getenv("NSLAB_CHILD") == "capture-fails" {
		lab := nslabtest.Start(t, captureTopology("capkeep"))
		lab.Capture("r1:eth0", "h2")
		lab.RequireReachable("h1", "h2")
		t.Error("the test fails after its pings")
		return
	}
	t.Parallel()
	var path string
	t.Run("passes", func(t *testing.T) {
		lab := nslabtest.Start(t, captureTopology("cappass"))
		c := lab.Capture("r1")
		path = c.Path()
		lab.RequireReachable("h1", "h2")
		_, err := os.Stat(path)
		require.NoError(t, err)
	})
	_, err := os.Stat(path)
	require.True(t, os.IsNotExist(err), "a passing test's capture is removed: %s", path)

	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCaptureNslabtest$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "NSLAB_CHILD=capture-fails", nslabtest.CaptureDirEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	require.Error(t, err, "%s", out)
	m := regexp.MustCompile(`nslabtest: capture of r1:eth0, h2:eth0 kept in (\S+\.pcapng) \((\d+) packets captured`).FindSubmatch(out)
	require.NotNil(t, m, "%s", out)
	require.Equal(t, dir, filepath.Dir(string(m[1])))
	f, err := os.Open(string(m[1]))
	require.NoError(t, err)
	defer f.Close()
	r, err := pcapgo.NewNgReader(f, pcapgo.NgReaderOptions{})
	require.NoError(t, err)
	var descr []string
	for {
		data, _, err := r.ReadPacketData()
		if err != nil {
			require.ErrorIs(t, err, io.EOF)
			break
		}
		descr = append(descr, capture.Describe(data))
	}
	sort.Strings(descr)
	require.GreaterOrEqual(t, len(descr), 12, "h1 -> h2: 3 requests and replies, each on r1:eth0 and h2:eth0: %q", descr)
	require.Equal(t, string(m[2]), strconvItoa(len(descr)))
}

func strconvItoa(n int) string { return big.NewInt(int64(n)).String() }

// In a script, capture runs in the background until stop: into a pcapng
// file with -w, or as lines shown at stop; a filter that does not parse is
// reported before anything runs, with its column in the line.
func TestCaptureScriptWord(t *testing.T) {
	t.Parallel()
	lab := nslabtest.Start(t, captureTopology("capscript"))
	file := filepath.Join(t.TempDir(), "s.pcapng")
	sc, err := scripting.Parse("cap.nsl", "capture r1:eth1 h2 icmp -w "+file+"\ncapture h1 icmp and host h2\nreach h1 h2\nstop\n", 1)
	require.NoError(t, err)
	var buf strings.Builder
	res, err := scripting.Run(context.Background(), lab.Engine(), lab.Plan(), sc, scripting.Options{Out: &buf})
	require.NoError(t, err)
	output := buf.String()
	require.True(t, res.OK(), "%s", output)
	require.Contains(t, output, "capturing on r1:eth1, h2:eth0 (filter \"icmp\"), to "+file)
	require.Contains(t, output, "r1:eth1, h2:eth0: 4 packets captured, 4 received by filter, 0 dropped by kernel in "+file)
	require.Contains(t, output, "h1:eth0: 2 packets captured")
	require.Regexp(t, `h1:eth0 Out IP \S+ > \S+: ICMP echo request`, output)
	out, err := exec.Command("tshark", "-r", file, "-T", "fields", "-e", "frame.interface_name").Output()
	require.NoError(t, err)
	names := strings.Fields(string(out))
	sort.Strings(names)
	require.Equal(t, []string{"h2:eth0", "h2:eth0", "r1:eth1", "r1:eth1"}, names)

	s, err := scripting.Parse("bad.nsl", "reach h1 h2\ncapture h1 udp prot 5\ncapture r1:eth7\n", 1)
	require.NoError(t, err)
	err = scripting.Check(s, lab.Plan(), nil)
	require.ErrorContains(t, err, `bad.nsl:2: capture h1 udp prot 5: column 16: filter "udp prot 5": "prot": expected and, or`)
	require.ErrorContains(t, err, `bad.nsl:3: capture r1:eth7: node "r1" has no interface "eth7"`)
}

// A short snap length keeps the first bytes of each packet and its length
// on the wire: the kernel trims what it queues (the filter returns the snap
// length), and PACKET_AUXDATA says how long the packet was.
func TestCaptureSnapLen(t *testing.T) {
	t.Parallel()
	lab := nslabtest.Start(t, captureTopology("capsnap"))
	e := lab.Engine()
	pingN(t, e, "h1", "h2", 1)
	for _, tc := range []struct {
		filter string
		snap   int
	}{{"", 60}, {"icmp", 60}, {"icmp", 0}} {
		c, err := e.OpenCapture([]string{"h1:eth0"}, emulator.CaptureOptions{Filter: tc.filter, SnapLen: tc.snap})
		require.NoError(t, err)
		var s snapSink
		c.Start(&s)
		pingN(t, e, "h1", "h2", 2)
		res, err := c.Stop()
		require.NoError(t, err)
		require.GreaterOrEqual(t, res.Packets, 4, "%+v: %s", tc, res)
		want := 98 // an ICMP echo of 56 bytes in a frame
		if tc.snap > 0 {
			want = tc.snap
		}
		for _, p := range s.pkts {
			if strings.Contains(p.what, "ICMP") {
				require.Equal(t, [2]int{want, 98}, [2]int{p.capLen, p.length}, "%+v: %s", tc, p.what)
			}
		}
	}
}

type snapPacket struct {
	capLen, length int
	what           string
}

type snapSink struct{ pkts []snapPacket }

func (s *snapSink) WritePacket(p capture.Packet) error {
	s.pkts = append(s.pkts, snapPacket{len(p.Data), p.Length, capture.Describe(p.Data)})
	return nil
}

func (s *snapSink) Close([]capture.Stats) error { return nil }

// captureTOML is a lab whose file asks nslab run for a capture.
const captureTOML = `name = "%s"
routing = "auto"

[[nodes]]
name = "r1"
kind = "router"
[[nodes]]
name = "h1"
[[nodes]]
name = "h2"

[[links]]
endpoints = ["h1", "r1"]
[[links]]
endpoints = ["h2", "r1"]

[capture]
dir = "%s"
interfaces = %s
filter = "%s"
`

// A topology's [capture] makes nslab run write DIR/LAB.pcapng while the
// lab runs (here: its pingall); a bad table is bad input at its keys'
// file:line:col, and nothing is built.
func TestCaptureTopologyFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	name := uniqueName("captopo")
	file := filepath.Join(dir, "lab.toml")
	require.NoError(t, os.WriteFile(file, []byte(fmt.Sprintf(captureTOML, name, dir, `["r1", "h1:eth0"]`, "icmp")), 0o644))
	_, stderr, code := cli(t, "", "run", file)
	require.Equal(t, 0, code, stderr)
	out := filepath.Join(dir, name+".pcapng")
	require.Contains(t, stderr, "capturing on r1:eth0, r1:eth1, h1:eth0 (filter \"icmp\"), to "+out)
	require.Regexp(t, `capture: \d+ packets captured, \d+ received by filter, 0 dropped by kernel, in `+regexp.QuoteMeta(out), stderr)
	tsh, err := exec.Command("tshark", "-r", out, "-T", "fields", "-e", "frame.interface_name").Output()
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, n := range strings.Fields(string(tsh)) {
		seen[n] = true
	}
	require.Equal(t, map[string]bool{"r1:eth0": true, "r1:eth1": true, "h1:eth0": true}, seen)

	bad := filepath.Join(dir, "bad.toml")
	require.NoError(t, os.WriteFile(bad, []byte(fmt.Sprintf(captureTOML, name, filepath.Join(dir, "nowhere"), `["r1", "h1:eth7"]`, "icmp and prot 5")), 0o644))
	for _, cmd := range []string{"run", "up", "validate"} {
		_, stderr, code = cli(t, "", cmd, bad)
		require.Equal(t, 2, code, stderr)
		require.Contains(t, stderr, bad+":18:1: capture.dir: directory "+filepath.Join(dir, "nowhere"))
		require.Contains(t, stderr, bad+`:19:21: capture.interfaces[1]: node "h1" has no interface "eth7" (it has: eth0)`)
		require.Contains(t, stderr, bad+`:20:1: capture.filter: filter "icmp and prot 5": column 10: "prot" is not a word of the filter language`)
		require.False(t, namespaceExists(name+".r1"), "nothing is built")
	}
}

// A lab taken down under a capture ends it, with the counts and the
// reason (exit 1), instead of leaving it to wait on namespaces only its
// sockets keep.
func TestCaptureLabTakenDown(t *testing.T) {
	t.Parallel()
	name := uniqueName("capdown")
	_, stderr, code := cli(t, "", "up", "--topo", "single,2", "--name", name)
	require.Equal(t, 0, code, stderr)
	cmd, _, capErr := startCapture(t, name, "h1")
	_, stderr, code = cli(t, "", "down", name)
	require.Equal(t, 0, code, stderr)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee)
		require.Equal(t, 1, ee.ExitCode(), capErr.String())
	case <-time.After(5 * time.Second):
		t.Fatalf("the capture goes on after its lab was taken down: %s", capErr)
	}
	require.Contains(t, capErr.String(), "packets captured")
	require.Contains(t, capErr.String(), fmt.Sprintf("lab %q was taken down: the capture ended", name))
}

// A capture leaves nothing open once its test ends: no socket, no
// goroutine, no file. Not parallel: the counts are of the whole process.
func TestCaptureLeavesNothingOpen(t *testing.T) {
	requireNothingLeftOpen(t, func(t *testing.T) {
		lab := nslabtest.Start(t, captureTopology("capleak"))
		lab.Capture("r1", "h1")
		c := lab.CaptureWith(emulator.CaptureOptions{Filter: "icmp"}, "h2")
		lab.RequireReachable("h1", "h2")
		_, err := c.Stop()
		require.NoError(t, err)
		lab.RequireReachable("h1", "h3")
	})
}
