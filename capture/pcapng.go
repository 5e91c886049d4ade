package capture

import (
	"bufio"
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// PcapngWriter writes a capture as pcapng (with gopacket's pcapgo): one
// section, one interface block per interface with its "node:iface" name,
// its filter and nanosecond timestamps, each packet's direction, and at
// Close an interface statistics block per interface with the kernel's
// counters (received, dropped).
type PcapngWriter struct {
	w      *pcapgo.NgWriter
	ifaces []Interface
	start  time.Time
	// flushEach flushes after every packet, for a reader that shows
	// packets live (wireshark -k -i -).
	flushEach bool
	in, out   pcapgo.NgEpbFlags
}

// NewPcapngWriter writes the section header and the interface blocks. With
// live, every packet is flushed to w as it is written, for a reader that
// shows packets as they come; otherwise w is written in large blocks.
func NewPcapngWriter(w io.Writer, ifaces []Interface, live bool) (*PcapngWriter, error) {
	if len(ifaces) == 0 {
		return nil, fmt.Errorf("pcapng: no interface to write")
	}
	ngIface := func(i Interface) pcapgo.NgInterface {
		snap := i.SnapLen
		if snap == 0 {
			snap = DefaultSnapLen
		}
		return pcapgo.NgInterface{
			Name:                i.Name,
			Description:         i.Description,
			Filter:              i.Filter,
			OS:                  runtime.GOOS,
			LinkType:            layers.LinkTypeEthernet,
			SnapLength:          uint32(snap),
			TimestampResolution: 9,
		}
	}
	if !live {
		// Large writes: pcapgo's own buffer is 4 KiB, which makes a write
		// per large packet; given a larger bufio.Writer it uses that one.
		w = bufio.NewWriterSize(w, 1<<20)
	}
	ng, err := pcapgo.NewNgWriterInterface(w, ngIface(ifaces[0]), pcapgo.NgWriterOptions{
		SectionInfo: pcapgo.NgSectionInfo{Hardware: runtime.GOARCH, OS: runtime.GOOS, Application: "nslab capture"},
	})
	if err != nil {
		return nil, fmt.Errorf("pcapng: %w", err)
	}
	for _, i := range ifaces[1:] {
		if _, err := ng.AddInterface(ngIface(i)); err != nil {
			return nil, fmt.Errorf("pcapng: interface %s: %w", i.Name, err)
		}
	}
	// The header goes out at once: a live reader starts on it.
	if err := ng.Flush(); err != nil {
		return nil, fmt.Errorf("pcapng: %w", err)
	}
	p := &PcapngWriter{w: ng, ifaces: ifaces, start: time.Now(), flushEach: live}
	p.in.Direction = pcapgo.NgEpbFlagDirectionInbound
	p.out.Direction = pcapgo.NgEpbFlagDirectionOutbound
	return p, nil
}

// WritePacket writes one enhanced packet block.
func (p *PcapngWriter) WritePacket(pkt Packet) error {
	flags := &p.in
	if pkt.Outgoing {
		flags = &p.out
	}
	ci := gopacket.CaptureInfo{Timestamp: pkt.Time, CaptureLength: len(pkt.Data), Length: pkt.Length, InterfaceIndex: pkt.Iface}
	if err := p.w.WritePacketWithOptions(ci, pkt.Data, pcapgo.NgPacketOptions{Flags: flags}); err != nil {
		return fmt.Errorf("pcapng: %w", err)
	}
	if p.flushEach {
		return p.Flush()
	}
	return nil
}

// Flush writes out what is buffered.
func (p *PcapngWriter) Flush() error {
	if err := p.w.Flush(); err != nil {
		return fmt.Errorf("pcapng: %w", err)
	}
	return nil
}

// Close writes each interface's statistics block (the kernel's counters)
// and flushes. It does not close the underlying writer.
func (p *PcapngWriter) Close(stats []Stats) error {
	now := time.Now()
	for i := range p.ifaces {
		if i >= len(stats) {
			break
		}
		err := p.w.WriteInterfaceStats(i, pcapgo.NgInterfaceStatistics{
			LastUpdate:      now,
			StartTime:       p.start,
			EndTime:         now,
			PacketsReceived: stats[i].Received,
			PacketsDropped:  stats[i].Dropped,
		})
		if err != nil {
			return fmt.Errorf("pcapng: statistics of %s: %w", p.ifaces[i].Name, err)
		}
	}
	return p.Flush()
}
