package emulator

import "os"

// Dispatch runs the helper role this process was started for, if any. If
// this process was started by nslab as one of its helper processes (the
// echo service of a node today; the rootless keeper of a lab later), it
// runs that role and returns its exit code with ok=true; otherwise it
// returns at once with ok=false.
//
// nslab starts its helpers by running its own binary again
// (/proc/self/exe) with an environment variable saying which role to
// take. So every program that builds labs through this package must call
// Dispatch first thing in main, before flags are parsed or anything else
// runs, and exit with the code when ok is true:
//
//	func main() {
//		if code, ok := emulator.Dispatch(); ok {
//			os.Exit(code)
//		}
//		...
//	}
//
// Test binaries that start labs do the same in TestMain (nslabtest.Main
// does it for them). A program that never calls Dispatch still builds
// labs, but the helpers it starts would run its own main instead of their
// role: a lab with echo services then fails to come up, reporting that the
// service did not get ready. Importing this package does nothing by
// itself: there is no init function that takes the process over.
func Dispatch() (code int, ok bool) {
	if spec, ok := os.LookupEnv(echoEnv); ok {
		return runEchoService(spec, os.Getenv(echoNodeEnv)), true
	}
	return 0, false
}
