package mqtt

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/robustmqtt/mqtt/backoff"
	"github.com/robustmqtt/mqtt/supervisor"
)

// gaveUpError is what the client says when its reconnect strategy gave up:
// Dial's error when no connection ever came up, and otherwise the GaveUp
// event's Err and Client.Err. The supervisor's *GaveUpError knows runs and
// a loss; this one says it in the user's words: which server, why the last
// attempt failed, how many attempts in how long, and that the strategy
// allows no more. It unwraps to the supervisor's error, so errors.Is(err,
// ErrGaveUp) holds and errors.As reaches the last attempt's error
// (*ConnectError, ...).
type gaveUpError struct {
	sup      *supervisor.GaveUpError
	server   string // the server of the last attempt
	servers  int    // how many servers Config.Servers lists
	dialing  bool   // no connection came up yet: Dial is waiting for this
	strategy string // the strategy's name when it says something, e.g. "backoff.Never"
}

// gaveUp turns the supervisor's give-up into the client's. It reads state
// the supervisor goroutine owns: call it there, or after supDone is set.
func (c *Client) gaveUp(sup *supervisor.GaveUpError) *gaveUpError {
	e := &gaveUpError{
		sup:     sup,
		server:  c.runServer,
		servers: len(c.cfg.Servers),
		dialing: !c.connectedBefore,
	}
	if c.cfg.Backoff == backoff.Never() { // never{} is comparable; a Func differs in type, so no panic
		e.strategy = "backoff.Never"
	}
	return e
}

// stopError is Client.Err (and Dial's error) for the error the client
// stopped with: a give-up is said in the client's words, anything else
// (a store failure) is kept as it is.
func (c *Client) stopError(err error) error {
	if sup, ok := err.(*supervisor.GaveUpError); ok {
		return c.gaveUp(sup)
	}
	return err
}

// Error says where and why the last attempt failed, and that the strategy
// allows no more.
func (e *gaveUpError) Error() string {
	var b strings.Builder
	a := e.sup.Attempt
	// A network error's few words go next to the server; any other cause
	// goes at the end, whole, where its own punctuation does not get in
	// the way.
	why, cause := "", ""
	if a.Err != nil {
		if r, ok := shortReason(a.Err); ok {
			why = " (" + r + ")"
		} else {
			cause = ": " + a.Err.Error()
		}
	}
	switch {
	case e.dialing && a.N <= 1:
		fmt.Fprintf(&b, "mqtt: dial: cannot connect to %s%s", e.server, why)
	case e.dialing:
		fmt.Fprintf(&b, "mqtt: dial: cannot connect after %s, the last to %s%s", e.attempts(a.N), e.server, why)
	case a.N <= 1:
		fmt.Fprintf(&b, "mqtt: the connection to %s was lost%s", e.server, why)
	default:
		fmt.Fprintf(&b, "mqtt: cannot reconnect after %s since the connection was lost, the last to %s%s", e.attempts(a.N-1), e.server, why)
	}
	if a.N > 1 {
		b.WriteString(", and the reconnect strategy allows no more")
	} else {
		b.WriteString(", and the reconnect strategy allows no retry")
		if e.strategy != "" {
			b.WriteString(" (" + e.strategy + ")")
		}
		if e.servers > 1 {
			b.WriteString(", so no other server was tried")
		}
	}
	b.WriteString(cause)
	return b.String()
}

// attempts says "n attempts in <elapsed>".
func (e *gaveUpError) attempts(n int) string {
	s := fmt.Sprintf("%d attempts", n)
	if n == 1 {
		s = "1 attempt"
	}
	return s + " in " + readable(e.sup.Attempt.Elapsed).String()
}

// Unwrap returns the supervisor's *GaveUpError, which wraps ErrGaveUp and
// the last attempt's error.
func (e *gaveUpError) Unwrap() error { return e.sup }

// shortReason is why an attempt failed in a few words, when it was a
// network error: the operating system's reason ("connection refused",
// "i/o timeout", "lookup broker.example: no such host"), since the message
// around it names the server already. Any other error (a broker's refusal,
// a protocol error) has no short form.
func shortReason(err error) (string, bool) {
	var op *net.OpError
	if !errors.As(err, &op) || op.Err == nil {
		return "", false
	}
	var sys *os.SyscallError
	if errors.As(op.Err, &sys) && sys.Err != nil {
		return sys.Err.Error(), true
	}
	return op.Err.Error(), true
}

// readable rounds d to three significant digits, so that an elapsed time
// reads 2.57ms rather than 2.569475ms.
func readable(d time.Duration) time.Duration {
	unit := time.Duration(1)
	for x := d; x >= 1000; x /= 10 {
		unit *= 10
	}
	return d.Round(unit)
}
