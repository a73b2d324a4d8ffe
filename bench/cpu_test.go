package bench

import (
	"syscall"
	"time"
)

// cpuClock measures the CPU time (user and system, every thread) this
// process spends: with the broker in the child process, that is the
// clients' cost alone, whatever the broker's speed.
type cpuClock struct{ start time.Duration }

func startCPU() cpuClock { return cpuClock{processCPU()} }

func (c cpuClock) since() time.Duration { return processCPU() - c.start }

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
