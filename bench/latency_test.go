package bench

import (
	"math/bits"
	"time"
)

// latencies is a histogram of durations in nanoseconds, exact below 128 ns
// and within 1/64 of the value above (64 buckets per power of two), so
// that the synchronous benchmarks can time every call without allocating
// while they are measured: a 30 KiB array, made before the loop.
type latencies struct {
	n      uint64
	counts [128 + 57*64]uint64
}

// latencyBucket is the bucket of v: v itself below 128, else the power of
// two above 64 by which v is shifted and v's top 7 bits.
func latencyBucket(v uint64) int {
	if v < 128 {
		return int(v)
	}
	shift := bits.Len64(v) - 7 // v>>shift is in [64, 128)
	return 128 + (shift-1)*64 + int(v>>shift) - 64
}

// latencyValue is the middle of bucket i's range.
func latencyValue(i int) float64 {
	if i < 128 {
		return float64(i)
	}
	shift := (i-128)/64 + 1
	low := uint64((i-128)%64+64) << shift
	return float64(low) + float64(uint64(1)<<shift-1)/2
}

func (l *latencies) record(d time.Duration) {
	l.counts[latencyBucket(uint64(max(d, 0)))]++
	l.n++
}

// quantile is the value below which a fraction q of the recorded values
// lie (the q-quantile, nearest rank), 0 when none were recorded.
func (l *latencies) quantile(q float64) float64 {
	if l.n == 0 {
		return 0
	}
	rank := uint64(q*float64(l.n) + 0.5)
	rank = min(max(rank, 1), l.n)
	var seen uint64
	for i, c := range l.counts {
		seen += c
		if seen >= rank {
			return latencyValue(i)
		}
	}
	return latencyValue(len(l.counts) - 1)
}
