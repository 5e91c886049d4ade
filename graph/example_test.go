package graph_test

import (
	"os"

	"github.com/nslab/nslab/graph"
	"github.com/nslab/nslab/topo"
)

// A gateway's NAT, a switch and an impaired link, as a Mermaid flowchart
// to paste into Markdown inside a ```mermaid block.
func Example() {
	top, err := topo.Decode("home.toml", []byte(`
name = "home"

[[nodes]]
name = "lan"
kind = "switch"

[[nodes]]
name = "pc"
gateway = "192.168.1.1"

[[nodes]]
name = "gw"
kind = "router"
nat = { outside = "wan", masquerade = true, profile = "symmetric" }

[[nodes]]
name = "server"

[[links]]
endpoints = ["pc", "lan"]

[[links]]
a = { node = "gw", interface = "lan", addresses = ["192.168.1.1/24"] }
b = { node = "lan" }

[[links]]
a = { node = "gw", interface = "wan", addresses = ["203.0.113.1/24"] }
b = { node = "server", addresses = ["203.0.113.2/24"] }
impair = { rate = "10mbit" }
`))
	if err != nil {
		panic(err)
	}
	plan, err := topo.Resolve(top)
	if err != nil {
		panic(err)
	}
	graph.Write(os.Stdout, plan, graph.Mermaid)
	// Output:
	// flowchart LR
	//   n1[["lan<br/>switch"]]
	//   n2("pc")
	//   n3{{"gw<br/>NAT masquerade out of wan<br/>profile symmetric"}}
	//   n4("server")
	//   n2 ---|"pc:eth0 192.168.1.2/24<br/>lan:pc"| n1
	//   n3 ---|"gw:lan 192.168.1.1/24<br/>lan:gw"| n1
	//   n3 ===|"gw:wan 203.0.113.1/24<br/>server:eth0 203.0.113.2/24<br/>gw → server: rate 10Mbit<br/>server → gw: rate 10Mbit"| n4
	//   classDef host fill:#dbeafe,stroke:#1d4ed8,color:#111827
	//   class n2,n4 host
	//   classDef nat_gateway fill:#fef3c7,stroke:#b45309,color:#111827
	//   class n3 nat_gateway
	//   classDef switch fill:#f3f4f6,stroke:#4b5563,color:#111827
	//   class n1 switch
}
