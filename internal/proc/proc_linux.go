package proc

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ErrExited is StartTime's error for a process that has ended, a zombie
// included (a PID 1 that does not reap leaves those behind).
var ErrExited = errors.New("the process has exited")

// StartTime returns the start time of process pid, in clock ticks after
// boot (field 22 of /proc/PID/stat): with the PID, an identity no later
// process shares.
func StartTime(pid int) (uint64, error) {
	if pid <= 0 {
		return 0, fmt.Errorf("no process %d", pid)
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, ErrExited
		}
		return 0, err
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("bad stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, errors.New("bad stat")
	}
	if f[0] == "Z" || f[0] == "X" {
		return 0, ErrExited
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// Alive reports whether process pid runs and started at start.
func Alive(pid int, start uint64) bool {
	st, err := StartTime(pid)
	return err == nil && st == start
}
