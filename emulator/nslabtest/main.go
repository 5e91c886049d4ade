package nslabtest

import (
	"fmt"
	"os"
	"runtime"
	"testing"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/internal/rootless"
)

// Main is the TestMain of a test package that builds labs: the one line
// to add to one of its _test.go files is
//
//	func TestMain(m *testing.M) { nslabtest.Main(m) }
//
// It does what cmd/nslab's main does for the CLI, then runs the tests and
// exits with their status:
//
//   - emulator.Dispatch first: nslab starts the echo service of a node
//     with `echo` ports in its topology (a rendezvous for Punch) by
//     running the program again inside the node, here the test binary;
//     Dispatch makes that process the service, and Main exits with its
//     code. Without it the binary, run again as the service, would run the
//     tests instead. (The services of RequireTCP, RequireUDP and the
//     matrix helpers run in the test process itself.)
//
//   - runtime.LockOSThread on the main goroutine, which runs TestMain on
//     the process's main thread: the main thread then stays with it (idle
//     while the tests run), so no goroutine that enters a node's
//     namespaces ever runs there. The engine enters a node on a thread of
//     its own and lets the runtime discard it; the main thread cannot be
//     discarded, only parked for good where it is, and /proc/self (the
//     main thread's view: ns/net, mountinfo, cwd) would then describe the
//     node, not the machine.
//
//   - Without root: when the test binary lacks the capabilities to build
//     labs (run by an ordinary user), or NSLAB_ROOTLESS=1 asks for it,
//     Main runs the binary again, with the same arguments, as a child in
//     a user namespace of its own where the user is root, with a mount
//     and a network namespace of its own; the child mounts a tmpfs (on
//     $XDG_RUNTIME_DIR/nslab/mnt, or /tmp/nslab-UID/mnt, in its own mount
//     namespace only) for its state and named namespaces, runs the tests,
//     and Main exits with its code. The tests are the same as under root,
//     parallel ones, cleanups, NAT and hole punching included; what
//     differs is in docs/rootless.md (a host attachment needs root, and
//     a lab kept with -nslab.keep ends with the test binary). Where the
//     machine forbids user namespaces, Main fails with one line naming
//     the setting.
//
// Labs without echo services and tests that never read /proc/self work
// without Main, but a test package that builds labs should have it.
func Main(m *testing.M) {
	if code, ok := emulator.Dispatch(); ok {
		os.Exit(code)
	}
	// Locked before anything blocks, so that the main goroutine is still
	// on the main thread.
	runtime.LockOSThread()
	if code, ok := rootlessMain(); ok {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// rootlessMain sets up the child of a rootless run (then returns ok
// false: the tests run in this process), or runs the tests in such a
// child and returns its exit code with ok true.
func rootlessMain() (code int, ok bool) {
	if _, child, err := rootless.Setup(); child {
		if err != nil {
			fmt.Fprintf(os.Stderr, "nslabtest: %v\n", err)
			return 1, true
		}
		return 0, false
	}
	if !rootless.Needed(emulator.MissingCapabilities(true), rootless.Forced()) {
		return 0, false
	}
	dir, err := rootless.Dir()
	if err == nil {
		code, err = rootless.Run(rootless.Command(dir, "/proc/self/exe", os.Args))
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "nslabtest: %v\n", err)
		return 1, true
	}
	return code, true
}
