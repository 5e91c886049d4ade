package nslabtest_test

import (
	"fmt"
	"testing"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/emulator/nslabtest"
	"github.com/nslab/nslab/topo"
)

// A capture runs while the test does; when the test fails, its pcapng
// file is kept and the log says where (-nslab.capture-dir or
// $NSLAB_CAPTURE_DIR name the directory). Stop ends it early, with the
// kernel's counters.
func ExampleLab_Capture() {
	runExample(func(t testing.TB) {
		b := topo.NewBuilder("cap").Switch("s1").Host("client").Host("server").
			Link("client", "s1").Link("server", "s1")
		lab := nslabtest.Start(t, b.Topology())
		c := lab.CaptureWith(emulator.CaptureOptions{Filter: "icmp"}, "client", "server")
		lab.RequireReachable("client", "server")
		res, err := c.Stop()
		fmt.Println(res.Packets, "packets,", res.Dropped(), "dropped,", err)
	})
	// Output:
	// 12 packets, 0 dropped, <nil>
}
