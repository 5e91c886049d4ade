package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// readCPIO parses a newc archive (several, one after the other, as the
// kernel does) into name -> "mode rdev content".
func readCPIO(t *testing.T, b []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	off := 0
	align := func(n int) int { return (n + 3) &^ 3 }
	for off < len(b) {
		if b[off] == 0 { // padding between archives
			off++
			continue
		}
		require.Equal(t, "070701", string(b[off:off+6]), "magic at %d", off)
		field := func(i int) int {
			v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
			require.NoError(t, err)
			return int(v)
		}
		mode, size, major, minor, namesize := field(1), field(6), field(9), field(10), field(11)
		name := string(b[off+110 : off+110+namesize-1])
		data := off + align(110+namesize)
		off = align(data + size)
		if name == "TRAILER!!!" {
			continue
		}
		out[name] = fmt.Sprintf("%o %d:%d %s", mode, major, minor, b[data:data+size])
	}
	return out
}

func TestCPIO(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "x"), []byte("hello"), 0o750))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "td", "sub"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "td", "sub", "f.toml"), []byte("abc\n"), 0o644))
	require.NoError(t, os.Symlink("x", filepath.Join(dir, "td", "link")))

	var buf bytes.Buffer
	a := newCPIO(&buf)
	require.NoError(t, a.Dir("bin"))
	require.NoError(t, a.CharDev("dev/console", 5, 1))
	require.NoError(t, a.File("bin/x", filepath.Join(dir, "x")))
	require.NoError(t, a.Bytes("init", 0o755, []byte("#!/bin/sh\n")))
	require.NoError(t, a.Tree("p/testdata", filepath.Join(dir, "td")))
	require.NoError(t, a.Close())
	require.Zero(t, buf.Len()%512, "padded to 512 bytes")
	first := buf.Len()
	b := newCPIO(&buf) // a second archive after the first, as the run's is after the base
	require.NoError(t, b.Bytes("netemvm/args", 0o644, []byte("-test.count=1\n")))
	require.NoError(t, b.Close())
	require.Greater(t, buf.Len(), first)

	require.Equal(t, map[string]string{
		"bin":                   "40755 0:0 ",
		"dev/console":           "20600 5:1 ",
		"bin/x":                 "100750 0:0 hello",
		"init":                  "100755 0:0 #!/bin/sh\n",
		"p/testdata":            "40755 0:0 ",
		"p/testdata/sub":        "40755 0:0 ",
		"p/testdata/sub/f.toml": "100644 0:0 abc\n",
		"netemvm/args":          "100644 0:0 -test.count=1\n",
	}, readCPIO(t, buf.Bytes()), "the symbolic link is left out")
}

func TestModuleOrder(t *testing.T) {
	k := guestKernel{Version: "9.9.9-test", Modules: "testdata/modules/9.9.9-test"}
	for _, c := range []struct {
		ask  []string
		want []string // file names under Modules, in load order
		err  string
	}{
		{ask: []string{"veth"}, want: []string{"kernel/drivers/net/veth.ko"}},
		{ask: []string{"bridge"}, want: []string{"kernel/net/llc/llc.ko", "kernel/net/802/stp.ko", "kernel/net/bridge/bridge.ko"}},
		{ask: []string{"br_netfilter", "bridge", "llc"}, want: []string{"kernel/net/llc/llc.ko", "kernel/net/802/stp.ko", "kernel/net/bridge/bridge.ko", "kernel/net/bridge/br_netfilter.ko"}},
		{ask: []string{"ipv6"}, want: []string{"kernel/lib/crc-ccitt.ko", "kernel/net/ipv6/ipv6.ko"}},
		{ask: []string{"sch_netem", "sch_tbf", "sch_htb"}, want: []string{"kernel/net/sched/sch_netem.ko.xz"}},
		{ask: []string{"veth", "wireguard"}, err: "module wireguard: not in testdata/modules/9.9.9-test/modules.dep nor built in"},
	} {
		t.Run(strings.Join(c.ask, ","), func(t *testing.T) {
			got, err := moduleOrder(k, c.ask)
			if c.err != "" {
				require.EqualError(t, err, c.err)
				return
			}
			require.NoError(t, err)
			var want []string
			for _, w := range c.want {
				want = append(want, filepath.Join(k.Modules, w))
			}
			require.Equal(t, want, got)
		})
	}
}

func TestVersionLess(t *testing.T) {
	require.True(t, versionLess("6.1.0-9-amd64", "6.1.0-57-amd64"))
	require.False(t, versionLess("6.1.0-57-amd64", "6.1.0-9-amd64"))
	require.True(t, versionLess("6.1.0-57-amd64", "6.12.0-1-amd64"))
	require.False(t, versionLess("6.1.0-57-amd64", "6.1.0-57-amd64"))
}

