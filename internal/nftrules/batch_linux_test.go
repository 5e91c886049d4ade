package nftrules

import (
	"encoding/binary"
	"os"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"github.com/nslab/nslab/internal/netns"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// attrs decodes one level of netlink attributes into type -> data (the
// nested flag cleared).
func attrs(t *testing.T, b []byte) map[uint16][]byte {
	t.Helper()
	ad, err := netlink.NewAttributeDecoder(b)
	require.NoError(t, err)
	m := map[uint16][]byte{}
	for ad.Next() {
		m[ad.Type()&^unix.NLA_F_NESTED] = ad.Bytes()
	}
	require.NoError(t, ad.Err())
	return m
}

// ctData is the NFTA_EXPR_DATA of an encoded ct expression.
func ctData(t *testing.T, encoded []byte) map[uint16][]byte {
	t.Helper()
	e := attrs(t, encoded)
	require.Equal(t, "ct\x00", string(e[unix.NFTA_EXPR_NAME]))
	return attrs(t, e[unix.NFTA_EXPR_DATA])
}

// `ct original ip saddr` is the IPv4 key with a direction, which nft
// lists inside a concatenation; google/nftables v0.3.0's expr.Ct sends
// that key without the direction, which the kernel refuses (issue 12,
// item 16).
func TestCtAddrEncoding(t *testing.T) {
	for _, tc := range []struct {
		e   ctAddr
		key uint32
	}{{ctAddr{Register: 8}, unix.NFT_CT_SRC_IP}, {ctAddr{Register: 1, Dst: true}, unix.NFT_CT_DST_IP}} {
		b, err := tc.e.marshal()
		require.NoError(t, err)
		d := ctData(t, b)
		require.Equal(t, tc.key, binary.BigEndian.Uint32(d[unix.NFTA_CT_KEY]))
		require.Equal(t, tc.e.Register, binary.BigEndian.Uint32(d[unix.NFTA_CT_DREG]))
		require.Equal(t, []byte{0}, d[unix.NFTA_CT_DIRECTION], "direction original, a u8")
	}
	// Why nslab encodes it itself: the library leaves the direction out.
	b, err := expr.Marshal(unix.NFPROTO_IPV4, &expr.Ct{Register: 8, Key: unix.NFT_CT_SRC_IP})
	require.NoError(t, err)
	_, has := ctData(t, b)[unix.NFTA_CT_DIRECTION]
	require.False(t, has, "google/nftables now sends the direction: expr.Ct may replace ctAddr")
}

// The batch keeps every message in the order the rules were added, the
// ones nslab encodes among those google/nftables encodes.
func TestNftBatchOrder(t *testing.T) {
	b, err := newBatch()
	require.NoError(t, err)
	tb := b.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: "t"})
	ch := b.AddChain(&nftables.Chain{Name: "c", Table: tb})
	b.AddRule(&nftables.Rule{Table: tb, Chain: ch, Exprs: []expr.Any{accept()}})
	require.NoError(t, b.addRule(tb, ch, []any{ctAddr{Register: 8}, &expr.Verdict{Kind: expr.VerdictDrop}}))
	b.AddRule(&nftables.Rule{Table: tb, Chain: ch, Exprs: []expr.Any{accept()}})
	require.NoError(t, b.Conn.Flush())

	msg := func(m uint16) netlink.HeaderType { return netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | m) }
	var types []netlink.HeaderType
	for _, m := range b.msgs {
		types = append(types, m.Header.Type)
		require.NotZero(t, m.Header.Flags&netlink.Acknowledge, "every message is acknowledged")
	}
	require.Equal(t, []netlink.HeaderType{msg(unix.NFT_MSG_NEWTABLE), msg(unix.NFT_MSG_NEWCHAIN),
		msg(unix.NFT_MSG_NEWRULE), msg(unix.NFT_MSG_NEWRULE), msg(unix.NFT_MSG_NEWRULE)}, types)

	raw := b.msgs[3]
	require.Equal(t, byte(unix.NFPROTO_IPV4), raw.Data[0], "nfgenmsg family")
	r := attrs(t, raw.Data[4:])
	require.Equal(t, "t\x00", string(r[unix.NFTA_RULE_TABLE]))
	require.Equal(t, "c\x00", string(r[unix.NFTA_RULE_CHAIN]))
	ad, err := netlink.NewAttributeDecoder(r[unix.NFTA_RULE_EXPRESSIONS])
	require.NoError(t, err)
	var names []string
	for ad.Next() {
		names = append(names, string(attrs(t, ad.Bytes())[unix.NFTA_EXPR_NAME]))
	}
	require.Equal(t, []string{"ct\x00", "immediate\x00"}, names)
}

// privateNetns is a network namespace of the test's own, gone when the
// test ends.
func privateNetns(t *testing.T) *netns.NS {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: makes a network namespace (the integration tests run as root)")
	}
	ns, err := netns.New(nil)
	require.NoError(t, err)
	t.Cleanup(func() { ns.Close() })
	return ns
}

// A batch is one transaction: the kernel takes all of it, or, when one
// message fails, none of it, and the error carries the errno explainNft
// looks for.
func TestNftBatchCommit(t *testing.T) {
	ns := privateNetns(t)
	tables := func() []string {
		c, err := nftables.New(nftables.WithNetNSFd(ns.Fd()))
		require.NoError(t, err)
		ts, err := c.ListTables()
		require.NoError(t, err)
		var names []string
		for _, tb := range ts {
			names = append(names, tb.Name)
		}
		return names
	}

	bad, err := newBatch()
	require.NoError(t, err)
	tb := bad.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: "bad"})
	bad.AddChain(&nftables.Chain{Name: "c", Table: tb})
	require.NoError(t, bad.addRule(tb, &nftables.Chain{Name: "nosuch", Table: tb}, []any{ctAddr{Register: 8}}))
	err = bad.send(t, ns)
	require.ErrorIs(t, err, unix.ENOENT)
	require.Contains(t, Explain(err).Error(), "CONFIG_NFT_CT")
	require.Empty(t, tables(), "nothing of a refused batch is added")

	good, err := newBatch()
	require.NoError(t, err)
	tb = good.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: "good"})
	ch := good.AddChain(&nftables.Chain{Name: "c", Table: tb, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityFilter})
	require.NoError(t, good.addRule(tb, ch, []any{ctAddr{Register: 1, Dst: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{203, 0, 113, 1}}, accept()}))
	require.NoError(t, good.send(t, ns))
	require.Equal(t, []string{"good"}, tables())

	// Without the direction the kernel refuses the key: what expr.Ct sends.
	lib, err := newBatch()
	require.NoError(t, err)
	lib.AddRule(&nftables.Rule{Table: tb, Chain: ch, Exprs: []expr.Any{&expr.Ct{Register: 1, Key: unix.NFT_CT_DST_IP}, accept()}})
	require.ErrorIs(t, lib.send(t, ns), unix.EINVAL)
}

// send flushes what google/nftables holds and sends the batch into ns.
func (b *batch) send(t *testing.T, ns *netns.NS) error {
	t.Helper()
	require.NoError(t, b.Conn.Flush())
	return Send(ns, b.msgs)
}
