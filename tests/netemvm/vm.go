package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// runVM builds the test binaries and the initramfs, boots the guest kernel
// in qemu, streams its console and returns the verdict and how it ran.
func runVM(ctx context.Context, c config, pkgs pkgList) (code int, verdict, way string) {
	k, err := findGuestKernel(c.kernel)
	if err != nil {
		return 2, err.Error(), ""
	}
	way = fmt.Sprintf("in a VM: kernel %s, qemu -accel %s", k.Version, c.accel)
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		return 2, "no qemu-system-x86_64: apt-get install --no-install-recommends qemu-system-x86", way
	}
	if c.cache == "" {
		out, err := exec.Command(c.goBin, "env", "GOMOD").Output()
		if err != nil || strings.TrimSpace(string(out)) == "" || strings.TrimSpace(string(out)) == os.DevNull {
			return 2, "no -cache given and not inside a Go module", way
		}
		c.cache = filepath.Join(filepath.Dir(strings.TrimSpace(string(out))), "bin", "netemvm-cache")
	}
	kernel, err := vmlinux(k, c.cache)
	if err != nil {
		logf("booting the bzImage (slower): %v", err)
		kernel = k.BzImage
	}
	base, err := baseArchive(k, c.cache, c.modules)
	if err != nil {
		return 2, err.Error(), way
	}

	tmp, err := os.MkdirTemp("", "netemvm-")
	if err != nil {
		return 2, err.Error(), way
	}
	defer os.RemoveAll(tmp)
	initrd, bins, err := runArchive(ctx, c, pkgs, base, tmp)
	if err != nil {
		return 2, err.Error(), way
	}

	args := []string{"-accel", c.accel, "-cpu", "max", "-m", fmt.Sprint(c.mem), "-smp", "1",
		"-nographic", "-nic", "none", "-no-reboot",
		"-kernel", kernel, "-initrd", initrd, "-append", "console=ttyS0 quiet panic=-1"}
	logf("booting %s (%s) with %s", kernel, k.Version, strings.Join(bins, ", "))
	var t tally
	var early []string // firmware and kernel lines: shown only if /init never starts
	err = runQemu(ctx, args, func(r io.Reader) {
		eachLine(r, func(l string) {
			booted := t.booted
			t.line(l)
			if !booted && t.booted {
				fmt.Println(l[strings.Index(l, "NETEMVM "):]) // after the firmware's last words
			} else if t.booted {
				fmt.Println(l)
			} else {
				early = append(early[max(0, len(early)-49):], l)
			}
		})
	})
	if !t.booted {
		for _, l := range early {
			fmt.Println("console: " + escapes.ReplaceAllString(l, ""))
		}
	}
	if err != nil && ctx.Err() == nil {
		logf("qemu: %v", err)
	}
	code, verdict = t.verdict(0, bins)
	return code, verdict, way
}

// escapes matches the terminal control sequences the firmware prints.
var escapes = regexp.MustCompile(`\x1b(\[[0-9;?]*[A-Za-z]|[A-Za-z])`)

// runArchive builds the static test binaries into dir and writes dir/initrd:
// the base archive followed by a second one with the binaries, each
// package's testdata, the list of binaries and their arguments.
func runArchive(ctx context.Context, c config, pkgs pkgList, base, dir string) (string, []string, error) {
	// One go test -c for all packages builds them in parallel; each binary
	// is named after its package, so two packages of one name cannot share
	// a run.
	seen := map[string]string{}
	for _, p := range pkgs {
		if other, ok := seen[p.name]; ok {
			return "", nil, fmt.Errorf("packages %s and %s have the same name %s: run them one at a time", other, p.path, p.name)
		}
		seen[p.name] = p.path
	}
	build := exec.CommandContext(ctx, c.goBin, append([]string{"test", "-c", "-tags", "netem", "-o", dir + "/"}, pkgs.paths()...)...)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	t0 := time.Now()
	if err := build.Run(); err != nil {
		return "", nil, fmt.Errorf("go test -c -tags netem: %w", err)
	}
	logf("built %d static test binaries in %.1f s", len(pkgs), time.Since(t0).Seconds())

	initrd := filepath.Join(dir, "initrd")
	out, err := os.Create(initrd)
	if err != nil {
		return "", nil, err
	}
	defer out.Close()
	b, err := os.Open(base)
	if err != nil {
		return "", nil, err
	}
	_, err = io.Copy(out, b)
	b.Close()
	if err != nil {
		return "", nil, err
	}
	a := newCPIO(out)
	var list strings.Builder
	var bins []string
	for _, p := range pkgs {
		bin := p.name + ".test"
		if err := staticBinary(filepath.Join(dir, bin)); err != nil {
			return "", nil, err
		}
		d := "netemvm/" + p.name
		if err := a.Dir(d); err != nil {
			return "", nil, err
		}
		if err := a.File(d+"/"+bin, filepath.Join(dir, bin)); err != nil {
			return "", nil, err
		}
		if st, err := os.Stat(filepath.Join(p.dir, "testdata")); err == nil && st.IsDir() {
			if err := a.Tree(d+"/testdata", filepath.Join(p.dir, "testdata")); err != nil {
				return "", nil, err
			}
		}
		fmt.Fprintf(&list, "%s %s\n", p.name, bin)
		bins = append(bins, bin)
	}
	testArgs := []string{"-test.count=1", "-test.timeout=" + testTimeout(c.timeout).String()}
	if c.run != "" {
		testArgs = append(testArgs, "-test.run="+c.run)
	}
	err = a.Bytes("netemvm/tests", 0o644, []byte(list.String()))
	if err == nil {
		err = a.Bytes("netemvm/args", 0o644, []byte(strings.Join(testArgs, "\n")+"\n"))
	}
	if err == nil {
		err = a.Close()
	}
	if err == nil {
		err = out.Close()
	}
	return initrd, bins, err
}

// runQemu runs qemu itself (no shell in between, so that killing it kills
// the VM) and hands its console to read. qemu is killed when ctx ends (the
// timeout, ^C) and, through PR_SET_PDEATHSIG, if this process dies first.
func runQemu(ctx context.Context, args []string, read func(io.Reader)) error {
	errc := make(chan error, 1)
	go func() {
		// The parent-death signal fires when the thread that started the
		// child exits: keep that thread until qemu is gone.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		cmd := exec.CommandContext(ctx, "qemu-system-x86_64", args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		cmd.Stderr = os.Stderr
		cmd.WaitDelay = 5 * time.Second
		out, err := cmd.StdoutPipe()
		if err != nil {
			errc <- err
			return
		}
		if err := cmd.Start(); err != nil {
			errc <- err
			return
		}
		read(out)
		errc <- cmd.Wait()
	}()
	return <-errc
}
