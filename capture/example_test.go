package capture_test

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/nslab/nslab/capture"
)

// A filter compiles to a classic BPF program the kernel runs on each
// packet; names resolve through the caller (a lab's nodes).
func ExampleCompile() {
	nodes := func(name string) ([]netip.Addr, bool) {
		if name == "h1" {
			return []netip.Addr{netip.MustParseAddr("10.0.0.1")}, true
		}
		return nil, false
	}
	f, err := capture.Compile("udp port 53 and host h1", capture.FilterOptions{Resolve: nodes})
	fmt.Println(len(f.Instructions()) > 0, err)
	_, err = capture.Compile("udp prot 53", capture.FilterOptions{})
	fmt.Println(err)
	// Output:
	// true <nil>
	// filter "udp prot 53": column 5: "prot": expected and, or, or the end of the filter (did you mean "port" or "proto"?)
}

// One line per packet, as tcpdump -i any prints it.
func ExampleSummary() {
	frame := []byte{
		2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00, // Ethernet, IPv4
		0x45, 0, 0, 36, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 1, 2, // IPv4, UDP
		0x14, 0xe9, 0, 53, 0, 16, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, // UDP 5353 -> 53, 8 bytes
	}
	p := capture.Packet{Time: time.Date(2026, 12, 7, 12, 0, 0, 1, time.UTC), Data: frame, Length: len(frame), Outgoing: true}
	fmt.Println(capture.Summary(p, "r1:eth0"))
	// Output:
	// 12:00:00.000000001 r1:eth0 Out IP 10.0.0.1.5353 > 10.0.1.2.53: UDP, length 8
}
