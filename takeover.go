package mqtt

import (
	"errors"
	"fmt"
	"time"

	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/conn"
)

// ErrClientIDConflict means the broker ended the connection to let in
// another connection with the same ClientID: two clients (two processes,
// two devices flashed with one identity) share it, and each connection
// takes the session from the other, so that each message reaches whichever
// holds it at that moment. Give each client its own ClientID.
//
// An MQTT 5 broker says so (DISCONNECT with reason 0x8E, Session taken
// over). An MQTT 3.1.1 broker just closes the connection, so there the
// client suspects it when the broker closed the last takeoverSuspectAfter
// (3) connections in a row without saying why (no DISCONNECT, or one with
// reason 0x00), each within Config.StableAfter of accepting it with the
// session present. The session being present is what tells twins (who
// keep the session alive between them) from a broker whose session
// handling crashes (ejabberd 23.01 while a cluster node rejoins), which
// loses it; so a client with CleanStart is never suspected, only told by
// an MQTT 5 broker. A broker that closes connections for other reasons
// (an authorization plugin, restarts faster than StableAfter) can still
// look the same, and the error says "suspected".
//
// The error of the lost connection (Event ConnectionLost, and the
// Attempt.Err that Config.Backoff sees) wraps it, so a strategy can give
// up or wait longer; the default strategy already slows the loop down,
// since connections that last less than StableAfter keep its delays
// growing. The first loss of a conflict is also reported as an Event of
// kind ClientIDConflict, and Stats counts each in Lost.TakenOver.
var ErrClientIDConflict = errors.New("mqtt: another connection with the same ClientID took the session over")

// takeoverSuspectAfter is how many connections in a row the broker must
// close without a word, each soon after accepting it, before the client
// suspects (without a reason code to say so) that another client shares
// its ClientID.
const takeoverSuspectAfter = 3

// takeoverWatch tells connections taken over by another client with the
// same ClientID from other losses. Owned by the supervisor goroutine.
type takeoverWatch struct {
	stableAfter time.Duration
	// quietCloses counts the connections in a row that the broker closed
	// without a word within stableAfter of CONNACK.
	quietCloses int
	// inConflict: the last connection lost was taken over, and the
	// ClientIDConflict event of this conflict went out.
	inConflict bool
}

// cause returns the error of a connection that was up for upFor, with the
// session present or not, and ended with err: err itself, or an error
// wrapping ErrClientIDConflict and err when the connection was taken over.
// It changes nothing, so the run's loops can call it on a copy of w taken
// when the connection came up.
func (w takeoverWatch) cause(err error, upFor time.Duration, present bool) error {
	var de *DisconnectError
	if errors.As(err, &de) && de.ReasonCode == codec.SessionTakenOver {
		return fmt.Errorf("%w (the broker said so: reason 0x8E, session taken over); give each client its own ClientID: %w", ErrClientIDConflict, err)
	}
	if n := w.quietCloses + 1; w.quietClose(err, upFor, present) && n >= takeoverSuspectAfter {
		return fmt.Errorf("%w (suspected: the broker closed the last %d connections without a word, each within %s of accepting it); give each client its own ClientID: %w",
			ErrClientIDConflict, n, w.stableAfter, err)
	}
	return err
}

// quietClose reports whether a connection that resumed the session
// (present) and was up for upFor ended because the broker closed it soon
// after accepting it, without saying why: a plain close, or a DISCONNECT
// with reason 0x00, which is what mochi-mqtt v2.7 sends a 3.1.1 client it
// takes a session from (3.1.1 has no DISCONNECT from the broker, so it
// carries no reason).
func (w takeoverWatch) quietClose(err error, upFor time.Duration, present bool) bool {
	var de *DisconnectError
	quiet := errors.Is(err, conn.ErrServerClosed) || errors.As(err, &de) && de.ReasonCode == codec.NormalDisconnection
	// A probe's connection ended: the broker's answer to a message, not
	// a twin's doing (see refused.go).
	return quiet && present && upFor < w.stableAfter && !errors.Is(err, errProbeUnanswered)
}

// lost notes a live connection that was up for upFor, with the session
// present or not, and ended with err (as cause made it). It reports
// whether the loss begins a conflict: the first taken-over connection
// after any other kind of loss.
func (w *takeoverWatch) lost(err error, upFor time.Duration, present bool) (begins bool) {
	if w.quietClose(err, upFor, present) {
		w.quietCloses++
	} else {
		w.quietCloses = 0
	}
	if !errors.Is(err, ErrClientIDConflict) {
		w.inConflict = false
		return false
	}
	begins = !w.inConflict
	w.inConflict = true
	return begins
}

// attemptFailed notes a connection attempt that did not come up: a broker
// that refuses or cannot be reached is not one that takes sessions over.
func (w *takeoverWatch) attemptFailed() {
	w.quietCloses = 0
}
