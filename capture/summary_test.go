package capture

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Each kind of packet is described as tcpdump describes it.
func TestDescribe(t *testing.T) {
	syn := ports(1234, 80, 20)
	syn[4], syn[7] = 0, 7 // seq 7
	syn[12] = 5 << 4      // header length 20
	syn[13] = 0x02        // SYN
	syn[14], syn[15] = 0xfa, 0xf0
	ack := append([]byte(nil), syn...)
	ack[13] = 0x18 // PSH, ACK
	ack[11] = 9    // ack 9
	for _, tc := range []struct {
		name  string
		frame []byte
		want  string
	}{
		{"udp4", packets["udp4"], "IP 10.0.0.1.5353 > 10.0.1.2.53: UDP, length 0"},
		{"icmp4", packets["icmp4"], "IP 10.0.0.1 > 10.0.0.2: ICMP echo request, id 1, seq 1, length 8"},
		{"icmp6", packets["icmp6"], "IP6 fd00::1 > fd00::2: ICMP6, echo request, id 1, seq 1, length 8"},
		{"tcp6", packets["tcp6"], "IP6 fd00::1.1234 > fd00::2.80: Flags [none], seq 0, win 0, length 20"},
		{"arp", packets["arp"], "ARP, Request who-has 10.0.0.2 tell 10.0.0.1, length 28"},
		{"frag4", packets["frag4"], "IP 10.0.0.1 > 10.0.0.2: ip-proto-17 fragment, offset 1480, length 8"},
		{"opts4", packets["opts4"], "IP 10.0.0.3.22 > 10.0.0.1.443: Flags [none], seq 0, win 0, length 20"},
		{"syn", ip4(6, "10.0.0.1", "10.0.0.2", 5, 0, syn), "IP 10.0.0.1.1234 > 10.0.0.2.80: Flags [S], seq 7, win 64240, length 0"},
		{"psh-ack", ip4(6, "10.0.0.1", "10.0.0.2", 5, 0, append(ack, "hello"...)), "IP 10.0.0.1.1234 > 10.0.0.2.80: Flags [P.], seq 7, ack 9, win 64240, length 5"},
		{"short", []byte{1, 2, 3}, "truncated frame, length 3"},
		{"other", ether(0x88cc, make([]byte, 10)), "ethertype 0x88cc, length 24"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, Describe(tc.frame))
		})
	}
	p := Packet{Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Data: packets["arp"]}
	require.Equal(t, "03:04:05.000000006 s1:h1 In  ARP, Request who-has 10.0.0.2 tell 10.0.0.1, length 28", Summary(p, "s1:h1"))
}
