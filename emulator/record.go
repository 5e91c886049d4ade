package emulator

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/nslab/nslab/topo"
)

// Record is the ownership record of a lab, kept in StateDir/LAB/record.json.
// Together with the journal beside it (one line per kernel object, written
// as the object is created), it lists exactly what nslab made, so that
// teardown and `nslab clean` remove that and nothing else.
type Record struct {
	Version  int    `json:"version"`
	Lab      string `json:"lab"`
	State    string `json:"state"`     // "building", then "up"
	PID      int    `json:"pid"`       // the process that built it
	PIDStart uint64 `json:"pid_start"` // its start time, to tell a reused PID
	// Held says the lab lives only as long as that process (Options.Held).
	Held     bool      `json:"held,omitempty"`
	Created  time.Time `json:"created"`
	NetnsDir string    `json:"netns_dir"`
	// HostNetns is the namespace the host attachment went to ("" for the
	// namespace nslab ran in).
	HostNetns string `json:"host_netns,omitempty"`
	// Topology is the lab as written; resolving it again gives the plan.
	Topology *topo.Topology `json:"topology"`
}

// Record states.
const (
	StateBuilding = "building"
	StateUp       = "up"
)

// Condition says what state the lab is really in, given whether the
// process that built it still runs (BuilderAlive): a lab being built by a
// process that died is half-built, and a held lab whose process died is
// orphaned. Both need `nslab clean`. note is "" for a lab in good health.
func (r *Record) Condition(builderAlive bool) (state, note string) {
	switch {
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
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "record.json"))
}

// ReadRecord reads the record of lab from stateDir.
func ReadRecord(stateDir, lab string) (*Record, error) {
	data, err := os.ReadFile(filepath.Join(labDir(stateDir, lab), "record.json"))
	if err != nil {
		return nil, err
	}
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("record of lab %q: %w", lab, err)
	}
	return &r, nil
}

// journal appends entries to StateDir/LAB/journal with one write each, so
// that an entry survives a kill -9 of the writer right after it.
type journal struct{ f *os.File }

func openJournal(dir string) (*journal, error) {
	f, err := os.OpenFile(filepath.Join(dir, "journal"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	return &journal{f: f}, nil
}

func (j *journal) add(kind, arg string) error {
	if j == nil {
		return nil
	}
	_, err := j.f.WriteString(kind + " " + arg + "\n")
	return err
}

func (j *journal) close() {
	if j != nil {
		j.f.Close()
	}
}

func readJournal(dir string) ([]journalEntry, error) {
	f, err := os.Open(filepath.Join(dir, "journal"))
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
	ents, err := os.ReadDir(stateDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
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
