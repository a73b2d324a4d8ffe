package main

import (
	"fmt"
	"io"
	"time"

	"github.com/robustmqtt/mqtt"
)

// reporter says on stderr what happens to a command's connection: always a
// loss, a reconnection, a lost session, dropped messages and failures
// nobody else hears of (a stored publish, a re-subscription); with -d also
// the first connection and every retry.
type reporter struct {
	command  string // pub, sub, rr
	w        io.Writer
	o        connOptions
	connects int // Connected events seen
}

func (r *reporter) report(e mqtt.Event) {
	say := func(format string, args ...any) {
		fmt.Fprintf(r.w, "mqtt %s: "+format+"\n", append([]any{r.command}, args...)...)
	}
	switch e.Kind {
	case mqtt.Connected:
		r.connects++
		switch {
		case r.connects > 1 && r.o.persistent:
			say("reconnected to %s (session present: %t)", e.Server, e.SessionPresent)
		case r.connects > 1 && r.command != "pub":
			say("reconnected to %s; subscribed again", e.Server)
		case r.connects > 1:
			say("reconnected to %s", e.Server)
		case r.o.debug:
			say("connected to %s as %s", e.Server, e.ClientID)
		}
	case mqtt.ConnectionLost:
		say("connection lost: %v; reconnecting", e.Err)
	case mqtt.SessionLost:
		if r.command == "sub" {
			say("%s did not keep the session: subscribed again; what was published meanwhile is lost", e.Server)
		} else {
			say("%s did not keep the session: unacknowledged messages are sent again", e.Server)
		}
	case mqtt.MessagesDropped:
		say("%d QoS 0 messages dropped: stdout is too slow", e.Count)
	case mqtt.ClientIDConflict:
		say("another client uses the client ID %q: each connection takes the session from the other; give each its own -i", e.ClientID)
	case mqtt.StoredPublishFailed, mqtt.ResubscribeFailed:
		say("%v", e)
	case mqtt.Reconnecting:
		if r.o.debug {
			say("retrying in %s (retry %d): %v", e.Delay.Round(time.Millisecond), e.Attempt.N, e.Attempt.Err)
		}
	case mqtt.GaveUp:
		// The client stops; the command says why as it fails.
	}
}

// reportConnected reports the events of a client that Dial has just
// returned, up to its first Connected, so that -d says it first: the
// client emits it as Dial returns, maybe just after. The wait is bounded,
// in case the client ever stopped emitting it.
func reportConnected(c *mqtt.Client, rep *reporter) {
	t := time.NewTimer(time.Second)
	defer t.Stop()
	for {
		select {
		case e, ok := <-c.Events():
			if !ok {
				return
			}
			rep.report(e)
			if e.Kind == mqtt.Connected {
				return
			}
		case <-t.C:
			return
		}
	}
}

// reportWaiting reports the events of c that are waiting.
func reportWaiting(c *mqtt.Client, rep *reporter) {
	for {
		select {
		case e, ok := <-c.Events():
			if !ok {
				return
			}
			rep.report(e)
		default:
			return
		}
	}
}
