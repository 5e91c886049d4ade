package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

//go:embed init.sh
var initScript []byte

// guestKernel is a distribution kernel installed on the host but not booted
// (Debian's linux-image-amd64): /boot/vmlinuz-VER and /lib/modules/VER.
type guestKernel struct {
	Version string
	BzImage string
	Modules string // /lib/modules/VER
}

// findGuestKernel returns the newest installed kernel that ships sch_netem,
// or the one named by version.
func findGuestKernel(version string) (guestKernel, error) {
	vers := []string{version}
	if version == "" {
		dirs, _ := filepath.Glob("/lib/modules/*")
		sort.Slice(dirs, func(i, j int) bool { return versionLess(dirs[j], dirs[i]) }) // newest first
		vers = vers[:0]
		for _, d := range dirs {
			vers = append(vers, filepath.Base(d))
		}
	}
	for _, v := range vers {
		k := guestKernel{Version: v, BzImage: "/boot/vmlinuz-" + v, Modules: "/lib/modules/" + v}
		netem, _ := filepath.Glob(k.Modules + "/kernel/net/sched/sch_netem.ko*")
		if _, err := os.Stat(k.BzImage); err == nil && len(netem) > 0 {
			return k, nil
		}
	}
	if version != "" {
		return guestKernel{}, fmt.Errorf("kernel %s: no /boot/vmlinuz-%[1]s with /lib/modules/%[1]s/kernel/net/sched/sch_netem.ko*", version)
	}
	return guestKernel{}, errors.New("no installed kernel ships sch_netem: install Debian's stock kernel (apt-get install --no-install-recommends linux-image-amd64; it is not booted, only read)")
}

// versionLess compares kernel versions number by number (6.1.0-9 < 6.1.0-57).
func versionLess(a, b string) bool {
	split := func(s string) []string { return regexp.MustCompile(`\d+|\D+`).FindAllString(s, -1) }
	x, y := split(a), split(b)
	for i := 0; i < len(x) && i < len(y); i++ {
		if x[i] == y[i] {
			continue
		}
		m, errm := strconv.Atoi(x[i])
		n, errn := strconv.Atoi(y[i])
		if errm == nil && errn == nil {
			return m < n
		}
		return x[i] < y[i]
	}
	return len(x) < len(y)
}

// stamp identifies the inputs of a cached file: the kernel image, the
// busybox binary, /init and the module list. A reinstalled kernel of the
// same version, a new busybox or an edited init.sh rebuilds.
func stamp(files []string, extra ...string) string {
	h := sha256.New()
	for _, f := range files {
		st, err := os.Stat(f)
		if err == nil {
			fmt.Fprintf(h, "%s %d %d\n", f, st.Size(), st.ModTime().UnixNano())
		}
	}
	for _, e := range extra {
		fmt.Fprintf(h, "%s\n", e)
	}
	return fmt.Sprintf("%x", h.Sum(nil))[:12]
}

// writeCached returns dir/name, building it with build (into a temporary
// name, renamed when complete) unless it exists; other files of the same
// kind (prefix) in dir are stale and removed.
func writeCached(dir, name, prefix string, build func(w io.Writer) error) (string, error) {
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, ".tmp-"+name+"-")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name()) // gone after the rename; removed on failure
	if err := build(f); err != nil {
		f.Close()
		return "", fmt.Errorf("build %s: %w", p, err)
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	old, _ := filepath.Glob(filepath.Join(dir, prefix+"*"))
	for _, o := range old {
		if o != p { // a parallel run may have just put p in place, and may be using it
			os.Remove(o)
		}
	}
	return p, os.Rename(f.Name(), p)
}

// vmlinux extracts the uncompressed kernel from the bzImage, so that qemu
// boots it through its PVH entry: about 3 s faster under TCG than the
// bzImage (SeaBIOS, real mode and the decompressor all run emulated). The
// payload's place is in the boot header (Documentation/arch/x86/boot.rst:
// setup_sects at 0x1f1, payload_offset at 0x248, payload_length at 0x24c).
func vmlinux(k guestKernel, cache string) (string, error) {
	return writeCached(filepath.Join(cache, k.Version), "vmlinux-"+stamp([]string{k.BzImage}), "vmlinux-",
		func(w io.Writer) error {
			img, err := os.ReadFile(k.BzImage)
			if err != nil {
				return err
			}
			if len(img) < 0x250 || string(img[0x202:0x206]) != "HdrS" {
				return fmt.Errorf("%s: not a bzImage", k.BzImage)
			}
			setup := int(img[0x1f1])
			if setup == 0 {
				setup = 4
			}
			start := (setup+1)*512 + int(binary.LittleEndian.Uint32(img[0x248:]))
			end := start + int(binary.LittleEndian.Uint32(img[0x24c:]))
			if end > len(img) || start >= end {
				return fmt.Errorf("%s: payload outside the file", k.BzImage)
			}
			var out bytes.Buffer
			if err := decompress(img[start:end], &out); err != nil {
				return fmt.Errorf("%s: %w", k.BzImage, err)
			}
			if err := checkPVH(out.Bytes()); err != nil {
				return fmt.Errorf("%s: %w", k.BzImage, err)
			}
			_, err = w.Write(out.Bytes())
			return err
		})
}

