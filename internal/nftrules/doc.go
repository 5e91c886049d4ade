// Package nftrules compiles a node's resolved firewall and NAT (topo.Firewall
// and topo.NAT) into one nftables transaction: pure functions from the
// resolved rules to nftables expressions and to the netlink messages of
// the tables, chains, sets and rules, encoded by google/nftables through
// its test dialer (no kernel is asked) and, for the few expressions it
// cannot encode, by this package. Send is the one function that talks to
// the kernel: it sends a compiled transaction into a namespace as one
// batch. The compiled messages are golden-tested without root
// (testdata/*.golden; go test -update rewrites them).
package nftrules
