package impair

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Spec is an impairment as a topology file writes it: the table a link,
// a switch port or a host attachment carries. Its keys apply to both
// directions; From holds the keys for one direction, named by the node
// that sends it; Profile starts both directions from a named profile, and
// the keys written next to it override the profile's values.
//
//	[[links]]
//	endpoints = ["home", "isp"]
//	[links.impair]
//	profile = "dsl"            # both directions, up from home, down to it
//	loss = "0.1%"              # both directions, over the profile
//	[links.impair.from.home]
//	rate = "2mbit"             # home -> isp only
//
// The values are kept as written (strings, or numbers where the file has
// them) and read by Resolve, which reports every bad one at once, each
// under its key. See docs/impairments.md for every key.
type Spec struct {
	// Profile names a built-in profile (Profiles): both directions start
	// from it.
	Profile string `toml:"profile,omitempty" json:"profile,omitempty"`
	// User names the endpoint at the user's end of a profile (the phone,
	// the home): the profile's up direction starts there. Without it, the
	// link's first endpoint is the user's end.
	User string `toml:"user,omitempty" json:"user,omitempty"`
	// Params are the keys for both directions.
	Params
	// From holds, per sending node, the keys for that direction only.
	From map[string]Params `toml:"from,omitempty" json:"from,omitempty"`
}

// Params are the keys of one impairment table, as written. Each is nil
// when the table leaves it out; a zero ("0", 0, "0%", "0ms") removes what
// a profile or the both-directions table set.
type Params struct {
	Rate             any `toml:"rate,omitempty" json:"rate,omitempty"`
	Burst            any `toml:"burst,omitempty" json:"burst,omitempty"`
	Limit            any `toml:"limit,omitempty" json:"limit,omitempty"`
	Delay            any `toml:"delay,omitempty" json:"delay,omitempty"`
	Jitter           any `toml:"jitter,omitempty" json:"jitter,omitempty"`
	Distribution     any `toml:"distribution,omitempty" json:"distribution,omitempty"`
	DelayCorrelation any `toml:"delay_correlation,omitempty" json:"delay_correlation,omitempty"`

	Loss            any            `toml:"loss,omitempty" json:"loss,omitempty"`
	LossCorrelation any            `toml:"loss_correlation,omitempty" json:"loss_correlation,omitempty"`
	LossModel       *LossModelSpec `toml:"loss_model,omitempty" json:"loss_model,omitempty"`

	Duplicate            any `toml:"duplicate,omitempty" json:"duplicate,omitempty"`
	DuplicateCorrelation any `toml:"duplicate_correlation,omitempty" json:"duplicate_correlation,omitempty"`
	Corrupt              any `toml:"corrupt,omitempty" json:"corrupt,omitempty"`
	CorruptCorrelation   any `toml:"corrupt_correlation,omitempty" json:"corrupt_correlation,omitempty"`
	Reorder              any `toml:"reorder,omitempty" json:"reorder,omitempty"`
	ReorderCorrelation   any `toml:"reorder_correlation,omitempty" json:"reorder_correlation,omitempty"`
	Gap                  any `toml:"gap,omitempty" json:"gap,omitempty"`
}

// LossModelSpec is the Gilbert-Elliott burst-loss model as the file writes
// it: loss_model = { p = "1%", r = "25%", bad_loss = "100%", good_loss =
// "0%" }. P and R are required; BadLoss defaults to 100 % and GoodLoss to
// 0 % (the "simple Gilbert" model). Model, if given, must be
// "gilbert-elliott", the only model offered.
type LossModelSpec struct {
	Model    any `toml:"model,omitempty" json:"model,omitempty"`
	P        any `toml:"p,omitempty" json:"p,omitempty"`
	R        any `toml:"r,omitempty" json:"r,omitempty"`
	BadLoss  any `toml:"bad_loss,omitempty" json:"bad_loss,omitempty"`
	GoodLoss any `toml:"good_loss,omitempty" json:"good_loss,omitempty"`
}

// GilbertElliottModel is the name of the only loss model offered.
const GilbertElliottModel = "gilbert-elliott"

// Problem is one bad value in a Spec (or in run-time words), under the key
// path it was written at, relative to the spec: "rate", "from.home.delay",
// "loss_model.p", "profile". A topology decoder prefixes the spec's own
// path ("links[0].impair.") to place it at file:line:col.
type Problem struct {
	Path string `json:"path"`
	Msg  string `json:"message"`
}

