package tests

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/nslab/nslab/capture"
	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/topo"
	"github.com/stretchr/testify/require"
)

// captureBenchTime is how long each TCP stream of the capture benchmark
// runs.
const captureBenchTime = time.Second

// BenchmarkCaptureTCPStream measures what capturing costs a TCP stream at
// full veth speed between two nodes, and whether the capture keeps up:
// each iteration runs the in-process iperf from a to b (TCP, one second)
// once plain and once under each capture of a:eth0 (both directions: the
// data and the ACKs), in turn: written as pcapng to a file, written to
// nowhere (the sockets and the format alone), and headers only (-s 128)
// to a file; all at the default buffer. It reports the median goodputs,
// each capture's cost in percent of the plain stream, and the kernel's
// drops per run (the capture's own count, PACKET_STATISTICS) against the
// packets its filter took.
func BenchmarkCaptureTCPStream(b *testing.B) {
	top := topo.NewBuilder(uniqueName("capbench")).Host("a").Host("b").Link("a", "b").Topology()
	lab := startLab(b, top, emptyOpts())
	ctx := context.Background()
	// Warm up: neighbours, the first connection.
	_, err := lab.Iperf(ctx, "a", "b", emulator.IperfOptions{Duration: 200 * time.Millisecond})
	require.NoError(b, err)
	dir := b.TempDir()

	type variant struct {
		name    string
		snap    int
		file    bool
		goodput []float64
		drops   uint64
		taken   uint64
	}
	vs := []*variant{{name: "plain"}, {name: "file", file: true}, {name: "discard"}, {name: "headers", snap: 128, file: true}}
	run := func(v *variant) {
		var c *emulator.Capture
		var f *os.File
		if v.name != "plain" {
			c, err = lab.OpenCapture([]string{"a:eth0"}, emulator.CaptureOptions{SnapLen: v.snap, BufferSize: benchBuffer()})
			require.NoError(b, err)
			var w io.Writer = io.Discard
			if v.file {
				f, err = os.Create(filepath.Join(dir, v.name+".pcapng"))
				require.NoError(b, err)
				w = f
			}
			sink, err := capture.NewPcapngWriter(w, c.Interfaces, false)
			require.NoError(b, err)
			c.Start(sink)
		}
		r, err := lab.Iperf(ctx, "a", "b", emulator.IperfOptions{Duration: captureBenchTime})
		require.NoError(b, err)
		v.goodput = append(v.goodput, r.Goodput)
		if c != nil {
			res, err := c.Stop()
			require.NoError(b, err)
			v.drops += res.Dropped()
			v.taken += res.Received()
		}
		if f != nil {
			require.NoError(b, f.Close())
			require.NoError(b, os.Remove(f.Name()))
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, v := range vs {
			run(v)
		}
	}
	b.StopTimer()
	plain := median(vs[0].goodput)
	b.ReportMetric(plain/1e9, "plain-Gbit/s")
	for _, v := range vs[1:] {
		g := median(v.goodput)
		b.ReportMetric(g/1e9, v.name+"-Gbit/s")
		b.ReportMetric(100*(plain-g)/plain, v.name+"-cost-%")
		b.ReportMetric(float64(v.drops)/float64(b.N), v.name+"-drops/run")
		b.ReportMetric(float64(v.taken)/float64(b.N), v.name+"-pkts/run")
	}
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// benchBuffer is NSLAB_BENCH_CAPTURE_BUFFER (bytes), to try other buffer
// sizes than the default.
func benchBuffer() int {
	n, _ := strconv.Atoi(os.Getenv("NSLAB_BENCH_CAPTURE_BUFFER"))
	return n
}
