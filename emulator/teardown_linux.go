package emulator

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nslab/nslab/internal/netns"
	"github.com/nslab/nslab/internal/rtnl"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Down tears the lab down: it stops every process inside the lab's
// namespaces and removes exactly the objects its record lists. Calling it
// again does nothing. It holds the lab's lock while it works (see
// lockLab).
//
// A lab whose record on disk is no longer the one this Lab was built or
// opened with (it was cleaned and built again by another process since)
// is not this Lab's to remove: a Lab this process built removes only what
// it made itself, from memory, and a Lab from Open says it was replaced.
func (l *Lab) Down() error {
	lock, err := lockLab(l.opts.StateDir, l.Plan.Lab, lockWait)
	if err != nil {
		return err
	}
	defer leaveStateDir(l.opts.StateDir)
	defer lock.release()
	disk := true
	if l.Record != nil {
		if r, err := ReadRecord(l.opts.StateDir, l.Plan.Lab); err == nil && !sameLab(r, l.Record) {
			if l.journal == nil {
				return fmt.Errorf("lab %q was built again (by process %d at %s) since this process opened it: not removed", l.Plan.Lab, r.PID, r.Created.Format(time.RFC3339))
			}
			disk = false
		}
	}
	return l.teardown(phases, disk)
}

// sameLab reports whether two records are of one build of a lab.
func sameLab(a, b *Record) bool {
	return a.PID == b.PID && a.PIDStart == b.PIDStart && a.Created.Equal(b.Created)
}

// teardown closes what this process holds of the lab and undoes the
// given phases (all of them for Down, those started for a failed Up);
// disk says the lab's directory is this lab's (see Down).
func (l *Lab) teardown(done []phase, disk bool) error {
	l.mu.Lock()
	if l.done {
		l.mu.Unlock()
		return nil
	}
	l.done = true
	nodes := l.nodes
	l.nodes = map[string]*nodeHandle{}
	procs := l.procs
	l.mu.Unlock()
	l.icmp.close()
	l.journal.close()
	l.loss.Close()
	// Our own sockets and descriptors keep namespaces alive: close them.
	for _, h := range nodes {
		h.close()
	}
	err := undo(l.opts, l.Plan.Lab, done, l.journal.entries(), disk)
	for _, c := range procs {
		c.Wait() // reap what we started; removeLab killed it
	}
	return err
}

// removeLab removes everything the journal of lab lists, kills every
// process inside the lab's namespaces and deletes the lab's state
// directory: it undoes every phase. It is idempotent, and works on a
// half-built lab whose builder was killed.
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
func removeLab(o Options, lab string) error { return undo(o, lab, phases, nil, true) }

// undo removes what the given phases made of lab, the last phase first,
// from the lab's journal and mem (what the builder, if it is this
// process, journaled: it knows it even if the file was lost), then the
// lab's state directory. Each phase's undo is given the journal entries
// of its kinds, in the journal's order. The record says first that the
// lab is being torn down, so that a teardown killed midway is seen as
// such; if a phase's undo fails, the directory stays with that record,
// so that `nslab status` shows the lab half torn down and `nslab clean`
// can try again. With disk false, the lab's directory is not this
// lab's: only mem is undone, and the directory is left alone.
func undo(o Options, lab string, done []phase, mem []journalEntry, disk bool) error {
	u, ents, diskErr := newUndoer(o, lab, mem, disk)
	if u == nil {
		return diskErr
	}
	if diskErr != nil {
		disk = false // not trusted: undo what this process made, touch nothing else
	}
	// Progress: one step per namespace, the bulk of a big lab's teardown.
	u.progress = &progress{fn: o.Progress, total: len(u.paths)}
	if r := u.record; disk && r != nil && r.State != StateTearingDown {
		r.State, r.TearPID, r.TearStart = StateTearingDown, os.Getpid(), selfStart()
		writeRecord(u.dir, r)
	}
	errs := []error{diskErr}
	for i := len(done) - 1; i >= 0; i-- {
		ph := done[i]
		if ph.undo == nil {
			continue
		}
		var own []journalEntry
		for _, e := range ents {
			if slices.Contains(ph.kinds, e.kind) {
				own = append(own, e)
			}
		}
		t0 := time.Now()
		if err := ph.undo(u, own); err != nil {
			errs = append(errs, err)
		}
		o.Logger.Debug("undone", "lab", lab, "phase", ph.name, "took", time.Since(t0))
	}
	failed := errors.Join(errs...)
	if disk && failed == nil {
		if err := os.RemoveAll(u.dir); err != nil {
			return err
		}
	}
	return failed
}

