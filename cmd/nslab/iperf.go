package main

// This file: iperf, the throughput probe, in process.

import (
	"fmt"
	"strings"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/impair"
	"github.com/nslab/nslab/topo"
	"github.com/urfave/cli/v2"
)

// iperfCommand is `nslab iperf`.
func (g *globals) iperfCommand() *cli.Command {
	return &cli.Command{
		Name:      "iperf",
		Usage:     "measure the throughput from one node to another, in process",
		ArgsUsage: "LAB FROM TO",
		Description: `Sends from FROM to TO's first address (IPv4 when both have it) for --time,
as iperf does, and prints what arrived: the goodput (the payload the
receiver got, in bits per second: no header of any layer counts). Both
ends run in this process, in sockets opened inside the two nodes: no iperf
binary is needed in the lab.

TCP (the default) sends as fast as the path takes and reports the
segments the sender's kernel retransmitted and its smoothed round-trip
time (TCP_INFO). UDP (--udp) sends 1,400-byte datagrams at --rate
(payload bits per second, as iperf's -b; 1mbit by default) and reports
the datagrams lost and the interarrival jitter (RFC 3550).

Over a link limited to rate R, TCP's goodput reads about 0.96 R: the
Ethernet, IP and TCP headers take the rest of each full frame.

Exit 0 with a measurement, 1 when no data got through (or the connection
failed), 2 on bad input.

   nslab iperf lan h1 h2
   nslab iperf lab c1 s1 --time 5s --json
   nslab iperf lab c1 s1 --udp --rate 20mbit`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "udp", Aliases: []string{"u"}, Usage: "send UDP datagrams at --rate instead of TCP"},
			&cli.StringFlag{Name: "rate", Aliases: []string{"b"}, Usage: "UDP's sending `RATE`, in the units of impairments: 500kbit, 10mbit, 1gbit (default 1mbit)"},
			&cli.DurationFlag{Name: "time", Aliases: []string{"t"}, Value: emulator.DefaultIperfDuration, Usage: "how long to send"},
			&cli.IntFlag{Name: "port", Aliases: []string{"p"}, Usage: "the receiver's `PORT` (default: a free one)"},
			&cli.IntFlag{Name: "family", Usage: "4 or 6 (default: 4 when both nodes have it)"},
			&cli.BoolFlag{Name: "json", Usage: "print the result as JSON"},
		},
		OnUsageError: usageError,
		Action:       g.cmdIperf,
	}
}

func (g *globals) cmdIperf(c *cli.Context) error {
	o := emulator.IperfOptions{Proto: "tcp", Duration: c.Duration("time"), Port: c.Int("port"), Family: c.Int("family")}
	if c.Bool("udp") {
		o.Proto = "udp"
	}
	if c.IsSet("rate") {
		if !c.Bool("udp") {
			return topo.BadInput(fmt.Errorf("--rate paces UDP only (add --udp): TCP sends as fast as the path takes"))
		}
		r, err := parseRate(c.String("rate"))
		if err != nil {
			return err
		}
		o.Rate = r
	}
	if o.Duration <= 0 {
		return topo.BadInput(fmt.Errorf("--time %s: give a positive duration, as 500ms, 2s, 1m", o.Duration))
	}
	lab, err := g.withLab(c, 3, "nslab iperf LAB FROM TO [--udp] [--rate R] [--time D] [--json]", false)
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	res, err := lab.Iperf(ctx, c.Args().Get(1), c.Args().Get(2), o)
	if err != nil {
		return err
	}
	g.printResult(c, res)
	if !res.OK() {
		return &checkFailed{fmt.Sprintf("iperf: no data got through from %s to %s", res.From, res.To)}
	}
	return nil
}

// parseRate reads a rate in the units of impairments ("10mbit"), as the
// impair package reads a rate key.
func parseRate(s string) (uint64, error) {
	d, err := impair.Parse([]string{"rate=" + s})
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "rate: ")
		return 0, topo.BadInput(fmt.Errorf("--rate %s: %s", s, msg))
	}
	if d.Rate == 0 {
		return 0, topo.BadInput(fmt.Errorf("--rate %s: give a rate above zero, as 500kbit, 10mbit, 1gbit", s))
	}
	return d.Rate, nil
}
