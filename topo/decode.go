package topo

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// Pos is a place in a topology file.
type Pos struct {
	Line, Col int
}

// sourceMap remembers the file a topology came from and where each of its
// values was written, keyed by path: "nodes[2].name", "links[0].a.addresses[1]".
type sourceMap struct {
	file string
	pos  map[string]Pos
	// scriptLine is the line of the embedded script's first line.
	scriptLine int
	// lines holds the offset of each line's first byte, so that a
	// position is a binary search, not a scan from the file's start
	// (which made decoding quadratic in the file's size).
	lines []int
	// byLine lists the paths written on each line, made when first needed.
	byLine map[int][]string
}

// newLines indexes the starts of data's lines.
func newLines(data []byte) []int {
	lines := []int{0}
	for i, b := range data {
		if b == '\n' {
			lines = append(lines, i+1)
		}
	}
	return lines
}

// position turns a byte offset into a line and a column (in bytes, as
// go-toml counts them), both from 1.
func (s *sourceMap) position(offset int) Pos {
	i := sort.SearchInts(s.lines, offset+1) - 1
	return Pos{Line: i + 1, Col: offset - s.lines[i] + 1}
}

// onLine returns the paths written on line.
func (s *sourceMap) onLine(line int) []string {
	if s.byLine == nil {
		s.byLine = map[int][]string{}
		for path, p := range s.pos {
			s.byLine[p.Line] = append(s.byLine[p.Line], path)
		}
	}
	return s.byLine[line]
}

