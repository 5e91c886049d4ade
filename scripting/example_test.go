package scripting_test

import (
	"context"
	"fmt"

	"github.com/nslab/nslab/scripting"
	"github.com/nslab/nslab/topo"
)

// A script is parsed, then checked against a lab's plan before anything
// runs: every problem at once, with the file, the line and the closest
// known name. No lab is built here.
func ExampleCheck() {
	top, _ := topo.Decode("lab.toml", []byte(`
name = "tutorial"
nodes = [{ name = "red" }, { name = "blue" }]
links = [{ endpoints = ["red", "blue"] }]
`))
	plan, _ := topo.Resolve(top)
	s, _ := scripting.Parse("exp.nsl", `reach red blue
!reach red bleu        # a typo
wait reach red blue 2  # no unit
`, 1)
	fmt.Println(scripting.Check(s, plan, nil))
	// Output:
	// exp.nsl:2: !reach red bleu: no node "bleu" in lab "tutorial" (did you mean "blue"?)
	// exp.nsl:3: wait reach red blue 2: malformed duration "2" (write a positive number with a unit: 500ms, 2s, 1m)
}

// Parse splits lines into words; a leading '!' negates a check, quotes
// keep a word as written (and out of node-name substitution).
func ExampleParse() {
	s, _ := scripting.Parse("exp.nsl", "# comment\n!reach lan blue\nblue ip route get 'red'\n", 1)
	for _, ln := range s.Lines {
		fmt.Printf("%s neg=%v %s %q\n", ln.Where(), ln.Neg, ln.Name, ln.Strings())
	}
	// Output:
	// exp.nsl:2 neg=true reach ["lan" "blue"]
	// exp.nsl:3 neg=false blue ["ip" "route" "get" "red"]
}

// A Registry holds the commands; Register adds one, here a check of a
// test suite's own.
func ExampleRegistry_Register() {
	r := scripting.Builtins()
	err := r.Register(&scripting.Command{
		Name: "nodecount", Usage: "nodecount N", Summary: "the lab has N nodes", Check: true, MinArgs: 1, MaxArgs: 1,
		Run: func(ctx context.Context, s *scripting.Session, ln *scripting.Line, args []string) (scripting.Outcome, error) {
			n := fmt.Sprint(len(s.Plan.Nodes))
			return scripting.Outcome{Held: n == args[0], Said: "the lab has " + n, Want: "the lab to have " + args[0] + " nodes"}, nil
		},
	})
	fmt.Println(err, r.Lookup("nodecount").Usage)
	// Output:
	// <nil> nodecount N
}
