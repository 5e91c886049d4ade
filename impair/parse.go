package impair

import (
	"strings"
)

// Parse reads the run-time words of one direction, key=value each, with
// the keys and units of the file: ["delay=50ms", "loss=1%"] (the words of
// `nslab link LAB A B set delay=50ms loss=1%`). loss_model's keys are
// written loss_model.p=1% and so on. Every bad word is reported; the error
// is Problems, each named by its key. profile, user and from.NODE
// concern both directions of a link: ParseSpec reads them.
func Parse(words []string) (Direction, error) {
	s, ps := parseWords(words)
	if s.Profile != "" {
		ps.add("profile", "%q sets both directions of a link; here one direction is set", s.Profile)
	}
	if s.User != "" {
		ps.add("user", "%q goes with a profile, which sets both directions of a link; here one direction is set", s.User)
	}
	for _, n := range sortedKeys(s.From) {
		ps.add("from."+n, "names one direction of a link; here the direction is given already")
	}
	l := readParams(&s.Params, "", &ps)
	ps = append(ps, checkDirection(mergeLayers(l), "")...)
	if len(ps) > 0 {
		return Direction{}, ps
	}
	return l.d, nil
}

// ParseSpec reads run-time words for a whole link into a Spec, for
// Spec.Resolve: the keys of Parse, and profile=NAME, user=NODE and
// from.NODE.KEY=VALUE, as in the file (`nslab link LAB home isp set
// profile=dsl from.home.rate=2mbit`). It reports the words that are no
// key=value or name no key; the values are read by Resolve.
func ParseSpec(words []string) (*Spec, error) {
	s, ps := parseWords(words)
	return s, ps.err()
}

// parseWords sorts key=value words into a Spec, values as strings.
func parseWords(words []string) (*Spec, Problems) {
	s := &Spec{}
	var ps Problems
	seen := map[string]bool{}
	for _, w := range words {
		k, v, ok := strings.Cut(w, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			ps.add("", "%q is not key=value, such as delay=40ms (keys: %s)", w, strings.Join(Keys(), ", "))
			continue
		}
		if strings.TrimSpace(v) == "" {
			ps.add(k, "no value: write %s=VALUE, or %s=0 for none", k, k)
			continue
		}
		if seen[k] {
			ps.add(k, "given twice")
			continue
		}
		seen[k] = true
		if msg := s.set(k, v); msg != "" {
			ps.add(k, "%s", msg)
		}
	}
	return s, ps
}

// set stores value under the dotted key path, or says why it cannot.
func (s *Spec) set(path, value string) string {
	switch {
	case path == "profile":
		s.Profile = value
		return ""
	case path == "user":
		s.User = value
		return ""
	case strings.HasPrefix(path, "from."):
		node, rest, ok := strings.Cut(strings.TrimPrefix(path, "from."), ".")
		if !ok || node == "" || rest == "" {
			return "write from.NODE.KEY=VALUE, such as from.home.rate=1mbit"
		}
		if s.From == nil {
			s.From = map[string]Params{}
		}
		p := s.From[node]
		msg := p.set(rest, value)
		s.From[node] = p
		return msg
	}
	return s.Params.set(path, value)
}

func (p *Params) set(path, value string) string {
	if m, ok := strings.CutPrefix(path, "loss_model."); ok {
		for _, k := range lossModelKeys {
			if k.name == m {
				if p.LossModel == nil {
					p.LossModel = &LossModelSpec{}
				}
				*k.field(p.LossModel) = value
				return ""
			}
		}
		switch m {
		case "h", "1-h":
			return "unknown key: write loss_model.bad_loss, the loss in the bad state (netem's 1-h), such as 100%"
		case "k", "1-k":
			return "unknown key: write loss_model.good_loss, the loss in the good state (netem's 1-k), such as 0%"
		}
		var names []string
		for _, k := range lossModelKeys {
			names = append(names, "loss_model."+k.name)
		}
		return "unknown key" + didYouMean(path, names) + "; loss_model takes p, r, bad_loss, good_loss and model"
	}
	for _, k := range paramKeys {
		if k.name == path {
			*k.field(p) = value
			return ""
		}
	}
	if path == "loss_model" {
		return "write loss_model.p=1% loss_model.r=25% (and loss_model.bad_loss, loss_model.good_loss)"
	}
	return "unknown key" + didYouMean(path, Keys()) + "; keys: " + strings.Join(Keys(), ", ")
}
