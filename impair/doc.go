// Package impair is nslab's model of link impairments: what a link does
// to the packets it carries (a rate limit, a delay with jitter, loss,
// duplication, corruption, reordering, a queue limit), one direction at a
// time, as people write it and as tc(8) and netem(8) say it.
//
// It has three faces:
//
//   - Spec is the table a topology file writes for a link, a switch port
//     or a host attachment (strings with units, "10mbit", "40ms", "1%";
//     a named Profile such as "dsl" or "satellite-geo"; per-direction
//     tables under from.NODE). Spec.Resolve reads it for a link's two
//     endpoints into a Link, reporting every bad value at once, each
//     under its key path so that the decoder can place it at
//     file:line:col.
//   - Parse reads the run-time words of the CLI, the prompt and scripts
//     (`delay=50ms loss=1%`) with the same keys and unit parsers, and
//     ParseSpec the same words for a whole link (profile=dsl,
//     from.home.rate=1mbit).
//   - Direction (and Link, both directions) is the resolved value that
//     the kernel side applies and that status shows: Direction.String
//     writes it in tc's words ("rate 10Mbit delay 40ms 5ms loss 1%"),
//     Direction.Words as the words Parse reads back.
//
// Each field of a Direction is one tc setting, applied on the egress of
// the sending end of the link:
//
//	Rate, Burst         tc qdisc ... tbf rate 10mbit burst 32kb (or htb)
//	Limit, LimitBytes   the queue: netem limit N (packets), tbf limit SIZE (bytes)
//	Delay, Jitter       netem delay 40ms 5ms
//	DelayCorrelation    netem delay 40ms 5ms 25%
//	Distribution        netem ... distribution normal|pareto|paretonormal
//	Loss, LossCorrelation   netem loss random 1% 25%
//	LossModel           netem loss gemodel P R 1-H K
//	Duplicate(+Correlation) netem duplicate 1% 25%
//	Corrupt(+Correlation)   netem corrupt 0.1% 25%
//	Reorder(+Correlation), Gap  netem reorder 25% 50% gap 5
//
// This package is portable: the model, the parsers, the profiles and the
// formatting build and are tested on any GOOS, with no netlink. How the
// kernel applies a Direction lives in the package's Linux-only files.
//
// docs/impairments.md is the reference for users: every key, its units
// and default, what is refused, the profiles with the sources of their
// figures, and the per-direction shape.
package impair
