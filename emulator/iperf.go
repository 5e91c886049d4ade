package emulator

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/nslab/nslab/topo"
)

// IperfOptions tune a throughput probe (Lab.Iperf). The zero value sends
// TCP for two seconds.
type IperfOptions struct {
	// Proto is "tcp" (the default) or "udp".
	Proto string
	// Rate is the rate UDP sends at, in bits per second of payload, as
	// iperf's -b counts it (default 1 Mbit/s, iperf's). TCP takes what the
	// path gives and refuses a rate.
	Rate uint64
	// Duration is how long the measurement runs (default 2s: long enough
	// for a steady rate on a lab's sub-millisecond paths, short enough for
	// a test; iperf's default is 10s, Mininet's 5s).
	Duration time.Duration
	// Port is the receiver's port (default 0: a free one, chosen by the
	// receiving node's kernel).
	Port int
	// Family is 4 or 6; 0 picks IPv4 when both nodes have it.
	Family int
}

// DefaultIperfDuration and DefaultIperfRate are IperfOptions' defaults.
const (
	DefaultIperfDuration = 2 * time.Second
	DefaultIperfRate     = 1_000_000
	maxIperfDuration     = time.Hour
)

// UDPPayload is the size of each datagram a UDP throughput probe sends: it
// fits an IPv6 packet in a 1,500-byte MTU (1,400 + 8 + 40).
const UDPPayload = 1400

func (o IperfOptions) withDefaults() (IperfOptions, error) {
	switch o.Proto {
	case "":
		o.Proto = "tcp"
	case "tcp", "udp":
	default:
		return o, topo.BadInput(fmt.Errorf("iperf: protocol %q is not tcp or udp", o.Proto))
	}
	if o.Duration < 0 || o.Duration > maxIperfDuration {
		return o, topo.BadInput(fmt.Errorf("iperf: time %s is outside 0-1h (0 is the default, %s)", o.Duration, DefaultIperfDuration))
	}
	if o.Duration == 0 {
		o.Duration = DefaultIperfDuration
	}
	if o.Port < 0 || o.Port > 65535 {
		return o, topo.BadInput(fmt.Errorf("iperf: port %d is outside 1-65535 (0: any free port)", o.Port))
	}
	if o.Family != 0 && o.Family != 4 && o.Family != 6 {
		return o, topo.BadInput(fmt.Errorf("iperf: family %d is not 4 or 6", o.Family))
	}
	if o.Proto == "tcp" && o.Rate != 0 {
		return o, topo.BadInput(fmt.Errorf("iperf: a rate paces UDP only: TCP sends as fast as the path takes (impair the link to limit it)"))
	}
	if o.Proto == "udp" && o.Rate == 0 {
		o.Rate = DefaultIperfRate
	}
	return o, nil
}

// IperfResult is what a throughput probe measured, at the receiver.
type IperfResult struct {
	From   string         `json:"from"`
	To     string         `json:"to"`
	Proto  string         `json:"proto"`
	Target netip.AddrPort `json:"target"` // where the receiver listened
	// Bytes is the payload the receiver got in Duration.
	Bytes uint64 `json:"bytes"`
	// Duration is the time the receiver measured over: from the
	// connection (TCP) or the first datagram sent (UDP) to the end.
	Duration time.Duration `json:"duration_ns"`
	// Goodput is Bytes in bits per second over Duration: what the
	// application got, without the headers of any layer.
	Goodput float64 `json:"goodput_bps"`

	// TCP: what the sender's kernel counted (TCP_INFO) at the end.
	Retransmits uint32        `json:"retransmits,omitempty"` // segments retransmitted
	RTT         time.Duration `json:"rtt_ns,omitempty"`      // smoothed round-trip time

	// UDP: the rate asked, the datagrams sent and received, and RFC
	// 3550's interarrival jitter, from the sender's timestamps.
	Rate     uint64        `json:"rate_bps,omitempty"`
	Sent     int           `json:"sent,omitempty"`
	Received int           `json:"received,omitempty"`
	Lost     int           `json:"lost,omitempty"`
	LossPct  float64       `json:"loss_pct,omitempty"` // 0..100
	Jitter   time.Duration `json:"jitter_ns,omitempty"`
}

// OK reports whether any data got through.
func (r IperfResult) OK() bool { return r.Bytes > 0 }

// String is one line, as iperf's summary: "a -> b (10.0.0.2:40123) tcp:
// 2.39 MBytes in 2.00s = 9.56 Mbit/s, 0 retransmits, rtt 1.204ms".
func (r IperfResult) String() string {
	head := fmt.Sprintf("%s -> %s (%s) %s: %s in %.2fs = %s", r.From, r.To, r.Target, r.Proto,
		FormatBytes(r.Bytes), r.Duration.Seconds(), FormatBitRate(r.Goodput))
	if r.Proto == "udp" {
		return head + fmt.Sprintf(" (sent at %s), %d/%d datagrams lost (%.2f%%), jitter %s",
			FormatBitRate(float64(r.Rate)), r.Lost, r.Sent, r.LossPct, fmtDur(r.Jitter))
	}
	return head + fmt.Sprintf(", %d retransmits, rtt %s", r.Retransmits, fmtDur(r.RTT))
}

// FormatBitRate writes bits per second as iperf does: 9.56 Mbit/s.
func FormatBitRate(bps float64) string {
	for _, u := range []struct {
		name string
		n    float64
	}{{"Gbit/s", 1e9}, {"Mbit/s", 1e6}, {"Kbit/s", 1e3}} {
		if bps >= u.n {
			return fmt.Sprintf("%.2f %s", bps/u.n, u.name)
		}
	}
	return fmt.Sprintf("%.0f bit/s", bps)
}

// FormatBytes writes a byte count as iperf does, in powers of 1024:
// 2.39 MBytes.
func FormatBytes(b uint64) string {
	for _, u := range []struct {
		name string
		n    float64
	}{{"GBytes", 1 << 30}, {"MBytes", 1 << 20}, {"KBytes", 1 << 10}} {
		if float64(b) >= u.n {
			return fmt.Sprintf("%.2f %s", float64(b)/u.n, u.name)
		}
	}
	return fmt.Sprintf("%d Bytes", b)
}

// jitter is RFC 3550's interarrival jitter (section 6.4.1): for each
// datagram, the change in its transit time against the previous one's,
// smoothed with a gain of 1/16.
type jitter struct {
	prev time.Duration // the previous datagram's transit time
	have bool
	j    float64 // nanoseconds
}

func (j *jitter) add(transit time.Duration) {
	if j.have {
		d := float64(transit - j.prev)
		if d < 0 {
			d = -d
		}
		j.j += (d - j.j) / 16
	}
	j.prev, j.have = transit, true
}

func (j *jitter) value() time.Duration { return time.Duration(j.j) }