// undoer is what the phases' undo functions know of the lab being
// removed, read from its journal and record alone, so that it serves a
// lab whose builder died as well as one this process built.
type undoer struct {
	lab, dir  string
	netnsDir  string // where the lab's namespaces are pinned
	hostNetns string // the host attachment's namespace ("" for nslab's own)
	// claimed are the namespace names recorded as ours, and pinfiles the
	// unnamed files ("DEV:INO") their mount points were linked from.
	claimed, pinfiles map[string]bool
	// paths are the lab's pinned namespaces, and inodes theirs, by which
	// the processes inside them are found.
	paths  []string
	inodes map[uint64]bool
	// ids are the namespaces' recorded identities, by name.
	ids map[string]string
	// record is the lab's record as read from disk (nil if none).
	record *Record
	// progress reports the teardown (Options.Progress).
	progress *progress
}

// The returned error says why the lab's directory was not read: with no
// entries in mem, the undoer is nil and nothing can be done; with some,
// the undoer holds those alone (a rollback always removes what its
// builder made).
func newUndoer(o Options, lab string, mem []journalEntry, disk bool) (*undoer, []journalEntry, error) {
	u := &undoer{lab: lab, dir: labDir(o.StateDir, lab), netnsDir: o.NetnsDir, hostNetns: o.HostNetns,
		claimed: map[string]bool{}, pinfiles: map[string]bool{}, inodes: map[uint64]bool{}, ids: map[string]string{}, progress: &progress{}}
	var ents []journalEntry
	var diskErr error
	if disk {
		ents, diskErr = u.readDisk(o, lab)
		if diskErr != nil {
			if len(mem) == 0 {
				return nil, nil, diskErr
			}
			ents, u.netnsDir, u.hostNetns = nil, o.NetnsDir, o.HostNetns
		}
	}
	ents = mergeEntries(ents, mem)
	ids := u.ids // namespace name -> identity recorded
	for _, e := range ents {
		switch e.kind {
		case jPinFile:
			u.pinfiles[e.arg] = true
		case jNetns:
			name, id, _ := strings.Cut(e.arg, " ")
			if safeName(name) { // never follow a journal line outside NetnsDir
				u.claimed[name] = true
				ids[name] = id
			}
		}
	}
	for _, e := range ents {
		if e.kind != jNetns {
			continue
		}
		name, _, _ := strings.Cut(e.arg, " ")
		if !u.claimed[name] {
			continue
		}
		p := filepath.Join(u.netnsDir, name)
		if !netns.IsNamespaceFile(p) {
			// Not mounted yet: the file is ours only if it is one nslab made.
			if netns.IsPinFile(p, u.pinfiles) || ids[name] == "" {
				u.paths = append(u.paths, p)
			}
			continue
		}
		if id, err := netns.ID(p); err != nil || (ids[name] != "" && id != ids[name]) {
			// Pinned by someone else since ours went: not ours to remove,
			// nor are the processes inside.
			o.Logger.Debug("left alone: the namespace under this name is not the one nslab made", "lab", lab, "netns", name)
			delete(u.claimed, name)
			continue
		}
		u.paths = append(u.paths, p)
		if ino, err := netns.Inode(p); err == nil {
			u.inodes[ino] = true
		}
	}
	return u, ents, diskErr
}

// readDisk reads the lab's journal and record (where its namespaces are
// pinned). A missing directory or record is no error: what the journal or
// the caller's memory lists is all there is. A record that cannot be
// parsed leaves the namespace directory at the caller's; one that names
// paths nslab does not trust is an error.
func (u *undoer) readDisk(o Options, lab string) ([]journalEntry, error) {
	if _, err := trustedLabDir(o.StateDir, lab); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	ents, err := readJournal(u.dir)
	if err != nil {
		return nil, fmt.Errorf("read journal of lab %q: %w", lab, err)
	}
	r, err := ReadRecord(o.StateDir, lab)
	var unsafe *UnsafeError
	switch {
	case err == nil:
		u.record = r
		if r.NetnsDir != "" {
			u.netnsDir = r.NetnsDir
		}
		if r.HostNetns != "" {
			u.hostNetns = r.HostNetns
		}
	case errors.As(err, &unsafe):
		return nil, err
	default:
		o.Logger.Warn("lab record unreadable: its journal is undone with the namespace directory given", "lab", lab, "err", err)
	}
	return ents, nil
}

