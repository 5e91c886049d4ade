package topo

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Problem is one thing wrong with a topology, placed in its file.
type Problem struct {
	File   string // file name, or "" for a topology built in Go
	Pos    Pos    // line and column; zero when unknown
	Object string // what the problem is about: `node "h1"`, `link 3`
	Msg    string
}

func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		if p.Pos.Line > 0 {
			fmt.Fprintf(&b, ":%d", p.Pos.Line)
			if p.Pos.Col > 0 {
				fmt.Fprintf(&b, ":%d", p.Pos.Col)
			}
		}
		b.WriteString(": ")
	}
	if p.Object != "" {
		b.WriteString(p.Object)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Problems is every problem found in a topology, in file order. It is the
// error returned for bad input: the CLI exits 2 on it.
type Problems []Problem

func (ps Problems) Error() string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, "\n")
}

// IsBadInput reports whether err is (or wraps) a problem with the
// topology given, as opposed to a failure of the machine.
func IsBadInput(err error) bool {
	var ps Problems
	var bi *badInputError
	return errors.As(err, &ps) || errors.As(err, &bi)
}

// badInputError marks an error as the user's input (an unknown lab or node,
// a bad flag value): the CLI exits 2 on it.
type badInputError struct{ err error }

func (e *badInputError) Error() string { return e.err.Error() }
func (e *badInputError) Unwrap() error { return e.err }

// BadInput wraps err so that IsBadInput reports true.
func BadInput(err error) error { return &badInputError{err} }

// collector gathers problems during validation.
type collector struct {
	src *sourceMap
	ps  Problems
}

func (c *collector) add(path, object, format string, args ...any) {
	p := Problem{Object: object, Msg: fmt.Sprintf(format, args...)}
	if c.src != nil {
		p.File = c.src.file
		p.Pos, _ = c.src.at(path)
	}
	c.ps = append(c.ps, p)
}

func (c *collector) err() error {
	if len(c.ps) == 0 {
		return nil
	}
	sort.SliceStable(c.ps, func(i, j int) bool {
		a, b := c.ps[i].Pos, c.ps[j].Pos
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	return c.ps
}

// Suggest returns ` (did you mean "x"?)` naming the known name closest to
// name, or the short list of known names, or "" when none is close: the
// tail of an "unknown name" message.
func Suggest(name string, known []string) string { return suggest(name, known) }
