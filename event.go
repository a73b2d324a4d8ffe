package mqtt

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/robustmqtt/mqtt/backoff"
)

// EventKind says what happened to the client's connection.
type EventKind int

// The kinds of Event.
const (
	// Connected: a connection is up. SessionPresent says whether the
	// broker kept the session; Server which server; Connack what an
	// MQTT 5 broker announced. Every other event about that connection
	// (SessionLost, ResubscribeFailed, ConnectionLost) comes after it.
	Connected EventKind = iota + 1
	// ConnectionLost: a live connection ended; Err says why.
	ConnectionLost
	// Reconnecting: the next attempt comes after Delay; Err (the same as
	// Attempt.Err) is why the previous one failed, or why the connection
	// was lost.
	Reconnecting
	// SessionLost: the broker did not have the session although
	// CleanStart was false (a broker without persistence, or the session
	// expired). The client re-subscribes and re-sends what it still owes.
	SessionLost
	// GaveUp: the reconnect strategy gave up; the client has stopped. Err
	// says why, as Client.Err does: which server, why the last attempt
	// failed, how many attempts since the connection was lost. It wraps
	// ErrGaveUp and the last attempt's error (errors.As to a *ConnectError,
	// ...). Server is the server of the last attempt.
	GaveUp
	// MessagesDropped: Count inbound QoS 0 messages were dropped because
	// the application fell MaxPending messages behind. The first drop is
	// reported when it happens, further ones at most once a second while
	// the application stays behind, and the rest once it has caught up:
	// the Counts add up to every drop (Stats counts them too).
	MessagesDropped
	// StoredPublishFailed: a publish restored from Config.Store (its
	// caller, in an earlier Client, was told ErrInStore) ended with the
	// error Err (it expired, or no longer fits the broker's limits, or the
	// broker refused it), which no caller receives. Err names the topic.
	// These events are never dropped: when failures come faster than
	// Events is read, one event reports several (Count of them; Err
	// joins them, StoredFailures lists them).
	StoredPublishFailed
	// ClientIDConflict: another connection with the same ClientID took
	// the session over (Err wraps ErrClientIDConflict, and says whether
	// the broker said so or the client suspects it); reported once, at
	// the first such loss after any other kind of loss, while each
	// ConnectionLost of the conflict says it again. ClientID is the
	// identifier in conflict.
	ClientIDConflict
	// ResubscribeFailed: after the broker lost the session (SessionLost,
	// or a session it called present that may be new), the client
	// subscribed again to what the application had subscribed to, and
	// some of it did not take: the broker refused it in its SUBACK (Err
	// wraps a *SubscribeError with its reason codes), refused it by
	// ending the connection each time it was sent alone (Err wraps
	// ErrRefused), or the SUBSCRIBE could not be sent at all, being
	// larger than the broker's Maximum Packet Size (Err wraps
	// ErrInvalidMessage). FailedFilters(e) lists the filters concerned:
	// the broker delivers nothing for them until the application
	// subscribes again.
	// (A filter the broker refused in SUBACK, or that was too large, is
	// also tried again after the next session loss: a Quota exceeded
	// passes, the next server may take more. One it refused by ending
	// connections is not, each try costing several connections.) Like
	// StoredPublishFailed, these events are never dropped: when they come
	// faster than Events is read, one event reports several (Err joins
	// them, FailedFilters lists every filter).
	ResubscribeFailed
)

