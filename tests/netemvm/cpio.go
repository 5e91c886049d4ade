package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// cpioWriter writes an uncompressed "newc" cpio archive, the format the
// kernel unpacks as an initramfs. The kernel takes several archives one
// after the other, so the cached base (busybox, modules, /init) and a run's
// test binaries are written separately and concatenated. Nothing is
// compressed: gunzip under software emulation costs more than the copy.
type cpioWriter struct {
	w   *bufio.Writer
	n   int64 // bytes written, for the 4-byte alignment
	ino int
}

func newCPIO(w io.Writer) *cpioWriter { return &cpioWriter{w: bufio.NewWriterSize(w, 1<<20)} }

const (
	modeDir  = 0o040000
	modeFile = 0o100000
	modeChar = 0o020000
)

func (c *cpioWriter) header(name string, mode uint32, size int64, rdevMajor, rdevMinor int) error {
	c.ino++
	nlink := 1
	if mode&0o170000 == modeDir {
		nlink = 2
	}
	h := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		c.ino, mode, 0, 0, nlink, 0, size, 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	if err := c.write([]byte(h + name + "\x00")); err != nil {
		return err
	}
	return c.pad(4)
}

func (c *cpioWriter) write(b []byte) error {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return err
}

func (c *cpioWriter) pad(to int64) error {
	if r := c.n % to; r != 0 {
		return c.write(make([]byte, to-r))
	}
	return nil
}

// Dir adds a directory (the archive needs no parents first, but the kernel
// creates only what is listed, so list each one).
func (c *cpioWriter) Dir(name string) error { return c.header(name, modeDir|0o755, 0, 0, 0) }

// CharDev adds a character device node, such as dev/console.
func (c *cpioWriter) CharDev(name string, major, minor int) error {
	return c.header(name, modeChar|0o600, 0, major, minor)
}

// Bytes adds a regular file with the given content and permissions.
func (c *cpioWriter) Bytes(name string, perm uint32, data []byte) error {
	if err := c.header(name, modeFile|perm, int64(len(data)), 0, 0); err != nil {
		return err
	}
	if err := c.write(data); err != nil {
		return err
	}
	return c.pad(4)
}

// File adds the host file src as name, keeping its permission bits.
func (c *cpioWriter) File(name, src string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", src)
	}
	if err := c.header(name, modeFile|uint32(st.Mode().Perm()), st.Size(), 0, 0); err != nil {
		return err
	}
	n, err := io.Copy(c.w, f)
	c.n += n
	if err != nil {
		return err
	}
	if n != st.Size() {
		return fmt.Errorf("%s: changed while read", src)
	}
	return c.pad(4)
}

// Tree adds the directories and regular files under src as name/...
// (a package's testdata); symbolic links and other kinds are left out.
func (c *cpioWriter) Tree(name, src string) error {
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		dst := strings.TrimSuffix(name+"/"+filepath.ToSlash(rel), "/.")
		switch {
		case d.IsDir():
			return c.Dir(dst)
		case d.Type().IsRegular():
			return c.File(dst, p)
		}
		return nil
	})
}

// Close writes the trailer, pads to 512 bytes as cpio(1) does and flushes.
func (c *cpioWriter) Close() error {
	if err := c.header("TRAILER!!!", 0, 0, 0, 0); err != nil {
		return err
	}
	if err := c.pad(512); err != nil {
		return err
	}
	return c.w.Flush()
}
