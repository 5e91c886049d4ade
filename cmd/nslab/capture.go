package main

// This file: capture, packets of a running lab to pcapng or to the terminal.

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/nslab/nslab/capture"
	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/topo"
	"github.com/urfave/cli/v2"
)

// captureCommand is `nslab capture`.
func (g *globals) captureCommand() *cli.Command {
	return &cli.Command{
		Name:      "capture",
		Usage:     "capture packets of a running lab, to pcapng or one line each (no tcpdump needed)",
		ArgsUsage: "LAB NODE[:IFACE]... [FILTER...]",
		Description: `Captures what the named interfaces send and receive, through AF_PACKET
sockets opened inside the nodes: no tcpdump in the lab or on the machine.
NODE alone captures every interface of the node. Timestamps are the
kernel's, in nanoseconds.

Without -w, prints one line per packet, as tcpdump -i any does, naming
where it was seen (r1:eth0) and which way (In, Out). With -w FILE, writes
pcapng with one interface block per interface, named node:iface, so
Wireshark shows where each packet was seen; -w - writes it to stdout,
packet by packet, for a live view:

   nslab capture lab r1 -w - | wireshark -k -i -
   nslab capture lab r1 -w - | tcpdump -r -

FILTER is tcpdump's language: host, net, port, portrange, proto; ip, ip6,
arp, tcp, udp, icmp, icmp6; src, dst; and, or, not, parentheses. A node's
name stands for its addresses (host h1). The kernel runs the filter: what
it rejects never reaches nslab.

The capture ends at Ctrl-C, after -c packets or after --duration; then
the packets captured and the kernel's drops are reported on stderr.
A topology file's [capture] table makes nslab run capture by itself.
Exit 0 when it ran, 1 when the kernel refused or the lab was taken down
under it, 2 on bad input (unknown lab, node or interface, a filter that
does not parse, a file that cannot be written: then nothing is written).

   nslab capture lan h1
   nslab capture lab r1:eth0 r2:eth1 udp port 53 -c 10
   nslab capture lab r1 -w r1.pcapng --duration 10s host h1 and not arp
   (docs/capture.md)`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "write", Aliases: []string{"w"}, Usage: "write pcapng to `FILE` ('-': stdout) instead of printing a line per packet"},
			&cli.IntFlag{Name: "count", Aliases: []string{"c"}, Usage: "stop after `N` packets", DefaultText: "no limit"},
			&cli.DurationFlag{Name: "duration", Usage: "stop after `D` (as 500ms, 10s, 1m)", DefaultText: "until Ctrl-C"},
			&cli.IntFlag{Name: "snaplen", Aliases: []string{"s"}, Usage: "keep the first `BYTES` of each packet", DefaultText: "262144: all"},
			&cli.IntFlag{Name: "buffer", Aliases: []string{"B"}, Usage: "each socket's kernel buffer, in `KIB`", DefaultText: "4096"},
		},
		OnUsageError: usageError,
		Action:       g.cmdCapture,
	}
}

// splitCaptureArgs parts LAB NODE[:IFACE]... [--] [FILTER...]: the targets
// end at the first word of a filter, or at "--".
func splitCaptureArgs(args []string) (lab string, targets []string, filter string) {
	if len(args) == 0 {
		return "", nil, ""
	}
	lab = args[0]
	rest := args[1:]
	i := 0
	for i < len(rest) && rest[i] != "--" && !capture.StartsFilter(rest[i]) {
		i++
	}
	targets = rest[:i]
	if i < len(rest) && rest[i] == "--" {
		i++
	}
	return lab, targets, strings.Join(rest[i:], " ")
}