// at returns the position of path, or of its nearest written parent.
func (s *sourceMap) at(path string) (Pos, bool) {
	if s == nil {
		return Pos{}, false
	}
	for p := path; p != ""; {
		if pos, ok := s.pos[p]; ok {
			return pos, true
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return Pos{}, false
}

// LoadFile reads and strictly decodes a topology file. It does not validate:
// call Validate (or Resolve) next. Errors are *Problems naming file:line:col.
//
// The file must be a regular file of at most MaxFileSize bytes: a device
// (/dev/zero) or a FIFO is refused at once, not read until memory or
// patience runs out.
func LoadFile(path string) (*Topology, error) {
	// O_NONBLOCK: opening a FIFO with no writer must not block.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("read topology: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	switch {
	case err != nil:
		return nil, fmt.Errorf("read topology: %w", err)
	case st.IsDir():
		return nil, fmt.Errorf("read topology %s: is a directory", path)
	case !st.Mode().IsRegular():
		return nil, fmt.Errorf("read topology %s: not a regular file (%s)", path, st.Mode().Type())
	case st.Size() > MaxFileSize:
		return nil, fmt.Errorf("read topology %s: %d bytes, over the limit of %d MiB", path, st.Size(), MaxFileSize>>20)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read topology: %w", err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("read topology %s: over the limit of %d MiB", path, MaxFileSize>>20)
	}
	return Decode(path, data)
}

// MaxFileSize is the largest topology file LoadFile reads: 64 MiB, far
// more than a 10,000-node lab takes (about 1 MiB).
const MaxFileSize = 64 << 20

// Decode strictly decodes a TOML topology: an unknown key, a value of the
// wrong type or a syntax error is reported with file, line and column. file
// is only used in messages.
func Decode(file string, data []byte) (*Topology, error) {
	// Unknown keys are found from the source map, not by go-toml's strict
	// mode: that places each of its errors by scanning the document from
	// its start (20,000 unknown keys took 14 s to 2 min).
	var t Topology
	if err := toml.NewDecoder(bytes.NewReader(data)).Decode(&t); err != nil {
		src, _ := mapSource(file, data)
		return nil, decodeProblems(file, err, src)
	}
	src, err := mapSource(file, data)
	if err != nil {
		return nil, err
	}
	if ps := unknownKeys(src); len(ps) > 0 {
		return nil, ps
	}
	t.source = src
	return &t, nil
}

// unknownKeys reports every key of the source that the model has no field
// for, in the order they are written; under an unknown key, only that key.
func unknownKeys(src *sourceMap) Problems {
	fields := map[reflect.Type]keyFields{}
	first := map[string]Problem{} // by the unknown key's path: where it is first
	for path, pos := range src.pos {
		keys, prefixes := splitPath(path)
		msg, n, ok := findUnknown(keys, fields)
		if !ok {
			continue
		}
		at := prefixes[n]
		if p, seen := first[at]; !seen || pos.Line < p.Pos.Line || (pos.Line == p.Pos.Line && pos.Col < p.Pos.Col) {
			first[at] = Problem{File: src.file, Pos: pos, Msg: msg}
		}
	}
	ps := make(Problems, 0, len(first))
	for _, p := range first {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool {
		a, b := ps[i].Pos, ps[j].Pos
		return a.Line < b.Line || (a.Line == b.Line && a.Col < b.Col)
	})
	return ps
}

// splitPath splits a source map path ("nodes[2].routes[0].via") into its
// keys without indexes (nodes, routes, via) and, for each key, the path up
// to and including it with indexes ("nodes", "nodes[2].routes", ...).
func splitPath(path string) (keys, prefixes []string) {
	end := 0
	for _, part := range strings.Split(path, ".") {
		end += len(part)
		key, _, _ := strings.Cut(part, "[")
		if key != "" {
			keys = append(keys, key)
			prefixes = append(prefixes, path[:end-len(part)+len(key)])
		}
		end++ // the dot
	}
	return keys, prefixes
}

// keyAt names the key written at pos, as a dotted path without element
// indexes ("links.a.iface"); go-toml leaves out the keys of inline tables.
func keyAt(src *sourceMap, pos Pos, fallback []string) string {
	return strings.Join(keyPathAt(src, pos, fallback), ".")
}

// keyPathAt is keyAt as a list of keys: ["links", "a", "iface"].
func keyPathAt(src *sourceMap, pos Pos, fallback []string) []string {
	// The key written last before pos on its line: an error is placed on
	// a key or on its value.
	best, bestCol := "", 0
	if src != nil {
		for _, path := range src.onLine(pos.Line) {
			p := src.pos[path]
			if p.Col > pos.Col {
				continue
			}
			if p.Col > bestCol || (p.Col == bestCol && len(path) > len(best)) {
				best, bestCol = path, p.Col
			}
		}
	}
	if best == "" {
		return fallback
	}
	var b strings.Builder
	depth := 0
	for _, r := range best {
		switch {
		case r == '[':
			depth++
		case r == ']':
			depth--
		case depth == 0:
			b.WriteRune(r)
		}
	}
	return strings.Split(b.String(), ".")
}

// unknownKeyMessage says which key of path is unknown, in which table,
// and which key was probably meant. The keys a table takes are read from
// the toml tags of the model's structs, so they cannot drift from what
// the decoder accepts.
func unknownKeyMessage(path []string) string {
	if msg, _, ok := findUnknown(path, map[reflect.Type]keyFields{}); ok {
		return msg
	}
	return fmt.Sprintf("unknown key %q (see docs/topology.md for the fields)", strings.Join(path, "."))
}

// findUnknown finds the first key of path that the model has no field
// for, and says so (see unknownKeyMessage) with its index in path; ok is
// false when every key is known. cache keeps the fields of each type.
func findUnknown(path []string, cache map[reflect.Type]keyFields) (msg string, at int, ok bool) {
	fieldsOf := func(t reflect.Type) keyFields {
		f, ok := cache[t]
		if !ok {
			f = tomlFields(t)
			cache[t] = f
		}
		return f
	}
	typ := reflect.TypeOf(Topology{})
	table, array := "", false
	for i := 0; i < len(path); i++ {
		key := path[i]
		fields := fieldsOf(typ)
		ft, ok := fields.types[key]
		if !ok {
			where := "the top-level table"
			if array {
				where = "[[" + table + "]]"
			} else if table != "" {
				where = "[" + table + "]"
			}
			hint := suggestKey(key, fields.names)
			if _, top := fieldsOf(reflect.TypeOf(Topology{})).types[key]; top && i > 0 {
				// A top-level key written after a [table] line belongs
				// to that table.
				hint = " (a top-level key must be written before the first [table] or [[table]] line)"
			}
			return fmt.Sprintf("unknown key %q in %s%s", key, where, hint), i, true
		}
		table = join(table, key)
		if mt := derefType(ft); mt.Kind() == reflect.Map && i+1 < len(path) {
			// A table of tables by name (impair.from.NODE): the next
			// key is the name, then the element's keys follow.
			if et, _ := tableType(mt.Elem()); et != nil {
				i++
				table = join(table, path[i])
				typ, array = et, false
				continue
			}
		}
		typ, array = tableType(ft)
		if typ == nil {
			break // a value, not a table
		}
	}
	return "", 0, false
}

// suggestKey names the known key closest to key: the one key it
// abbreviates (its letters in order, from the first: "iface" for
// "interface", "addr" for "addresses"), else the closest by spelling
// ("knd" for "kind"); when none is close, it lists them all.
func suggestKey(key string, known []string) string {
	var holds []string
	for _, k := range known {
		if len(key) >= 3 && len(key) < len(k) && abbreviates(key, k) {
			holds = append(holds, k)
		}
	}
	if len(holds) == 1 {
		return fmt.Sprintf(" (did you mean %q?)", holds[0])
	}
	if s := suggest(key, known); strings.HasPrefix(s, " (did you mean") {
		return s
	}
	return fmt.Sprintf(" (known: %s)", strings.Join(known, ", "))
}

// abbreviates reports whether the letters of short appear in long in
// order, starting with long's first letter.
func abbreviates(short, long string) bool {
	if short == "" || long == "" || short[0] != long[0] {
		return false
	}
	i := 0
	for j := 0; j < len(long) && i < len(short); j++ {
		if long[j] == short[i] {
			i++
		}
	}
	return i == len(short)
}

// keyFields are the keys a TOML table takes, in the order of the struct's
// fields, with each field's Go type.
type keyFields struct {
	names []string
	types map[string]reflect.Type
}

func topFields() keyFields { return tomlFields(reflect.TypeOf(Topology{})) }

// tomlFields lists the keys of a struct type as go-toml decodes them:
// each exported field under its toml tag name (or its Go name), the
// fields of untagged embedded structs in place, and none tagged "-".
func tomlFields(t reflect.Type) keyFields {
	kf := keyFields{types: map[string]reflect.Type{}}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag, hasTag := f.Tag.Lookup("toml")
			name, _, _ := strings.Cut(tag, ",")
			if name == "-" {
				continue
			}
			if f.Anonymous && !hasTag {
				if et := derefType(f.Type); et.Kind() == reflect.Struct {
					walk(et)
					continue
				}
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if _, dup := kf.types[name]; !dup {
				kf.names = append(kf.names, name)
			}
			kf.types[name] = f.Type
		}
	}
	if t = derefType(t); t.Kind() == reflect.Struct {
		walk(t)
	}
	return kf
}

