package scripting

import (
	"fmt"
	"os"
	"strings"

	"github.com/nslab/nslab/topo"
)

// Script is a parsed script: its command lines in order. Comments and
// blank lines are dropped; each Line keeps its place in the file.
type Script struct {
	// File is the script's file name as given ("" for text typed at the
	// prompt); messages name it.
	File  string
	Lines []*Line

	// problems are the lines Parse could not read; Check reports them
	// with the rest.
	problems topo.Problems
}

// Line is one command line.
type Line struct {
	File string
	Num  int
	// Text is the line as written, without its comment.
	Text string
	// Neg is true for a line written with a leading '!': a check that must
	// not hold.
	Neg bool
	// Name is the first word: a command, or a node to run a program in.
	Name string
	// Args are the words after Name.
	Args []Word
	// Sourced is the script a `source` line reads, filled in by Check.
	Sourced *Script
}

// Word is one word of a line. Quoted words ('red', "red" or \red) are
// never replaced by a node's address.
type Word struct {
	Text   string
	Quoted bool
}

// Where returns "file:line" (or "line N" for text with no file).
func (l *Line) Where() string {
	if l.File == "" {
		return fmt.Sprintf("line %d", l.Num)
	}
	return fmt.Sprintf("%s:%d", l.File, l.Num)
}

// Strings returns the argument words' texts.
func (l *Line) Strings() []string {
	out := make([]string, len(l.Args))
	for i, w := range l.Args {
		out[i] = w.Text
	}
	return out
}

// ParseFile reads and parses a script file.
func ParseFile(path string) (*Script, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, topo.BadInput(fmt.Errorf("read script: %w", err))
	}
	return Parse(path, string(data), 1)
}

// Parse splits src into lines and words. On an unreadable line it returns
// both the script of the other lines and the problems; Check reports those
// problems again with the others, so a caller may go on to Check to list
// every problem at once. firstLine is the line number of
// src's first line in file (1 for a script file; the line after
// `script = ”'` for a script embedded in a topology file). Words are
// separated by blanks; single quotes keep everything literally, double
// quotes allow \" and \\; a '#' that starts a word starts a comment. An
// unterminated quote is reported as an topo.Problems error.
func Parse(file, src string, firstLine int) (*Script, error) {
	s := &Script{File: file}
	var ps topo.Problems
	for i, text := range strings.Split(src, "\n") {
		num := firstLine + i
		words, code, err := splitWords(text)
		if err != nil {
			ps = append(ps, topo.Problem{File: file, Pos: topo.Pos{Line: num, Col: err.col}, Object: strings.TrimSpace(text), Msg: err.msg})
			continue
		}
		if len(words) == 0 {
			continue
		}
		ln := &Line{File: file, Num: num, Text: strings.TrimSpace(code)}
		if first := words[0]; !first.Quoted && strings.HasPrefix(first.Text, "!") {
			ln.Neg = true
			words[0].Text = first.Text[1:]
			if words[0].Text == "" {
				words = words[1:]
			}
			if len(words) == 0 {
				ps = append(ps, topo.Problem{File: file, Pos: topo.Pos{Line: num, Col: 1}, Object: ln.Text, Msg: "'!' needs a check after it, as in `!reach a b`"})
				continue
			}
		}
		ln.Name, ln.Args = words[0].Text, words[1:]
		s.Lines = append(s.Lines, ln)
	}
	if len(ps) > 0 {
		s.problems = ps
		return s, ps
	}
	return s, nil
}

type wordError struct {
	col int
	msg string
}

// splitWords splits one line into words and returns the line without its
// comment.
func splitWords(line string) ([]Word, string, *wordError) {
	var words []Word
	var cur strings.Builder
	inWord, quoted := false, false
	flush := func() {
		if inWord {
			words = append(words, Word{Text: cur.String(), Quoted: quoted})
		}
		cur.Reset()
		inWord, quoted = false, false
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r':
			flush()
		case c == '#' && !inWord:
			flush()
			return words, line[:i], nil
		case c == '\'':
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				return nil, line, &wordError{i + 1, "unterminated single quote"}
			}
			cur.WriteString(line[i+1 : i+1+j])
			inWord, quoted = true, true
			i += j + 1
		case c == '"':
			j := i + 1
			for ; j < len(line) && line[j] != '"'; j++ {
				if line[j] == '\\' && j+1 < len(line) && (line[j+1] == '"' || line[j+1] == '\\') {
					j++
				}
				cur.WriteByte(line[j])
			}
			if j >= len(line) {
				return nil, line, &wordError{i + 1, "unterminated double quote"}
			}
			inWord, quoted = true, true
			i = j
		case c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
			inWord, quoted = true, true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	flush()
	return words, line, nil
}
