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
// Running programs in a node (Exec, Start, ExecReplace) enters the node's
// namespace from a fresh locked thread, with the node's hostname and the
// lab's /etc/hosts; probes (Ping, PingAll) open their sockets inside the
// source node's namespace and need no ping binary.
package emulator
