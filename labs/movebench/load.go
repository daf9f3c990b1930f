package movebench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/roamd/roamd/labs/nslab"
)

// machineLoad returns the share of CPU time (all CPUs) the machine spent
// busy over d, from /proc/stat; -1 if it cannot tell.
func machineLoad(ctx context.Context, d time.Duration) float64 {
	busy0, total0, err := cpuTimes()
	if err != nil {
		return -1
	}
	if nslab.Sleep(ctx, d) != nil {
		return -1
	}
	busy1, total1, err := cpuTimes()
	if err != nil || total1 <= total0 {
		return -1
	}
	return float64(busy1-busy0) / float64(total1-total0)
}

// cpuTimes reads the aggregate "cpu" line of /proc/stat: busy and total
// jiffies (idle and iowait are not busy).
func cpuTimes() (busy, total uint64, err error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	for i, s := range f[1:] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %w", err)
		}
		total += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy, total, nil
}
