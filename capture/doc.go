// Package capture is nslab's packet capture, with no tcpdump and no
// libpcap: AF_PACKET sockets opened inside a node's namespace, stamped by
// the kernel in nanoseconds, filtered by the kernel with a classic BPF
// program compiled here from tcpdump's filter language, and written to
// pcapng with one interface block per captured interface, named
// "node:iface", so that Wireshark shows where each packet was seen.
//
// The portable parts are the filter compiler (Compile), the pcapng writer
// (NewPcapngWriter, on gopacket's pcapgo) and the one-line summaries
// tcpdump prints (Summary). The kernel part (Open, a Source per
// interface, and its drop counter, PACKET_STATISTICS) is Linux's: a Source
// is opened through the caller's way into the node's namespace (the
// engine's node handle), and is used from any goroutine afterwards, as
// every socket nslab opens in a node. Run joins several Sources into one
// stream of packets for a Sink.
//
// A socket is made with protocol 0, so that it receives nothing until the
// filter is attached and it is bound to its interface: no packet the
// filter rejects is ever queued to it.
package capture
