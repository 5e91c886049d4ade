// Package scripting is nslab's script language: checks such as
// `reach red blue` and `!reach lan blue`, programs run in nodes
// (`blue ip route`), changes while the lab runs (`link red v-net-0 down`)
// and helpers (`wait`, `expect`, `sleep`, `source`), one command per line.
//
// The same language runs from script files (`nslab run FILE --script S`),
// from the `script` of a topology file, at the interactive prompt
// (`nslab run` on a terminal, `nslab attach LAB`) and from Go tests
// (nslabtest's Lab.RunScript and RunScripts). A script is parsed (Parse),
// checked against the lab's topo.Plan before anything runs (Check: unknown
// commands and nodes, malformed durations and patterns, with the closest
// known name), then run (Run) in a Lab: a failing line stops it, or not
// with Options.KeepGoing, and is reported as "file:line: command: what was
// expected, what happened". Lab is the small interface of what a script
// needs of a running lab; the engine's *emulator.Lab is one.
//
// The commands are documented one by one in docs/scripting.md and by
// `help` at the prompt. A Registry holds them; Register adds new ones.
package scripting