// tableType returns the struct a field of type t decodes a table into,
// and whether it is an array of tables; nil when t is no struct table.
func tableType(t reflect.Type) (reflect.Type, bool) {
	t = derefType(t)
	array := false
	if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
		t, array = derefType(t.Elem()), true
	}
	if t.Kind() != reflect.Struct {
		return nil, false
	}
	return t, array
}

func derefType(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

func decodeProblems(file string, err error, src *sourceMap) error {
	var ps Problems
	var strict *toml.StrictMissingError
	var derr *toml.DecodeError
	switch {
	case errors.As(err, &strict):
		for _, e := range strict.Errors {
			line, col := e.Position()
			ps = append(ps, Problem{File: file, Pos: Pos{line, col},
				Msg: unknownKeyMessage(keyPathAt(src, Pos{line, col}, e.Key()))})
		}
	case errors.As(err, &derr):
		line, col := derr.Position()
		obj := ""
		if k := derr.Key(); len(k) > 0 {
			obj = "key " + strconv.Quote(keyAt(src, Pos{line, col}, k))
		}
		ps = append(ps, Problem{File: file, Pos: Pos{line, col}, Object: obj, Msg: typeMessage(derr.Error())})
	default:
		ps = append(ps, Problem{File: file, Msg: err.Error()})
	}
	return ps
}

// mapSource walks the TOML syntax tree and records where each value is.
func mapSource(file string, data []byte) (*sourceMap, error) {
	s := &sourceMap{file: file, pos: map[string]Pos{}, lines: newLines(data)}
	p := unstable.Parser{}
	p.Reset(data)
	counts := map[string]int{} // array-of-tables key -> elements seen
	prefix := ""
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			key, kpos := s.keyOf(&p, e.Key())
			// [links.a] after the second [[links]] is links[1].a, and the
			// second [[nodes.routes]] of nodes[1] is nodes[1].routes[1]:
			// arrays of tables are counted per parent element.
			parts := strings.Split(key, ".")
			var path string
			for i, part := range parts {
				path = join(path, part)
				if e.Kind == unstable.ArrayTable && i == len(parts)-1 {
					counts[path]++
				}
				if n := counts[path]; n > 0 {
					path = fmt.Sprintf("%s[%d]", path, n-1)
				}
			}
			prefix = path
			s.pos[path] = kpos
		case unstable.KeyValue:
			key, kpos := s.keyOf(&p, e.Key())
			path := join(prefix, key)
			s.pos[path] = kpos
			s.walkValue(&p, path, e.Value())
			if path == "test.script" {
				s.scriptLine = scriptStart(data, kpos.Line)
			}
		}
	}
	if err := p.Error(); err != nil {
		return nil, Problems{{File: file, Msg: err.Error()}}
	}
	return s, nil
}

