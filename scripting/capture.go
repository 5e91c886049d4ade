package scripting

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nslab/nslab/capture"
	"github.com/nslab/nslab/emulator"
	"github.com/nslab/nslab/topo"
	"golang.org/x/sys/unix"
)

// Capturer is a Lab that can capture packets (*emulator.Lab is one).
type Capturer interface {
	OpenCapture(targets []string, o emulator.CaptureOptions) (*emulator.Capture, error)
}

// scriptCapture is a capture a script started: into a file, or into lines
// shown when it stops.
type scriptCapture struct {
	c     *emulator.Capture
	file  *os.File
	lines *bytes.Buffer
	names []string
}

// captureWords parts `capture`'s arguments: targets, then the filter's
// words, with -w FILE anywhere after the first target.
func captureWords(args []string) (targets []string, filter, file string, err error) {
	var rest []string
	for i := 0; i < len(args); i++ {
		if args[i] == "-w" {
			if i+1 >= len(args) {
				return nil, "", "", errors.New("-w needs a file name")
			}
			file = args[i+1]
			i++
			continue
		}
		rest = append(rest, args[i])
	}
	i := 0
	for i < len(rest) && !capture.StartsFilter(rest[i]) {
		i++
	}
	if i == 0 {
		return nil, "", "", errors.New("name what to capture first: NODE or NODE:IFACE")
	}
	return rest[:i], strings.Join(rest[i:], " "), file, nil
}

// filterColumn says where in the line a filter error is: the filter's
// column plus where its first word starts.
func filterColumn(ln *Line, filter string, err error) error {
	var se *capture.SyntaxError
	if !errors.As(err, &se) {
		return err
	}
	first := strings.Fields(filter)[0]
	start := strings.Index(ln.Text, " "+first)
	if start < 0 {
		return err
	}
	return fmt.Errorf("column %d: filter %q: %s", start+1+se.Col, filter, se.Msg)
}

// checkDir checks that a capture file can be made in its directory.
func checkDir(file string) error {
	dir := filepath.Dir(file)
	if fi, err := os.Stat(dir); err != nil {
		return fmt.Errorf("-w %s: %w", file, err)
	} else if !fi.IsDir() {
		return fmt.Errorf("-w %s: %s is not a directory", file, dir)
	}
	if err := unix.Access(dir, unix.W_OK); err != nil {
		return fmt.Errorf("-w %s: directory %s: %w", file, dir, err)
	}
	if fi, err := os.Stat(file); err == nil && fi.IsDir() {
		return fmt.Errorf("-w %s: is a directory", file)
	}
	return nil
}

// captureCommands are `capture` and `stop`.
func captureCommands() []*Command {
	return []*Command{{
		Name: "capture", Usage: "capture NODE[:IFACE]... [FILTER...] [-w FILE] | capture stop", MinArgs: 1, MaxArgs: -1,
		Summary: "capture packets of nodes until `stop` (no tcpdump needed)",
		Help: `Starts capturing what the named interfaces send and receive (NODE alone:
all of its interfaces), in the background, while the next lines run;
` + "`stop`" + ` (or ` + "`capture stop`" + `) ends every capture the script started and
shows how many packets each took and the kernel's drops. With -w FILE
the packets go to a pcapng file (one interface block per node:iface, to
open in Wireshark); without it, ` + "`stop`" + ` shows one line per packet, as
tcpdump prints. FILTER is tcpdump's language (host, net, port, portrange,
proto; ip, ip6, arp, tcp, udp, icmp, icmp6; src, dst; and, or, not); a
node's name stands for its addresses. The script's end stops a capture
left running.
    capture r1:eth0 h2 udp port 53 -w dns.pcapng
    reach h1 h2
    stop`,
		Validate: func(v *Validator, ln *Line, args []string) error {
			if len(args) == 1 && args[0] == "stop" {
				return nil
			}
			targets, filter, file, err := captureWords(args)
			if err != nil {
				return err
			}
			var errs []error
			v.nodes(targets...)
			if _, err := emulator.CaptureTargets(v.Plan, targets); err != nil {
				errs = append(errs, err)
			}
			if filter != "" {
				if _, err := emulator.CompileFilter(v.Plan, filter); err != nil {
					errs = append(errs, filterColumn(ln, filter, err))
				}
			}
			if file != "" {
				errs = append(errs, checkDir(file))
			}
			return v.all(errs...)
		},
		Run: func(ctx context.Context, s *Session, ln *Line, args []string) (Outcome, error) {
			if len(args) == 1 && args[0] == "stop" {
				return s.stopCaptures()
			}
			return s.startCapture(args)
		},
	}, {
		Name: "stop", Usage: "stop", MinArgs: 0, MaxArgs: 0,
		Summary: "end the captures `capture` started, and show what they took",
		Help:    "The same as `capture stop`: see `help capture`.",
		Run: func(ctx context.Context, s *Session, ln *Line, args []string) (Outcome, error) {
			return s.stopCaptures()
		},
	}}
}

