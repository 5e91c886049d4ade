package emulator

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nslab/nslab/internal/netns"
	"github.com/nslab/nslab/internal/rtnl"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// removeLab removes everything the journal of lab lists, kills every
// process inside the lab's namespaces and deletes the lab's state
// directory. It is idempotent, and works on a half-built lab whose builder
// was killed.
//
// The namespaces are released all at once and the kernel dismantles them
// in one batch: all their interfaces in one unregistration, which removes
// a lab's interfaces sooner than deleting a big switch's ports first in a
// message of their own (single,1000: gone after 1.14-1.27 s against
// 1.16-1.52 s). Down returns once every name is released; the kernel
// finishes in the background (a benchmark waits for it). The one name
// outside the lab's namespaces, the host attachment's end in the host
// namespace, is deleted first and waited for (deleteHostLink), so that it
// can be taken again as soon as Down returns.
func removeLab(o Options, lab string) error {
	dir := labDir(o.StateDir, lab)
	ents, err := readJournal(dir)
	if err != nil {
		return fmt.Errorf("read journal of lab %q: %w", lab, err)
	}
	netnsDir, hostNetns := o.NetnsDir, o.HostNetns
	if r, err := ReadRecord(o.StateDir, lab); err == nil {
		if r.NetnsDir != "" {
			netnsDir = r.NetnsDir
		}
		if r.HostNetns != "" {
			hostNetns = r.HostNetns
		}
	}
	var paths []string
	inodes := map[uint64]bool{}
	pinfiles, claimed := map[string]bool{}, map[string]bool{}
	for _, e := range ents {
		switch e.kind {
		case jPinFile:
			pinfiles[e.arg] = true
		case jNetns:
			claimed[e.arg] = true
		}
	}
	for _, e := range ents {
		if strings.Contains(e.arg, "/") || e.arg == ".." || e.arg == "." {
			continue // never follow a journal line outside NetnsDir
		}
		if e.kind == jTry && !claimed[e.arg] {
			// Killed between linking the name and recording it: remove the
			// name only if it is a link to our own file.
			if p := filepath.Join(netnsDir, e.arg); netns.IsPinFile(p, pinfiles) {
				os.Remove(p)
			}
			continue
		}
		if e.kind != jNetns {
			continue
		}
		p := filepath.Join(netnsDir, e.arg)
		paths = append(paths, p)
		if !netns.IsNamespaceFile(p) {
			continue
		}
		if ino, err := netns.Inode(p); err == nil {
			inodes[ino] = true
		}
	}
	var errs []error
	t0 := time.Now()
	killInNamespaces(inodes)
	if err := netns.Unpin(filepath.Join(dir, "mnt")); err != nil {
		errs = append(errs, err)
	}
	for _, e := range ents {
		if e.kind == jHostLink {
			if err := deleteHostLink(netnsDir, hostNetns, e.arg, claimed); err != nil {
				errs = append(errs, err)
			}
		}
	}
	t1 := time.Now()
	for _, p := range paths {
		if err := netns.Unpin(p); err != nil {
			errs = append(errs, fmt.Errorf("remove namespace %s: %w", filepath.Base(p), err))
		}
	}
	o.Logger.Debug("teardown", "lab", lab, "processes", t1.Sub(t0), "namespaces", time.Since(t1))
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// deleteHostLink deletes the host attachment's veth pair from the lab's
// side, whose end is in a namespace of the lab (so nothing in the host
// namespace that might not be ours is ever touched): deleting one end of a
// veth deletes its peer too. Releasing the namespace alone frees the
// host's name only once the kernel's cleanup work has run, tens of
// milliseconds after Down returned: an Up at once then found the name
// taken.
//
// It returns once the host's end is gone from the host namespace
// (hostNetns, "" for the one nslab runs in): the kernel unlists it within
// 1-3 ms, but the deleting call itself returns only after an RCU barrier,
// 17-30 ms here, so that call finishes in the background. arg is the
// journal's "HOSTNAME NAMESPACE INDEX"; a journal line of another form, a
// namespace the lab did not claim, or a pair already gone leaves nothing
// to do.
func deleteHostLink(netnsDir, hostNetns, arg string, claimed map[string]bool) error {
	f := strings.Fields(arg)
	if len(f) != 3 {
		return nil
	}
	name, ns := f[0], f[1]
	idx, err := strconv.Atoi(f[2])
	if err != nil || idx <= 0 || !claimed[ns] || strings.Contains(ns, "/") || ns == "." || ns == ".." {
		return nil
	}
	p := filepath.Join(netnsDir, ns)
	if !netns.IsNamespaceFile(p) {
		return nil
	}
	nsh, err := netns.Open(p)
	if err != nil {
		return fmt.Errorf("delete host attachment %q: open namespace %s: %w", name, ns, err)
	}
	h, err := rtnl.NewHandle(nsh)
	nsh.Close() // the socket keeps the namespace
	if err != nil {
		return fmt.Errorf("delete host attachment %q: %w", name, err)
	}
	link, err := h.LinkByIndex(idx)
	if err != nil || link.Type() != "veth" {
		h.Close()
		var nf netlink.LinkNotFoundError
		if err == nil || errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
			return nil // never made, or gone already
		}
		return fmt.Errorf("delete host attachment %q: find its lab end in %s: %w", name, ns, err)
	}
	// The veth's link is its peer: the host's end, by index in the host
	// namespace.
	peer := link.Attrs().ParentIndex
	done := make(chan error, 1)
	go func() {
		defer h.Close()
		err := h.LinkDel(link)
		if errors.Is(err, unix.ENODEV) {
			err = nil
		}
		done <- err
	}()
	wrap := func(err error) error {
		return fmt.Errorf("delete host attachment %q (lab end %q in %s): %w", name, link.Attrs().Name, ns, err)
	}
	hns, err := openHostNetns(hostNetns)
	if err != nil {
		// The host namespace is gone, or cannot be watched: the call's
		// return is then the end of the deletion.
		if err := <-done; err != nil {
			return wrap(err)
		}
		return nil
	}
	defer hns.Close()
	hh, err := rtnl.NewHandle(hns)
	if err != nil {
		if err := <-done; err != nil {
			return wrap(err)
		}
		return nil
	}
	defer hh.Close()
	gone := func() bool {
		l, err := hh.LinkByIndex(peer)
		var nf netlink.LinkNotFoundError
		if err != nil {
			return errors.As(err, &nf) || errors.Is(err, unix.ENODEV)
		}
		return l.Attrs().Name != name // the index is someone else's now
	}
	deadline := time.Now().Add(hostNameWait)
	for {
		select {
		case err := <-done:
			if err != nil {
				return wrap(err)
			}
			if !gone() {
				return wrap(fmt.Errorf("its end %q is still in the host namespace after the deletion", name))
			}
			return nil
		default:
		}
		if gone() {
			return nil // the deleting call finishes on its own
		}
		if time.Now().After(deadline) {
			return wrap(fmt.Errorf("its end %q is still in the host namespace after %v", name, hostNameWait))
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// killInNamespaces stops every process whose network namespace is one of
// inodes: SIGTERM, a short grace period, then SIGKILL. Processes are found
// by the namespace they are in, never by name.
func killInNamespaces(inodes map[uint64]bool) {
	if len(inodes) == 0 {
		return
	}
	find := func() []int {
		var pids []int
		ents, _ := os.ReadDir("/proc")
		self := os.Getpid()
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == self {
				continue
			}
			var st unix.Stat_t
			if unix.Stat("/proc/"+e.Name()+"/ns/net", &st) != nil {
				continue
			}
			if inodes[st.Ino] {
				pids = append(pids, pid)
			}
		}
		return pids
	}
	pids := find()
	if len(pids) == 0 {
		return
	}
	for _, pid := range pids {
		unix.Kill(pid, unix.SIGTERM)
	}
	deadline := time.Now().Add(500 * time.Millisecond)
	for time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		if pids = find(); len(pids) == 0 {
			return
		}
	}
	for _, pid := range pids {
		unix.Kill(pid, unix.SIGKILL)
	}
	for i := 0; i < 100 && len(find()) > 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
}
