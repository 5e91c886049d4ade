package emulator

import (
	"os"
	"strconv"
	"strings"
)

// MissingCapabilities names the capabilities the process lacks to build
// and enter labs: CAP_NET_ADMIN and CAP_SYS_ADMIN, and CAP_NET_RAW when
// raw is true (for ICMP probes). It is empty when nothing is missing or
// the process's capabilities cannot be read.
func MissingCapabilities(raw bool) []string {
	// Capabilities belong to each thread: read the calling one's, not
	// the main thread's (/proc/self).
	data, err := os.ReadFile("/proc/thread-self/status")
	if err != nil {
		return nil
	}
	for _, line := range strings.Split(string(data), "\n") {
		v, ok := strings.CutPrefix(line, "CapEff:")
		if !ok {
			continue
		}
		caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			return nil
		}
		var missing []string
		for _, c := range []struct {
			bit  uint
			name string
			need bool
		}{{12, "CAP_NET_ADMIN", true}, {21, "CAP_SYS_ADMIN", true}, {13, "CAP_NET_RAW", raw}} {
			if c.need && caps&(1<<c.bit) == 0 {
				missing = append(missing, c.name)
			}
		}
		return missing
	}
	return nil
}
