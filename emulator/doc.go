// Package emulator builds network labs out of kernel parts: every node is
// a named network namespace, cables are veth pairs, switches are Linux
// bridges in namespaces of their own, and routers are namespaces with
// forwarding on.
//
// A lab goes through three steps. The first two are package topo's, and
// portable: Decode (or LoadFile) reads a TOML topology strictly into a
// Topology, or a Builder makes one from Go code; Resolve validates it,
// reporting every problem at once, and decides every name, address and
// route, giving a Plan. The third is this package's: Up applies a Plan to
// the kernel through per-namespace netlink sockets (no fork of ip), and
// Lab.Down removes exactly what Up made, from the lab's ownership record.
// Clean does the same for a lab whose builder died.
//
// Up runs the build as a list of phases (build_linux.go: namespaces,
// links, addresses, routes, nftables, bridges up, host link, readiness,
// hosts files, services, record), each of which journals the kernel
// objects it makes and knows how to remove them from the journal alone;
// a failed Up, Down and Clean all undo the phases, last first
// (teardown_linux.go).
//
// Every operation reaches a node through the node's handle
// (node_linux.go): its namespace (internal/netns) and a route netlink
// connection opened inside it (internal/rtnl). A lab from Open opens its
// handles on first use; Lab.Close gives them back. Running programs in a
// node (Exec, Start, ExecReplace) enters the node's namespace from a
// fresh locked thread, with the node's hostname and the lab's /etc/hosts;
// probes (Ping, PingAll, Probe) open their sockets inside the source
// node's namespace and need no ping binary; NAT and firewalls are
// compiled by internal/nftrules and sent through the node's handle.
// Packet capture (Lab.OpenCapture, package capture) opens an AF_PACKET
// socket per captured interface inside its node the same way, with a
// kernel filter, and ends when the lab is taken down under it.
//
// Nothing here changes the process that imports the package, except what
// it calls: the echo service of a node is this program run again, and it
// takes that role only when main calls Dispatch first (see Dispatch). No
// thread that switches namespaces is ever the main thread, so the program
// need not lock its main goroutine.
package emulator
