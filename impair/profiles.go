package impair

import (
	"sort"
	"time"
)

// Profile is a named pair of directions that imitates a kind of access
// link. Up is the direction from the user's end (the phone, the home, the
// satellite terminal) toward the network, Down the way back. In a
// topology, the user's end is the link's first endpoint unless the spec
// names it with `user`.
//
// The figures are approximate by nature: each profile says where they
// come from, and a profile plus overrides (keys next to `profile`) fits
// them to an experiment.
type Profile struct {
	Name    string
	Summary string // one line: what it imitates, in figures
	Source  string // where the figures come from
	Up      Direction
	Down    Direction
}

// webPageTest is the source of most access profiles: the connectivity
// profiles of WebPageTest (www/settings/connectivity.ini.sample in
// github.com/WPO-Foundation/webpagetest, the figures behind its
// "Connection" menu), which web performance tools copy. Their latency is
// a round-trip time; nslab puts half of it on each direction.
const webPageTest = "WebPageTest connectivity profiles (WPO-Foundation/webpagetest, www/settings/connectivity.ini.sample)"

// profiles are the built-in profiles, in the order they are listed.
var profiles = []Profile{
	access("edge", "a 2.5G mobile data link (EDGE)",
		webPageTest+`, "Mobile Edge": 240 kbit/s down, 200 kbit/s up, 840 ms RTT`,
		240_000, 200_000, 840*time.Millisecond),
	// Lighthouse's mobile throttling preset ("Slow 4G", formerly "Fast
	// 3G"): 150 ms RTT, 1.6 Mbit/s down, 750 kbit/s up, no loss; the same
	// as WebPageTest's "Mobile 3G - Fast", which gives 768 kbit/s up.
	access("3g", "a good 3G mobile link (a slow 4G one)",
		`Lighthouse's mobile throttling preset (docs/throttling.md in GoogleChrome/lighthouse: 150 ms RTT, 1.6 Mbit/s down, 750 kbit/s up, no loss), `+
			`the same as WebPageTest's "Mobile 3G - Fast" (768 kbit/s up)`,
		1_600_000, 750_000, 150*time.Millisecond),
	access("4g", "a 4G mobile link as WebPageTest has it",
		webPageTest+`, "4G": 9 Mbit/s down and up, 170 ms RTT`,
		9_000_000, 9_000_000, 170*time.Millisecond),
	access("lte", "an LTE mobile link",
		webPageTest+`, "LTE": 12 Mbit/s down and up, 70 ms RTT`,
		12_000_000, 12_000_000, 70*time.Millisecond),
	access("dsl", "an ADSL line",
		webPageTest+`, "DSL": 1.5 Mbit/s down, 384 kbit/s up, 50 ms RTT`,
		1_500_000, 384_000, 50*time.Millisecond),
	access("cable", "a cable (DOCSIS) line",
		webPageTest+`, "Cable": 5 Mbit/s down, 1 Mbit/s up, 28 ms RTT`,
		5_000_000, 1_000_000, 28*time.Millisecond),
	access("fiber", "a fibre-to-the-home line",
		webPageTest+`, "FIOS": 20 Mbit/s down, 5 Mbit/s up, 4 ms RTT`,
		20_000_000, 5_000_000, 4*time.Millisecond),
	// A geostationary satellite is 35,786 km up: a round trip goes up and
	// down twice, at least 4 x 35,786 km / c = 477 ms, and more away from
	// the point under the satellite and through the ground network.
	// Ookla measured (Speedtest Intelligence, Q3 2021, US medians)
	// HughesNet at 19.30/2.54 Mbit/s and 744 ms, Viasat at 18.75/2.96
	// Mbit/s and 629 ms.
	access("satellite-geo", "a geostationary satellite link (HughesNet, Viasat)",
		`Ookla Speedtest Intelligence, Q3 2021, US medians: HughesNet 19.30/2.54 Mbit/s and 744 ms latency, Viasat 18.75/2.96 Mbit/s and 629 ms; `+
			`a geostationary round trip cannot be under 477 ms (4 x 35,786 km at the speed of light)`,
		20_000_000, 3_000_000, 600*time.Millisecond),
	// Ookla, same report: Starlink 87.25/13.54 Mbit/s, 44 ms median
	// latency. Michel et al. (UCLouvain, APNIC blog, 28 Nov 2022) measured
	// a 50 ms median RTT from Belgium to European RIPE Atlas anchors, 20 ms
	// at best. Starlink's jitter (its 15 s reconfigurations) and its loss at
	// satellite handovers are not modelled: add jitter and loss to taste.
	access("satellite-leo", "a low-earth-orbit satellite link (Starlink)",
		`Ookla Speedtest Intelligence, Q3 2021, US medians: Starlink 87.25/13.54 Mbit/s, 44 ms latency; `+
			`Michel et al. (APNIC blog, 28 Nov 2022): 50 ms median RTT from Belgium to European anchors, 20 ms at best`,
		87_000_000, 13_500_000, 44*time.Millisecond),
	wifiLossy(),
}

// access is a profile of an access link: a rate each way and half the
// round trip on each direction.
func access(name, summary, source string, down, up uint64, rtt time.Duration) Profile {
	return Profile{
		Name:    name,
		Summary: summary,
		Source:  source,
		Up:      Direction{Rate: up, Delay: rtt / 2},
		Down:    Direction{Rate: down, Delay: rtt / 2},
	}
}

// wifiLossy is not a measurement: it is an illustration of a poor Wi-Fi
// link whose losses come in bursts (interference, a station at the edge of
// its range), where 802.11's own retransmissions have given up. Bursts are
// what make a lossy link hard for congestion control and for media; the
// Gilbert-Elliott model makes them: the link goes bad with a chance of
// 0.5 % per packet, loses every packet while bad, and recovers with a
// chance of 25 % per packet: bursts of 4 packets on average, about 2 %
// of packets lost in all (MeanLoss).
func wifiLossy() Profile {
	d := Direction{
		Delay:     2 * time.Millisecond,
		LossModel: &GilbertElliott{P: 0.5, R: 25, H: 0, K: 0},
	}
	up := d
	up.LossModel = &GilbertElliott{P: 0.5, R: 25, H: 0, K: 0}
	return Profile{
		Name:    "wifi-lossy",
		Summary: "a poor Wi-Fi link: about 2 % loss, in bursts of 4 packets on average",
		Source:  "nslab's own illustration, not a measurement: 2 ms each way; Gilbert-Elliott loss p 0.5 %, r 25 %, every packet lost in the bad state; no rate limit",
		Up:      up,
		Down:    d,
	}
}

// Profiles returns the built-in profiles, each a fresh copy.
func Profiles() []Profile {
	out := make([]Profile, len(profiles))
	for i, p := range profiles {
		out[i] = p.clone()
	}
	return out
}

// LookupProfile returns the profile called name.
func LookupProfile(name string) (Profile, bool) {
	for _, p := range profiles {
		if p.Name == name {
			return p.clone(), true
		}
	}
	return Profile{}, false
}

// ProfileNames lists the profiles' names, sorted.
func ProfileNames() []string {
	names := make([]string, len(profiles))
	for i, p := range profiles {
		names[i] = p.Name
	}
	sort.Strings(names)
	return names
}

func (p Profile) clone() Profile {
	p.Up = p.Up.clone()
	p.Down = p.Down.clone()
	return p
}

// clone copies d, and the loss model it points to.
func (d Direction) clone() Direction {
	if d.LossModel != nil {
		m := *d.LossModel
		d.LossModel = &m
	}
	return d
}
