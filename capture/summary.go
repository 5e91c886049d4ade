package capture

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
)

// Summary is one line for a packet, as tcpdump -i any prints it: the
// time, where it was seen ("r1:eth0") and which way, then what it is.
//
//	12:00:00.000000001 r1:eth0 Out IP 10.0.0.1.5353 > 10.0.1.2.53: UDP, length 8
func Summary(p Packet, where string) string {
	dir := "In "
	if p.Outgoing {
		dir = "Out"
	}
	return fmt.Sprintf("%s %s %s %s", p.Time.Format("15:04:05.000000000"), where, dir, Describe(p.Data))
}

// Describe says what an Ethernet frame carries, in tcpdump's words.
func Describe(f []byte) string {
	if len(f) < 14 {
		return fmt.Sprintf("truncated frame, length %d", len(f))
	}
	typ := binary.BigEndian.Uint16(f[12:])
	b := f[14:]
	switch typ {
	case etherARP:
		return describeARP(b)
	case etherIP4:
		if len(b) < 20 || b[0]>>4 != 4 {
			return "IP truncated"
		}
		ihl := int(b[0]&0xf) * 4
		total := int(binary.BigEndian.Uint16(b[2:]))
		if ihl < 20 || len(b) < ihl {
			return "IP bad header length"
		}
		src, _ := netip.AddrFromSlice(b[12:16])
		dst, _ := netip.AddrFromSlice(b[16:20])
		frag := binary.BigEndian.Uint16(b[6:]) & 0x1fff
		payload := b[ihl:]
		plen := total - ihl
		if frag != 0 {
			return fmt.Sprintf("IP %s > %s: ip-proto-%d fragment, offset %d, length %d", src, dst, b[9], int(frag)*8, plen)
		}
		return describeL4("IP", b[9], src.String(), dst.String(), payload, plen)
	case etherIP6:
		if len(b) < 40 {
			return "IP6 truncated"
		}
		src, _ := netip.AddrFromSlice(b[8:24])
		dst, _ := netip.AddrFromSlice(b[24:40])
		return describeL4("IP6", b[6], src.String(), dst.String(), b[40:], int(binary.BigEndian.Uint16(b[4:])))
	}
	return fmt.Sprintf("ethertype 0x%04x, length %d", typ, len(f))
}

func describeARP(b []byte) string {
	if len(b) < 28 {
		return "ARP truncated"
	}
	spa, _ := netip.AddrFromSlice(b[14:18])
	tpa, _ := netip.AddrFromSlice(b[24:28])
	switch binary.BigEndian.Uint16(b[6:]) {
	case 1:
		return fmt.Sprintf("ARP, Request who-has %s tell %s, length %d", tpa, spa, len(b))
	case 2:
		return fmt.Sprintf("ARP, Reply %s is-at %s, length %d", spa, net.HardwareAddr(b[8:14]), len(b))
	}
	return fmt.Sprintf("ARP, op %d, length %d", binary.BigEndian.Uint16(b[6:]), len(b))
}

// describeL4 describes an IP packet's payload; plen is the payload length
// the IP header states.
func describeL4(ipName string, proto byte, src, dst string, p []byte, plen int) string {
	switch proto {
	case 6:
		if len(p) < 20 {
			break
		}
		off := int(p[12]>>4) * 4
		flags := tcpFlags(p[13])
		s := fmt.Sprintf("%s %s.%d > %s.%d: Flags [%s], seq %d", ipName, src, binary.BigEndian.Uint16(p), dst, binary.BigEndian.Uint16(p[2:]),
			flags, binary.BigEndian.Uint32(p[4:]))
		if p[13]&0x10 != 0 {
			s += fmt.Sprintf(", ack %d", binary.BigEndian.Uint32(p[8:]))
		}
		return s + fmt.Sprintf(", win %d, length %d", binary.BigEndian.Uint16(p[14:]), max(plen-off, 0))
	case 17:
		if len(p) < 8 {
			break
		}
		return fmt.Sprintf("%s %s.%d > %s.%d: UDP, length %d", ipName, src, binary.BigEndian.Uint16(p), dst, binary.BigEndian.Uint16(p[2:]), max(int(binary.BigEndian.Uint16(p[4:]))-8, 0))
	case 1:
		if len(p) < 8 {
			break
		}
		return fmt.Sprintf("%s %s > %s: ICMP %s, length %d", ipName, src, dst, icmpText(p, icmp4Names), plen)
	case 58:
		if len(p) < 8 {
			break
		}
		return fmt.Sprintf("%s %s > %s: ICMP6, %s, length %d", ipName, src, dst, icmpText(p, icmp6Names), plen)
	}
	return fmt.Sprintf("%s %s > %s: ip-proto-%d, length %d", ipName, src, dst, proto, plen)
}

var icmp4Names = map[byte]string{0: "echo reply", 3: "unreachable", 8: "echo request", 11: "time exceeded"}
var icmp6Names = map[byte]string{1: "destination unreachable", 3: "time exceeded", 128: "echo request", 129: "echo reply",
	133: "router solicitation", 134: "router advertisement", 135: "neighbor solicitation", 136: "neighbor advertisement"}

func icmpText(p []byte, names map[byte]string) string {
	name, ok := names[p[0]]
	if !ok {
		return fmt.Sprintf("type %d, code %d", p[0], p[1])
	}
	if p[0] == 0 || p[0] == 8 || p[0] == 128 || p[0] == 129 {
		return fmt.Sprintf("%s, id %d, seq %d", name, binary.BigEndian.Uint16(p[4:]), binary.BigEndian.Uint16(p[6:]))
	}
	return name
}

// tcpFlags writes TCP's flags as tcpdump does: S, F, R, P, U, E, W, and
// "." for ACK.
func tcpFlags(f byte) string {
	var b strings.Builder
	for _, x := range []struct {
		bit byte
		c   string
	}{{0x02, "S"}, {0x01, "F"}, {0x04, "R"}, {0x08, "P"}, {0x20, "U"}, {0x40, "E"}, {0x80, "W"}, {0x10, "."}} {
		if f&x.bit != 0 {
			b.WriteString(x.c)
		}
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}

// SummaryWriter is a Sink that prints one Summary line per packet.
type SummaryWriter struct {
	w      *bufio.Writer
	ifaces []Interface
}

// NewSummaryWriter prints to w; each line is flushed as it is written.
func NewSummaryWriter(w io.Writer, ifaces []Interface) *SummaryWriter {
	return &SummaryWriter{w: bufio.NewWriter(w), ifaces: ifaces}
}

// WritePacket prints the packet's line.
func (s *SummaryWriter) WritePacket(p Packet) error {
	where := "?"
	if p.Iface >= 0 && p.Iface < len(s.ifaces) {
		where = s.ifaces[p.Iface].Name
	}
	s.w.WriteString(Summary(p, where))
	s.w.WriteByte('\n')
	return s.w.Flush()
}

// Close flushes; the counters are the caller's to report.
func (s *SummaryWriter) Close([]Stats) error { return s.w.Flush() }
