package git

import (
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/initializer/initializer/handlers"
)

// guardMemory gives the Go runtime a soft memory limit of 3/4 of the
// container's (cgroup) memory limit, unless GOMEMLIMIT sets one: go-git's
// pack decoding allocates in bursts, and a collector that knows the ceiling
// runs before the kernel's OOM killer does.
//
// It also halves GOGC (unless GOGC is set): the heap may then grow to 1.5×
// the live data instead of 2×, which lowers go-git's peak RSS for a little
// more collection work.
func guardMemory(req *handlers.Request) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	limit := cgroupMemoryLimit()
	if limit <= 0 {
		return
	}
	soft := limit / 4 * 3
	debug.SetMemoryLimit(soft)
	req.Log.Debug("go-git: Go memory limit set from the container's", "cgroupLimitBytes", limit, "softLimitBytes", soft)
}

// cgroupMemoryLimit reads the memory limit of this process's cgroup (v2,
// then v1); 0 when there is none.
func cgroupMemoryLimit() int64 {
	for _, p := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := strings.TrimSpace(string(b))
		if s == "max" {
			return 0
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 || n >= 1<<50 {
			return 0
		}
		return n
	}
	return 0
}
