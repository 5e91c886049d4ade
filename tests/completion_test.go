package tests

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nslab/nslab/topo"
	"github.com/stretchr/testify/require"
)

// needPrograms fails the test at once, naming the packages to install,
// when a program it needs is missing: the completion scripts are tested
// with the shells themselves, and dot output with Graphviz. bins maps
// each program to its Debian package. .ci/run installs them; a test never
// installs anything itself.
func needPrograms(t *testing.T, bins map[string]string) {
	t.Helper()
	var missing []string
	for bin, pkg := range bins {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, pkg)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		t.Fatalf("this test needs %s: apt-get install --no-install-recommends %s (.ci/run does)", strings.Join(missing, ", "), strings.Join(missing, " "))
	}
}

// TestCompletionOfALab: on a lab that is up, the hidden __complete lists
// the lab and its nodes, as root and as an unprivileged user, and the
// bash, zsh and fish scripts that nslab completion prints parse in their
// shells and put those names on the command line.
func TestCompletionOfALab(t *testing.T) {
	t.Parallel()
	needPrograms(t, map[string]string{"zsh": "zsh", "fish": "fish", "tmux": "tmux"})
	name := uniqueName("compl")
	_, errs, code := cli(t, "", "up", "--name", name, "--topo", "linear,2")
	require.Equal(t, 0, code, errs)
	defer cli(t, "", "clean", name)
	top, err := topo.Generate("linear,2", name)
	require.NoError(t, err)
	var nodes []string
	for _, n := range top.Nodes {
		nodes = append(nodes, n.Name)
	}

	// The hidden command, as root and as nobody.
	values := func(out string) []string {
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		require.NotEmpty(t, lines)
		require.Equal(t, ":", lines[len(lines)-1], out)
		var vs []string
		for _, l := range lines[:len(lines)-1] {
			v, _, _ := strings.Cut(l, "\t")
			vs = append(vs, v)
		}
		return vs
	}
	out, errs, code := cli(t, "", "__complete", "exec", name, "")
	require.Equal(t, 0, code, errs)
	require.Equal(t, nodes, values(out))
	out, errs, code = cli(t, "", "__complete", "status", name[:len(name)-1])
	require.Equal(t, 0, code, errs)
	require.Contains(t, values(out), name)

	t.Run("as nobody", func(t *testing.T) {
		rootOnly(t, "it runs nslab as uid 65534, which the rootless run's user namespace does not map")
		asNobody := exec.Command(nslabBin, "__complete", "ping", name, "h1", "")
		asNobody.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		var o, e bytes.Buffer
		asNobody.Stdout, asNobody.Stderr = &o, &e
		require.NoError(t, asNobody.Run(), e.String())
		require.Equal(t, nodes, values(o.String()), "as nobody")
	})

	// The scripts, in their shells, with this nslab first on PATH.
	dir := t.TempDir()
	// A program of the test's own on PATH, for completing a program's name.
	progs := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(progs, "zz-nslab-probe"), []byte("#!/bin/sh\n"), 0o755))
	env := append(os.Environ(), "PATH="+filepath.Dir(nslabBin)+":"+progs+":"+os.Getenv("PATH"))
	script := func(sh string) string {
		out, errs, code := cli(t, "", "completion", sh)
		require.Equal(t, 0, code, errs)
		p := filepath.Join(dir, "nslab."+sh)
		require.NoError(t, os.WriteFile(p, []byte(out), 0o644))
		return p
	}
	shell := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env, cmd.Dir = env, dir
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%v: %s", args, out)
		return string(out)
	}
	bash, zsh, fish := script("bash"), script("zsh"), script("fish")
	shell("bash", "-n", bash)
	shell("zsh", "-n", zsh)
	shell("fish", "--no-execute", fish)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "mine.toml"), []byte("name = \"mine\"\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "notes.txt"), nil, 0o644))

	// bash: COMPREPLY for a line typed up to the cursor.
	bashComplete := func(line string) []string {
		out := shell("bash", "-c", `source "$1"; COMP_LINE="$2"; COMP_POINT=${#COMP_LINE}; _nslab_complete; printf '%s\n' "${COMPREPLY[@]}"`, "bash", bash, line)
		return strings.Fields(out)
	}
	require.Equal(t, nodes, bashComplete("nslab exec "+name+" "))
	require.Equal(t, []string{"h1", "h2"}, bashComplete("nslab ping "+name+" h"))
	require.Contains(t, bashComplete("nslab status "), name)
	require.Equal(t, []string{"mine.toml"}, bashComplete("nslab up m"))
	require.Equal(t, []string{"pingall"}, bashComplete("nslab pinga"))
	require.Equal(t, []string{"--format"}, bashComplete("nslab graph mine.toml --fo"))
	require.Equal(t, []string{"zz-nslab-probe"}, bashComplete("nslab exec "+name+" h1 zz-nslab-p"))
	require.Equal(t, []string{"mine.toml"}, bashComplete("nslab exec "+name+" h1 -- cat mi"))

	// fish: its own completion of a line.
	fishComplete := func(line string) []string {
		out := shell("fish", "-c", `source $argv[1]; complete -C $argv[2]`, fish, line)
		var vs []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			v, _, _ := strings.Cut(l, "\t")
			vs = append(vs, v)
		}
		return vs
	}
	require.ElementsMatch(t, nodes, fishComplete("nslab shell "+name+" "))
	require.Equal(t, []string{"mine.toml"}, fishComplete("nslab run "))
	require.Equal(t, []string{"completion"}, fishComplete("nslab compl"))
	require.Equal(t, []string{"zz-nslab-probe"}, fishComplete("nslab exec "+name+" h1 -- zz-nslab-p"))

	// zsh: an interactive zsh on a terminal (tmux, on a server of the
	// test's own), with compinit and the script loaded, and Tab pressed.
	socket := filepath.Join(t.TempDir(), "tmux")
	tmux := func(args ...string) string {
		t.Helper()
		return shell(append([]string{"tmux", "-S", socket}, args...)...)
	}
	tmux("new-session", "-d", "-s", "z", "-x", "160", "-y", "40", "env", "PS1=zsh> ", "zsh", "-f")
	defer exec.Command("tmux", "-S", socket, "kill-server").Run()
	waitFor := func(what, want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			screen := tmux("capture-pane", "-t", "z", "-p")
			if strings.Contains(screen, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("zsh: %s: no %q on the screen:\n%s", what, want, screen)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// tab types the line, presses Tab twice (the second lists the
	// candidates when there are several) and waits for want on screen.
	tab := func(line, want string) {
		t.Helper()
		tmux("send-keys", "-t", "z", "C-c")
		tmux("send-keys", "-t", "z", "clear", "Enter")
		tmux("send-keys", "-t", "z", "-l", line)
		tmux("send-keys", "-t", "z", "Tab")
		time.Sleep(200 * time.Millisecond)
		tmux("send-keys", "-t", "z", "Tab")
		waitFor(fmt.Sprintf("%q then Tab", line), want)
	}
	tmux("send-keys", "-t", "z", "-l", "autoload -U compinit; compinit -u -d "+dir+"/.zcompdump; source "+zsh+"; cd "+dir+"; print ready")
	tmux("send-keys", "-t", "z", "Enter")
	waitFor("loading the script", "\nready")
	tab("nslab exec "+name+" ", "-- host")
	tab("nslab exec "+name+" ", "-- switch")
	tab("nslab capture "+name+" h1:", "zsh> nslab capture "+name+" h1:eth0")
	tab("nslab up ", "zsh> nslab up mine.toml")
	tab("nslab statu", "zsh> nslab status")
	tab("nslab exec "+name+" h1 zz-nslab-p", "zsh> nslab exec "+name+" h1 zz-nslab-probe")
	tab("nslab graph mine.toml --form", "zsh> nslab graph mine.toml --format")
}

// TestGraphOfALab: nslab graph LAB draws the lab that is up as its record
// has it, the same picture as its topology gives, as root and as nobody;
// an unknown lab is bad input.
func TestGraphOfALab(t *testing.T) {
	t.Parallel()
	name := uniqueName("graph")
	_, errs, code := cli(t, "", "up", "--name", name, "--topo", "single,2")
	require.Equal(t, 0, code, errs)
	defer cli(t, "", "clean", name)
	for _, format := range []string{"dot", "mermaid", "svg", "json"} {
		fromLab, errs, code := cli(t, "", "graph", name, "--format", format)
		require.Equal(t, 0, code, errs)
		fromSpec, errs, code := cli(t, "", "graph", "--topo", "single,2", "--name", name, "--format", format)
		require.Equal(t, 0, code, errs)
		require.Equal(t, fromSpec, fromLab, format)
	}
	out, _, _ := cli(t, "", "graph", name, "--format", "mermaid")
	require.Contains(t, out, "h1:eth0 10.0.0.1/24")

	_, errs, code = cli(t, "", "graph", name+"-none")
	require.Equal(t, 2, code)
	require.Contains(t, errs, "is not a file, nor a lab that is up")
}

// TestGraphDotRenders: Graphviz's dot reads the dot nslab writes for
// every example topology, and renders it to SVG.
func TestGraphDotRenders(t *testing.T) {
	t.Parallel()
	needPrograms(t, map[string]string{"dot": "graphviz"})
	files, err := filepath.Glob("../topologies/*.toml")
	require.NoError(t, err)
	files = append(files, "../graph/testdata/features.toml")
	for _, f := range files {
		out, errs, code := cli(t, "", "graph", f, "--format", "dot")
		require.Equal(t, 0, code, errs)
		cmd := exec.Command("dot", "-Tsvg")
		cmd.Stdin = strings.NewReader(out)
		svg, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s: dot says: %s", f, svg)
		require.Contains(t, string(svg), "<svg", f)
	}
}
