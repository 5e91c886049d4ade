package main

import (
	"regexp"

	"github.com/urfave/cli/v2"
)

// defaultInUsage is a default written into a flag's usage text, where it
// can say more than a value can ("4 when both nodes have it").
var defaultInUsage = regexp.MustCompile(`\s*\(default: ([^)]*)\)$`)

// tidyHelp makes every flag's help say its default once: a default
// written in the usage text becomes the flag's default text (urfave would
// print the zero value after it again), and booleans, which are off
// unless given, print no "(default: false)".
func tidyHelp(app *cli.App) {
	tidyFlags(app.Flags)
	var walk func([]*cli.Command)
	walk = func(cmds []*cli.Command) {
		for _, c := range cmds {
			tidyFlags(c.Flags)
			walk(c.Subcommands)
		}
	}
	walk(app.Commands)
}

func tidyFlags(flags []cli.Flag) {
	for _, f := range flags {
		switch f := f.(type) {
		case *cli.BoolFlag:
			f.DisableDefaultText = true // a default in the usage text stays there
		case *cli.IntFlag:
			if u, d := splitDefault(f.Usage); d != "" {
				f.Usage, f.DefaultText = u, d
			} else if f.Value == 0 && f.DefaultText == "" {
				f.DefaultText = "none"
			}
		case *cli.StringFlag:
			if u, d := splitDefault(f.Usage); d != "" {
				f.Usage, f.DefaultText = u, d
			}
		case *cli.DurationFlag:
			if u, d := splitDefault(f.Usage); d != "" {
				f.Usage, f.DefaultText = u, d
			}
		}
	}
}

func splitDefault(usage string) (string, string) {
	m := defaultInUsage.FindStringSubmatchIndex(usage)
	if m == nil {
		return usage, ""
	}
	return usage[:m[0]], usage[m[2]:m[3]]
}
