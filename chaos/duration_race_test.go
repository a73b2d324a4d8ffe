//go:build race

package chaos_test

import "time"

// defaultDuration is shorter under the race detector, which makes the run
// several times as costly; CI runs the suite both ways.
const defaultDuration = 8 * time.Second
