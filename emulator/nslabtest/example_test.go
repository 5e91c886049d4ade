package nslabtest_test

import (
	"fmt"
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
// behind: the lab is torn down in t.Cleanup.
func ExampleStart() {
	t := &testing.T{} // in a real test, the *testing.T of the test
	_ = func(t *testing.T) {
		b := topo.NewBuilder("web").Switch("s1").Host("client").Host("server").
			Link("client", "s1").Link("server", "s1")
		lab := nslabtest.Start(t, b.Topology())
		lab.RequireReachable("client", "server")
		lab.RequireTCP("client", "server", 80) // a built-in echo service answers on server:80
		res := lab.Exec("client", "getent", "hosts", "server")
		if res.ExitCode != 0 {
			t.Fatal("server does not resolve")
		}
	}
	_ = t
}

// A lab from a topology file, with NAT: the far side sees the gateway.
func ExampleLab_ObservedSource() {
	_ = func(t *testing.T) {
		lab := nslabtest.StartFile(t, "topologies/nat.toml")
		if got := lab.ObservedSource("client1", "server", 9000).Addr().String(); got != "203.0.113.1" {
			t.Fatalf("server saw %s", got)
		}
	}
}

// Two peers behind NATs: do they connect directly, or need a relay? The
// file's rendezvous node has echo = [3478]; each gateway has a profile.
func ExampleLab_RequirePunch() {
	_ = func(t *testing.T) {
		lab := nslabtest.StartFile(t, "topologies/p2p.toml") // two port-restricted cones
		r := lab.RequirePunch("alice", "bob", "rendezvous")
		if r.A.MappingChanged() || r.B.MappingChanged() {
			t.Fatalf("a cone keeps its mapping: %s", r)
		}
		// With gw-b symmetric instead, bob's mapping toward alice is not the
		// one the rendezvous saw, and a port-restricted alice drops it:
		//	lab.RequireNoPunch("alice", "bob", "rendezvous")
	}
}

// A script of checks and changes, in the language of docs/scripting.md:
// each failing line is reported with its file and line.
func ExampleLab_RunScript() {
	_ = func(t *testing.T) {
		lab := nslabtest.StartFile(t, "topologies/tutorial.toml")
		lab.RunScript("testdata/experiment.nsl")
		lab.Script(`
reach red blue
link red v-net-0 down
!reach red blue
link red v-net-0 up
wait reach red blue 2s`)
	}
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
