package emulator

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/nslab/nslab/internal/text"
)

// PunchOptions tune Lab.Punch. The zero value meets at the one node of
// the lab that runs an echo service, on its first echo port, and gives up
// after a fraction of a second.
type PunchOptions struct {
	// Via is the rendezvous: the node whose echo service (echo = [...] in
	// the topology) tells each peer its mapped address. Empty means the
	// one node of the lab that has echo ports.
	Via string
	// Port is the rendezvous's echo port (default: its first echo port,
	// else DefaultEchoPort). Give it for a service started by hand
	// (`nslab serve LAB NODE --udp PORT`) on a node without echo ports.
	Port int
	// Rounds is how many probes each peer sends to the other (default 5).
	Rounds int
	// Interval is the time between a peer's rounds (default 10ms).
	Interval time.Duration
	// Timeout bounds the whole punch, learning the mapped addresses
	// included (default 500ms). A pair that cannot connect gives up
	// earlier: after its rounds and two more intervals.
	Timeout time.Duration
	// First is "" for both peers sending at once, or the name of the peer
	// that sends first: the other starts half an interval later, after
	// the first probe has reached its gateway (the race real gateways
	// must survive).
	First string
}

// Punch defaults.
const (
	DefaultPunchRounds   = 5
	DefaultPunchInterval = 10 * time.Millisecond
	DefaultPunchTimeout  = 500 * time.Millisecond
)

func (o PunchOptions) withDefaults() PunchOptions {
	if o.Rounds == 0 {
		o.Rounds = DefaultPunchRounds
	}
	if o.Interval == 0 {
		o.Interval = DefaultPunchInterval
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultPunchTimeout
	}
	return o
}

// PunchSide is what one peer of a hole punch did and what was seen of it.
type PunchSide struct {
	Node string `json:"node"`
	// Local is the peer's UDP socket: its own address and port.
	Local netip.AddrPort `json:"local"`
	// Learned is its mapped address and port as the rendezvous saw them
	// (server-reflexive, in ICE's words), the address the other peer
	// sends to.
	Learned netip.AddrPort `json:"learned"`
	// Seen is the source address and port the other peer actually saw on
	// this peer's probes; invalid when none arrived. It differs from
	// Learned when this peer's NAT maps per destination (symmetric).
	Seen netip.AddrPort `json:"seen"`
	// Received is true when this peer received a probe from the other.
	Received bool `json:"received"`
}

// MappingChanged reports whether the other peer saw this one from another
// address or port than the rendezvous did: a mapping per destination.
func (s PunchSide) MappingChanged() bool { return s.Seen.IsValid() && s.Seen != s.Learned }

// PunchResult is the outcome of a hole punch between two peers.
type PunchResult struct {
	// Direct is true when each peer received the other's probes: the two
	// can talk without a relay.
	Direct bool `json:"direct"`
	// Via is the rendezvous node and Rendezvous the echo service asked.
	Via        string         `json:"via"`
	Rendezvous netip.AddrPort `json:"rendezvous"`
	A          PunchSide      `json:"a"`
	B          PunchSide      `json:"b"`
	// Started is the peer asked to send first ("" for both at once), and
	// First the peer whose probe got through first ("" when none did).
	Started string `json:"started,omitempty"`
	First   string `json:"first,omitempty"`
	// Rounds is how many rounds were sent, until the punch succeeded or
	// gave up; Elapsed is the time from the first socket to the end.
	Rounds  int           `json:"rounds"`
	Elapsed time.Duration `json:"elapsed_ns"`
}

func (r PunchResult) String() string {
	var b strings.Builder
	rounds := text.Plural(r.Rounds, "round")
	if r.Direct {
		fmt.Fprintf(&b, "%s <-> %s via %s (%s): direct after %s, %s; %s got through first\n", r.A.Node, r.B.Node, r.Via, r.Rendezvous, rounds, fmtDur(r.Elapsed), r.First)
	} else {
		fmt.Fprintf(&b, "%s <-> %s via %s (%s): no direct path after %s, %s: they need a relay\n", r.A.Node, r.B.Node, r.Via, r.Rendezvous, rounds, fmtDur(r.Elapsed))
	}
	w := max(len(r.A.Node), len(r.B.Node))
	for _, s := range []struct {
		me    PunchSide
		other string
	}{{r.A, r.B.Node}, {r.B, r.A.Node}} {
		seen := "nothing reached " + s.other
		if s.me.Seen.IsValid() {
			seen = fmt.Sprintf("seen by %s as %s", s.other, s.me.Seen)
			if s.me.MappingChanged() {
				seen += " (not the learned mapping: mapped per destination)"
			}
		}
		fmt.Fprintf(&b, "  %-*s  local %s, learned %s, %s\n", w, s.me.Node, s.me.Local, s.me.Learned, seen)
	}
	return strings.TrimSuffix(b.String(), "\n")
}
