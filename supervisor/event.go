package supervisor

import (
	"strconv"
	"time"

	"github.com/robustmqtt/mqtt/backoff"
)

// EventKind says what an [Event] reports.
type EventKind int

const (
	// Up: a run called [Group.Up]; it is established. Attempt is the retry
	// that started the run (zero for the first run, N = 0).
	Up EventKind = iota + 1
	// Down: a run failed. Err is why; Attempt is the retry the strategy is
	// about to be asked for (the same Attempt as the Retrying or GaveUp that
	// follows). A run that ends because Run's ctx ended is not a failure and
	// has no Down.
	Down
	// Retrying: the supervisor waits Delay, then starts Attempt's run. Err is
	// the failure that caused it (Attempt.Err).
	Retrying
	// GaveUp: the strategy refused Attempt; Run returns a *[GaveUpError].
	// Err is the last run's error. It is the last event of a Run.
	GaveUp
)

// String returns the kind's name, e.g. "Retrying".
func (k EventKind) String() string {
	switch k {
	case Up:
		return "Up"
	case Down:
		return "Down"
	case Retrying:
		return "Retrying"
	case GaveUp:
		return "GaveUp"
	}
	return "EventKind(" + strconv.Itoa(int(k)) + ")"
}

// Event is what [Config.OnEvent] observes. For every failed run the events
// are, in this order: Up (if the run came up and it was not reported yet),
// Down, then either Retrying or GaveUp.
type Event struct {
	Kind    EventKind
	Attempt backoff.Attempt // see the kinds
	Delay   time.Duration   // Retrying: the wait before the next run
	Err     error           // Down, Retrying, GaveUp: the run's error
}
