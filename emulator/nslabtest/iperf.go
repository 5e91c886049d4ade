package nslabtest

import (
	"github.com/nslab/nslab/emulator"
)

// Iperf measures the throughput from one node to another (TCP for two
// seconds unless o says otherwise; emulator.Lab.Iperf). A probe that
// cannot run (a connection refused or timed out, bad options) fails the
// test; a UDP probe whose datagrams all got lost returns a result with no
// bytes.
//
//	r := lab.Iperf("client", "server", emulator.IperfOptions{Proto: "udp", Rate: 5e6})
//	t.Log(r) // client -> server (10.0.0.2:40123) udp: ... 0/893 datagrams lost ...
func (l *Lab) Iperf(from, to string, o emulator.IperfOptions) emulator.IperfResult {
	l.t.Helper()
	r, err := l.lab().Iperf(l.t.Context(), from, to, o)
	if err != nil {
		l.fatalf("nslabtest: iperf %s -> %s: %v", from, to, err)
	}
	return r
}

// RequireThroughput fails the test unless a TCP transfer from from to to
// gets a goodput of at least atLeast bits per second (over a link limited
// to rate R, expect about 0.96 R: the headers take the rest).
//
//	lab.RequireThroughput("client", "server", 9e6)
func (l *Lab) RequireThroughput(from, to string, atLeast float64) emulator.IperfResult {
	l.t.Helper()
	r := l.Iperf(from, to, emulator.IperfOptions{})
	if r.Goodput < atLeast {
		l.fatalf("nslabtest: %s should send to %s at %s or more, but: %s\n%s", from, to,
			emulator.FormatBitRate(atLeast), r, l.Diagnose(from))
	}
	return r
}
