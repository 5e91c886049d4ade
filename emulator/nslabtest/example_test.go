package nslabtest_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/nslab/nslab/emulator/nslabtest"
	"github.com/nslab/nslab/topo"
)

// A test package that builds labs runs its tests through Main: this line,
// at the top level of one of its _test.go files, is all it takes.
func ExampleMain() {
	_ = func(m *testing.M) {
		// func TestMain(m *testing.M) { nslabtest.Main(m) }
		nslabtest.Main(m)
	}
}

// A test builds a lab from Go code, asserts on it, and leaves nothing
// behind: the lab is torn down in t.Cleanup. (runExample stands in for
// go test here, so that the example runs and its output is checked.)
func ExampleStart() {
	runExample(func(t testing.TB) {
		b := topo.NewBuilder("web").Switch("s1").Host("client").Host("server").
			Link("client", "s1").Link("server", "s1")
		lab := nslabtest.Start(t, b.Topology())
		lab.RequireReachable("client", "server")
		res := lab.Exec("client", "getent", "hosts", "server")
		fmt.Print(strings.Join(strings.Fields(string(res.Stdout)), " "), "\n")
	})
	// Output:
	// 10.0.0.2 server
}

// A lab from a topology file, with NAT: the far side sees the gateway.
func ExampleLab_ObservedSource() {
	runExample(func(t testing.TB) {
		lab := nslabtest.StartFile(t, "../../topologies/nat.toml")
		fmt.Println("server saw", lab.ObservedSource("client1", "server", 9000).Addr())
	})
	// Output:
	// server saw 203.0.113.1
}

// Two peers behind NATs: do they connect directly, or need a relay? The
// file's rendezvous node has echo = [3478]; each gateway has a profile.
func ExampleLab_RequirePunch() {
	runExample(func(t testing.TB) {
		lab := nslabtest.StartFile(t, "../../topologies/p2p.toml") // two port-restricted cones
		r := lab.RequirePunch("alice", "bob", "rendezvous")
		fmt.Println("direct:", r.Direct)
		fmt.Println("a cone keeps its mapping:", !r.A.MappingChanged() && !r.B.MappingChanged())
		// With gw-b symmetric instead, bob's mapping toward alice is not the
		// one the rendezvous saw, and a port-restricted alice drops it:
		//	lab.RequireNoPunch("alice", "bob", "rendezvous")
	})
	// Output:
	// direct: true
	// a cone keeps its mapping: true
}

// A script of checks and changes, in the language of docs/scripting.md:
// each failing line fails the test with its file and line.
func ExampleLab_RunScript() {
	runExample(func(t testing.TB) {
		lab := nslabtest.StartFile(t, "../../topologies/tutorial.toml")
		res := lab.Script(`
reach red blue
link red v-net-0 down
!reach red blue
link red v-net-0 up
wait reach red blue 2s`)
		fmt.Printf("%d of %d checks passed in %d lines\n", res.Passed, res.Checks, res.Lines)
	})
	// Output:
	// 3 of 3 checks passed in 5 lines
}

// Every script of a directory, each a subtest with a lab of its own: the
// script's "# topology: FILE" line, or FILE.toml beside it, says what to
// build. A failing line fails its subtest as "file:line: command: ...".
func ExampleRunScripts() {
	_ = func(t *testing.T) {
		nslabtest.RunScripts(t, "testdata/*.nsl")
	}
}

// Which topology RunScripts builds for a script: tutorial.nsl names one in
// its header, web.nsl has web.toml beside it.
func ExampleScriptTopology() {
	for _, script := range []string{"testdata/tutorial.nsl", "testdata/web.nsl"} {
		path, err := nslabtest.ScriptTopology(script)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(script, "->", path)
	}
	// Output:
	// testdata/tutorial.nsl -> ../../topologies/tutorial.toml
	// testdata/web.nsl -> testdata/web.toml
}