// scriptStart returns the line where the script value written on line
// starts: the next line when the line ends with a multi-line string's
// opening quotes (TOML drops the newline that follows them), else line.
func scriptStart(data []byte, line int) int {
	lines := bytes.Split(data, []byte("\n"))
	if line < 1 || line > len(lines) {
		return line
	}
	// Only the newline right after the quotes is dropped: with blanks
	// between, the string starts on this line.
	l := bytes.TrimSuffix(lines[line-1], []byte("\r"))
	if bytes.HasSuffix(l, []byte(`"""`)) || bytes.HasSuffix(l, []byte("'''")) {
		return line + 1
	}
	return line
}

func (s *sourceMap) walkValue(p *unstable.Parser, path string, v *unstable.Node) {
	if pos, ok := s.nodePos(p, v); ok {
		if _, seen := s.pos[path]; !seen {
			s.pos[path] = pos
		}
	}
	switch v.Kind {
	case unstable.Array:
		i := 0
		for it := v.Children(); it.Next(); i++ {
			c := it.Node()
			el := fmt.Sprintf("%s[%d]", path, i)
			if pos, ok := s.nodePos(p, c); ok {
				s.pos[el] = pos
			}
			s.walkValue(p, el, c)
		}
	case unstable.InlineTable:
		for it := v.Children(); it.Next(); {
			kv := it.Node()
			key, kpos := s.keyOf(p, kv.Key())
			sub := join(path, key)
			s.pos[sub] = kpos
			s.walkValue(p, sub, kv.Value())
		}
	}
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

func (s *sourceMap) keyOf(p *unstable.Parser, it unstable.Iterator) (string, Pos) {
	var parts []string
	var first Pos
	for it.Next() {
		n := it.Node()
		if len(parts) == 0 {
			first, _ = s.nodePos(p, n)
		}
		parts = append(parts, string(n.Data))
	}
	return strings.Join(parts, "."), first
}

// nodePos finds where a node starts in the input.
func (s *sourceMap) nodePos(p *unstable.Parser, n *unstable.Node) (pos Pos, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	r := n.Raw
	if r.Length == 0 {
		if len(n.Data) == 0 {
			return Pos{}, false
		}
		r = p.Range(n.Data)
	}
	return s.position(int(r.Offset)), true
}

var typeErrRE = regexp.MustCompile(`cannot decode TOML ([\w ]+?) into (?:struct field \S+ of type |a Go value of type )?(\S+)$`)

// typeMessage says in TOML terms what go-toml says in Go terms.
func typeMessage(msg string) string {
	m := typeErrRE.FindStringSubmatch(msg)
	if m == nil {
		return strings.TrimPrefix(msg, "toml: ")
	}
	want := map[string]string{
		"string": "a string", "int": "an integer", "bool": "true or false",
		"[]string": "a list of strings", "[]int": "a list of integers", "map[string]string": "a table of strings",
	}[m[2]]
	switch {
	case want != "":
	case strings.HasPrefix(m[2], "[]"):
		want = "an array of tables"
	default:
		want = "a table"
	}
	return fmt.Sprintf("wrong type: a TOML %s is written where %s is expected", strings.ToLower(m[1]), want)
}
