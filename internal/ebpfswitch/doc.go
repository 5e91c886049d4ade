// Package ebpfswitch is a learning Ethernet switch without a bridge
// device: one eBPF classifier, in direct-action mode on the clsact
// ingress hook of each of the switch's ports (`tc filter add dev PORT
// ingress bpf da ...`, assembled in Go with cilium/ebpf's asm package, no
// compiler), forwards every frame that enters a port.
//
// It learns as a bridge does: the source MAC of each frame is recorded
// against the port it came in by (a hash map keyed by switch and MAC);
// a frame to a known unicast MAC goes out of that port alone
// (bpf_redirect to its egress), and a broadcast, multicast or unknown
// one to every other port of the switch (bpf_clone_redirect to each). A
// frame to the port it came from is dropped. One program and its maps
// serve every switch of a lab (Switches, sized for it by Size), each
// port found by its interface index, which nslab makes unique across a
// lab.
//
// What it is not: no STP, no ageing of learnt MACs (a MAC that moves is
// learnt again at its new port by its next frame), no `bridge fdb`, no
// bridge netfilter, at most MaxPorts ports. It exists to measure what a
// switch without a bridge saves (issue 18, docs/performance.md): a Linux bridge
// costs the kernel one rcu_barrier() when it is deleted, which a lab of
// many switches pays switch by switch.
package ebpfswitch
