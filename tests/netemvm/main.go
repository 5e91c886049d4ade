// Command netemvm runs the tests that need the kernel's netem qdisc (the
// test files with //go:build netem) where the build machine's kernel lacks
// it: it boots Debian's stock kernel, which ships sch_netem.ko, in a
// throwaway qemu VM (software emulation, no network device towards the
// host) with a busybox initramfs holding the static test binaries, and
// reads their go test -v output from the serial console. Where the running
// kernel has netem, it runs go test natively instead.
//
//	go run ./tests/netemvm [-run REGEXP] [-timeout 5m] [-mode auto|native|vm] [PACKAGES]
//
// PACKAGES (default ./...) are narrowed to those with netem-tagged test
// files. Exit status: 0 passed, 1 a test failed, skipped or none ran, 2 the
// harness or the VM failed. See docs/testing.md.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

type config struct {
	run, mode, kernel, cache, accel, goBin string
	modules                                []string
	timeout                                time.Duration
	mem                                    int
	patterns                               []string
}

func main() {
	var c config
	var modules string
	flag.StringVar(&c.run, "run", "", "run only the tests matching this regexp (go test -run)")
	flag.StringVar(&c.mode, "mode", "auto", "auto: natively if this kernel has netem, else in a VM; native; vm")
	flag.DurationVar(&c.timeout, "timeout", 5*time.Minute, "bound on the whole run; the VM is killed at the end of it")
	flag.StringVar(&c.kernel, "kernel", "", "guest kernel version (default: the newest in /lib/modules with sch_netem)")
	flag.StringVar(&modules, "modules", "veth,sch_netem,sch_tbf,sch_htb,sch_ingress,cls_bpf,bridge",
		"guest modules to load (their dependencies are added): veth, netem, TBF, HTB, clsact with eBPF classifiers, bridge")
	flag.StringVar(&c.cache, "cache", "", "cache of extracted kernels and base archives (default: bin/netemvm-cache in the module)")
	flag.StringVar(&c.accel, "accel", "tcg", "qemu accelerator (kvm where it works; it does not on every host)")
	flag.IntVar(&c.mem, "mem", 512, "guest memory in MiB")
	flag.StringVar(&c.goBin, "go", "go", "go command")
	flag.Parse()
	c.modules = strings.Split(modules, ",")
	c.patterns = flag.Args()
	if len(c.patterns) == 0 {
		c.patterns = []string{"./..."}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	code := run(ctx, c)
	stop()
	os.Exit(code)
}

func logf(format string, a ...any) { fmt.Fprintf(os.Stderr, "netemvm: "+format+"\n", a...) }

func run(ctx context.Context, c config) int {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	pkgs, err := netemPackages(ctx, c)
	if err != nil {
		logf("%v", err)
		return 2
	}
	host := kernelRelease()
	native, why := hostHasNetem()
	switch c.mode {
	case "auto":
	case "native":
		if !native {
			logf("host kernel %s: %s (-mode native)", host, why)
			return 2
		}
	case "vm":
		native = false
		why = "-mode vm"
	default:
		logf("-mode %q: want auto, native or vm", c.mode)
		return 2
	}
	var code int
	var verdict, way string
	if native {
		way = "natively on kernel " + host
		logf("running %s (%s): go test -tags netem %s", way, why, strings.Join(pkgs.paths(), " "))
		code, verdict = runNative(ctx, c, pkgs)
	} else {
		logf("host kernel %s: %s: running in a VM", host, why)
		code, verdict, way = runVM(ctx, c, pkgs)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) && code != 0 {
		verdict += fmt.Sprintf(" (timed out: -timeout %s)", c.timeout)
	} else if ctx.Err() != nil && code != 0 {
		verdict += fmt.Sprintf(" (%v)", context.Cause(ctx))
	}
	logf("%s %s in %.1f s", verdict, way, time.Since(start).Seconds())
	return code
}

func kernelRelease() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return "?"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// hostHasNetem tries what the tests will do: add a netem qdisc, here on the
// loopback device of a network namespace of its own, created on a locked
// thread that is thrown away afterwards. The kernel loads sch_netem on
// demand where it is a module.
func hostHasNetem() (bool, string) {
	res := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with its namespace
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			res <- fmt.Errorf("new network namespace: %w", err)
			return
		}
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			res <- err
			return
		}
		defer h.Close()
		lo, err := h.LinkByName("lo")
		if err == nil {
			err = h.QdiscAdd(netlink.NewNetem(netlink.QdiscAttrs{LinkIndex: lo.Attrs().Index, Parent: netlink.HANDLE_ROOT},
				netlink.NetemQdiscAttrs{Latency: 1000}))
		}
		res <- err
	}()
	if err := <-res; err != nil {
		return false, "no netem qdisc (adding one in a scratch namespace: " + err.Error() + ")"
	}
	return true, "it has netem"
}

