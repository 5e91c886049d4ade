package main

// This file: the command line: flags after arguments.

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// permuteArgs lets flags follow positional arguments (`nslab status lan
// --json`): for every command but exec, it moves the flags of the command
// in front of its other arguments.
func permuteArgs(app *cli.App, args []string) []string {
	// Skip the program name and global flags.
	i := 1
	for i < len(args) && strings.HasPrefix(args[i], "-") {
		if !isBoolFlag(app.Flags, args[i]) && !strings.Contains(args[i], "=") {
			i++
		}
		i++
	}
	if i >= len(args) {
		return args
	}
	cmd := app.Command(args[i])
	if cmd == nil || cmd.SkipFlagParsing {
		return args
	}
	var global, flags, pos []string
	rest := args[i+1:]
	for k := 0; k < len(rest); k++ {
		a := rest[k]
		if a == "--" {
			pos = append(pos, rest[k:]...)
			break
		}
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			// A global flag written after the command goes before it.
			dst, set := &flags, cmd.Flags
			if hasFlag(app.Flags, a) && !hasFlag(cmd.Flags, a) {
				dst, set = &global, app.Flags
			}
			*dst = append(*dst, a)
			if !isBoolFlag(set, a) && !strings.Contains(a, "=") && k+1 < len(rest) && a != "-h" && a != "--help" {
				k++
				*dst = append(*dst, rest[k])
			}
			continue
		}
		pos = append(pos, a)
	}
	out := append([]string{}, args[:i]...)
	out = append(out, global...)
	out = append(out, args[i])
	out = append(out, flags...)
	return append(out, pos...)
}

func flagName(arg string) string {
	name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
	return name
}

func hasFlag(flags []cli.Flag, arg string) bool {
	name := flagName(arg)
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return true
			}
		}
	}
	return false
}

func isBoolFlag(flags []cli.Flag, arg string) bool {
	name := flagName(arg)
	if name == "h" || name == "help" {
		return true
	}
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				_, ok := f.(*cli.BoolFlag)
				return ok
			}
		}
	}
	return false
}
