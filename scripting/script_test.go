package scripting

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/nslab/nslab/topo"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/bad")

func testPlan(t *testing.T) *topo.Plan {
	t.Helper()
	top, err := topo.LoadFile("testdata/lab.toml")
	require.NoError(t, err)
	p, err := topo.Resolve(top)
	require.NoError(t, err)
	return p
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      []string // per line: [!]name|arg|arg...
		quoted    []bool   // of the first line's words after the name
	}{
		{"plain", "reach red blue", []string{"reach|red|blue"}, []bool{false, false}},
		{"comment and blank lines", "# a comment\n\n  reach red blue   # why\n", []string{"reach|red|blue"}, nil},
		{"negation", "!reach lan blue", []string{"!reach|lan|blue"}, nil},
		{"negation apart", "! reach lan blue", []string{"!reach|lan|blue"}, nil},
		{"single quotes", `expect 'a b # c'`, []string{"expect|a b # c"}, []bool{true}},
		{"double quotes", `echo "say \"hi\"" x`, []string{`echo|say "hi"|x`}, []bool{true, false}},
		{"backslash", `red ping \blue`, []string{"red|ping|blue"}, []bool{false, true}},
		{"hash inside a word", "red echo a#b", []string{"red|echo|a#b"}, nil},
		{"empty quotes", "echo ''", []string{"echo|"}, []bool{true}},
		{"two lines", "a b\nc d", []string{"a|b", "c|d"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse("x.nsl", tc.src, 1)
			require.NoError(t, err)
			var got []string
			for _, ln := range s.Lines {
				w := ln.Name
				if ln.Neg {
					w = "!" + w
				}
				got = append(got, strings.Join(append([]string{w}, ln.Strings()...), "|"))
			}
			require.Equal(t, tc.want, got)
			if tc.quoted != nil {
				for i, q := range tc.quoted {
					require.Equal(t, q, s.Lines[0].Args[i].Quoted, "word %d", i)
				}
			}
		})
	}
}

func TestParseLineNumbers(t *testing.T) {
	s, err := Parse("lab.toml", "\nreach a b\n# c\nreach c d\n", 40)
	require.NoError(t, err)
	require.Equal(t, 41, s.Lines[0].Num)
	require.Equal(t, 43, s.Lines[1].Num)
	require.Equal(t, "lab.toml:43", s.Lines[1].Where())
}

// TestBad checks every fixture in testdata/bad against testdata/lab.toml:
// the problems, every one at once, must be the golden ones.
func TestBad(t *testing.T) {
	plan := testPlan(t)
	files, err := filepath.Glob("testdata/bad/*.nsl")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			s, err := ParseFile(f)
			if s != nil {
				err = Check(s, plan, nil)
			}
			require.Error(t, err, "a bad script must be refused")
			require.True(t, topo.IsBadInput(err), "bad input: %v", err)
			golden := strings.TrimSuffix(f, ".nsl") + ".err"
			if *update {
				require.NoError(t, os.WriteFile(golden, []byte(err.Error()+"\n"), 0o644))
			}
			want, rerr := os.ReadFile(golden)
			require.NoError(t, rerr, "no golden file: run go test ./scripting -run TestBad -args -update")
			require.Equal(t, string(want), err.Error()+"\n")
		})
	}
}

func TestGoodScriptsCheck(t *testing.T) {
	plan := testPlan(t)
	s, err := Parse("good.nsl", `lab tutorial
reach red blue
!reach red 192.168.15.2
red ip route
exec host ip route
expect 'x'
wait !reach red blue 1s
!wait reach red blue 500ms
wait ! reach red blue 1s
wait red true 1s
wait !exec blue false 1s
link red v-net-0 down
link r1:eth0 r2:eth0 up
nat red blue 10.0.0.1:40000
nat red blue host
serve blue udp 53
udp red blue:53
tcp red 10.0.0.2:80
punch red blue via host
set subst off
set timeout 300ms
set limit 1m
set limit off
limit 5s red ping -c 1 blue
limit off exec red true
!limit 500ms red false
wait limit 1s red true 3s
net
intfs
sleep 10ms
nodes
links
dump red
pingall
pingall red blue
help reach
echo done`, 1)
	require.NoError(t, err)
	require.NoError(t, Check(s, plan, nil))
}

func TestRegistry(t *testing.T) {
	r := Builtins()
	require.Contains(t, r.Names(), "reach")
	err := r.Register(&Command{Name: "reach", Run: r.Lookup("reach").Run})
	require.ErrorContains(t, err, `register command "reach": there is one already`)
	require.Error(t, r.Register(&Command{Name: "x"}), "a command needs Run")
	var zero Registry
	require.Nil(t, zero.Lookup("reach"))
	require.Empty(t, zero.Names())
	for _, n := range r.Names() {
		c := r.Lookup(n)
		require.NotEmpty(t, c.Usage, n)
		require.NotEmpty(t, c.Summary, n)
		require.True(t, strings.HasPrefix(c.Usage, n) || n == "set", "usage of %s starts with its name: %s", n, c.Usage)
	}
}

