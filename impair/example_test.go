package impair_test

import (
	"fmt"
	"strings"

	"github.com/nslab/nslab/impair"
	"github.com/pelletier/go-toml/v2"
)

// A link's impairment as a topology file writes it: a profile for both
// directions, a key over it, and one direction of its own.
func ExampleSpec_Resolve() {
	const file = `
endpoints = ["home", "isp"]

[impair]
profile = "dsl"     # up from home (the first endpoint), down to it
loss = "0.1%"       # both directions

[impair.from.home]  # home -> isp only
rate = "1mbit"
`
	var link struct {
		Endpoints []string     `toml:"endpoints"`
		Impair    *impair.Spec `toml:"impair"`
	}
	if err := toml.Unmarshal([]byte(file), &link); err != nil {
		panic(err)
	}
	l, problems := link.Impair.Resolve("home", "isp")
	fmt.Println(problems == nil)
	fmt.Println("home -> isp:", l.AB)
	fmt.Println("isp -> home:", l.BA)
	// Output:
	// true
	// home -> isp: rate 1Mbit delay 25ms loss 0.1%
	// isp -> home: rate 1.5Mbit delay 25ms loss 0.1%
}

// Every bad value is reported, each under its key path, for the decoder
// to place at file:line:col.
func ExampleSpec_Resolve_problems() {
	s := &impair.Spec{
		Profile: "sattelite-geo",
		Params:  impair.Params{Jitter: "10ms", Loss: "150%"},
		From:    map[string]impair.Params{"carol": {Delay: "40"}},
	}
	_, problems := s.Resolve("home", "isp")
	for _, p := range problems {
		fmt.Println(p)
	}
	// Output:
	// profile: unknown profile "sattelite-geo" (did you mean "satellite-geo"?); profiles: 3g, 4g, cable, dsl, edge, fiber, lte, satellite-geo, satellite-leo, wifi-lossy
	// loss: "150%" is over 100%
	// from.carol: "carol" is not an endpoint of this link: from names the sending end, "home" or "isp"
	// from.carol.delay: "40" has no unit: write "40ms" (a bare number is microseconds to tc)
	// jitter: 10ms without a delay: netem varies the delay by up to the jitter
}

// The run-time words of `nslab link LAB A B set delay=50ms loss=1%`.
func ExampleParse() {
	d, err := impair.Parse(strings.Fields("delay=50ms jitter=5ms distribution=normal loss=1% rate=10mbit"))
	fmt.Println(d, err)
	fmt.Println(d.Words())

	_, err = impair.Parse(strings.Fields("delay=50 loss=1"))
	fmt.Println(err)
	// Output:
	// rate 10Mbit delay 50ms 5ms distribution normal loss 1% <nil>
	// [rate=10Mbit delay=50ms jitter=5ms distribution=normal loss=1%]
	// delay: "50" has no unit: write "50ms" (a bare number is microseconds to tc)
	// loss: "1" has no % sign: write "1%"
}

// Status and `nslab link ... show` write a direction in tc's words.
func ExampleDirection_String() {
	d := impair.Direction{
		Rate:      10_000_000,
		Delay:     40_000_000,
		LossModel: &impair.GilbertElliott{P: 1, R: 25, H: 0, K: 0},
	}
	fmt.Println(d)
	fmt.Printf("%.2f%%\n", d.LossModel.MeanLoss())
	// Output:
	// rate 10Mbit delay 40ms loss gemodel p 1% r 25% 1-h 100% 1-k 0%
	// 3.85%
}

// The profiles, down toward the user's end and up from it.
func ExampleProfiles() {
	for _, p := range impair.Profiles() {
		fmt.Printf("%-13s down: %-26s up: %s\n", p.Name, p.Down, p.Up)
	}
	// Output:
	// edge          down: rate 240Kbit delay 420ms   up: rate 200Kbit delay 420ms
	// 3g            down: rate 1.6Mbit delay 75ms    up: rate 750Kbit delay 75ms
	// 4g            down: rate 9Mbit delay 85ms      up: rate 9Mbit delay 85ms
	// lte           down: rate 12Mbit delay 35ms     up: rate 12Mbit delay 35ms
	// dsl           down: rate 1.5Mbit delay 25ms    up: rate 384Kbit delay 25ms
	// cable         down: rate 5Mbit delay 14ms      up: rate 1Mbit delay 14ms
	// fiber         down: rate 20Mbit delay 2ms      up: rate 5Mbit delay 2ms
	// satellite-geo down: rate 20Mbit delay 300ms    up: rate 3Mbit delay 300ms
	// satellite-leo down: rate 87Mbit delay 22ms     up: rate 13.5Mbit delay 22ms
	// wifi-lossy    down: delay 2ms loss gemodel p 0.5% r 25% 1-h 100% 1-k 0% up: delay 2ms loss gemodel p 0.5% r 25% 1-h 100% 1-k 0%
}
