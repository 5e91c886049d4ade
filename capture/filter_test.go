package capture

import (
	"bufio"
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Frames built byte by byte, so that the compiler is checked against the
// wire format rather than against another library's idea of it.

func ether(typ uint16, payload []byte) []byte {
	b := make([]byte, 14, 14+len(payload))
	copy(b[0:6], []byte{2, 0, 0, 0, 0, 2})
	copy(b[6:12], []byte{2, 0, 0, 0, 0, 1})
	binary.BigEndian.PutUint16(b[12:], typ)
	return append(b, payload...)
}

// ip4 is an IPv4 header with ihl 32-bit words (5: no options) and the
// fragment offset frag (in 8-byte units).
func ip4(proto byte, src, dst string, ihl int, frag uint16, payload []byte) []byte {
	h := make([]byte, 4*ihl)
	h[0] = 0x40 | byte(ihl)
	binary.BigEndian.PutUint16(h[2:], uint16(len(h)+len(payload)))
	binary.BigEndian.PutUint16(h[6:], frag)
	h[8] = 64
	h[9] = proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(h[12:], s[:])
	copy(h[16:], d[:])
	return ether(etherIP4, append(h, payload...))
}

func ip6(next byte, src, dst string, payload []byte) []byte {
	h := make([]byte, 40)
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(payload)))
	h[6] = next
	h[7] = 64
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	return ether(etherIP6, append(h, payload...))
}

func ports(sport, dport uint16, n int) []byte {
	b := make([]byte, n)
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	return b
}

func arpRequest(spa, tpa string) []byte {
	b := make([]byte, 28)
	binary.BigEndian.PutUint16(b[0:], 1)
	binary.BigEndian.PutUint16(b[2:], etherIP4)
	b[4], b[5] = 6, 4
	binary.BigEndian.PutUint16(b[6:], 1)
	copy(b[8:14], []byte{2, 0, 0, 0, 0, 1})
	s, t := netip.MustParseAddr(spa).As4(), netip.MustParseAddr(tpa).As4()
	copy(b[14:], s[:])
	copy(b[24:], t[:])
	return ether(etherARP, b)
}

// packets are the frames the fixtures name.
var packets = map[string][]byte{
	"tcp4":  ip4(6, "10.0.0.1", "10.0.0.2", 5, 0, ports(1234, 80, 20)),
	"udp4":  ip4(17, "10.0.0.1", "10.0.1.2", 5, 0, ports(5353, 53, 8)),
	"icmp4": ip4(1, "10.0.0.1", "10.0.0.2", 5, 0, []byte{8, 0, 0, 0, 0, 1, 0, 1}),
	"tcp6":  ip6(6, "fd00::1", "fd00::2", ports(1234, 80, 20)),
	"udp6":  ip6(17, "fd00::1", "fd00:1::2", ports(5353, 53, 8)),
	"icmp6": ip6(58, "fd00::1", "fd00::2", []byte{128, 0, 0, 0, 0, 1, 0, 1}),
	"arp":   arpRequest("10.0.0.1", "10.0.0.2"),
	// A later fragment of a UDP datagram, whose payload happens to read
	// as ports 1234 -> 53: no port filter may take it.
	"frag4": ip4(17, "10.0.0.1", "10.0.0.2", 5, 185, ports(1234, 53, 8)),
	// IPv4 with options: its ports sit past a 24-byte header.
	"opts4": ip4(6, "10.0.0.3", "10.0.0.1", 6, 0, ports(22, 443, 20)),
}

// labHosts resolves the node names of the fixtures.
func labHosts(name string) ([]netip.Addr, bool) {
	switch name {
	case "h1":
		return []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fd00::1")}, true
	case "h2":
		return []netip.Addr{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("fd00::2")}, true
	case "h3":
		return []netip.Addr{netip.MustParseAddr("10.0.0.3")}, true
	}
	return nil, false
}