func (k EventKind) String() string {
	switch k {
	case Connected:
		return "connected"
	case ConnectionLost:
		return "connection lost"
	case Reconnecting:
		return "reconnecting"
	case SessionLost:
		return "session lost"
	case GaveUp:
		return "gave up"
	case MessagesDropped:
		return "messages dropped"
	case StoredPublishFailed:
		return "stored publish failed"
	case ClientIDConflict:
		return "client ID conflict"
	case ResubscribeFailed:
		return "resubscribe failed"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event reports a change in the client's connection.
type Event struct {
	Kind           EventKind
	Server         string          // Connected, ConnectionLost, SessionLost, GaveUp, ResubscribeFailed: which of Config.Servers (a password in it shown as xxxxx), or the Server Reference followed
	SessionPresent bool            // Connected: the broker kept the session
	ClientID       string          // Connected: the client identifier in use (MQTT 5 brokers may assign one)
	Attempt        backoff.Attempt // Reconnecting: which retry, since when, and why the last failed
	Delay          time.Duration   // Reconnecting: how long until the attempt
	Count          int             // MessagesDropped: how many; StoredPublishFailed: how many publishes failed (1, more when merged)
	Err            error           // ConnectionLost, GaveUp, StoredPublishFailed, ResubscribeFailed: why; Reconnecting: why the previous attempt failed (= Attempt.Err)

	// Connack (Connected, MQTT 5) are the properties of the broker's
	// CONNACK, a copy: nil when it sent none, and always under MQTT 3.1.1.
	// The limits the broker announces, which the client already keeps to:
	// ReceiveMaximum (how many QoS 1/2 publishes it takes in flight),
	// MaximumQoS, RetainAvailable, MaximumPacketSize, TopicAliasMaximum
	// (the client uses no outbound aliases), ServerKeepAlive (replaces
	// Config.KeepAlive), SessionExpiryInterval (replaces
	// Config.SessionExpiry). What it says about this connection:
	// AssignedClientID (also in ClientID), ResponseInfo (when
	// ConnectProperties asked for it with RequestResponseInfo),
	// ReasonString, ServerReference, User. What it supports:
	// WildcardSubAvailable, SubIDAvailable, SharedSubAvailable (absent
	// means available).
	Connack *Properties
}

func (e Event) String() string {
	switch e.Kind {
	case Connected:
		return fmt.Sprintf("connected to %s (session present: %t)", e.Server, e.SessionPresent)
	case ConnectionLost:
		return fmt.Sprintf("connection to %s lost: %v", e.Server, e.Err)
	case Reconnecting:
		if e.Err == nil {
			return fmt.Sprintf("reconnecting in %s (attempt %d)", readable(e.Delay), e.Attempt.N)
		}
		return fmt.Sprintf("reconnecting in %s (attempt %d) after: %v", readable(e.Delay), e.Attempt.N, e.Err)
	case SessionLost:
		return fmt.Sprintf("%s did not keep the session", e.Server)
	case GaveUp:
		return fmt.Sprintf("gave up: %v", e.Err)
	case MessagesDropped:
		return fmt.Sprintf("%d QoS 0 messages dropped: the application is behind", e.Count)
	case StoredPublishFailed:
		if e.Count > 1 {
			return fmt.Sprintf("%d publishes restored from the store failed: %v", e.Count, e.Err)
		}
		return fmt.Sprintf("a publish restored from the store failed: %v", e.Err)
	case ClientIDConflict:
		return fmt.Sprintf("another client uses client ID %q on %s: %v", e.ClientID, e.Server, e.Err)
	case ResubscribeFailed:
		return fmt.Sprintf("subscribing again failed: %v", e.Err)
	}
	return e.Kind.String()
}

// eventBuffer is how many events wait for a reader of Events before the
// oldest are dropped.
const eventBuffer = 8

// emit offers e to Events without ever blocking: when the buffer is full
// the oldest event is dropped, so a reader that comes back sees the latest
// state; but a Reconnecting event finding it full is dropped itself, so
// that a burst of fast retries (backoff.Constant(0) makes thousands a
// second) cannot push out the ConnectionLost before it. StoredPublishFailed
// and ResubscribeFailed events are never dropped, since nobody else hears
// of those failures: one is merged into the newest of its kind waiting
// instead (see makeRoom). Safe from any goroutine.
func (c *Client) emit(e Event) {
	c.eventsMu.Lock()
	defer c.eventsMu.Unlock()
	switch {
	case c.eventsClosed:
	case c.events == nil:
		c.keepUnread(e)
	default:
		e = handOut(e)
		select {
		case c.events <- e:
		default:
			c.emitFull(e)
		}
	}
}

// The two ways of emit that handle several events at once are functions
// of their own: emit runs on the session goroutine as it takes a
// connection, and with their temporaries its frame was 1.8 KiB, which cost
// every idle client 8 KiB more of goroutine stack (bench IdleClient: 24.1
// KiB per client, 16.2 KiB without).

// keepUnread keeps e for the channel Events will make, which nobody asked
// for yet, to the rules of a full channel. c.eventsMu is held.
func (c *Client) keepUnread(e Event) {
	if len(c.unread) == eventBuffer && e.Kind == Reconnecting {
		return
	}
	u := c.unread
	if len(u) == cap(u) && len(u) == eventBuffer {
		u = append(make([]Event, 0, eventBuffer+1), u...) // not 16
	}
	c.unread = makeRoom(append(u, e), eventBuffer)
}

// emitFull delivers e, handed out, to the full Events channel: the oldest
// events make room for it. c.eventsMu is held.
func (c *Client) emitFull(e Event) {
	if e.Kind == Reconnecting {
		return // the least news: the next retry reports again
	}
	// Only emit sends, under eventsMu, and the reader only takes events
	// out: what is taken out here fits back in.
	waiting := make([]Event, 0, eventBuffer+1)
	for more := true; more; {
		select {
		case w := <-c.events:
			waiting = append(waiting, w)
		default:
			more = false
		}
	}
	for _, w := range makeRoom(append(waiting, e), cap(c.events)) {
		c.events <- w
	}
}

// handOut is e as the application gets it: with a copy of the CONNACK's
// properties of its own, since the connection keeps reading them. An event
// kept until Events is called shares them meanwhile.
func handOut(e Event) Event {
	if e.Connack != nil {
		e.Connack = cloneProperties(e.Connack)
	}
	return e
}

// neverDropped reports whether an event of kind k reports something the
// application hears of nowhere else, so that makeRoom merges it instead of
// dropping it.
func neverDropped(k EventKind) bool { return k == StoredPublishFailed || k == ResubscribeFailed }

// makeRoom shortens events, oldest first, to at most n: it drops the oldest
// event that may be dropped; when none is left, it merges two of a kind.
func makeRoom(events []Event, n int) []Event {
	for len(events) > n {
		i := slices.IndexFunc(events, func(e Event) bool { return !neverDropped(e.Kind) })
		if i >= 0 {
			events = slices.Delete(events, i, i+1)
			continue
		}
		merged := mergeNewest(events)
		if len(merged) == len(events) {
			merged = events[1:] // no two of a kind: only when n < 2, which no caller asks
		}
		events = merged
	}
	return events
}

// mergeNewest merges the newest event that has an older one of its kind
// into the newest such older one, and returns events one shorter. Of three
// or more events of the two kinds never dropped, two are of a kind; with
// fewer, nothing may be merged and events are returned as they are.
func mergeNewest(events []Event) []Event {
	for i := len(events) - 1; i > 0; i-- {
		for j := i - 1; j >= 0; j-- {
			if events[j].Kind == events[i].Kind {
				events[j] = merge(events[j], events[i])
				return slices.Delete(events, i, i+1)
			}
		}
	}
	return events
}

// merge makes one event of two of the same kind that is never dropped,
// a (the older) and b.
func merge(a, b Event) Event {
	if a.Kind == ResubscribeFailed {
		return mergeResubscribeFailures(a, b)
	}
	return mergeStoredFailures(a, b)
}

// mergeResubscribeFailures makes one ResubscribeFailed event of two: Err
// joins both's (errors.Is and errors.As find each; FailedFilters lists the
// filters of both).
func mergeResubscribeFailures(a, b Event) Event {
	a.Err = errors.Join(a.Err, b.Err)
	return a
}

// resubscribeError is the Err of a ResubscribeFailed event: the filters
// the client could not subscribe to again after a lost session, and why.
type resubscribeError struct {
	filters []string
	err     error
}

func (e *resubscribeError) Error() string {
	return fmt.Sprintf("mqtt: subscribing again to %q after the broker lost the session: %v", e.filters, e.err)
}

func (e *resubscribeError) Unwrap() error { return e.err }

// FailedFilters lists the topic filters a ResubscribeFailed event reports:
// those the client could not subscribe to again after the broker lost the
// session, for which the broker delivers nothing until the application
// subscribes again. It returns nil for an event of another kind.
func FailedFilters(e Event) []string {
	if e.Kind != ResubscribeFailed {
		return nil
	}
	var filters []string
	var walk func(err error)
	walk = func(err error) {
		switch err := err.(type) {
		case *resubscribeError:
			filters = append(filters, err.filters...)
		case interface{ Unwrap() []error }:
			for _, e := range err.Unwrap() {
				walk(e)
			}
		}
	}
	walk(e.Err)
	return filters
}

// mergeStoredFailures makes one StoredPublishFailed event of two: Count
// adds up, and Err joins the failures (errors.Is and errors.As find each;
// StoredFailures lists them).
func mergeStoredFailures(a, b Event) Event {
	a.Count = max(a.Count, 1) + max(b.Count, 1)
	a.Err = storedFailures(append(StoredFailures(a), StoredFailures(b)...))
	return a
}

// storedFailures is the Err of a StoredPublishFailed event that reports
// more than one failure.
type storedFailures []error

func (f storedFailures) Error() string {
	var b strings.Builder
	for i, err := range f {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(err.Error())
	}
	return b.String()
}

func (f storedFailures) Unwrap() []error { return f }

// StoredFailures lists the failures a StoredPublishFailed event reports,
// one error per publish, each naming its topic: usually one, more when
// failures came faster than Events was read (Count says how many). It
// returns nil for an event of another kind.
func StoredFailures(e Event) []error {
	if e.Kind != StoredPublishFailed || e.Err == nil {
		return nil
	}
	if f, ok := e.Err.(storedFailures); ok {
		return slices.Clone([]error(f))
	}
	return []error{e.Err}
}
