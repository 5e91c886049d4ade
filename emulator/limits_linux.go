package emulator

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// filesPerNode is what the builder holds open per node while it builds:
// the namespace and a route netlink socket inside it (the node's handle).
// filesSpare is room for the rest (the pinner, nftables, probes, the
// Go runtime).
const (
	filesPerNode = 2
	filesSpare   = 512
	leanSlack    = 1024
)

// raiseFileLimit makes sure that this process may hold the descriptors a
// lab of nodes nodes needs while it is built, raising its soft limit (up
// to the hard one; root with CAP_SYS_RESOURCE raises that too) when it is
// lower: a 10,000-node lab needs some 20,500 where many machines allow
// 1,024 or 20,000 (`ulimit -n`). The limit is the process's: children
// started later inherit it. When the limit cannot be raised so far but
// allows one descriptor per node, lean says so: the builder then releases
// each namespace's descriptor once the namespaces are pinned and cabled
// (nodeHandle.releaseNamespace), keeping each node's netlink socket.
func raiseFileLimit(nodes int) (lean bool, err error) {
	need := uint64(filesPerNode*nodes + filesSpare)
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
		return false, fmt.Errorf("read the open files limit: %w", err)
	}
	if r.Cur >= need {
		return false, nil
	}
	want := r
	want.Cur = min(need, r.Max)
	if want.Max < need {
		want.Max = need
		if unix.Setrlimit(unix.RLIMIT_NOFILE, &want) == nil {
			return false, nil
		}
		want.Max, want.Cur = r.Max, r.Max
	}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &want); err != nil {
		return false, fmt.Errorf("raise the open files limit to %d: %w", want.Cur, err)
	}
	if want.Cur >= need {
		return false, nil
	}
	// Lean: a socket per node, and room for the namespaces made and not
	// yet pinned and cabled (the link worker keeps up with the makers).
	if leanNeed := uint64(nodes + filesSpare + leanSlack); want.Cur >= leanNeed {
		return true, nil
	}
	return false, fmt.Errorf("a lab of %d nodes holds at least %d open files while it is built, and this process may open %d (ulimit -n; the hard limit is %d and raising it needs CAP_SYS_RESOURCE)",
		nodes, nodes+filesSpare+leanSlack, want.Cur, r.Max)
}