// pkg is a package with netem-tagged test files.
type pkg struct{ path, dir, name string }
type pkgList []pkg

func (l pkgList) paths() []string {
	var p []string
	for _, x := range l {
		p = append(p, x.path)
	}
	return p
}

// netemPackages lists the packages matching the patterns whose test files
// include one that builds only with the netem tag.
func netemPackages(ctx context.Context, c config) (pkgList, error) {
	args := append([]string{"list", "-e", "-tags", "netem", "-f",
		"{{.ImportPath}}\t{{.Dir}}\t{{.Name}}\t{{join .TestGoFiles \" \"}} {{join .XTestGoFiles \" \"}}"}, c.patterns...)
	out, err := exec.CommandContext(ctx, c.goBin, args...).Output()
	if err != nil {
		return nil, fmt.Errorf("go list: %w", errOutput(err))
	}
	var l pkgList
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.SplitN(line, "\t", 4)
		if len(f) < 4 {
			continue
		}
		for _, file := range strings.Fields(f[3]) {
			if hasNetemTag(filepath.Join(f[1], file)) {
				l = append(l, pkg{path: f[0], dir: f[1], name: f[2]})
				break
			}
		}
	}
	if len(l) == 0 {
		return nil, fmt.Errorf("no package in %s has a test file with //go:build netem", strings.Join(c.patterns, " "))
	}
	return l, nil
}

// hasNetemTag reports whether the file's //go:build line names the netem tag.
func hasNetemTag(file string) bool {
	f, err := os.Open(file)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if rest, ok := strings.CutPrefix(l, "//go:build "); ok {
			return strings.Contains(" "+strings.NewReplacer("!", " ", "(", " ", ")", " ", "&&", " ", "||", " ").Replace(rest)+" ", " netem ")
		}
		if l != "" && !strings.HasPrefix(l, "//") {
			return false // past the header: the constraint must come before the package clause
		}
	}
	return false
}

func errOutput(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
	}
	return err
}

// eachLine calls fn with each line of r (without its CR) as it comes.
func eachLine(r io.Reader, fn func(string)) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		fn(strings.TrimRight(sc.Text(), "\r"))
	}
}

func runNative(ctx context.Context, c config, pkgs pkgList) (int, string) {
	args := []string{"test", "-tags", "netem", "-count=1", "-v", "-p", "1", "-timeout", testTimeout(c.timeout).String()}
	if c.run != "" {
		args = append(args, "-run", c.run)
	}
	cmd := exec.CommandContext(ctx, c.goBin, append(args, pkgs.paths()...)...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 2, err.Error()
	}
	if err := cmd.Start(); err != nil {
		return 2, err.Error()
	}
	var t tally
	eachLine(out, func(l string) { fmt.Println(l); t.line(l) })
	rc := 0
	if err := cmd.Wait(); err != nil {
		rc = 1
	}
	return t.verdict(rc, nil)
}

// testTimeout leaves the test binaries time to report a hang (go test's
// panic with every goroutine's stack) before the harness kills everything.
func testTimeout(d time.Duration) time.Duration { return max(d*9/10, d-30*time.Second) }
