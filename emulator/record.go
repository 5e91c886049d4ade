package emulator

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nslab/nslab/topo"
	"golang.org/x/sys/unix"
)

// Record is the ownership record of a lab, kept in StateDir/LAB/record.json.
// Together with the journal beside it (one line per kernel object, written
// as the object is created), it lists exactly what nslab made, so that
// teardown and `nslab clean` remove that and nothing else.
type Record struct {
	Version  int    `json:"version"`
	Lab      string `json:"lab"`
	State    string `json:"state"`     // "building", then "up", then "tearing-down"
	PID      int    `json:"pid"`       // the process that built it
	PIDStart uint64 `json:"pid_start"` // its start time, to tell a reused PID
	// Held says the lab lives only as long as that process (Options.Held).
	Held     bool      `json:"held,omitempty"`
	Created  time.Time `json:"created"`
	NetnsDir string    `json:"netns_dir"`
	// HostNetns is the namespace the host attachment went to ("" for the
	// namespace nslab ran in).
	HostNetns string `json:"host_netns,omitempty"`
	// TearPID and TearStart name the process that is removing the lab
	// (state "tearing-down"): a teardown killed midway leaves them.
	TearPID   int    `json:"tear_pid,omitempty"`
	TearStart uint64 `json:"tear_start,omitempty"`
	// Topology is the lab as written; resolving it again gives the plan.
	Topology *topo.Topology `json:"topology"`
}

// recordVersion is the version of the records this nslab writes. Version
// 2 names namespaces "LAB.NODE"; version 1 named them "LAB-NODE", and a
// lab of that version is only removed (by its journal), never opened.
const recordVersion = 2

// Record states.
const (
	StateBuilding    = "building"
	StateUp          = "up"
	StateTearingDown = "tearing-down"
)

// Condition says what state the lab is really in, given whether the
// process that built it still runs (BuilderAlive): a lab being built by a
// process that died is half-built, a held lab whose process died is
// orphaned, and a lab whose teardown was killed midway is half torn down.
// Those need `nslab clean`. note is "" for a lab in good health.
func (r *Record) Condition(builderAlive bool) (state, note string) {
	switch {
	case r.State == StateTearingDown && alive(r.TearPID, r.TearStart):
		return "tearing down", fmt.Sprintf("process %d is removing it", r.TearPID)
	case r.State == StateTearingDown:
		return "half torn down", fmt.Sprintf("its teardown (pid %d) was interrupted: run nslab clean %s", r.TearPID, r.Lab)
	case r.State == StateBuilding && !builderAlive:
		return "half-built", fmt.Sprintf("its builder (pid %d) died mid-build: run nslab clean %s", r.PID, r.Lab)
	case r.State == StateUp && r.Held && !builderAlive:
		return "orphaned", fmt.Sprintf("the process that held it (pid %d) died without tearing it down: run nslab clean %s", r.PID, r.Lab)
	}
	return r.State, ""
}

// journal entry kinds.
const (
	jNetns    = "netns"    // a network namespace pinned at NetnsDir/NAME
	jTry      = "try"      // about to claim NetnsDir/NAME (may not be ours)
	jPinFile  = "pinfile"  // DEV:INO of the file namespaces are mounted on
	jMountNS  = "mntns"    // the lab's mount namespace pinned at PATH
	jHostLink = "hostlink" // the host's end of the host attachment
	jProc     = "proc"     // a started process
	jNft      = "nft"      // NODE TABLE: an nftables table (goes with the node's namespace)
)

type journalEntry struct{ kind, arg string }

func labDir(stateDir, lab string) string { return filepath.Join(stateDir, lab) }

func writeRecord(dir string, r *Record) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "record.json.tmp")
	os.Remove(tmp) // left by a writer killed before its rename
	f, err := openFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "record.json"))
}

