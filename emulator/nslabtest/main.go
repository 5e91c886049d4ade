package nslabtest

import (
	"os"
	"runtime"
	"testing"

	"github.com/nslab/nslab/emulator"
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
//   - runtime.LockOSThread on the main goroutine, which runs TestMain on
//     the process's main thread: the main thread then stays with it (idle
//     while the tests run), so no goroutine that enters a node's
//     namespaces ever runs there. The engine enters a node on a thread of
//     its own and lets the runtime discard it; the main thread cannot be
//     discarded, only parked for good where it is, and /proc/self (the
//     main thread's view: ns/net, mountinfo, cwd) would then describe the
//     node, not the machine.
//
// Labs without echo services and tests that never read /proc/self work
// without Main, but a test package that builds labs should have it.
func Main(m *testing.M) {
	if code, ok := emulator.Dispatch(); ok {
		os.Exit(code)
	}
	runtime.LockOSThread()
	os.Exit(m.Run())
}
