package impair

import (
	"regexp"
	"sort"
	"testing"
	"time"
)

// TestProfiles: every profile is valid, says where its figures come from,
// and is found by its name.
func TestProfiles(t *testing.T) {
	ps := Profiles()
	if len(ps) < 8 {
		t.Fatalf("%d profiles", len(ps))
	}
	seen := map[string]bool{}
	for _, p := range ps {
		if seen[p.Name] {
			t.Errorf("profile %q twice", p.Name)
		}
		seen[p.Name] = true
		if !regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`).MatchString(p.Name) {
			t.Errorf("profile name %q: want lower case words joined by -", p.Name)
		}
		if p.Summary == "" || len(p.Source) < 20 {
			t.Errorf("profile %q: summary %q, source %q", p.Name, p.Summary, p.Source)
		}
		for _, d := range []Direction{p.Up, p.Down} {
			if d.IsZero() {
				t.Errorf("profile %q: a direction is plain", p.Name)
			}
			if err := d.Validate(); err != nil {
				t.Errorf("profile %q: %v", p.Name, err)
			}
		}
		// An access link is never faster up than down.
		if p.Up.Rate > p.Down.Rate {
			t.Errorf("profile %q: up %s above down %s", p.Name, FormatRate(p.Up.Rate), FormatRate(p.Down.Rate))
		}
		got, ok := LookupProfile(p.Name)
		if !ok || got.Name != p.Name {
			t.Errorf("LookupProfile(%q) = %v, %v", p.Name, got.Name, ok)
		}
	}
	for _, name := range []string{"3g", "lte", "dsl", "satellite-geo", "wifi-lossy"} { // named in issue 13
		if !seen[name] {
			t.Errorf("no profile %q", name)
		}
	}
	if _, ok := LookupProfile("nope"); ok {
		t.Error(`LookupProfile("nope") found one`)
	}
	if !sort.StringsAreSorted(ProfileNames()) || len(ProfileNames()) != len(ps) {
		t.Errorf("ProfileNames() = %q", ProfileNames())
	}
	// Profiles hands out copies: changing one changes no later lookup.
	ps[len(ps)-1].Up.LossModel.P = 99
	ps[0].Down.Rate = 1
	if p, _ := LookupProfile(ps[0].Name); p.Down.Rate == 1 {
		t.Error("a profile changed through Profiles()")
	}
	if p, _ := LookupProfile("wifi-lossy"); p.Up.LossModel.P == 99 {
		t.Error("wifi-lossy's loss model changed through Profiles()")
	}
}

// TestProfileFigures pins the figures the docs quote.
func TestProfileFigures(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name     string
		down, up uint64
		rtt      time.Duration
	}{
		{"3g", 1_600_000, 750_000, 150 * ms},
		{"dsl", 1_500_000, 384_000, 50 * ms},
		{"cable", 5_000_000, 1_000_000, 28 * ms},
		{"lte", 12_000_000, 12_000_000, 70 * ms},
		{"satellite-geo", 20_000_000, 3_000_000, 600 * ms},
	} {
		p, _ := LookupProfile(tc.name)
		if p.Down.Rate != tc.down || p.Up.Rate != tc.up || p.Up.Delay+p.Down.Delay != tc.rtt {
			t.Errorf("%s: down %s, up %s, RTT %v", tc.name, FormatRate(p.Down.Rate), FormatRate(p.Up.Rate), p.Up.Delay+p.Down.Delay)
		}
	}
	p, _ := LookupProfile("wifi-lossy")
	if m := p.Down.LossModel.MeanLoss(); m < 1.9 || m > 2 {
		t.Errorf("wifi-lossy loses %.3f %%, the docs say about 2 %%", m)
	}
}