func (s *Session) startCapture(args []string) (Outcome, error) {
	cl, ok := s.Lab.(Capturer)
	if !ok {
		return Outcome{}, errors.New("this lab cannot capture packets")
	}
	targets, filter, file, err := captureWords(args)
	if err != nil {
		return Outcome{}, topo.BadInput(err)
	}
	if file != "" {
		if err := checkDir(file); err != nil {
			return Outcome{}, topo.BadInput(err)
		}
	}
	c, err := cl.OpenCapture(targets, emulator.CaptureOptions{Filter: filter})
	if err != nil {
		return Outcome{}, err
	}
	sc := &scriptCapture{c: c}
	for _, i := range c.Interfaces {
		sc.names = append(sc.names, i.Name)
	}
	var sink capture.Sink
	if file != "" {
		f, err := os.Create(file)
		if err != nil {
			c.Close()
			return Outcome{}, topo.BadInput(fmt.Errorf("-w %s: %w", file, err))
		}
		w, err := capture.NewPcapngWriter(f, c.Interfaces, false)
		if err != nil {
			c.Close()
			f.Close()
			return Outcome{}, err
		}
		sc.file, sink = f, w
	} else {
		sc.lines = &bytes.Buffer{}
		sink = capture.NewSummaryWriter(sc.lines, c.Interfaces)
	}
	c.Start(sink)
	s.captures = append(s.captures, sc)
	where := "lines shown at stop"
	if file != "" {
		where = "to " + file
	}
	f := ""
	if filter != "" {
		f = fmt.Sprintf(" (filter %q)", filter)
	}
	return Outcome{Said: fmt.Sprintf("capturing on %s%s, %s", strings.Join(sc.names, ", "), f, where)}, nil
}

// stopCaptures ends every capture the session started.
func (s *Session) stopCaptures() (Outcome, error) {
	if len(s.captures) == 0 {
		return Outcome{}, errors.New("no capture is running (start one with `capture NODE[:IFACE]...`)")
	}
	var said []string
	var out strings.Builder
	var errs []error
	for _, sc := range s.captures {
		res, err := sc.stop()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		where := ""
		if sc.file != nil {
			where = " in " + sc.file.Name()
		} else {
			out.WriteString(sc.lines.String())
		}
		said = append(said, fmt.Sprintf("%s: %s%s", strings.Join(sc.names, ", "), res, where))
	}
	s.captures = nil
	return Outcome{Said: strings.Join(said, "; "), Output: out.String()}, errors.Join(errs...)
}

func (sc *scriptCapture) stop() (capture.Result, error) {
	res, err := sc.c.Stop()
	if sc.file != nil {
		if cerr := sc.file.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	return res, err
}

// closeCaptures stops what the script left running, at its end.
func (s *Session) closeCaptures() error {
	var errs []error
	for _, sc := range s.captures {
		if _, err := sc.stop(); err != nil {
			errs = append(errs, err)
		}
	}
	s.captures = nil
	return errors.Join(errs...)
}
