//go:build !race

package chaos_test

import "time"

// defaultDuration is how long faults are injected per broker in a plain
// `go test ./...`: about a minute for the whole suite.
const defaultDuration = 20 * time.Second
