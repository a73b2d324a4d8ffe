package battery

import (
	"testing"
	"time"
)

func TestTenths(t *testing.T) {
	tests := map[time.Duration]string{
		0:                                     "0.0s",
		40 * time.Second:                      "40.0s",
		59*time.Second + 960*time.Millisecond: "1m0.0s",
		10*time.Minute + 4*time.Second:        "10m4.0s",
		time.Hour + 2*time.Minute + 3450*time.Millisecond: "1h2m3.5s",
		-1500 * time.Millisecond:                          "-1.5s",
	}
	for d, want := range tests {
		if got := tenths(d); got != want {
			t.Errorf("tenths(%v) = %q, want %q", d, got, want)
		}
	}
}
