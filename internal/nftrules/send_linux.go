package nftrules

import (
	"errors"
	"fmt"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/nslab/nslab/internal/netns"
	"golang.org/x/sys/unix"
)

// Send sends a transaction (Compile's messages) into the namespace ns as
// one batch, and waits for the kernel to acknowledge every message, or
// returns its first error: the kernel takes all of it or nothing.
func Send(ns *netns.NS, msgs []netlink.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	var conn *netlink.Conn
	err := ns.Do(func() (err error) {
		conn, err = netlink.Dial(unix.NETLINK_NETFILTER, nil) // in ns: the thread's
		return err
	})
	if err != nil {
		if conn != nil {
			conn.Close()
		}
		return err
	}
	defer conn.Close()
	subsys := []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, unix.NFNL_SUBSYS_NFTABLES} // resource id: big endian
	batch := make([]netlink.Message, 0, len(msgs)+2)
	batch = append(batch, netlink.Message{Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_MSG_BATCH_BEGIN), Flags: netlink.Request}, Data: subsys})
	want := 0
	for _, m := range msgs {
		batch = append(batch, m)
		if m.Header.Flags&netlink.Acknowledge != 0 {
			want++
		}
	}
	batch = append(batch, netlink.Message{Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_MSG_BATCH_END), Flags: netlink.Request}, Data: subsys})
	if _, err := conn.SendMessages(batch); err != nil {
		return err
	}
	// The kernel has handled the whole batch when the send returns: its
	// answers are queued already. The deadline only guards a miscount.
	if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return err
	}
	for acked := 0; acked < want; {
		replies, err := conn.Receive() // an error message comes back as err
		if err != nil {
			return err
		}
		for _, r := range replies {
			if r.Header.Type == netlink.Error {
				acked++
			}
		}
	}
	return nil
}

// Explain names the kernel feature behind the errors nftables gives when
// one is missing.
func Explain(err error) error {
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EAFNOSUPPORT) || errors.Is(err, unix.EPROTONOSUPPORT) {
		return fmt.Errorf("%w (this kernel seems to lack an nftables feature nslab uses here: nf_tables with inet NAT, masquerade and conntrack; check CONFIG_NF_TABLES_INET, CONFIG_NF_TABLES_IPV4, CONFIG_NFT_NAT, CONFIG_NFT_MASQ, CONFIG_NFT_CT, and for reject rules CONFIG_NFT_REJECT_INET)", err)
	}
	return err
}