func (g *globals) cmdCapture(c *cli.Context) error {
	const usage = "usage: nslab capture LAB NODE[:IFACE]... [-w FILE] [-c N] [--duration D] [FILTER...]"
	labName, targets, filter := splitCaptureArgs(c.Args().Slice())
	if labName == "" || len(targets) == 0 {
		return topo.BadInput(errors.New(usage))
	}
	if c.Int("count") < 0 || c.Duration("duration") < 0 || c.Int("snaplen") < 0 || c.Int("buffer") < 0 {
		return topo.BadInput(errors.New("-c, --duration, -s and -B take values of zero or more"))
	}
	if err := needCaps(true); err != nil {
		return err
	}
	lab, err := g.openLab(c, labName)
	if err != nil {
		return err
	}
	defer lab.Close()
	out := c.String("write")
	if c.IsSet("write") && out == "" {
		return topo.BadInput(errors.New("-w needs a file, or - for stdout"))
	}
	if out == "-" && isTerminal(g.stdout) {
		return topo.BadInput(errors.New("-w - writes pcapng, not text: pipe it into a reader (| wireshark -k -i -, | tcpdump -r -), or leave -w out for a line per packet"))
	}
	if out != "" && out != "-" {
		// Check the file can be written before anything is opened; it is
		// created (or truncated) only once the capture is open.
		if err := checkWritable(out); err != nil {
			return err
		}
	}
	capt, err := lab.OpenCapture(targets, emulator.CaptureOptions{
		Filter: filter, Count: c.Int("count"), SnapLen: c.Int("snaplen"), BufferSize: c.Int("buffer") << 10,
	})
	if err != nil {
		return err
	}
	defer capt.Close()

	var sink capture.Sink
	var file *os.File
	switch out {
	case "":
		sink = capture.NewSummaryWriter(g.stdout, capt.Interfaces)
	case "-":
		pw, err := capture.NewPcapngWriter(g.stdout, capt.Interfaces, true)
		if err != nil {
			return err
		}
		sink = pw
	default:
		file, err = os.Create(out)
		if err != nil {
			return topo.BadInput(fmt.Errorf("-w %s: %w", out, err))
		}
		defer file.Close()
		pw, err := capture.NewPcapngWriter(file, capt.Interfaces, false)
		if err != nil {
			return err
		}
		sink = pw
	}
	var names []string
	for _, i := range capt.Interfaces {
		names = append(names, i.Name)
	}
	where := "to " + out
	if out == "" {
		where = "one line per packet"
	} else if out == "-" {
		where = "pcapng to stdout"
	}
	// Ctrl-C is caught before the capture says it runs: a user (or a
	// test) may press it as soon as the line shows.
	sigctx, cancel := signalContext()
	defer cancel()
	fmt.Fprintf(g.stderr, "capturing on %s%s, %s\n", strings.Join(names, ", "), filterNote(filter), where)
	ctx, stop := capture.Until(sigctx, c.Duration("duration"))
	defer stop()
	res, err := capt.Run(ctx, sink)
	if file != nil {
		if cerr := file.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("-w %s: %w", out, cerr)
		}
	}
	fmt.Fprintln(g.stderr, res)
	if err != nil && errors.Is(err, syscall.EPIPE) {
		return nil // the reader went away: the capture is over
	}
	return err
}

func filterNote(f string) string {
	if f == "" {
		return ""
	}
	return fmt.Sprintf(" (filter %q)", f)
}

// checkWritable fails with bad input when path cannot be written, without
// changing it: an existing file is opened for writing and left as it is; a
// new one is tried in its directory and removed.
func checkWritable(path string) error {
	bad := func(err error) error { return topo.BadInput(fmt.Errorf("-w %s: %w", path, err)) }
	if fi, err := os.Stat(path); err == nil {
		if fi.IsDir() {
			return bad(errors.New("is a directory"))
		}
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return bad(err)
		}
		return f.Close()
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return bad(err)
	}
	f.Close()
	return os.Remove(path)
}

// startFileCapture starts the capture a topology's [capture] table asks
// for, into DIR/LAB.pcapng, for as long as `nslab run` runs the lab; stop
// ends it and reports it on stderr. A plan without the table returns a stop
// that does nothing.
func (g *globals) startFileCapture(lab *emulator.Lab, plan *topo.Plan) (stop func() error, err error) {
	if plan.Topology == nil || plan.Topology.Capture == nil {
		return func() error { return nil }, nil
	}
	spec := plan.Topology.Capture
	capt, err := lab.OpenCapture(spec.Interfaces, emulator.CaptureOptions{Filter: spec.Filter, SnapLen: spec.SnapLen})
	if err != nil {
		return nil, err
	}
	path := emulator.CaptureFile(plan)
	f, err := os.Create(path)
	if err != nil {
		capt.Close()
		return nil, fmt.Errorf("capture file: %w", err)
	}
	w, err := capture.NewPcapngWriter(f, capt.Interfaces, false)
	if err != nil {
		capt.Close()
		f.Close()
		return nil, err
	}
	capt.Start(w)
	var names []string
	for _, i := range capt.Interfaces {
		names = append(names, i.Name)
	}
	fmt.Fprintf(g.stderr, "capturing on %s%s, to %s\n", strings.Join(names, ", "), filterNote(spec.Filter), path)
	return func() error {
		res, err := capt.Stop()
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("capture file %s: %w", path, cerr)
		}
		fmt.Fprintf(g.stderr, "capture: %s, in %s\n", res, path)
		return err
	}, nil
}
