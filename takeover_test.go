package mqtt_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/backoff"
	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/mqtttest"
)

// attemptLog is a strategy that retries at once and keeps every
// Attempt.Err it is shown.
type attemptLog struct {
	mu        sync.Mutex
	errs      []error
	onRefused func() // called before the retry that follows a refused CONNECT
}

func (l *attemptLog) Next(a backoff.Attempt) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, a.Err)
	var ce *mqtt.ConnectError
	if errors.As(a.Err, &ce) && l.onRefused != nil {
		l.onRefused()
	}
	return 0, true
}

func (l *attemptLog) sawConflict() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, err := range l.errs {
		if errors.Is(err, mqtt.ErrClientIDConflict) {
			return true
		}
	}
	return false
}

// nextLoss returns the next ConnectionLost, and whether a
// ClientIDConflict event came between it and the one before.
func nextLoss(t *testing.T, c *mqtt.Client) (lost mqtt.Event, conflict *mqtt.Event) {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case e := <-c.Events():
			switch e.Kind {
			case mqtt.ClientIDConflict:
				conflict = &e
			case mqtt.ConnectionLost:
				// Its ClientIDConflict, if any, comes next, before the
				// Reconnecting that the strategy's answer brings.
				select {
				case f := <-c.Events():
					if f.Kind == mqtt.ClientIDConflict {
						conflict = &f
					}
				case <-deadline:
					t.Fatal("no event after the ConnectionLost within the deadline")
				}
				return e, conflict
			}
		case <-deadline:
			t.Fatal("no ConnectionLost within the deadline")
		}
	}
}

// An MQTT 5 broker that hands the session to another connection says so
// (reason 0x8E): the loss wraps ErrClientIDConflict at once, for the
// application and for the strategy, and a ClientIDConflict event says
// it.
func TestSessionTakenOverIsAClientIDConflict(t *testing.T) {
	sb := mqtttest.NewScriptedBroker(t)
	strategy := &attemptLog{}
	c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "twin", Version: 5, Backoff: strategy})
	sc := scripted(t, sb)
	send(t, sc, 5, &codec.Disconnect{ReasonCode: codec.SessionTakenOver})
	lost, conflict := nextLoss(t, c)
	if !errors.Is(lost.Err, mqtt.ErrClientIDConflict) || !strings.Contains(lost.Err.Error(), "0x8E") {
		t.Fatalf("ConnectionLost: %v, want ErrClientIDConflict saying the broker said so", lost.Err)
	}
	var de *mqtt.DisconnectError
	if !errors.As(lost.Err, &de) {
		t.Fatalf("ConnectionLost: %v, want it to wrap the broker's *DisconnectError too", lost.Err)
	}
	if conflict == nil || conflict.ClientID != "twin" || !errors.Is(conflict.Err, mqtt.ErrClientIDConflict) {
		t.Fatalf("ClientIDConflict event: %v, want one naming twin", conflict)
	}
	// The strategy is asked after the events of the loss: Reconnecting
	// carries its answer.
	waitEvent(t, c, mqtt.Reconnecting)
	if !strategy.sawConflict() {
		t.Fatal("the strategy was not shown ErrClientIDConflict: it cannot slow the loop down or give up")
	}
	if n := c.Stats().Connections.Lost.TakenOver; n != 1 {
		t.Fatalf("Stats Lost.TakenOver %d, want 1", n)
	}
	// The next connection is kept: no conflict any more.
	sc = scripted(t, sb)
	waitEvent(t, c, mqtt.Connected)
	sc.Close()
	if lost, conflict := nextLoss(t, c); errors.Is(lost.Err, mqtt.ErrClientIDConflict) || conflict != nil {
		t.Fatalf("a plain close after the conflict: %v (conflict event %v), want no conflict", lost.Err, conflict)
	}
}

// Under MQTT 3.1.1 the broker closes the taken-over connection without a
// word: the third connection in a row that it closes soon after accepting
// it with the session present is a suspected conflict, reported once per
// conflict. Quiet closes of connections without the session (a broker
// whose session handling crashes, as ejabberd's did in the cluster test)
// are not; nor is a run of them broken by a failed attempt (a broker
// restarting, not a twin).
func TestQuietClosesAreASuspectedConflict(t *testing.T) {
	sb := mqtttest.NewScriptedBroker(t)
	// After a refused attempt, the next one is accepted.
	strategy := &attemptLog{onRefused: func() { sb.SetConnack(sessionPresent) }}
	c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "twin311", Backoff: strategy})
	sc := scripted(t, sb)
	for i := 1; i <= 4; i++ { // the broker loses the session every time
		sc.Close()
		if lost, conflict := nextLoss(t, c); errors.Is(lost.Err, mqtt.ErrClientIDConflict) || conflict != nil {
			t.Fatalf("quiet close %d without the session: %v (event %v), want no conflict", i, lost.Err, conflict)
		}
		sc = scripted(t, sb)
	}
	sb.SetConnack(sessionPresent)
	sc.Close()
	nextLoss(t, c)
	sc = scripted(t, sb)
	for i := 1; i <= 5; i++ {
		sc.Close()
		lost, conflict := nextLoss(t, c)
		wantConflict := i >= 3
		if errors.Is(lost.Err, mqtt.ErrClientIDConflict) != wantConflict {
			t.Fatalf("quiet close %d: %v, want ErrClientIDConflict %t", i, lost.Err, wantConflict)
		}
		if wantConflict && !strings.Contains(lost.Err.Error(), "suspected") {
			t.Fatalf("quiet close %d: %v, want it to say the conflict is suspected", i, lost.Err)
		}
		if (conflict != nil) != (i == 3) {
			t.Fatalf("quiet close %d: ClientIDConflict event %v, want one at the third only", i, conflict)
		}
		sc = scripted(t, sb)
	}
	if !strategy.sawConflict() {
		t.Fatal("the strategy was not shown ErrClientIDConflict")
	}
	if n := c.Stats().Connections.Lost.TakenOver; n != 3 {
		t.Fatalf("Stats Lost.TakenOver %d, want 3", n)
	}

	// A refused attempt between quiet closes: not a twin.
	sb.SetConnack(frame(t, 4, &codec.Connack{ReasonCode: codec.ServerUnavailable}))
	sc.Close()
	nextLoss(t, c)
	scripted(t, sb) // refused
	for i := 1; i <= 2; i++ {
		sc = scripted(t, sb)
		sc.Close()
		if lost, _ := nextLoss(t, c); errors.Is(lost.Err, mqtt.ErrClientIDConflict) {
			t.Fatalf("quiet close %d after a refused attempt: %v, want no conflict yet", i, lost.Err)
		}
	}
}

