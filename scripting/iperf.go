package scripting

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/impair"
	"github.com/nslab/nslab/topo"
)

// iperfCommand is `iperf A B [tcp|udp] [rate=R] [time=D] [>= RATE]`: the
// throughput probe of emulator.Lab.Iperf as a check.
func iperfCommand() *Command {
	return &Command{
		Name: "iperf", Usage: "iperf A B [udp] [rate=R] [time=D] [>= RATE]", Check: true, MinArgs: 2, MaxArgs: 7,
		Summary: "measure the throughput from A to B (in process, no iperf binary)",
		Help: `Sends from node A to node B's first address for time=D (2s by default) and
shows the goodput B received: TCP by default, with the retransmissions the
sender's kernel counted; udp sends 1,400-byte datagrams at rate=R (payload
bits per second, 1mbit by default) and shows loss and jitter. Rates are
written as in impairments: 500kbit, 10mbit, 1gbit.
Without >= the line holds when any data got through; with >= RATE it holds
when the goodput is at least RATE, so '!' checks a limit:
    iperf h1 h2 >= 9mbit          # at least 9 Mbit/s
    !iperf h1 h2 time=1s >= 11mbit  # and not more than a 10mbit link gives
    iperf h1 h2 udp rate=5mbit    # loss and jitter at 5 Mbit/s
Over a link limited to rate R, TCP's goodput reads about 0.96 R (the
headers take the rest).`,
		Validate: func(v *Validator, ln *Line, args []string) error {
			errs := []error{v.Source(args[0]), v.Source(args[1])}
			if _, _, err := iperfWords(args[2:]); err != nil {
				errs = append(errs, err)
			}
			return v.all(errs...)
		},
		Run: func(ctx context.Context, s *Session, ln *Line, args []string) (Outcome, error) {
			o, min, err := iperfWords(args[2:])
			if err != nil {
				return Outcome{}, err
			}
			out := Outcome{Want: args[0] + " to get data through to " + args[1], WantNot: "no data from " + args[0] + " to get through to " + args[1]}
			if min > 0 {
				at := emulator.FormatBitRate(float64(min))
				out.Want = fmt.Sprintf("a goodput of at least %s from %s to %s", at, args[0], args[1])
				out.WantNot = fmt.Sprintf("a goodput below %s from %s to %s", at, args[0], args[1])
			}
			r, err := s.Lab.Iperf(ctx, args[0], args[1], o)
			if err != nil {
				if topo.IsBadInput(err) || ctx.Err() != nil {
					return out, err
				}
				// The connection could not be made: no data got through.
				out.Said = err.Error()
				return out, nil
			}
			out.Held = r.OK() && r.Goodput >= float64(min)
			out.Said = r.String()
			return out, nil
		},
	}
}

// iperfWords reads the words after `iperf A B`: tcp or udp, rate=R,
// time=D and >= RATE, in any order.
func iperfWords(words []string) (o emulator.IperfOptions, min uint64, err error) {
	var errs []error
	rateSet := false
	for i := 0; i < len(words); i++ {
		w := words[i]
		key, val, kv := strings.Cut(w, "=")
		switch {
		case w == "tcp" || w == "udp":
			if o.Proto != "" && o.Proto != w {
				errs = append(errs, errors.New("tcp or udp: give one"))
			}
			o.Proto = w
		case w == ">=":
			if i+1 == len(words) {
				errs = append(errs, errors.New(">= needs a rate after it, as >= 9mbit"))
				continue
			}
			i++
			r, err := iperfRate(">= ", words[i])
			if err != nil {
				errs = append(errs, err)
			}
			min = r
		case kv && key == "rate":
			r, err := iperfRate("rate=", val)
			if err != nil {
				errs = append(errs, err)
			}
			o.Rate, rateSet = r, true
		case kv && key == "time":
			d, err := time.ParseDuration(val)
			if err != nil || d <= 0 || d > time.Hour {
				errs = append(errs, fmt.Errorf("time=%s: write a positive duration up to 1h, as 500ms, 2s, 1m", val))
			}
			o.Duration = d
		default:
			errs = append(errs, fmt.Errorf("unknown iperf word %q (tcp, udp, rate=R, time=D, >= RATE)", w))
		}
	}
	if rateSet && o.Proto != "udp" {
		errs = append(errs, errors.New("rate= paces UDP only (write udp): TCP sends as fast as the path takes"))
	}
	if len(errs) > 0 {
		return o, 0, errors.Join(errs...)
	}
	return o, min, nil
}

// iperfRate reads a rate in the units of impairments: 10mbit.
func iperfRate(what, s string) (uint64, error) {
	d, err := impair.Parse([]string{"rate=" + s})
	if err != nil {
		return 0, fmt.Errorf("%s%s: %s", what, s, strings.TrimPrefix(err.Error(), "rate: "))
	}
	if d.Rate == 0 {
		return 0, fmt.Errorf("%s%s: give a rate above zero, as 500kbit, 10mbit, 1gbit", what, s)
	}
	return d.Rate, nil
}
