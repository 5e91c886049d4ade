package capture

import (
	"time"
)

// Packet is one captured frame.
type Packet struct {
	// Iface is the index of the interface it was seen on, among those of
	// the capture (its pcapng interface id).
	Iface int
	// Time is the kernel's timestamp of the frame, in nanoseconds.
	Time time.Time
	// Length is the frame's length on the wire; Data holds its first
	// bytes, up to the snap length.
	Length int
	Data   []byte
	// Outgoing says the frame was sent by the interface's own node;
	// otherwise it was received.
	Outgoing bool
}

// Stats are the kernel's counters of one capture socket since it was
// opened: the packets its filter accepted, and how many of those the
// kernel dropped because the socket's buffer was full.
type Stats struct {
	Received uint64
	Dropped  uint64
}

// Interface describes one captured interface, for the file's interface
// block and for summaries.
type Interface struct {
	// Name is "node:iface", as Wireshark will show it.
	Name string
	// Description says more, as the lab and namespace ("lab demo,
	// namespace demo-r1").
	Description string
	// Filter is the filter as written, "" for none.
	Filter  string
	SnapLen int
}

// Sink takes a capture's packets, one at a time, from one goroutine at a
// time; Data is only valid during the call. Close gets each interface's
// final kernel counters.
type Sink interface {
	WritePacket(p Packet) error
	Close(stats []Stats) error
}
