package scripting

import (
	"context"
	"net/netip"
	"os/exec"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/impair"
	"github.com/nslab/nslab/topo"
)

// Lab is what a script needs of a running lab: the probes, the echo
// services, links set up and down, programs started in nodes, and the
// kernel's state for `links` and `dump`. *emulator.Lab is one (the CLI's
// and nslabtest's labs); a test may give a fake. What the lab is made of
// (its nodes, interfaces, addresses, routes) is the lab's topo.Plan, given
// beside it to Run and NewSession.
type Lab interface {
	// Ping probes from one node to another (or to o.Target) with ICMP echo.
	Ping(ctx context.Context, from, to string, o emulator.PingOptions) (emulator.PingResult, error)
	// PingAll probes every ordered pair of nodes (every host and router
	// when nodes is empty).
	PingAll(ctx context.Context, nodes []string, o emulator.PingOptions) (*emulator.Matrix, error)
	// Probe sends one TCP or UDP probe from a node to an address.
	Probe(ctx context.Context, from string, to netip.AddrPort, proto string, o emulator.ProbeOptions) (emulator.ProbeResult, error)
	// Serve starts an echo service in a node until it is closed.
	Serve(node, proto string, port int) (*emulator.Service, error)
	// AddrOf is a node's first address of a family (4 or 6) with port.
	AddrOf(node string, family, port int) (netip.AddrPort, error)
	// SetLink sets the link between a and b (node or node:interface)
	// up or down and returns it.
	SetLink(a, b string, up bool) (*topo.Link, error)
	// SetImpairment sets what the direction from node from to node to
	// does (a zero Direction: the plain link).
	SetImpairment(from, to string, d impair.Direction) (*topo.Link, error)
	// Impairment reads what both directions of a link do now.
	Impairment(a, b string) (*emulator.Impairment, error)
	// Punch runs a UDP hole punch between hosts a and b.
	Punch(ctx context.Context, a, b string, o emulator.PunchOptions) (emulator.PunchResult, error)
	// Iperf measures the throughput from one node to another.
	Iperf(ctx context.Context, from, to string, o emulator.IperfOptions) (emulator.IperfResult, error)
	// Start starts cmd inside a node.
	Start(node string, cmd *exec.Cmd) error
	// Status reads every node's interfaces, addresses and routes.
	Status() (*emulator.LabStatus, error)
}