// fixture reads FILTER => WANT lines.
func fixture(t *testing.T, path string) [][2]string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var cases [][2]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		expr, want, ok := strings.Cut(line, "=>")
		require.True(t, ok, "%s: %q has no =>", path, line)
		cases = append(cases, [2]string{strings.TrimSpace(expr), strings.TrimSpace(want)})
	}
	require.NoError(t, sc.Err())
	require.NotEmpty(t, cases)
	return cases
}

// Every fixture filter accepts exactly the packets it lists, run in the
// BPF machine as the kernel runs it.
func TestFilterMatches(t *testing.T) {
	names := make([]string, 0, len(packets))
	for n := range packets {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, c := range fixture(t, "testdata/filters.txt") {
		t.Run(c[0], func(t *testing.T) {
			f, err := Compile(c[0], FilterOptions{Resolve: labHosts})
			require.NoError(t, err)
			want := map[string]bool{}
			if c[1] != "-" {
				for _, w := range strings.Fields(c[1]) {
					require.Contains(t, packets, w, "fixture names an unknown packet")
					want[w] = true
				}
			}
			var got []string
			for _, n := range names {
				if f.Match(packets[n]) {
					got = append(got, n)
				}
			}
			var wantList []string
			for _, n := range names {
				if want[n] {
					wantList = append(wantList, n)
				}
			}
			require.Equal(t, wantList, got, "filter %q\n%v", c[0], f.Instructions())
		})
	}
}

// A filter that does not compile says which column is at fault and why.
func TestFilterErrors(t *testing.T) {
	for _, c := range fixture(t, "testdata/errors.txt") {
		t.Run(c[0], func(t *testing.T) {
			colS, msg, ok := strings.Cut(c[1], ":")
			require.True(t, ok)
			col, err := strconv.Atoi(colS)
			require.NoError(t, err)
			_, err = Compile(c[0], FilterOptions{Resolve: labHosts})
			require.Error(t, err)
			var se *SyntaxError
			require.True(t, errors.As(err, &se), "%T %v", err, err)
			require.Equal(t, col, se.Col, "%v", err)
			require.Contains(t, err.Error(), strings.TrimSpace(msg))
			require.Contains(t, err.Error(), "column "+colS)
		})
	}
}

// Without a resolver, a name is not an address: the machine's resolver is
// never asked.
func TestFilterNoResolver(t *testing.T) {
	_, err := Compile("host h1", FilterOptions{})
	require.ErrorContains(t, err, `column 6: "h1" is not an address`)
}

// The program is what the kernel takes: it assembles, accepts with the
// snap length and rejects with 0; a long filter past classic BPF's jumps
// is refused, not miscompiled.
func TestFilterProgram(t *testing.T) {
	f, err := Compile("udp port 53", FilterOptions{})
	require.NoError(t, err)
	require.Equal(t, len(f.Instructions()), len(f.Raw()))
	require.Equal(t, "udp port 53", f.String())

	// Far jumps go through ja: 80 hosts, each matched where it is.
	var parts []string
	for i := 0; i < 80; i++ {
		parts = append(parts, "host 10.0.0."+strconv.Itoa(i+10))
	}
	parts = append(parts, "host 10.0.0.2")
	long, err := Compile(strings.Join(parts, " or "), FilterOptions{})
	require.NoError(t, err)
	require.Greater(t, len(long.Instructions()), 256)
	for _, n := range []string{"tcp4", "icmp4", "arp", "frag4"} {
		require.True(t, long.Match(packets[n]), n)
	}
	for _, n := range []string{"udp4", "tcp6", "opts4"} {
		require.False(t, long.Match(packets[n]), n)
	}
	notLong, err := Compile("not ("+strings.Join(parts, " or ")+")", FilterOptions{})
	require.NoError(t, err)
	require.False(t, notLong.Match(packets["tcp4"]))
	require.True(t, notLong.Match(packets["udp4"]))

	parts = parts[:0]
	for i := 0; i < 500; i++ {
		parts = append(parts, "host 10.1."+strconv.Itoa(i/250)+"."+strconv.Itoa(i%250))
	}
	_, err = Compile(strings.Join(parts, " or "), FilterOptions{})
	require.ErrorContains(t, err, "too long for a classic BPF program")
}
