package emulator

import (
	"fmt"

	"github.com/nslab/nslab/internal/netns"
	"github.com/nslab/nslab/internal/nftrules"
)

// nftTable is the name of the one nftables table nslab makes in a node:
// named after the lab, so that two labs never share a table.
func nftTable(lab string) string { return nftrules.Table(lab) }

// applyNftables writes the node's NAT and firewall as one inet table (and
// for NAT one ip table) in the node's own namespace, in one transaction
// compiled by nftrules (no nft binary).
func (l *Lab) applyNftables(h *nodeHandle) error {
	n := h.node
	msgs, err := nftrules.Compile(nftTable(l.Plan.Lab), n.NAT, n.Firewall)
	if err != nil {
		return fmt.Errorf("nftables in node %q: %w", n.Name, err)
	}
	if err := h.withNamespace(func(ns *netns.NS) error { return nftrules.Send(ns, msgs) }); err != nil {
		return fmt.Errorf("add nftables table %q to node %q: %w", nftTable(l.Plan.Lab), n.Name, nftrules.Explain(err))
	}
	return nil
}
