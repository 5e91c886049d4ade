package main

// This file: completion: shell completion scripts for bash, zsh and fish,
// and the hidden __complete command they call for every Tab.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/graph"
	"github.com/nslab/nslab/topo"
	"github.com/urfave/cli/v2"
)

// completionCommand is `nslab completion`.
func (g *globals) completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script: bash, zsh or fish",
		ArgsUsage: "bash|zsh|fish",
		Description: `Prints the script that makes Tab complete nslab's commands, flags, topology
files (*.toml), scripts (*.nsl), the labs that are up and a lab's nodes.
The script asks nslab itself (a hidden command, nslab __complete) what to
offer, so it stays right as nslab changes, and reads the state directory
without root.

   source <(nslab completion bash)                        # bash, this shell
   nslab completion bash > /etc/bash_completion.d/nslab   # bash, for good
   source <(nslab completion zsh)                         # zsh (after compinit)
   nslab completion zsh > "${fpath[1]}/_nslab"            # zsh, for good
   nslab completion fish > ~/.config/fish/completions/nslab.fish`,
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return topo.BadInput(errors.New("usage: nslab completion bash|zsh|fish"))
			}
			script, ok := completionScripts[c.Args().First()]
			if !ok {
				return topo.BadInput(fmt.Errorf("no completion for shell %q (known: bash, zsh, fish)", c.Args().First()))
			}
			_, err := io.WriteString(g.stdout, script)
			return err
		},
	}
}

// completeCommand is the hidden `nslab __complete WORD... CURRENT`: the
// words of the command line after "nslab", the last being the one being
// completed (empty after a space). It prints one candidate a line, with
// a tab and a description where there is one, then a line that tells the
// shell what else to offer:
//
//	:            nothing else
//	:files EXT   files ending in .EXT (and directories); several EXTs may follow
//	:files       any file
//	:dirs        directories
//	:commands    the names of programs (on PATH, and the shell's own)
//
// It never fails: a Tab must not print errors into the command line.
func (g *globals) completeCommand() *cli.Command {
	return &cli.Command{
		Name:            "__complete",
		Hidden:          true,
		SkipFlagParsing: true,
		HideHelp:        true, // "help" is a word to complete, not a request for help
		Action: func(c *cli.Context) error {
			args := c.Args().Slice()
			if len(args) == 0 {
				args = []string{""}
			}
			cands, directive := complete(c.App, g.opts.StateDir, args)
			for _, cd := range cands {
				if cd.desc != "" {
					fmt.Fprintf(g.stdout, "%s\t%s\n", cd.value, cd.desc)
				} else {
					fmt.Fprintln(g.stdout, cd.value)
				}
			}
			fmt.Fprintln(g.stdout, ":"+directive)
			return nil
		},
	}
}

type candidate struct{ value, desc string }

// What a positional argument or a flag's value is.
type argKind int

const (
	argNone argKind = iota
	argTopoFile
	argScriptFile
	argAnyFile
	argDir
	argLab
	argNode
	argNodeIface // NODE or NODE:IFACE (capture)
	argFileOrLab
	argShell
	argCommand
	argFormat
	argLinkAction
	argProgram // a program's name, then its arguments (files)
	argProgramArg
)

// argSpec is a command's positional arguments; the last repeats when
// repeat is set.
type argSpec struct {
	kinds  []argKind
	repeat bool
}

var argSpecs = map[string]argSpec{
	"run":        {kinds: []argKind{argTopoFile}},
	"up":         {kinds: []argKind{argTopoFile}},
	"validate":   {kinds: []argKind{argTopoFile}, repeat: true},
	"graph":      {kinds: []argKind{argFileOrLab}},
	"down":       {kinds: []argKind{argLab}},
	"clean":      {kinds: []argKind{argLab}, repeat: true},
	"status":     {kinds: []argKind{argLab}},
	"attach":     {kinds: []argKind{argLab}},
	"pingall":    {kinds: []argKind{argLab}},
	"exec":       {kinds: []argKind{argLab, argNode, argProgram, argProgramArg}, repeat: true},
	"shell":      {kinds: []argKind{argLab, argNode}},
	"ping":       {kinds: []argKind{argLab, argNode, argNode}},
	"serve":      {kinds: []argKind{argLab, argNode}},
	"probe":      {kinds: []argKind{argLab, argNode, argNode}},
	"punch":      {kinds: []argKind{argLab, argNode, argNode}},
	"iperf":      {kinds: []argKind{argLab, argNode, argNode}},
	"link":       {kinds: []argKind{argLab, argNode, argNode, argLinkAction}},
	"capture":    {kinds: []argKind{argLab, argNodeIface}, repeat: true},
	"completion": {kinds: []argKind{argShell}},
	"help":       {kinds: []argKind{argCommand}},
}

