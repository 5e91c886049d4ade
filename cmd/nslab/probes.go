package main

// This file: ping, pingall, serve and probe: nslab's own probes, in process.

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/topo"
	"github.com/urfave/cli/v2"
)

// pingCommand is `nslab ping`.
func (g *globals) pingCommand() *cli.Command {
	return &cli.Command{
		Name:      "ping",
		Usage:     "probe one pair of nodes with ICMP echo, in process",
		ArgsUsage: "LAB FROM TO",
		Description: `Sends ICMP echo requests from FROM to TO's first address (IPv4 when both
have it), from a socket opened inside FROM's namespace: no ping binary is
needed. Exit 0 when every request got a reply, 1 otherwise.

   nslab ping lan h1 h3 -c 5`,
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "count", Aliases: []string{"c"}, Value: 3, Usage: "echo requests to send"},
			&cli.DurationFlag{Name: "interval", Aliases: []string{"i"}, Value: 10 * time.Millisecond, Usage: "time between requests"},
			&cli.DurationFlag{Name: "timeout", Aliases: []string{"W"}, Value: time.Second, Usage: "how long to wait for the last reply"},
			&cli.IntFlag{Name: "family", Usage: "4 or 6 (default: 4 when both nodes have it)"},
			&cli.BoolFlag{Name: "json", Usage: "print the result as JSON"},
		},
		OnUsageError: usageError,
		Action:       g.cmdPing,
	}
}

// pingallCommand is `nslab pingall`.
func (g *globals) pingallCommand() *cli.Command {
	return &cli.Command{
		Name:      "pingall",
		Usage:     "probe every pair of hosts and routers",
		ArgsUsage: "LAB",
		Description: `Probes every ordered pair at once, in process, and prints the matrix the way
Mininet does. Exit 0 when every pair answered, 1 otherwise.

A matrix that needs more neighbour (ARP) entries than the machine's table has
room for (net.ipv4.neigh.default.gc_thresh3, shared by every namespace) runs in
waves of sources, each wave's entries removed before the next; on a terminal, a
line shows the probes done after each wave.

   nslab pingall lan
   nslab pingall lan --json`,
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: "timeout", Value: time.Second, Usage: "how long to wait for replies"},
			&cli.BoolFlag{Name: "json", Usage: "print the matrix as JSON"},
		},
		OnUsageError: usageError,
		Action:       g.cmdPingall,
	}
}

// serveCommand is `nslab serve`.
func (g *globals) serveCommand() *cli.Command {
	return &cli.Command{
		Name:      "serve",
		Usage:     "run nslab's echo service in a node: it answers each probe with the source it saw",
		ArgsUsage: "LAB NODE (--udp PORT | --tcp PORT)",
		Description: `Listens on every address of NODE and answers each probe (a UDP datagram or a
TCP connection from nslab probe) with the source address and port it saw,
which behind a NAT is the mapped address. Prints each source; runs until
Ctrl-C. Nothing needs to be installed in the lab.

   nslab serve nat server --udp 9000`,
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "udp", Usage: "serve UDP on `PORT`"},
			&cli.IntFlag{Name: "tcp", Usage: "serve TCP on `PORT`"},
		},
		OnUsageError: usageError,
		Action:       g.cmdServe,
	}
}

// probeCommand is `nslab probe`.
func (g *globals) probeCommand() *cli.Command {
	return &cli.Command{
		Name:      "probe",
		Usage:     "probe an echo service and print the source address the far side saw",
		ArgsUsage: "LAB FROM TO (--udp PORT | --tcp PORT)",
		Description: `Sends one probe from FROM to TO (a node, aimed at its first IPv4 address, or
an address) where nslab serve runs, and prints the source address and port
the service saw: behind a NAT, the mapping. Exit 0 on an answer, 1 without.

   nslab probe nat client1 server --udp 9000 --from-port 40000
   nslab probe nat server 203.0.113.1 --tcp 8080 --json`,
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "udp", Usage: "probe UDP `PORT`"},
			&cli.IntFlag{Name: "tcp", Usage: "probe TCP `PORT`"},
			&cli.IntFlag{Name: "from-port", Usage: "local `PORT` to probe from (default: any)"},
			&cli.DurationFlag{Name: "timeout", Value: time.Second, Usage: "how long to wait for the answer"},
			&cli.BoolFlag{Name: "json", Usage: "print the result as JSON"},
		},
		OnUsageError: usageError,
		Action:       g.cmdProbe,
	}
}

func (g *globals) cmdPing(c *cli.Context) error {
	lab, err := g.withLab(c, 3, "nslab ping LAB FROM TO", true)
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	res, err := lab.Ping(ctx, c.Args().Get(1), c.Args().Get(2), emulator.PingOptions{
		Count: c.Int("count"), Interval: c.Duration("interval"), Timeout: c.Duration("timeout"), Family: c.Int("family")})
	if err != nil {
		return err
	}
	g.printResult(c, res)
	if !res.OK() {
		return &checkFailed{fmt.Sprintf("%d of %d echo requests got no reply", res.Sent-res.Received, res.Sent)}
	}
	return nil
}

