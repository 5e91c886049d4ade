// Command costs measures where the time of a lab goes (issue 18 point 4):
// for each lab size, `nslab up` and `nslab down` run as child processes,
// and around each the machine's CPU accounting is read: nslab's own CPU
// (getrusage of the child, in user space and in the kernel on its behalf),
// the kernel threads' (/proc/PID/stat: kworkers, where the namespace
// cleanup runs, and the others), the rest of the machine and the idle
// time (/proc/stat). Three stretches are measured on a quiet kernel (the
// previous lab's namespaces freed, the rtnl lock free): up, down, and the
// kernel's work after down returned until it has dismantled the lab (three
// sentinel veths from a namespace of the measurer's own into the lab's
// first, middle and last node deleted). Then the same size back to back:
// up then down in a loop, each cycle at once after the last, and the
// drain after it.
//
//	go run ./tests/costs [-nslab bin/nslab] [-labs single,100;linear,25;...]
//	    [-reps 3] [-cycles 5] [-json bench-out/costs.json] [-svg bench-out/scale.svg] [-md FILE]
//	go run ./tests/costs -plot -json bench-out/costs.json -svg docs/scale.svg
//
// The second form only draws the plot (SVG, written by hand, no tool
// needed) from a data file. Needs root (it builds labs); `make bench`
// runs it. The accounting counts the whole machine: run it on a quiet one.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"time"
)

const defaultLabs = "single,100;single,250;single,500;single,1000;linear,25;linear,50;linear,100;linear,200"

func main() {
	var (
		nslab   = flag.String("nslab", "bin/nslab", "the nslab binary to measure")
		labs    = flag.String("labs", defaultLabs, "lab sizes, separated by ';'")
		reps    = flag.Int("reps", 3, "isolated up/down runs per lab (medians)")
		cycles  = flag.Int("cycles", 5, "back-to-back cycles per lab")
		jsonOut = flag.String("json", "bench-out/costs.json", "data file (read with -plot)")
		svgOut  = flag.String("svg", "bench-out/scale.svg", "plot")
		mdOut   = flag.String("md", "", "also write the tables (markdown) here")
		plot    = flag.Bool("plot", false, "only draw -svg from the data file -json")
		timeout = flag.Duration("timeout", 60*time.Second, "how long to wait for the kernel after down")
	)
	flag.Parse()
	if err := run(*nslab, *labs, *reps, *cycles, *jsonOut, *svgOut, *mdOut, *plot, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "costs:", err)
		os.Exit(1)
	}
}

func run(nslab, labs string, reps, cycles int, jsonOut, svgOut, mdOut string, plotOnly bool, timeout time.Duration) error {
	var r Report
	if plotOnly {
		data, err := os.ReadFile(jsonOut)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(data, &r); err != nil {
			return fmt.Errorf("%s: %w", jsonOut, err)
		}
		return writePlot(&r, svgOut)
	}
	if reps < 1 || cycles < 1 {
		return fmt.Errorf("-reps and -cycles must be at least 1")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	m := &measurer{nslab: nslab, cores: runtime.NumCPU(), timeout: timeout,
		logf: func(f string, a ...any) { fmt.Fprintf(os.Stderr, "costs: "+f+"\n", a...) }}
	if err := m.open(); err != nil {
		return err
	}
	defer m.close()
	r = Report{When: time.Now().UTC().Format("2006-01-02 15:04 UTC"), Kernel: kernelRelease(),
		Cores: m.cores, Load: loadavg(), Reps: reps, Cycles: cycles}
	for _, spec := range strings.Split(labs, ";") {
		if spec = strings.TrimSpace(spec); spec == "" {
			continue
		}
		fmt.Fprintf(os.Stderr, "costs: %s\n", spec)
		l, err := m.lab(ctx, spec, reps, cycles)
		if err != nil {
			return fmt.Errorf("%s: %w", spec, err)
		}
		r.Labs = append(r.Labs, l)
	}
	r.QuietWaitS = m.gated.Seconds()
	data, err := json.MarshalIndent(&r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(jsonOut, append(data, '\n'), 0o644); err != nil {
		return err
	}
	r.WriteMarkdown(os.Stdout)
	if mdOut != "" {
		f, err := os.Create(mdOut)
		if err != nil {
			return err
		}
		r.WriteMarkdown(f)
		if err := f.Close(); err != nil {
			return err
		}
	}
	return writePlot(&r, svgOut)
}

func writePlot(r *Report, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := Plot(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