func TestCompleteHelpers(t *testing.T) {
	require.Equal(t, "re", commonPrefix([]string{"reach", "red", "re"}))
	require.True(t, seenMatches("10.0.0.1", mustAP("10.0.0.1:5")))
	require.True(t, seenMatches("10.0.0.1:5", mustAP("10.0.0.1:5")))
	require.False(t, seenMatches("10.0.0.1:6", mustAP("10.0.0.1:5")))
	require.False(t, seenMatches("nonsense", mustAP("10.0.0.1:5")))
	require.True(t, sameLab("tutorial", "tutorial-12345-1"))
	require.False(t, sameLab("tutorial", "tutorials"))
}

func TestCtrlCClearsTheLine(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"abc\x03def", "abc\x1b[F\x15def"},
		{"a\x03\x03", "a\x1b[F\x15\x1b[F\x15"},
		{"\x03", "\x1b[F\x15"},
		{"plain", "plain"},
	} {
		c := &ctrlC{r: strings.NewReader(tc.in)}
		got, err := io.ReadAll(iotest.OneByteReader(c))
		require.NoError(t, err)
		require.Equal(t, tc.want, string(got), "%q", tc.in)
		c = &ctrlC{r: strings.NewReader(tc.in)}
		got, err = io.ReadAll(c)
		require.NoError(t, err)
		require.Equal(t, tc.want, string(got), "%q", tc.in)
	}
}

// TestCheckLineUnknownWord: a word that is no command or node, typed at
// the prompt, is said to be an unknown command with the close names, not
// taken for a sign of another lab's script (as it is in a script file).
func TestCheckLineUnknownWord(t *testing.T) {
	plan := testPlan(t)
	for _, tc := range []struct {
		line, want string
	}{
		{"nodez", `unknown command "nodez", and lab "tutorial" has no node of that name (close: nodes); ` + "`help`"},
		{"h1 ping h2", `unknown command "h1", and lab "tutorial" has no node of that name`},
		{"iperf3 h1 h2", "unknown command \"iperf3\": nslab's own throughput probe is `iperf A B`"},
		{"help iperfudp", "unknown command \"iperfudp\": nslab's own throughput probe takes udp as a word"},
		{"xterm red", "`nslab shell tutorial NODE`"},
	} {
		s, err := Parse("", tc.line, 1)
		require.NoError(t, err)
		err = CheckLine(s.Lines[0], plan, nil)
		require.ErrorContains(t, err, tc.want, tc.line)
		require.NotContains(t, err.Error(), "another lab", tc.line)
	}
	for _, line := range []string{"net", "intfs", "nodes", "links", "dump"} {
		s, err := Parse("", line, 1)
		require.NoError(t, err)
		require.NoError(t, CheckLine(s.Lines[0], plan, nil), line)
	}
	// In a script file, a line that names another lab's node still gets
	// the hint; a mistyped command does not.
	s, _ := Parse("x.nsl", "h1 ping h2", 1)
	require.ErrorContains(t, Check(s, plan, nil), "has none of the nodes this script names (h1)")
	s, _ = Parse("x.nsl", "rech red blue\niperf3 a b", 1)
	require.NotContains(t, Check(s, plan, nil).Error(), "another lab")
}

func TestCloseNames(t *testing.T) {
	known := []string{"nat", "net", "nodes", "reach", "red", "set", "links"}
	require.Equal(t, []string{"net"}, closeNames("nat", known))
	require.Equal(t, []string{"reach"}, closeNames("rech", known))
	require.Equal(t, []string{"nodes"}, closeNames("no", known))
	require.Equal(t, []string{"links"}, closeNames("lnks", known))
	require.Empty(t, closeNames("iperf3", known))
}

func TestLimitMessage(t *testing.T) {
	for d, want := range map[time.Duration]string{
		30 * time.Second: "30s", time.Minute: "1m", 90 * time.Second: "1m30s",
		500 * time.Millisecond: "500ms", 2 * time.Hour: "2h", 1500 * time.Millisecond: "1.5s",
	} {
		require.Equal(t, want, fmtLimit(d))
	}
	words := []Word{{Text: "ping"}, {Text: "blue"}}
	err := limitError("red", words, []string{"ping", "192.168.15.2"}, 30*time.Second)
	require.EqualError(t, err, "stopped after the line's time limit of 30s (`set limit 1m` gives the lines that follow more, "+
		"`limit 1m red ping blue` this line alone, `set limit off` lifts it); ping runs until it is stopped: give it a count, as in `red ping -c 3 blue`")
	err = limitError("red", []Word{{Text: "ping"}, {Text: "-c"}, {Text: "100"}, {Text: "blue"}}, []string{"ping", "-c", "100", "192.168.15.2"}, time.Second)
	require.NotContains(t, err.Error(), "give it a count")
}

// TestTermSize: a terminal of no size (0 columns under script(1), or no
// answer) is edited as 80x24.
func TestTermSize(t *testing.T) {
	for _, tc := range []struct {
		w, h   int
		err    error
		ww, wh int
	}{
		{160, 40, nil, 160, 40},
		{0, 0, nil, 80, 24},
		{0, 50, nil, 80, 50},
		{120, 0, nil, 120, 24},
		{5, 5, io.EOF, 80, 24},
	} {
		w, h := termSize(tc.w, tc.h, tc.err)
		require.Equal(t, [2]int{tc.ww, tc.wh}, [2]int{w, h}, "%+v", tc)
	}
}
