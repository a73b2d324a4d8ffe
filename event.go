package mqtt

import (
	"fmt"
	"time"

	"github.com/robustmqtt/mqtt/backoff"
)

// EventKind says what happened to the client's connection.
type EventKind int

// The kinds of Event.
const (
	// Connected: a connection is up. SessionPresent says whether the
	// broker kept the session; Server which server; Connack what an
	// MQTT 5 broker announced.
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
	StoredPublishFailed
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
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event reports a change in the client's connection.
type Event struct {
	Kind           EventKind
	Server         string          // Connected, ConnectionLost, SessionLost, GaveUp: which of Config.Servers (a password in it shown as xxxxx), or the Server Reference followed
	SessionPresent bool            // Connected: the broker kept the session
	ClientID       string          // Connected: the client identifier in use (MQTT 5 brokers may assign one)
	Attempt        backoff.Attempt // Reconnecting: which retry, since when, and why the last failed
	Delay          time.Duration   // Reconnecting: how long until the attempt
	Count          int             // MessagesDropped: how many
	Err            error           // ConnectionLost, GaveUp: why; Reconnecting: why the previous attempt failed (= Attempt.Err)

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
		return fmt.Sprintf("a publish restored from the store failed: %v", e.Err)
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
// second) cannot push out the ConnectionLost before it. Safe from any
// goroutine.
func (c *Client) emit(e Event) {
	c.eventsMu.Lock()
	defer c.eventsMu.Unlock()
	if c.eventsClosed {
		return
	}
	for {
		select {
		case c.events <- e:
			return
		default:
		}
		if e.Kind == Reconnecting {
			return // the least news: the next retry reports again
		}
		select {
		case <-c.events: // drop the oldest
		default:
		}
	}
}
