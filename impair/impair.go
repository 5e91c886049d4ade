package impair

import "time"

// Direction is what one direction of a link does to the packets it
// carries. nslab applies it on the egress of the sending end (the veth end
// in the sending node's namespace), as `tc qdisc ... root` there. The zero
// value is a plain link: nothing applied, nothing paid.
//
// Percentages are fractions of 100 (Loss 1.5 means 1.5 %). Correlations
// are netem's, in percent as well.
type Direction struct {
	// Rate limits the bandwidth, in bits per second (0: unlimited). Burst
	// is how many bytes may pass at line rate (0: chosen from the rate).
	Rate  uint64 `json:"rate_bps,omitempty"`
	Burst uint32 `json:"burst_bytes,omitempty"`
	// Limit bounds the queue in packets (LimitBytes: in bytes), Mininet's
	// max_queue_size: what a full bottleneck drops (0: chosen so that a
	// delayed, rate-limited link does not drop below its rate).
	Limit      uint32 `json:"limit_packets,omitempty"`
	LimitBytes uint32 `json:"limit_bytes,omitempty"`

	Delay            time.Duration `json:"delay,omitempty"`
	Jitter           time.Duration `json:"jitter,omitempty"`
	Distribution     Distribution  `json:"distribution,omitempty"`
	DelayCorrelation float64       `json:"delay_correlation,omitempty"`

	Loss            float64         `json:"loss,omitempty"`
	LossCorrelation float64         `json:"loss_correlation,omitempty"`
	LossModel       *GilbertElliott `json:"loss_model,omitempty"` // burst loss, instead of Loss

	Duplicate            float64 `json:"duplicate,omitempty"`
	DuplicateCorrelation float64 `json:"duplicate_correlation,omitempty"`
	Corrupt              float64 `json:"corrupt,omitempty"`
	CorruptCorrelation   float64 `json:"corrupt_correlation,omitempty"`
	Reorder              float64 `json:"reorder,omitempty"`
	ReorderCorrelation   float64 `json:"reorder_correlation,omitempty"`
	Gap                  uint32  `json:"gap,omitempty"`
}

// Distribution is the shape of the delay's jitter, as netem names it.
type Distribution string

// Distributions netem offers.
const (
	Uniform      Distribution = "" // netem's default when no table is given
	Normal       Distribution = "normal"
	Pareto       Distribution = "pareto"
	ParetoNormal Distribution = "paretonormal"
)

// GilbertElliott is netem's four-parameter burst-loss model, in percent,
// field for field the kernel's struct tc_netem_gemodel {p, r, h, k1}:
//
//   - P is the chance, per packet, to move from the good state to the bad
//     one; R the chance to move back.
//   - H is the chance a packet gets through in the bad state: h of the
//     model (0: every packet in the bad state is lost). tc's third
//     argument and the file's bad_loss are 1-h, that is 100 - H.
//   - K is the chance a packet is lost in the good state: 1-k of the
//     model, tc's fourth argument and the file's good_loss as they are.
//
// So `tc qdisc ... netem loss gemodel 1% 25% 100% 0%` (and, in a topology,
// loss_model = { p = "1%", r = "25%", bad_loss = "100%", good_loss = "0%" })
// is GilbertElliott{P: 1, R: 25, H: 0, K: 0}. MeanLoss gives the loss rate
// it makes in the long run. See docs/impairments.md.
type GilbertElliott struct {
	P float64 `json:"p"`
	R float64 `json:"r"`
	H float64 `json:"h"` // h: delivered in the bad state (tc's 1-h is 100-H)
	K float64 `json:"k"` // 1-k: lost in the good state (tc's 1-k as is)
}

// Link is both directions of a link, named by the node that sends:
// AB from the link's first endpoint to its second, BA back.
type Link struct {
	AB Direction `json:"ab"`
	BA Direction `json:"ba"`
}

// IsZero reports whether d changes nothing.
func (d Direction) IsZero() bool { return d == Direction{} && d.LossModel == nil }