// flagValues says what a flag's value is, by the flag's name.
var flagValues = map[string]argKind{
	"script": argScriptFile, "output": argAnyFile, "o": argAnyFile, "write": argAnyFile, "w": argAnyFile,
	"format": argFormat, "f": argFormat, "state-dir": argDir, "netns-dir": argDir,
	"dir": argDir, "from": argNode,
}

// complete works out the candidates for the last of words.
func complete(app *cli.App, stateDir string, words []string) ([]candidate, string) {
	cur, prev := words[len(words)-1], words[:len(words)-1]
	// Global flags before the command; --state-dir changes where labs are.
	i := 0
	for i < len(prev) && strings.HasPrefix(prev[i], "-") {
		name, value, hasValue := strings.Cut(strings.TrimLeft(prev[i], "-"), "=")
		if !hasValue && !isBoolFlag(app.Flags, prev[i]) {
			if i+1 == len(prev) {
				return offer(argKindOfFlag(name), cur, stateDir, nil)
			}
			value = prev[i+1]
			i++
		}
		if name == "state-dir" {
			stateDir = value
		}
		i++
	}
	if i == len(prev) {
		if strings.HasPrefix(cur, "-") {
			return flagCandidates(app.Flags, cur), ""
		}
		return commandCandidates(app, cur), ""
	}
	cmd := app.Command(prev[i])
	if cmd == nil {
		return nil, ""
	}
	spec := argSpecs[cmd.Name]
	kindAt := func(n int) argKind {
		if n >= len(spec.kinds) && spec.repeat {
			n = len(spec.kinds) - 1
		}
		if n < 0 || n >= len(spec.kinds) {
			return argNone
		}
		return spec.kinds[n]
	}
	var pos []string
	rest := prev[i+1:]
	for k := 0; k < len(rest); k++ {
		a := rest[k]
		if len(pos) > 0 && kindAt(len(pos)-1) == argProgram {
			// The program's name is given: the rest are its words.
			return offer(argProgramArg, cur, stateDir, pos)
		}
		if a == "--" {
			// What follows is a program's command line (exec): its
			// name, then its arguments.
			if k == len(rest)-1 {
				return nil, "commands"
			}
			return nil, "files"
		}
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
			if name == "state-dir" && hasValue {
				_, stateDir, _ = strings.Cut(a, "=")
			}
			if !hasValue && !isBoolFlag(cmd.Flags, a) && !isBoolFlag(app.Flags, a) {
				if k+1 == len(rest) {
					return offer(argKindOfFlag(name), cur, stateDir, pos)
				}
				if name == "state-dir" {
					stateDir = rest[k+1]
				}
				k++
			}
			continue
		}
		pos = append(pos, a)
	}
	kind := kindAt(len(pos))
	switch {
	case kind == argProgram || kind == argProgramArg:
		// A program's words are its own, flags too (exec).
		return offer(kind, cur, stateDir, pos)
	case strings.HasPrefix(cur, "-"):
		return flagCandidates(append(append([]cli.Flag{}, cmd.Flags...), app.Flags...), cur), ""
	case kind == argCommand:
		return commandCandidates(app, cur), ""
	}
	return offer(kind, cur, stateDir, pos)
}

func argKindOfFlag(name string) argKind { return flagValues[name] }

