package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/urfave/cli/v2"
)

// buildVersion is what `nslab --version` and `nslab version` print: the
// module version, the VCS revision it was built from, and the Go release.
type buildVersion struct {
	Module   string `json:"module"`
	Version  string `json:"version"`
	Revision string `json:"revision,omitempty"`
	Time     string `json:"time,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	Go       string `json:"go"`
}

func readVersion() buildVersion {
	v := buildVersion{Module: "github.com/nslab/nslab", Version: "(unknown)", Go: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.Module, v.Version = bi.Main.Path, bi.Main.Version
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

// String is one line: "nslab v0.0.0-... (revision 5a76942abcde, 2026-12-07T01:27:09Z, modified; go1.26.8)".
func (v buildVersion) String() string {
	s := "nslab " + v.Version + " ("
	if v.Revision != "" {
		s += "revision " + v.Revision
		if v.Time != "" {
			s += ", " + v.Time
		}
		if v.Modified {
			s += ", modified"
		}
		s += "; "
	} else {
		s += "no VCS revision recorded; "
	}
	return s + v.Go + ")"
}

func (g *globals) versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print nslab's version, the revision it was built from, and its Go release",
		Description: `The same as nslab --version. The revision is the commit the binary was
built from (go build records it from git); "modified" means the work tree
had changes then.

   nslab version
   nslab version --json`,
		Flags:        []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON"}},
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			if c.Bool("json") {
				writeJSON(g.stdout, readVersion())
				return nil
			}
			_, err := fmt.Fprintln(g.stdout, readVersion())
			return err
		},
	}
}