func (g *globals) cmdPingall(c *cli.Context) error {
	lab, err := g.withLab(c, 1, "nslab pingall LAB", true)
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	opts := emulator.PingOptions{Timeout: c.Duration("timeout")}
	// A big matrix runs in waves (docs/testing.md): on a terminal, a
	// line shows the probes done after each.
	line := g.newProgressLine()
	if line.on {
		opts.Progress = func(done, total int) { line.set(emulator.Progress{Phase: "probes", Done: done, Total: total}) }
	}
	n := 0
	for _, node := range lab.Plan.Nodes {
		if node.Kind != topo.KindSwitch {
			n++
		}
	}
	clear := line.showFrom("pingall", c.Args().First(), emulator.Progress{Phase: "probes", Total: n * (n - 1)})
	m, err := lab.PingAll(ctx, nil, opts)
	clear()
	if err != nil {
		return err
	}
	if c.Bool("json") {
		writeJSON(g.stdout, m)
	} else {
		printMatrix(g.stdout, m)
	}
	if probes, ok := m.Counts(); ok != probes {
		return &checkFailed{fmt.Sprintf("pingall: %d of %d pairs did not answer", probes-ok, probes)}
	}
	return nil
}

// printMatrix prints a pingall result the way Mininet does.
func printMatrix(w io.Writer, m *emulator.Matrix) {
	fmt.Fprintln(w, "*** Ping: testing reachability")
	for i, a := range m.Nodes {
		var b strings.Builder
		fmt.Fprintf(&b, "%s ->", a)
		for j, z := range m.Nodes {
			if i == j {
				continue
			}
			if m.Results[i][j].OK() {
				b.WriteString(" " + z)
			} else {
				b.WriteString(" X")
			}
		}
		fmt.Fprintln(w, b.String())
	}
	probes, ok := m.Counts()
	drop := 0
	if probes > 0 {
		drop = 100 * (probes - ok) / probes
	}
	fmt.Fprintf(w, "*** Results: %d%% dropped (%d/%d received)\n", drop, ok, probes)
}

// protoPort reads exactly one of --udp and --tcp, and checks --from-port.
func protoPort(c *cli.Context) (string, int, error) {
	set := func(name string) bool { return c.IsSet(name) }
	var proto string
	var port int
	switch {
	case set("udp") && !set("tcp"):
		proto, port = "udp", c.Int("udp")
	case set("tcp") && !set("udp"):
		proto, port = "tcp", c.Int("tcp")
	default:
		return "", 0, topo.BadInput(errors.New("give one of --udp PORT or --tcp PORT"))
	}
	if port < 1 || port > 65535 {
		return "", 0, topo.BadInput(fmt.Errorf("--%s %d: a port is 1-65535", proto, port))
	}
	if c.Command.Name == "probe" {
		if fp := c.Int("from-port"); fp < 0 || fp > 65535 {
			return "", 0, topo.BadInput(fmt.Errorf("--from-port %d: a port is 1-65535 (or 0 for any)", fp))
		}
	}
	return proto, port, nil
}

func (g *globals) cmdServe(c *cli.Context) error {
	lab, err := g.withLab(c, 2, "nslab serve LAB NODE (--udp PORT | --tcp PORT)", false)
	if err != nil {
		return err
	}
	proto, port, err := protoPort(c)
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	svc, err := lab.Serve(c.Args().Get(1), proto, port)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	svc.Seen = func(from netip.AddrPort) {
		mu.Lock()
		fmt.Fprintf(g.stdout, "probe from %s\n", from)
		mu.Unlock()
	}
	fmt.Fprintf(g.stdout, "echo service on %s %s port %d of node %s; Ctrl-C stops it\n", lab.Name(), proto, port, svc.Node)
	<-ctx.Done()
	return svc.Close()
}

func (g *globals) cmdProbe(c *cli.Context) error {
	lab, err := g.withLab(c, 3, "nslab probe LAB FROM TO (--udp PORT | --tcp PORT)", false)
	if err != nil {
		return err
	}
	proto, port, err := protoPort(c)
	if err != nil {
		return err
	}
	to := c.Args().Get(2)
	var target netip.AddrPort
	if a, err := netip.ParseAddr(to); err == nil {
		target = netip.AddrPortFrom(a, uint16(port))
	} else if target, err = lab.AddrOf(to, 4, port); err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	res, err := lab.Probe(ctx, c.Args().Get(1), target, proto, emulator.ProbeOptions{FromPort: c.Int("from-port"), Timeout: c.Duration("timeout")})
	if err != nil {
		if topo.IsBadInput(err) {
			return err
		}
		return &checkFailed{err.Error()}
	}
	g.printResult(c, res)
	return nil
}
