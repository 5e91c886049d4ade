package topo

import "fmt"

// CaptureSpec is the [capture] table of a topology file: the interfaces
// `nslab run` captures while the lab runs, into one pcapng file, DIR/LAB.pcapng
// (docs/capture.md).
type CaptureSpec struct {
	// Dir is the directory of the file, relative to the working directory
	// as -w's file is; it must exist and be writable.
	Dir string `toml:"dir"`
	// Interfaces are "node" (all of a node's interfaces) or "node:iface".
	Interfaces []string `toml:"interfaces"`
	// Filter is in tcpdump's language; node names stand for their
	// addresses. Empty: every packet.
	Filter string `toml:"filter,omitempty"`
	// SnapLen keeps the first bytes of each packet (0: all).
	SnapLen int `toml:"snaplen,omitempty"`
}

// CaptureProblem is a problem with the [capture] table's key ("dir",
// "filter", "interfaces[1]"), placed at the key's file:line:col where the
// topology came from a file.
func (t *Topology) CaptureProblem(key string, format string, args ...any) Problem {
	p := Problem{Object: "capture." + key, Msg: fmt.Sprintf(format, args...)}
	if t.source != nil {
		p.File = t.source.file
		p.Pos, _ = t.source.at("capture." + key)
	}
	return p
}
