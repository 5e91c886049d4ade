// Package rootless runs nslab without root: inside a user namespace of its
// own, where the user is mapped to root and so holds every capability over
// the namespaces made in it (network namespaces, veth pairs, bridges,
// routes, nftables rules), and over nothing else on the machine.
//
// A Go process is multi-threaded from its first instruction, and the
// kernel lets only a single-threaded process enter or create a user
// namespace (unshare(CLONE_NEWUSER), setns), so the process never moves
// itself: Command starts this program again as a child created in new
// user, mount and network namespaces (clone flags and UID/GID maps set
// through os/exec), and Setup, early in that child, mounts a tmpfs private
// to the child's mount namespace where the lab's state directory and
// named namespaces live. Everything the child makes is gone when the last
// process in its user namespace is.
//
// A lab that outlives one command (nslab up) is held by a keeper: an nslab
// process in the lab's namespaces that Serve turns into a small server on
// a unix socket in the user's own directory (Dir). A later command of the
// same user (Forward) sends it its argument vector, environment, working
// directory and its stdin, stdout and stderr (SCM_RIGHTS); the keeper runs
// nslab again with them, as its child and so inside the lab's namespaces,
// relays signals and returns the exit code. Kill removes a lab whose keeper
// is gone (kill -9) by the identity of its user namespace, never by name.
//
// docs/rootless.md has the design, what is automatic and what cannot work
// without root.
package rootless
