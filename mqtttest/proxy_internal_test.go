package mqtttest

import (
	"errors"
	"slices"
	"testing"
)

// recorder records the size of every write.
type recorder struct {
	sizes []int
	limit int // fail the write after this many bytes in total; 0: never
	total int
}

var errFull = errors.New("full")

func (r *recorder) Write(p []byte) (int, error) {
	if r.limit > 0 && r.total+len(p) > r.limit {
		n := r.limit - r.total
		r.total, r.sizes = r.limit, append(r.sizes, n)
		return n, errFull
	}
	r.total += len(p)
	r.sizes = append(r.sizes, len(p))
	return len(p), nil
}

func TestWriteSplit(t *testing.T) {
	tests := []struct {
		name  string
		size  int
		n     int
		limit int
		want  []int
		err   error
	}{
		{"off", 10, 0, 0, []int{10}, nil},
		{"pieces", 10, 3, 0, []int{3, 3, 3, 1}, nil},
		{"one byte", 3, 1, 0, []int{1, 1, 1}, nil},
		{"larger than data", 3, 8, 0, []int{3}, nil},
		{"write fails", 10, 4, 6, []int{4, 2}, errFull},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r recorder
			r.limit = tt.limit
			wrote := 0
			err := writeSplit(&r, make([]byte, tt.size), tt.n, func(k int) { wrote += k })
			if !errors.Is(err, tt.err) {
				t.Fatalf("error %v, want %v", err, tt.err)
			}
			if !slices.Equal(r.sizes, tt.want) {
				t.Errorf("writes %v, want %v", r.sizes, tt.want)
			}
			if wrote != r.total {
				t.Errorf("reported %d bytes written, wrote %d", wrote, r.total)
			}
		})
	}
}