func TestHasNetemTag(t *testing.T) {
	dir := t.TempDir()
	for i, c := range []struct {
		src  string
		want bool
	}{
		{"//go:build netem\n\npackage x\n", true},
		{"// Copyright\n\n//go:build linux && netem\n\npackage x\n", true},
		{"//go:build (linux && netem) || never\n\npackage x\n", true},
		{"//go:build !netem\n\npackage x\n", true}, // names it: built differently with the tag
		{"//go:build linux\n\npackage x\n", false},
		{"//go:build netemx\n\npackage x\n", false},
		{"package x\n\n//go:build netem\n", false}, // after the package clause: no constraint
		{"package x\n", false},
	} {
		f := filepath.Join(dir, fmt.Sprintf("f%d_test.go", i))
		require.NoError(t, os.WriteFile(f, []byte(c.src), 0o644))
		require.Equal(t, c.want, hasNetemTag(f), "%q", c.src)
	}
}

func TestVerdict(t *testing.T) {
	const (
		boot = "NETEMVM BOOTED kernel=6.1.0-57-amd64 uptime=2.46"
		done = "NETEMVM DONE uptime=7.9"
	)
	for _, c := range []struct {
		name  string
		lines []string
		rc    int
		bins  []string // nil: native
		code  int
		says  string
	}{
		{"vm pass", []string{"\x1b[2JBooting from ROM.." + boot, "=== RUN   TestA", "--- PASS: TestA (1.2s)", "    --- PASS: TestA/sub (0.1s)", "PASS", "NETEMVM EXIT a.test 0", done},
			0, []string{"a.test"}, 0, "PASS: 2 passed, 0 failed, 0 skipped"},
		{"vm fail", []string{boot, "--- PASS: TestA (1.2s)", "--- FAIL: TestB (0.1s)", "FAIL", "NETEMVM EXIT a.test 1", done},
			0, []string{"a.test"}, 1, "FAIL: 1 passed, 1 failed, 0 skipped"},
		{"vm skip", []string{boot, "--- SKIP: TestA (0.0s)", "--- PASS: TestB (0.1s)", "NETEMVM EXIT a.test 0", done},
			0, []string{"a.test"}, 1, "must not skip: TestA"},
		{"vm no test", []string{boot, "testing: warning: no tests to run", "PASS", "NETEMVM EXIT a.test 0", done},
			0, []string{"a.test"}, 1, "FAIL: no test ran"},
		{"vm panic after pass", []string{boot, "--- PASS: TestA (1.2s)", "panic: boom", "NETEMVM EXIT a.test 2", done},
			0, []string{"a.test"}, 1, "FAIL: 1 passed"},
		{"vm second binary missing", []string{boot, "--- PASS: TestA (1.2s)", "NETEMVM EXIT a.test 0", done},
			0, []string{"a.test", "b.test"}, 2, "b.test did not report"},
		{"vm cut short", []string{boot, "=== RUN   TestA"}, 0, []string{"a.test"}, 2, "stopped before its tests were done"},
		{"vm never booted", []string{"SeaBIOS", "Booting from ROM.."}, 0, []string{"a.test"}, 2, "never reached /init"},
		{"vm module", []string{boot, "NETEMVM INSMOD-FAILED sch_netem", done}, 0, []string{"a.test"}, 2, "modules sch_netem"},
		{"native pass", []string{"--- PASS: TestA (1.2s)", "ok  \tx\t1.3s"}, 0, nil, 0, "PASS: 1 passed"},
		{"native go test failed", []string{"--- PASS: TestA (1.2s)", "FAIL\tx [build failed]"}, 1, nil, 1, "FAIL: 1 passed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var ty tally
			for _, l := range c.lines {
				ty.line(l)
			}
			code, says := ty.verdict(c.rc, c.bins)
			require.Equal(t, c.code, code, says)
			require.Contains(t, says, c.says)
		})
	}
}

// TestHostHasNetem: the probe (a netem qdisc in a scratch namespace) agrees
// with the running kernel's configuration where that can be read.
func TestHostHasNetem(t *testing.T) {
	got, why := hostHasNetem()
	t.Logf("host has netem: %v (%s)", got, why)
	var config []byte
	if f, err := os.Open("/proc/config.gz"); err == nil {
		defer f.Close()
		if z, err := gzip.NewReader(f); err == nil {
			config, _ = io.ReadAll(z)
		}
	} else {
		config, _ = os.ReadFile("/boot/config-" + kernelRelease())
	}
	if config == nil {
		t.Logf("no kernel configuration to compare with")
		require.Equal(t, got, must(hostHasNetem()), "the probe gives the same answer twice")
		return
	}
	if os.Geteuid() != 0 {
		require.False(t, got, "without root no namespace can be made: the harness uses the VM")
		return
	}
	want := bytes.Contains(config, []byte("\nCONFIG_NET_SCH_NETEM=y")) || bytes.Contains(config, []byte("\nCONFIG_NET_SCH_NETEM=m"))
	require.Equal(t, want, got, why)
}

func must(b bool, _ string) bool { return b }