func (p Problem) String() string {
	if p.Path == "" {
		return p.Msg
	}
	return p.Path + ": " + p.Msg
}

func (p Problem) Error() string { return p.String() }

// Problems is every problem found, in the order of the keys.
type Problems []Problem

func (ps Problems) Error() string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, "\n")
}

func (ps *Problems) add(path, format string, args ...any) {
	*ps = append(*ps, Problem{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// err returns ps as an error, or nil (never a nil Problems in an error).
func (ps Problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	return ps
}

// IsZero reports whether s says nothing: no profile and no key.
func (s *Spec) IsZero() bool {
	if s == nil {
		return true
	}
	if s.Profile != "" || s.User != "" || !s.Params.isZero() {
		return false
	}
	for _, p := range s.From {
		if !p.isZero() {
			return false
		}
	}
	return true
}

func (p *Params) isZero() bool {
	if p.LossModel != nil {
		return false
	}
	for _, k := range paramKeys {
		if *k.field(p) != nil {
			return false
		}
	}
	return true
}

// key is one key of a Params table: where it is held, how its value is
// read into a Direction, and which fields of a Direction it sets.
type key struct {
	name  string
	field func(*Params) *any
	parse func(*Direction, any) error
	copy  func(dst *Direction, src Direction)
}

// keys are the keys of Params other than loss_model, in the order of the
// docs. A test checks them against the struct's toml tags.
var paramKeys = []key{
	{"rate", func(p *Params) *any { return &p.Rate },
		func(d *Direction, v any) (err error) { d.Rate, err = parseRate(v); return },
		func(d *Direction, s Direction) { d.Rate = s.Rate }},
	{"burst", func(p *Params) *any { return &p.Burst },
		func(d *Direction, v any) (err error) { d.Burst, err = parseSize(v); return },
		func(d *Direction, s Direction) { d.Burst = s.Burst }},
	{"limit", func(p *Params) *any { return &p.Limit },
		func(d *Direction, v any) (err error) { d.Limit, d.LimitBytes, err = parseLimit(v); return },
		func(d *Direction, s Direction) { d.Limit, d.LimitBytes = s.Limit, s.LimitBytes }},
	{"delay", func(p *Params) *any { return &p.Delay },
		func(d *Direction, v any) (err error) { d.Delay, err = parseTime(v); return },
		func(d *Direction, s Direction) { d.Delay = s.Delay }},
	{"jitter", func(p *Params) *any { return &p.Jitter },
		func(d *Direction, v any) (err error) { d.Jitter, err = parseTime(v); return },
		func(d *Direction, s Direction) { d.Jitter = s.Jitter }},
	{"distribution", func(p *Params) *any { return &p.Distribution },
		func(d *Direction, v any) (err error) { d.Distribution, err = parseDistribution(v); return },
		func(d *Direction, s Direction) { d.Distribution = s.Distribution }},
	{"delay_correlation", func(p *Params) *any { return &p.DelayCorrelation },
		func(d *Direction, v any) (err error) { d.DelayCorrelation, err = parsePercent(v); return },
		func(d *Direction, s Direction) { d.DelayCorrelation = s.DelayCorrelation }},
	{"loss", func(p *Params) *any { return &p.Loss },
		func(d *Direction, v any) (err error) { d.Loss, err = parsePercent(v); return },
		func(d *Direction, s Direction) { d.Loss = s.Loss }},
	{"loss_correlation", func(p *Params) *any { return &p.LossCorrelation },
		func(d *Direction, v any) (err error) { d.LossCorrelation, err = parsePercent(v); return },
		func(d *Direction, s Direction) { d.LossCorrelation = s.LossCorrelation }},
	{"duplicate", func(p *Params) *any { return &p.Duplicate },
		func(d *Direction, v any) (err error) { d.Duplicate, err = parsePercent(v); return },
		func(d *Direction, s Direction) { d.Duplicate = s.Duplicate }},
	{"duplicate_correlation", func(p *Params) *any { return &p.DuplicateCorrelation },
		func(d *Direction, v any) (err error) { d.DuplicateCorrelation, err = parsePercent(v); return },
		func(d *Direction, s Direction) { d.DuplicateCorrelation = s.DuplicateCorrelation }},
	{"corrupt", func(p *Params) *any { return &p.Corrupt },
		func(d *Direction, v any) (err error) { d.Corrupt, err = parsePercent(v); return },
		func(d *Direction, s Direction) { d.Corrupt = s.Corrupt }},
	{"corrupt_correlation", func(p *Params) *any { return &p.CorruptCorrelation },
		func(d *Direction, v any) (err error) { d.CorruptCorrelation, err = parsePercent(v); return },
		func(d *Direction, s Direction) { d.CorruptCorrelation = s.CorruptCorrelation }},
	{"reorder", func(p *Params) *any { return &p.Reorder },
		func(d *Direction, v any) (err error) { d.Reorder, err = parsePercent(v); return },
		func(d *Direction, s Direction) { d.Reorder = s.Reorder }},
	{"reorder_correlation", func(p *Params) *any { return &p.ReorderCorrelation },
		func(d *Direction, v any) (err error) { d.ReorderCorrelation, err = parsePercent(v); return },
		func(d *Direction, s Direction) { d.ReorderCorrelation = s.ReorderCorrelation }},
	{"gap", func(p *Params) *any { return &p.Gap },
		func(d *Direction, v any) (err error) { d.Gap, err = parseGap(v); return },
		func(d *Direction, s Direction) { d.Gap = s.Gap }},
}

// lossModelKeys are the keys of a loss_model table.
var lossModelKeys = []struct {
	name  string
	field func(*LossModelSpec) *any
}{
	{"model", func(m *LossModelSpec) *any { return &m.Model }},
	{"p", func(m *LossModelSpec) *any { return &m.P }},
	{"r", func(m *LossModelSpec) *any { return &m.R }},
	{"bad_loss", func(m *LossModelSpec) *any { return &m.BadLoss }},
	{"good_loss", func(m *LossModelSpec) *any { return &m.GoodLoss }},
}

// Keys lists the keys an impairment table takes, in the order of the docs:
// the keys for one direction (with loss_model's as "loss_model.p"), then
// "profile", "user" and "from".
func Keys() []string {
	var out []string
	for _, k := range paramKeys {
		out = append(out, k.name)
		if k.name == "loss_correlation" {
			for _, m := range lossModelKeys {
				out = append(out, "loss_model."+m.name)
			}
		}
	}
	return append(out, "profile", "user", "from")
}

// layer is what one table (a profile's direction, the both-directions
// keys, one from.NODE table) sets: the values read, where each key was
// written ("profile" for a profile's), and the keys written with a bad
// value, which the checks across keys leave alone.
type layer struct {
	d    Direction
	path map[string]string
	bad  map[string]bool
}

func newLayer() layer {
	return layer{path: map[string]string{}, bad: map[string]bool{}}
}

func keyPath(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// readParams reads the keys of one table, prefix its path in the spec.
func readParams(p *Params, prefix string, ps *Problems) layer {
	l := newLayer()
	for _, k := range paramKeys {
		v := *k.field(p)
		if v == nil {
			continue
		}
		path := keyPath(prefix, k.name)
		if err := k.parse(&l.d, v); err != nil {
			ps.add(path, "%s", err)
			l.bad[k.name] = true
			continue
		}
		l.path[k.name] = path
	}
	if p.LossModel != nil {
		path := keyPath(prefix, "loss_model")
		if m, ok := readLossModel(p.LossModel, path, ps); ok {
			l.d.LossModel = m
			l.path["loss_model"] = path
		} else {
			l.bad["loss_model"] = true
		}
	}
	return l
}

// readLossModel reads a loss_model table.
func readLossModel(m *LossModelSpec, path string, ps *Problems) (*GilbertElliott, bool) {
	n := len(*ps)
	if m.Model != nil {
		s, isString := m.Model.(string)
		if !isString || strings.ToLower(strings.TrimSpace(s)) != GilbertElliottModel {
			ps.add(keyPath(path, "model"), "unknown loss model %s%s; the only one offered is %q (netem's 4-state model is not)",
				show(m.Model), didYouMean(fmt.Sprint(m.Model), []string{GilbertElliottModel}), GilbertElliottModel)
		}
	}
	pct := func(key string, v any, def float64, required string) float64 {
		if v == nil {
			if required != "" {
				ps.add(path, "%s is missing: %s", key, required)
			}
			return def
		}
		f, err := parsePercent(v)
		if err != nil {
			ps.add(keyPath(path, key), "%s", err)
		}
		return f
	}
	g := &GilbertElliott{
		P: pct("p", m.P, 0, `write p, the chance per packet to go from the good state to the bad one, such as p = "1%"`),
		R: pct("r", m.R, 0, `write r, the chance per packet to come back to the good state, such as r = "25%"`),
		H: 100 - pct("bad_loss", m.BadLoss, 100, ""),
		K: pct("good_loss", m.GoodLoss, 0, ""),
	}
	if len(*ps) == n && g.R == 0 && g.P > 0 {
		ps.add(keyPath(path, "r"), "%s keeps the link in the bad state for ever once there: write r above 0%%, such as \"25%%\"", show(m.R))
	}
	return g, len(*ps) == n
}

// merge lays the tables over each other, later ones winning key by key.
// loss and loss_model are one choice: a table that sets one drops the
// other (and loss_correlation with loss) from the tables below it.
func mergeLayers(layers ...layer) layer {
	m := newLayer()
	for _, l := range layers {
		for _, k := range paramKeys {
			if l.bad[k.name] {
				m.bad[k.name] = true
				delete(m.path, k.name)
				continue
			}
			if path, ok := l.path[k.name]; ok {
				k.copy(&m.d, l.d)
				m.path[k.name] = path
				delete(m.bad, k.name)
			}
		}
		_, setsLoss := l.path["loss"]
		_, setsModel := l.path["loss_model"]
		if l.bad["loss_model"] {
			m.bad["loss_model"] = true
		}
		switch {
		case setsModel:
			m.d.LossModel = l.d.LossModel.clone()
			m.path["loss_model"] = l.path["loss_model"]
			delete(m.bad, "loss_model")
			if !setsLoss && !l.bad["loss"] {
				m.d.Loss = 0
				delete(m.path, "loss")
				if _, ok := l.path["loss_correlation"]; !ok {
					m.d.LossCorrelation = 0
					delete(m.path, "loss_correlation")
				}
			}
		case setsLoss:
			m.d.LossModel = nil
			delete(m.path, "loss_model")
		}
	}
	return m
}

func (g *GilbertElliott) clone() *GilbertElliott {
	if g == nil {
		return nil
	}
	c := *g
	return &c
}

// profileLayer is one direction of a profile as the lowest table.
func profileLayer(d Direction) layer {
	l := newLayer()
	l.d = d.clone()
	for _, k := range paramKeys {
		var one Direction
		k.copy(&one, d)
		if !one.IsZero() {
			l.path[k.name] = "profile"
		}
	}
	if d.LossModel != nil {
		l.path["loss_model"] = "profile"
	}
	return l
}

// Resolve reads s for a link whose endpoints are the nodes a and b: AB is
// the direction a sends, BA the one b sends. It reports every bad value,
// each under its key path; with any, the Link is zero. A nil or empty
// Spec is a plain link.
func (s *Spec) Resolve(a, b string) (Link, Problems) {
	if s == nil {
		return Link{}, nil
	}
	var ps Problems
	var prof *Profile
	if s.Profile != "" {
		if p, ok := LookupProfile(s.Profile); ok {
			prof = &p
		} else {
			ps.add("profile", "unknown profile %q%s; profiles: %s", s.Profile,
				didYouMean(s.Profile, ProfileNames()), strings.Join(ProfileNames(), ", "))
		}
	}
	userIsA := true
	if s.User != "" {
		if s.Profile == "" {
			ps.add("user", "%q without a profile: user says which end of a profile is the user's", s.User)
		}
		switch s.User {
		case a:
		case b:
			userIsA = false
		default:
			ps.add("user", "%q is not an endpoint of this link: user names the end the profile's up direction starts from, %q or %q%s",
				s.User, a, b, didYouMean(s.User, []string{a, b}))
		}
	}
	both := readParams(&s.Params, "", &ps)
	from := map[string]layer{}
	for _, name := range fromOrder(s.From, a, b) {
		if name != a && name != b {
			ps.add("from."+name, "%q is not an endpoint of this link: from names the sending end, %q or %q%s",
				name, a, b, didYouMean(name, []string{a, b}))
		}
		p := s.From[name]
		from[name] = readParams(&p, "from."+name, &ps)
	}
	upAB, upBA := newLayer(), newLayer()
	profName := ""
	if prof != nil {
		profName = prof.Name
		if userIsA {
			upAB, upBA = profileLayer(prof.Up), profileLayer(prof.Down)
		} else {
			upAB, upBA = profileLayer(prof.Down), profileLayer(prof.Up)
		}
	}
	ab := mergeLayers(upAB, both, orEmpty(from, a))
	ba := mergeLayers(upBA, both, orEmpty(from, b))
	ps = append(ps, combineDirections(checkDirection(ab, profName), checkDirection(ba, profName), a, b)...)
	if len(ps) > 0 {
		return Link{}, ps
	}
	return Link{AB: ab.d, BA: ba.d}, nil
}

func orEmpty(m map[string]layer, k string) layer {
	if l, ok := m[k]; ok {
		return l
	}
	return newLayer()
}

// fromOrder lists the from tables: a's, b's, then the others by name.
func fromOrder(from map[string]Params, a, b string) []string {
	var out []string
	for _, n := range []string{a, b} {
		if _, ok := from[n]; ok && (len(out) == 0 || out[0] != n) {
			out = append(out, n)
		}
	}
	for _, n := range sortedKeys(from) {
		if n != a && n != b {
			out = append(out, n)
		}
	}
	return out
}

// combine joins the problems of the two directions: one found in both is
// said once; one found in a single direction, at a key that applies to
// both, says which.
func combineDirections(ab, ba Problems, a, b string) Problems {
	var out Problems
	has := func(ps Problems, p Problem) bool {
		for _, q := range ps {
			if q == p {
				return true
			}
		}
		return false
	}
	note := func(p Problem, from, to string) Problem {
		if !strings.HasPrefix(p.Path, "from.") {
			p.Msg += fmt.Sprintf(" (from %s to %s)", from, to)
		}
		return p
	}
	for _, p := range ab {
		if has(ba, p) {
			out = append(out, p)
		} else {
			out = append(out, note(p, a, b))
		}
	}
	for _, p := range ba {
		if !has(ab, p) {
			out = append(out, note(p, b, a))
		}
	}
	return out
}

// Validate checks a Direction built in Go (the run-time API takes them) by
// the rules Resolve applies to a file: ranges, and the keys that need
// another (jitter needs a delay, gap needs reorder, ...). Problems are
// named by the file's keys.
func (d Direction) Validate() error {
	l := newLayer()
	l.d = d
	for _, k := range Keys() {
		l.path[k] = k
	}
	return checkDirection(l, "").err()
}

// check applies the rules across keys to one merged direction. Values
// out of range cannot come from a file (the parsers refuse them) but can
// from Go.
func checkDirection(m layer, profile string) Problems {
	var ps Problems
	d := m.d
	at := func(key string) string {
		if p, ok := m.path[key]; ok {
			return p
		}
		return key
	}
	// Ranges, for directions built in Go.
	percent := func(key string, v float64) {
		if math.IsNaN(v) || v < 0 || v > 100 {
			ps.add(at(key), "%v is not a percentage from 0 to 100", v)
		}
	}
	for _, f := range []struct {
		key string
		v   float64
	}{
		{"delay_correlation", d.DelayCorrelation}, {"loss", d.Loss}, {"loss_correlation", d.LossCorrelation},
		{"duplicate", d.Duplicate}, {"duplicate_correlation", d.DuplicateCorrelation},
		{"corrupt", d.Corrupt}, {"corrupt_correlation", d.CorruptCorrelation},
		{"reorder", d.Reorder}, {"reorder_correlation", d.ReorderCorrelation},
	} {
		percent(f.key, f.v)
	}
	if g := d.LossModel; g != nil {
		percent("loss_model.p", g.P)
		percent("loss_model.r", g.R)
		percent("loss_model.bad_loss", 100-g.H)
		percent("loss_model.good_loss", g.K)
	}
	for _, f := range []struct {
		key string
		v   time.Duration
	}{{"delay", d.Delay}, {"jitter", d.Jitter}} {
		if f.v < 0 || f.v > maxDelay {
			ps.add(at(f.key), "%s is not from 0 to %s", f.v, FormatTime(maxDelay))
		}
	}
	if d.Rate > 0 && d.Rate < 8 {
		ps.add(at("rate"), "%dbit is below 8bit, the smallest rate the kernel keeps", d.Rate)
	}
	if _, ok := distributions[string(d.Distribution)]; !ok && d.Distribution != Uniform {
		ps.add(at("distribution"), "unknown distribution %q; netem has %s", string(d.Distribution), strings.Join(quoteAll(distributionNames()), ", "))
	}

	// need reports key x, set to xv, that needs what another key gives
	// (ys, none of them set). A value that came from the profile is put
	// where the user removed what it needs.
	need := func(x string, xSet bool, xv string, ys []string, ySet bool, what, why string) {
		if !xSet || ySet || m.bad[x] {
			return
		}
		for _, y := range ys {
			if m.bad[y] {
				return
			}
		}
		if at(x) != "profile" {
			ps.add(at(x), "%s without %s: %s", xv, what, why)
			return
		}
		for _, y := range ys {
			if p, ok := m.path[y]; ok && p != "profile" {
				ps.add(p, "0 leaves the %s %s of profile %q without %s (%s): set %s to 0 as well", x, xv, profile, what, why, x)
				return
			}
		}
		ps.add("profile", "profile %q: %s %s without %s", profile, x, xv, what)
	}
	need("burst", d.Burst > 0, FormatSize(d.Burst), []string{"rate"}, d.Rate > 0, "a rate",
		"a burst is what may pass at line rate above the rate, and rate 0 is no limit")
	limit := strings.TrimSpace(fmt.Sprint(d.Limit))
	if d.LimitBytes > 0 {
		limit = FormatSize(d.LimitBytes)
	}
	need("limit", d.Limit > 0 || d.LimitBytes > 0, limit, []string{"rate", "delay"}, d.Rate > 0 || d.Delay > 0,
		"a rate or a delay", "a queue builds only behind a rate limit or a delay")
	need("jitter", d.Jitter > 0, FormatTime(d.Jitter), []string{"delay"}, d.Delay > 0, "a delay",
		"netem varies the delay by up to the jitter")
	need("distribution", d.Distribution != Uniform, string(d.Distribution), []string{"jitter"}, d.Jitter > 0, "jitter",
		"the distribution shapes the jitter")
	need("delay_correlation", d.DelayCorrelation > 0, FormatPercent(d.DelayCorrelation), []string{"jitter"}, d.Jitter > 0, "jitter",
		"it ties each packet's jitter to the last one's")
	if d.LossModel != nil && d.Loss > 0 && !m.bad["loss"] {
		ps.add(at("loss_model"), "set together with loss %s: netem takes one loss model; keep one", FormatPercent(d.Loss))
	}
	if d.LossModel != nil && d.Loss == 0 && d.LossCorrelation > 0 {
		ps.add(at("loss_correlation"), "%s applies to loss, not to loss_model (the Gilbert-Elliott model makes its own bursts)",
			FormatPercent(d.LossCorrelation))
	} else {
		need("loss_correlation", d.LossCorrelation > 0, FormatPercent(d.LossCorrelation), []string{"loss"}, d.Loss > 0, "loss",
			"it ties each packet's chance of loss to the last one's")
	}
	need("duplicate_correlation", d.DuplicateCorrelation > 0, FormatPercent(d.DuplicateCorrelation), []string{"duplicate"}, d.Duplicate > 0,
		"duplicate", "it ties each packet's chance of duplication to the last one's")
	need("corrupt_correlation", d.CorruptCorrelation > 0, FormatPercent(d.CorruptCorrelation), []string{"corrupt"}, d.Corrupt > 0,
		"corrupt", "it ties each packet's chance of corruption to the last one's")
	need("reorder_correlation", d.ReorderCorrelation > 0, FormatPercent(d.ReorderCorrelation), []string{"reorder"}, d.Reorder > 0,
		"reorder", "it ties each packet's chance of reordering to the last one's")
	need("reorder", d.Reorder > 0, FormatPercent(d.Reorder), []string{"delay"}, d.Delay > 0, "a delay",
		"netem reorders by sending some packets at once while the others wait out the delay")
	need("gap", d.Gap > 0, fmt.Sprint(d.Gap), []string{"reorder"}, d.Reorder > 0, "reorder",
		"gap says how many packets are delayed between two sent at once by reorder")
	return ps
}
