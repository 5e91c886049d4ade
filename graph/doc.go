// Package graph draws a resolved lab, a topo.Plan, as a picture: Graphviz
// dot, Mermaid (which code-hosting pages render inside Markdown), SVG, and
// JSON for other tools.
//
// Every format draws the same Graph (New makes it from a plan): one node
// per lab node, shaped and coloured by what it is (a host, a router, a
// switch, a NAT gateway, and the machine itself for a host attachment),
// and one edge per veth pair, labelled with the interface name and the
// addresses at each end and with the link's impairments, one line per
// direction that has one. A NAT gateway's node says how it translates
// (masquerade or SNAT, out of which interface, its RFC 4787 profile) and
// its port forwards. The output is deterministic: nodes and links in the
// order the topology file writes them, so a picture checked into a
// repository changes only when the lab does.
//
// The SVG is laid out and drawn by this package in Go (layers from the
// links, straight edges): no Graphviz install is needed. For a layout
// with more care, write dot and render it with Graphviz's own
// `dot -Tsvg`.
//
// The package is portable: it needs neither Linux nor root.
package graph
