package main

// This file: exec and shell: programs inside a node.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"syscall"

	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/topo"
	"github.com/urfave/cli/v2"
)

// execCommand is `nslab exec`.
func (g *globals) execCommand() *cli.Command {
	return &cli.Command{
		Name:      "exec",
		Usage:     "run a command inside a node",
		ArgsUsage: "LAB NODE [--] CMD [ARG...]",
		Description: `Runs CMD in the node's network namespace, with the node's name as hostname
and the lab's /etc/hosts (every node by name); stdin, stdout, stderr, the
environment, the working directory (the one you run nslab in) and the exit
code are the command's own; a program that is not found exits 127, one that
cannot be executed 126, as in a shell. No fork of ip.

   nslab exec lan h1 -- ip -br addr
   nslab exec lan h2 -- getent hosts h3`,
		SkipFlagParsing: true,
		Action:          g.cmdExec,
	}
}

// shellCommand is `nslab shell`.
func (g *globals) shellCommand() *cli.Command {
	return &cli.Command{
		Name:         "shell",
		Usage:        "an interactive shell inside a node",
		ArgsUsage:    "LAB NODE",
		Description:  "Starts $SHELL (or /bin/sh) inside the node, on your terminal, in the directory\nyou run nslab in. Exit the shell to leave the node.\n\n   nslab shell lan h1",
		OnUsageError: usageError,
		Action:       g.cmdShell,
	}
}

func (g *globals) openLab(c *cli.Context, name string) (*emulator.Lab, error) {
	if name == "" {
		labs, _ := emulator.ListLabs(g.opts.StateDir)
		return nil, topo.BadInput(&emulator.NoSuchLabError{Lab: "", Labs: labs})
	}
	// One check of a lab's name for every command: a name such as
	// ../../tmp/x must never become a path outside the state directory.
	if err := topo.CheckLabName(name); err != nil {
		return nil, topo.BadInput(err)
	}
	return emulator.Open(name, g.opts)
}

// withLab checks the argument count, the capabilities and opens the lab
// named by the first argument: the start of every command that works on a
// running lab.
func (g *globals) withLab(c *cli.Context, nargs int, usage string, raw bool) (*emulator.Lab, error) {
	if c.NArg() != nargs {
		return nil, topo.BadInput(errors.New("usage: " + usage))
	}
	if err := needCaps(raw); err != nil {
		return nil, err
	}
	return g.openLab(c, c.Args().First())
}

func (g *globals) cmdExec(c *cli.Context) error {
	args := c.Args().Slice()
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
		return cli.ShowCommandHelp(c.Lineage()[1], "exec")
	}
	if len(args) < 3 || (args[2] == "--" && len(args) < 4) {
		return topo.BadInput(errors.New("usage: nslab exec LAB NODE [--] CMD [ARG...]"))
	}
	argv := args[2:]
	if argv[0] == "--" {
		argv = argv[1:]
	}
	if err := needCaps(false); err != nil {
		return err
	}
	lab, err := g.openLab(c, args[0])
	if err != nil {
		return err
	}
	return execStatus(lab.ExecReplace(args[1], argv, os.Environ()))
}

// execStatus gives a program that cannot be started the exit codes shells
// use (127 not found, 126 not executable), so that a program's own exit 2
// is not mistaken for nslab's bad input.
// Only the program's own lookup counts: a working directory that is gone
// is nslab's failure (exit 1), not a missing program.
func execStatus(err error) error {
	var pe *emulator.ProgramError
	switch {
	case err == nil:
		return nil
	case !errors.As(err, &pe):
		return err
	case errors.Is(pe.Err, exec.ErrNotFound), errors.Is(pe.Err, fs.ErrNotExist):
		return &exitStatus{127, err}
	case errors.Is(pe.Err, fs.ErrPermission), errors.Is(pe.Err, exec.ErrDot), errors.Is(pe.Err, syscall.EISDIR), errors.Is(pe.Err, syscall.ENOEXEC):
		return &exitStatus{126, err}
	}
	return err
}

func (g *globals) cmdShell(c *cli.Context) error {
	lab, err := g.withLab(c, 2, "nslab shell LAB NODE", false)
	if err != nil {
		return err
	}
	node := c.Args().Get(1)
	sh := os.Getenv("SHELL")
	if sh == "" {
		sh = "/bin/sh"
	}
	env := append(os.Environ(), "NSLAB_LAB="+lab.Name(), "NSLAB_NODE="+node, fmt.Sprintf("PS1=[%s:%s] \\w# ", lab.Name(), node))
	return execStatus(lab.ExecReplace(node, []string{sh}, env))
}