// decompress writes data, recognised by its magic, to w: gzip in Go, xz and
// zstd through their programs (xz-utils, zstd). Only the first stream is
// read: the kernel's payload ends with 4 more bytes, its size.
func decompress(data []byte, w io.Writer) error {
	var cmd *exec.Cmd
	switch {
	case bytes.HasPrefix(data, []byte{0x1f, 0x8b}):
		r, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return err
		}
		r.Multistream(false)
		_, err = io.Copy(w, r)
		return err
	case bytes.HasPrefix(data, []byte("\xfd7zXZ\x00")):
		cmd = exec.Command("xz", "-dcq", "--single-stream")
	case bytes.HasPrefix(data, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		cmd = exec.Command("zstd", "-dcq")
	case bytes.HasPrefix(data, []byte("\x7fELF")):
		_, err := w.Write(data)
		return err
	default:
		return fmt.Errorf("unknown compression (magic % x)", data[:min(6, len(data))])
	}
	var stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(data), w, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", cmd.Args[0], err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// checkPVH makes sure img is an ELF kernel with a PVH entry point (a Xen
// ELF note of type XEN_ELFNOTE_PHYS32_ENTRY, 18), which qemu needs to boot
// it with -kernel.
func checkPVH(img []byte) error {
	f, err := elf.NewFile(bytes.NewReader(img))
	if err != nil {
		return fmt.Errorf("decompressed kernel: %w", err)
	}
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		b, err := io.ReadAll(p.Open())
		if err != nil {
			return err
		}
		for len(b) >= 12 {
			nsz, dsz, typ := binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:]), binary.LittleEndian.Uint32(b[8:])
			name := b[12:min(len(b), 12+int(nsz))]
			if string(bytes.TrimRight(name, "\x00")) == "Xen" && typ == 18 {
				return nil
			}
			next := 12 + int((nsz+3)&^3) + int((dsz+3)&^3)
			if next > len(b) {
				break
			}
			b = b[next:]
		}
	}
	return errors.New("decompressed kernel has no PVH entry note")
}

// moduleOrder returns the files of the given modules and of everything they
// depend on, dependencies first, from modules.dep (what `modinfo -F
// depends` reads). Modules built into the kernel are left out.
func moduleOrder(k guestKernel, names []string) ([]string, error) {
	deps := map[string][]string{} // module name -> its modules.dep line: file, then dependencies
	f, err := os.Open(filepath.Join(k.Modules, "modules.dep"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		file, rest, ok := strings.Cut(sc.Text(), ":")
		if ok {
			deps[modName(file)] = append([]string{file}, strings.Fields(rest)...)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	builtin, _ := os.ReadFile(filepath.Join(k.Modules, "modules.builtin"))
	var order []string
	seen := map[string]bool{}
	var add func(string) error
	add = func(m string) error {
		m = modName(m)
		if seen[m] {
			return nil
		}
		seen[m] = true
		d, ok := deps[m]
		if !ok {
			for _, l := range strings.Fields(string(builtin)) {
				if modName(l) == m {
					return nil
				}
			}
			return fmt.Errorf("module %s: not in %s/modules.dep nor built in", m, k.Modules)
		}
		for _, dep := range d[1:] { // each one's own dependencies go before it
			if err := add(dep); err != nil {
				return fmt.Errorf("module %s: %w", m, err)
			}
		}
		order = append(order, filepath.Join(k.Modules, d[0]))
		return nil
	}
	for _, n := range names {
		if err := add(n); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// modName turns kernel/net/sched/sch_netem.ko.xz or crc-ccitt into the
// module's name (sch_netem, crc_ccitt).
func modName(p string) string {
	b := filepath.Base(p)
	if i := strings.Index(b, ".ko"); i >= 0 {
		b = b[:i]
	}
	return strings.ReplaceAll(b, "-", "_")
}

// staticBinary checks that path is an ELF executable with no interpreter:
// the guest has no shared libraries.
func staticBinary(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked", path)
		}
	}
	return nil
}

// findBusybox returns a statically linked busybox (Debian's busybox-static).
func findBusybox() (string, error) {
	for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
		if err := staticBinary(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no statically linked busybox: apt-get install busybox-static")
}

// baseArchive returns the cached cpio archive that every run of this kernel
// shares: busybox, /init, /etc/hosts, the modules and their load order.
func baseArchive(k guestKernel, cache string, modules []string) (string, error) {
	busybox, err := findBusybox()
	if err != nil {
		return "", err
	}
	files, err := moduleOrder(k, modules)
	if err != nil {
		return "", err
	}
	key := stamp(append([]string{k.BzImage, busybox}, files...), string(initScript), strings.Join(files, " "))
	return writeCached(filepath.Join(cache, k.Version), "base-"+key+".cpio", "base-", func(w io.Writer) error {
		c := newCPIO(w)
		for _, d := range []string{"bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "etc", "lib", "lib/modules",
			"proc", "sys", "run", "tmp", "root", "netemvm"} {
			if err := c.Dir(d); err != nil {
				return err
			}
		}
		var order strings.Builder
		for _, f := range files {
			var ko bytes.Buffer
			data, err := os.ReadFile(f)
			if err == nil {
				err = decompress(data, &ko) // busybox insmod reads plain .ko only
			}
			if err != nil {
				return fmt.Errorf("module %s: %w", f, err)
			}
			if err := c.Bytes("lib/modules/"+modName(f)+".ko", 0o644, ko.Bytes()); err != nil {
				return err
			}
			order.WriteString(modName(f) + "\n")
		}
		return errors.Join(
			c.CharDev("dev/console", 5, 1),
			c.File("bin/busybox", busybox),
			c.Bytes("init", 0o755, initScript),
			c.Bytes("etc/hosts", 0o644, []byte("127.0.0.1 localhost\n::1 localhost\n")),
			c.Bytes("lib/modules/order", 0o644, []byte(order.String())),
			c.Close())
	})
}
