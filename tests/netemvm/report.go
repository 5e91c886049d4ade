package main

import (
	"fmt"
	"strconv"
	"strings"
)

// tally reads go test -v output (and, from the VM, /init's markers) line by
// line and decides the outcome.
type tally struct {
	passed, failed, skipped int
	skips                   []string // names of skipped tests: a skip is a failure here
	noTests                 int      // binaries that ran no test ("testing: warning: no tests to run")

	// VM only
	booted      bool
	done        bool
	insmodFails []string
	exits       map[string]int // test binary -> exit status
}

func (t *tally) line(l string) {
	trimmed := strings.TrimSpace(l)
	switch {
	case strings.HasPrefix(trimmed, "--- PASS: "):
		t.passed++
	case strings.HasPrefix(trimmed, "--- FAIL: "):
		t.failed++
	case strings.HasPrefix(trimmed, "--- SKIP: "):
		t.skipped++
		t.skips = append(t.skips, strings.Fields(trimmed)[2])
	case strings.HasPrefix(trimmed, "testing: warning: no tests to run"):
		t.noTests++
	}
	i := strings.Index(l, "NETEMVM ")
	if i < 0 {
		return
	}
	f := strings.Fields(l[i:])
	switch f[1] {
	case "BOOTED":
		t.booted = true
	case "DONE":
		t.done = true
	case "INSMOD-FAILED":
		if len(f) > 2 {
			t.insmodFails = append(t.insmodFails, f[2])
		}
	case "EXIT":
		if len(f) > 3 {
			if t.exits == nil {
				t.exits = map[string]int{}
			}
			rc, err := strconv.Atoi(f[3])
			if err != nil {
				rc = -1
			}
			t.exits[f[2]] = rc
		}
	}
}

// verdict returns the exit status (0 pass, 1 a test failed or skipped or
// none ran, 2 the VM did not run the tests to the end) and one sentence.
// vmBinaries lists the test binaries the VM should have run (nil: native,
// where rc is go test's exit status).
func (t *tally) verdict(rc int, vmBinaries []string) (int, string) {
	counts := fmt.Sprintf("%d passed, %d failed, %d skipped", t.passed, t.failed, t.skipped)
	if vmBinaries != nil {
		switch {
		case !t.booted:
			return 2, "the VM never reached /init"
		case len(t.insmodFails) > 0:
			return 2, "the VM could not load the modules " + strings.Join(t.insmodFails, ", ")
		case !t.done:
			return 2, "the VM stopped before its tests were done (" + counts + ")"
		}
		rc = 0
		for _, b := range vmBinaries {
			x, ok := t.exits[b]
			if !ok {
				return 2, b + " did not report its exit status"
			}
			if x != 0 {
				rc = 1
			}
		}
	}
	switch {
	case rc != 0 || t.failed > 0:
		return 1, "FAIL: " + counts
	case t.skipped > 0:
		return 1, "FAIL: " + counts + "; these tests must not skip: " + strings.Join(t.skips, ", ")
	case t.passed == 0:
		return 1, "FAIL: no test ran"
	}
	return 0, "PASS: " + counts
}