// mergeEntries returns disk's entries followed by those of mem that disk
// does not have, in order.
func mergeEntries(disk, mem []journalEntry) []journalEntry {
	if len(mem) == 0 {
		return disk
	}
	seen := make(map[journalEntry]bool, len(disk))
	for _, e := range disk {
		seen[e] = true
	}
	for _, e := range mem {
		if !seen[e] {
			seen[e] = true
			disk = append(disk, e)
		}
	}
	return disk
}

// safeName reports whether a journal line's name stays inside its
// directory.
func safeName(name string) bool {
	return !strings.Contains(name, "/") && name != ".." && name != "."
}

// undoNamespaces releases the lab's namespaces (everything in them goes
// with them), and removes the names a builder killed mid-pin had linked
// but not recorded, if they are links to its own file.
func undoNamespaces(u *undoer, entries []journalEntry) error {
	for _, e := range entries {
		if e.kind == jTry && !u.claimed[e.arg] && safeName(e.arg) {
			if p := filepath.Join(u.netnsDir, e.arg); netns.IsPinFile(p, u.pinfiles) {
				os.Remove(p)
			}
		}
	}
	u.progress.setPhase("namespaces")
	// Several at once: each unmount waits for an RCU grace period
	// (namespace_unlock), and waits that overlap share one. Every one is
	// tried, whatever fails.
	var (
		mu   sync.Mutex
		errs []error
	)
	parallel(context.Background(), len(u.paths), unpinWorkers, func(k int) error {
		if err := unpinChecked(u, u.paths[k]); err != nil {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
		u.progress.step()
		return nil
	})
	return errors.Join(errs...)
}

// unpinWorkers is how many namespaces undoNamespaces releases at once.
const unpinWorkers = 16

// unpinChecked releases the namespace pinned at p, if it is still the
// lab's: checked again at the last moment, since the name may have been
// replaced while processes were stopped and the host link went.
func unpinChecked(u *undoer, p string) error {
	if want := u.ids[filepath.Base(p)]; want != "" && netns.IsNamespaceFile(p) {
		if id, err := netns.ID(p); err != nil || id != want {
			return nil
		}
	}
	if err := netns.Unpin(p); err != nil {
		return fmt.Errorf("remove namespace %s: %w", filepath.Base(p), err)
	}
	return nil
}

// undoHostLinks deletes the host attachment's pair (deleteHostLink).
func undoHostLinks(u *undoer, entries []journalEntry) error {
	var errs []error
	for _, e := range entries {
		if err := deleteHostLink(u.netnsDir, u.hostNetns, e.arg, u.claimed); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// undoHostsFiles releases the lab's mount namespace. Its place is fixed,
// StateDir/LAB/mnt: the journal line is not followed.
func undoHostsFiles(u *undoer, entries []journalEntry) error {
	return netns.Unpin(filepath.Join(u.dir, "mnt"))
}

// undoProcesses stops every process inside the lab's namespaces: the
// services the journal lists, and whatever was started in a node since
// (nslab exec). Processes are found by the namespace they are in, never
// by name or by a recorded PID, which may be someone else's by now.
func undoProcesses(u *undoer, entries []journalEntry) error {
	u.progress.setPhase("processes")
	killInNamespaces(u.inodes)
	return nil
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
	labNS, err := netns.Open(p)
	if err != nil {
		return fmt.Errorf("delete host attachment %q: open namespace %s: %w", name, ns, err)
	}
	h, err := rtnl.NewHandle(labNS)
	labNS.Close() // the socket keeps the namespace
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
	hostNS, err := openHostNetns(hostNetns)
	if err != nil {
		// The host namespace is gone, or cannot be watched: the call's
		// return is then the end of the deletion.
		if err := <-done; err != nil {
			return wrap(err)
		}
		return nil
	}
	defer hostNS.Close()
	hostHandle, err := rtnl.NewHandle(hostNS)
	if err != nil {
		if err := <-done; err != nil {
			return wrap(err)
		}
		return nil
	}
	defer hostHandle.Close()
	gone := func() bool {
		l, err := hostHandle.LinkByIndex(peer)
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