// Two clients with one ClientID against real brokers, both protocol
// versions: each takes the session from the other, both are told, and
// with the default kind of strategy (here scaled down) the loop slows:
// the retries of the conflict keep one streak, so its delays grow.
func TestTwinClientsDetectTheConflict(t *testing.T) {
	b := mqtttest.NewBroker(t)
	for _, v := range []byte{4, 5} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			twins(t, b.URL(), v)
		})
	}
}

// twins runs two clients with one ClientID on the broker at url until
// each has reported the conflict.
func twins(t *testing.T, url string, v byte) {
	id := fmt.Sprintf("twin-%d-%d", v, time.Now().UnixNano())
	strategy := backoff.Exponential{Initial: 20 * time.Millisecond, Max: time.Second, Multiplier: 2, Jitter: backoff.FullJitter}
	cfg := mqtt.Config{Servers: []string{url}, ClientID: id, Version: v, Backoff: strategy, StableAfter: 5 * time.Second}
	first := dial(t, cfg)
	second := dial(t, cfg)
	for i, c := range []*mqtt.Client{first, second} {
		e := waitEvent(t, c, mqtt.ClientIDConflict)
		if !errors.Is(e.Err, mqtt.ErrClientIDConflict) || e.ClientID != id {
			t.Fatalf("client %d: %v", i+1, e)
		}
		// The retries of a conflict keep one streak: a later one is
		// not the first of a new one.
		for {
			e := waitEvent(t, c, mqtt.Reconnecting)
			if e.Attempt.N >= 2 && errors.Is(e.Err, mqtt.ErrClientIDConflict) {
				break
			}
		}
	}
}

// A CONNECT that reached a broker which had lost the session, and whose
// CONNACK never came back, made the broker a new session; the next CONNECT
// is told Session Present, yet none of the old subscriptions is in it. The
// client subscribes again after any unanswered CONNECT (found by the fleet's
// reconnect storm on mochi: 13,969 messages lost by 5,186 clients); a plain
// reconnect to a kept session does not.
func TestSessionPresentAfterAnUnansweredConnect(t *testing.T) {
	sb := mqtttest.NewScriptedBroker(t)
	strategy := backoff.Func(func(a backoff.Attempt) (time.Duration, bool) {
		if a.Err != nil && strings.Contains(a.Err.Error(), "CONNACK") {
			sb.SetConnack(sessionPresent) // the next CONNECT is answered
		}
		return 0, true
	})
	c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "unanswered", Backoff: strategy, ConnectTimeout: 200 * time.Millisecond})
	sc := scripted(t, sb)
	ctx := testCtx(t)
	done := make(chan error, 1)
	go func() { done <- c.Subscribe(ctx, mqtt.Subscription{Filter: "jobs", QoS: 1}) }()
	s := nextOf[*codec.Subscribe](t, sc, 4)
	send(t, sc, 4, &codec.Suback{PacketID: s.PacketID, ReasonCodes: []codec.ReasonCode{1}})
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// A plain reconnect to the kept session: nothing to subscribe.
	sb.SetConnack(sessionPresent)
	sc.Close()
	sc = scripted(t, sb)
	waitEvent(t, c, mqtt.Connected)
	res := c.PublishAsync(ctx, mqtt.Message{Topic: "probe", QoS: 1})
	if p := nextOf[*codec.Publish](t, sc, 4); p.Topic != "probe" {
		t.Fatalf("got %q", p.Topic)
	} else {
		send(t, sc, 4, &codec.Puback{PacketID: p.PacketID})
	}
	if err := resultOf(t, res); err != nil {
		t.Fatal(err)
	}

	// The broker loses the session; the next CONNECT reaches it but its
	// CONNACK does not come back; the one after is told Session Present.
	sb.SetConnack([]byte{})
	sc.Close()
	unanswered := scripted(t, sb)
	sc = scripted(t, sb)
	unanswered.Close()
	again := nextOf[*codec.Subscribe](t, sc, 4)
	if len(again.Subscriptions) != 1 || again.Subscriptions[0].Filter != "jobs" {
		t.Fatalf("after an unanswered CONNECT: %+v, want the subscription to jobs again", again.Subscriptions)
	}
}
