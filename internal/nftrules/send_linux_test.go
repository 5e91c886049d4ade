package nftrules

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// A kernel without a needed nftables feature answers EOPNOTSUPP or
// ENOENT; the error then names the kernel options to look for.
func TestExplain(t *testing.T) {
	for _, errno := range []error{unix.EOPNOTSUPP, unix.ENOENT, unix.EAFNOSUPPORT} {
		err := Explain(fmt.Errorf("conn.Receive: %w", errno))
		require.ErrorIs(t, err, errno)
		require.Contains(t, err.Error(), "CONFIG_NFT_NAT")
		require.Contains(t, err.Error(), "CONFIG_NFT_MASQ")
	}
	other := errors.New("permission denied")
	require.Equal(t, other, Explain(other))
}