// ReadRecord reads the record of lab from stateDir. The state directory,
// the lab's directory and the record must be trusted (see UnsafeError).
func ReadRecord(stateDir, lab string) (*Record, error) {
	dir, err := trustedLabDir(stateDir, lab)
	if err != nil {
		return nil, err
	}
	f, err := openFile(filepath.Join(dir, "record.json"), os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := parseRecord(f, lab)
	if err != nil {
		return nil, err
	}
	if r.NetnsDir != "" {
		if err := checkRecordDir(r.NetnsDir); err != nil {
			return nil, fmt.Errorf("record of lab %q: netns_dir: %w", lab, err)
		}
	}
	if r.HostNetns != "" && (!filepath.IsAbs(r.HostNetns) || filepath.Clean(r.HostNetns) != r.HostNetns) {
		return nil, fmt.Errorf("record of lab %q: host_netns: %w", lab, &UnsafeError{r.HostNetns, "a record may only name an absolute, clean path"})
	}
	return r, nil
}

// PeekRecord reads the record of lab for display only (shell completion
// lists the labs and nodes of any user's records): unlike ReadRecord it
// checks no owner and trusts nothing, so nothing read this way may be
// acted on.
func PeekRecord(stateDir, lab string) (*Record, error) {
	if !safeName(lab) || lab == "" {
		return nil, fmt.Errorf("bad lab name %q", lab)
	}
	// Non-blocking and a regular file only: a FIFO planted there must not
	// hang a Tab.
	f, err := os.OpenFile(filepath.Join(stateDir, lab, "record.json"), os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return nil, fmt.Errorf("record of lab %q is not a regular file", lab)
	}
	return parseRecord(f, lab)
}

// parseRecord decodes the record of lab from f, at most maxRecord bytes.
func parseRecord(f *os.File, lab string) (*Record, error) {
	data, err := io.ReadAll(io.LimitReader(f, maxRecord+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxRecord {
		return nil, fmt.Errorf("record of lab %q is over %d bytes", lab, maxRecord)
	}
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("record of lab %q: %w", lab, err)
	}
	if r.Lab != "" && r.Lab != lab {
		return nil, fmt.Errorf("record of lab %q names lab %q", lab, r.Lab)
	}
	return &r, nil
}

// maxRecord bounds a record's size: a topology file is at most 64 MiB.
const maxRecord = 256 << 20

// journal appends entries to StateDir/LAB/journal with one write each, so
// that an entry survives a kill -9 of the writer right after it. It also
// keeps every entry in memory: the builder's rollback removes what it
// made even if the file was lost (a state directory removed under it).
type journal struct {
	f   *os.File
	mu  sync.Mutex
	mem []journalEntry
}

func openJournal(dir string) (*journal, error) {
	f, err := openFile(filepath.Join(dir, "journal"), os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	return &journal{f: f}, nil
}

func (j *journal) add(kind, arg string) error {
	if j == nil {
		return nil
	}
	j.mu.Lock()
	j.mem = append(j.mem, journalEntry{kind, arg})
	j.mu.Unlock()
	_, err := j.f.WriteString(kind + " " + arg + "\n")
	return err
}

// entries returns what was added, in order (nil for a nil journal).
func (j *journal) entries() []journalEntry {
	if j == nil {
		return nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.mem)
}

func (j *journal) close() {
	if j != nil {
		j.f.Close()
	}
}

func readJournal(dir string) ([]journalEntry, error) {
	f, err := openFile(filepath.Join(dir, "journal"), os.O_RDONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []journalEntry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, a, ok := strings.Cut(sc.Text(), " ")
		if ok && a != "" {
			out = append(out, journalEntry{k, a})
		}
	}
	return out, sc.Err()
}

// ListLabs returns the names of the labs that have a record in stateDir,
// sorted.
func ListLabs(stateDir string) ([]string, error) {
	if err := checkDir(stateDir); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	ents, err := os.ReadDir(stateDir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(stateDir, e.Name(), "journal")); err == nil {
			out = append(out, e.Name())
		} else if _, err := os.Stat(filepath.Join(stateDir, e.Name(), "record.json")); err == nil {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// NoSuchLabError is returned for a lab name that has no record.
type NoSuchLabError struct {
	Lab  string
	Labs []string // the labs that do exist
}

func (e *NoSuchLabError) Error() string {
	if len(e.Labs) == 0 {
		return fmt.Sprintf("no lab %q: no lab is up (start one with `nslab up FILE`)", e.Lab)
	}
	return fmt.Sprintf("no lab %q; labs up: %s", e.Lab, strings.Join(e.Labs, ", "))
}
