package nslabtest

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/nslab/nslab/capture"
	"github.com/nslab/nslab/emulator"
)

// CaptureDirEnv names a directory where a failed test's captures are kept
// (the -nslab.capture-dir flag says the same). Without either, they are
// kept in go test's -artifacts directory when it is given, else in a
// directory of their own under the system's temporary directory.
const CaptureDirEnv = "NSLAB_CAPTURE_DIR"

var captureDir = flag.String("nslab.capture-dir", "", "keep the pcapng captures of failed tests in `DIR` (default $"+CaptureDirEnv+")")

// Capture is a capture running while a test runs (Lab.Capture).
type Capture struct {
	l    *Lab
	c    *emulator.Capture
	path string
	f    *os.File
	keep bool // the directory is go test's -artifacts: kept either way

	once sync.Once
	res  capture.Result
	err  error
}

// Capture captures the named interfaces ("node" for all of a node's,
// "node:iface") into one pcapng file, from now until the test ends (or
// Stop). When the test fails, the file is kept and its path is in the
// test's log, to open in Wireshark; when it passes, the file is removed
// (unless it was written to go test's -artifacts directory). Bad targets
// fail the test at once.
//
//	lab.Capture("r1:eth0", "h1")
//	lab.RequireReachable("h1", "h2") // on failure: "capture of r1:eth0, h1:eth0 kept in /tmp/.../TestX.pcapng"
func (l *Lab) Capture(targets ...string) *Capture {
	l.t.Helper()
	return l.CaptureWith(emulator.CaptureOptions{}, targets...)
}

// CaptureWith is Capture with a filter and options.
//
//	lab.CaptureWith(emulator.CaptureOptions{Filter: "udp port 53"}, "r1")
func (l *Lab) CaptureWith(o emulator.CaptureOptions, targets ...string) *Capture {
	l.t.Helper()
	t := l.t
	dir, keep := *captureDir, false
	if dir == "" {
		dir = os.Getenv(CaptureDirEnv)
	}
	if dir == "" && artifacts() {
		dir, keep = t.ArtifactDir(), true
	}
	if dir == "" {
		d, err := os.MkdirTemp("", "nslab-capture-")
		if err != nil {
			l.fatalf("nslabtest: capture: %v", err)
		}
		dir = d
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		l.fatalf("nslabtest: capture directory: %v", err)
	}
	c, err := l.lab().OpenCapture(targets, o)
	if err != nil {
		l.fatalf("nslabtest: capture %s: %v", strings.Join(targets, " "), err)
	}
	f, err := os.CreateTemp(dir, fileSafe.ReplaceAllString(t.Name(), "_")+"-*.pcapng")
	if err != nil {
		c.Close()
		l.fatalf("nslabtest: capture file: %v", err)
	}
	// Each packet is flushed: the file is whole even if the test is killed.
	w, err := capture.NewPcapngWriter(f, c.Interfaces, true)
	if err != nil {
		c.Close()
		f.Close()
		l.fatalf("nslabtest: capture file: %v", err)
	}
	cp := &Capture{l: l, c: c, path: f.Name(), f: f, keep: keep}
	c.Start(w)
	t.Cleanup(func() {
		res, err := cp.Stop()
		names := cp.names()
		switch {
		case err != nil:
			t.Errorf("nslabtest: capture of %s: %v (file %s)", names, err, cp.path)
		case t.Failed():
			t.Logf("nslabtest: capture of %s kept in %s (%s)", names, cp.path, res)
		case !cp.keep:
			os.Remove(cp.path)
			if dir != *captureDir && dir != os.Getenv(CaptureDirEnv) {
				os.Remove(dir) // our own directory, now empty
			}
		}
	})
	return cp
}

var fileSafe = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// artifacts says whether go test was given -artifacts.
func artifacts() bool {
	f := flag.Lookup("test.artifacts")
	return f != nil && f.Value.String() == "true"
}

func (c *Capture) names() string {
	var names []string
	for _, i := range c.c.Interfaces {
		names = append(names, i.Name)
	}
	return strings.Join(names, ", ")
}

// Path is the pcapng file being written.
func (c *Capture) Path() string { return c.path }

// Stop ends the capture before the test does: what the kernel had queued
// is written, and the file is complete. It returns the packets written and
// the kernel's counters. Stopping twice returns the first result.
func (c *Capture) Stop() (capture.Result, error) {
	c.once.Do(func() {
		c.res, c.err = c.c.Stop()
		if err := c.f.Close(); err != nil && c.err == nil {
			c.err = fmt.Errorf("close %s: %w", filepath.Base(c.path), err)
		}
	})
	return c.res, c.err
}
