package topo

import (
	"bytes"
	"fmt"

	"github.com/pelletier/go-toml/v2"
)

// Builder makes a Topology from Go code; it is the equivalent of a TOML
// file (both give the same model). Its methods return the Builder so calls
// chain; mistakes are reported by Resolve, like those of a file.
type Builder struct {
	t Topology
}

// NewBuilder starts a topology for the lab called name.
func NewBuilder(name string) *Builder {
	return &Builder{t: Topology{Name: name}}
}

// Node adds a node of any kind.
func (b *Builder) Node(n NodeSpec) *Builder {
	b.t.Nodes = append(b.t.Nodes, n)
	return b
}

// Host adds a host.
func (b *Builder) Host(name string) *Builder { return b.Node(NodeSpec{Name: name, Kind: KindHost}) }

// Router adds a router.
func (b *Builder) Router(name string) *Builder { return b.Node(NodeSpec{Name: name, Kind: KindRouter}) }

// Switch adds a switch.
func (b *Builder) Switch(name string) *Builder { return b.Node(NodeSpec{Name: name, Kind: KindSwitch}) }

// Link cables two endpoints, each "node" or "node:interface".
func (b *Builder) Link(a, z string) *Builder {
	b.t.Links = append(b.t.Links, LinkSpec{Endpoints: []string{a, z}})
	return b
}

// LinkSpec adds a link in its long form.
func (b *Builder) LinkSpec(l LinkSpec) *Builder {
	b.t.Links = append(b.t.Links, l)
	return b
}

// AutoRoutes turns automatic routing on.
func (b *Builder) AutoRoutes() *Builder {
	b.t.Routing = "auto"
	return b
}

// Topology returns the topology built so far (a copy of the Builder's).
func (b *Builder) Topology() *Topology {
	t := b.t
	t.Nodes = append([]NodeSpec(nil), b.t.Nodes...)
	t.Links = append([]LinkSpec(nil), b.t.Links...)
	return &t
}

// TOML encodes the topology in the file format LoadFile reads.
func (t *Topology) TOML() ([]byte, error) {
	var b bytes.Buffer
	enc := toml.NewEncoder(&b)
	enc.SetIndentTables(false)
	if err := enc.Encode(t); err != nil {
		return nil, fmt.Errorf("encode topology %q: %w", t.Name, err)
	}
	return b.Bytes(), nil
}