// offer lists what an argument of kind k can be; pos are the positional
// arguments before it (the lab is the first).
func offer(k argKind, cur, stateDir string, pos []string) ([]candidate, string) {
	lab := ""
	if len(pos) > 0 {
		lab = pos[0]
	}
	switch k {
	case argTopoFile:
		return nil, "files toml"
	case argScriptFile:
		return nil, "files nsl"
	case argAnyFile, argProgramArg:
		return nil, "files"
	case argProgram:
		return nil, "commands"
	case argDir:
		return nil, "dirs"
	case argLab:
		return filter(labCandidates(stateDir), cur), ""
	case argFileOrLab:
		return filter(labCandidates(stateDir), cur), "files toml"
	case argNode:
		return filter(nodeCandidates(stateDir, lab, false), cur), ""
	case argNodeIface:
		return filter(nodeCandidates(stateDir, lab, strings.Contains(cur, ":")), cur), ""
	case argShell:
		return filter([]candidate{{"bash", ""}, {"zsh", ""}, {"fish", ""}}, cur), ""
	case argFormat:
		var out []candidate
		for _, f := range graph.Formats() {
			out = append(out, candidate{string(f), ""})
		}
		return filter(out, cur), ""
	case argLinkAction:
		return filter([]candidate{
			{"show", "what each direction does"}, {"set", "impair: rate=, delay=, loss=, ..."},
			{"clear", "no impairment"}, {"down", "pull the cable"}, {"up", "plug it back"},
		}, cur), ""
	}
	return nil, ""
}

func filter(cands []candidate, prefix string) []candidate {
	var out []candidate
	for _, c := range cands {
		if strings.HasPrefix(c.value, prefix) {
			out = append(out, c)
		}
	}
	return out
}

func commandCandidates(app *cli.App, prefix string) []candidate {
	var out []candidate
	for _, c := range app.Commands {
		if c.Hidden {
			continue
		}
		for _, n := range c.Names() {
			if len(n) > 1 { // not help's alias h
				out = append(out, candidate{n, c.Usage})
			}
		}
	}
	return filter(out, prefix)
}

func flagCandidates(flags []cli.Flag, prefix string) []candidate {
	var out []candidate
	seen := map[string]bool{"help": true}
	for _, f := range flags {
		if seen[f.Names()[0]] {
			continue
		}
		seen[f.Names()[0]] = true
		usage := ""
		if d, ok := f.(cli.DocGenerationFlag); ok {
			usage = strings.NewReplacer("`", "").Replace(d.GetUsage())
		}
		for _, n := range f.Names() {
			dash := "--"
			if len(n) == 1 {
				dash = "-"
			}
			out = append(out, candidate{dash + n, usage})
		}
	}
	out = append(out, candidate{"--help", "show help"})
	return filter(out, prefix)
}

// Reading the state directory for completion: names only, read-only, and
// as any user (the directory is world-readable; nslab's own readers insist
// on the user who owns it, root, since they act on what they read). A
// name that is not a valid lab or node name is left out, so a record
// written by someone else cannot put anything odd on a command line.

func labCandidates(stateDir string) []candidate {
	ents, err := os.ReadDir(stateDir)
	if err != nil {
		return nil
	}
	var out []candidate
	for _, e := range ents {
		if !e.IsDir() || topo.CheckLabName(e.Name()) != nil {
			continue
		}
		r, err := emulator.PeekRecord(stateDir, e.Name())
		if err != nil {
			continue
		}
		desc := r.State
		if r.Topology != nil {
			desc = fmt.Sprintf("%s, %d nodes", r.State, len(r.Topology.Nodes))
		}
		out = append(out, candidate{e.Name(), desc})
	}
	return out
}

// nodeCandidates lists the lab's nodes, with their interfaces as
// NODE:IFACE too when ifaces is set.
func nodeCandidates(stateDir, lab string, ifaces bool) []candidate {
	if topo.CheckLabName(lab) != nil {
		return nil
	}
	r, err := emulator.PeekRecord(stateDir, lab)
	if err != nil || r.Topology == nil {
		return nil
	}
	plan, err := topo.Resolve(r.Topology)
	if err != nil {
		return nil
	}
	var out []candidate
	for _, n := range plan.Nodes {
		out = append(out, candidate{n.Name, string(n.Kind)})
		if ifaces {
			names := make([]string, 0, len(n.Ifaces))
			for _, i := range n.Ifaces {
				names = append(names, i.Name)
			}
			sort.Strings(names)
			for _, i := range names {
				out = append(out, candidate{n.Name + ":" + i, "interface of " + n.Name})
			}
		}
	}
	return out
}
