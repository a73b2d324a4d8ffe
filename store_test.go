package mqtt_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/mqtttest"
	"github.com/robustmqtt/mqtt/store"
)

// Messages accepted while disconnected survive the Client: a new one with
// the same store sends them, in order, QoS 2 exactly once.
func TestStoreSurvivesClient(t *testing.T) {
	for _, kind := range []string{"memory", "file"} {
		t.Run(kind, func(t *testing.T) {
			var st store.Store = store.NewMemory()
			if kind == "file" {
				f, err := store.Open(filepath.Join(t.TempDir(), "session"), store.Options{})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { f.Close() })
				st = f
			}
			b := mqtttest.NewBroker(t)
			sub := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "store-sub"})
			if err := sub.Subscribe(testCtx(t), mqtt.Subscription{Filter: "s/#", QoS: 2}, mqtt.Subscription{Filter: "q/end", QoS: 1}); err != nil {
				t.Fatal(err)
			}
			px := mqtttest.NewProxy(t, b.Addr())
			cfg := mqtt.Config{Servers: []string{px.URL()}, ClientID: "store-pub", Store: st}
			pub := dial(t, cfg)
			px.Refuse(true)
			px.Cut()
			waitEvent(t, pub, mqtt.ConnectionLost)
			ctx := testCtx(t)
			var results []<-chan error
			for i := range 10 {
				results = append(results, pub.PublishAsync(ctx, mqtt.Message{Topic: "s/x", Payload: fmt.Appendf(nil, "%d", i), QoS: mqtt.QoS(1 + i%2)}))
			}
			pub.Close()
			for i, ch := range results {
				if err := <-ch; !errors.Is(err, mqtt.ErrInStore) {
					t.Fatalf("publish %d when the client closed: %v, want ErrInStore", i, err)
				}
			}
			px.Refuse(false)
			again := dial(t, cfg)
			if err := again.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			for i := range 10 {
				if m := receive(t, sub); string(m.Payload) != fmt.Sprint(i) {
					t.Fatalf("message %d: got %q", i, m.Payload)
				}
			}
			noMore(t, again, sub)
		})
	}
}

// A message in flight when the client stopped is sent again with its packet
// identifier and DUP; a QoS 2 message whose PUBREC came gets its PUBREL.
func TestStoreResendsInFlight(t *testing.T) {
	sb := mqtttest.NewScriptedBroker(t)
	st := store.NewMemory()
	cfg := mqtt.Config{Servers: []string{sb.URL()}, ClientID: "inflight", Store: st}
	c := dial(t, cfg)
	sc := scripted(t, sb)
	ctx := testCtx(t)
	one := c.PublishAsync(ctx, mqtt.Message{Topic: "a", QoS: 1})
	two := c.PublishAsync(ctx, mqtt.Message{Topic: "b", QoS: 2})
	p1 := nextOf[*codec.Publish](t, sc, 4)
	p2 := nextOf[*codec.Publish](t, sc, 4)
	send(t, sc, 4, &codec.Pubrec{PacketID: p2.PacketID})
	if rel := nextOf[*codec.Pubrel](t, sc, 4); rel.PacketID != p2.PacketID {
		t.Fatalf("PUBREL for %d, want %d", rel.PacketID, p2.PacketID)
	}
	c.Close()
	for _, ch := range []<-chan error{one, two} {
		if err := <-ch; !errors.Is(err, mqtt.ErrInStore) {
			t.Fatalf("result at close: %v, want ErrInStore", err)
		}
	}

	sb.SetConnack(sessionPresent)
	c = dial(t, cfg)
	sc = scripted(t, sb)
	again := nextOf[*codec.Publish](t, sc, 4)
	if again.PacketID != p1.PacketID || !again.Dup || again.Topic != "a" {
		t.Fatalf("re-sent %+v, want topic a with packet identifier %d and DUP", again, p1.PacketID)
	}
	if rel := nextOf[*codec.Pubrel](t, sc, 4); rel.PacketID != p2.PacketID {
		t.Fatalf("PUBREL for %d, want %d", rel.PacketID, p2.PacketID)
	}
	send(t, sc, 4, &codec.Puback{PacketID: p1.PacketID}, &codec.Pubcomp{PacketID: p2.PacketID})
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := st.Load(func(k uint64, _ []byte) error {
		if k != 0 { // record 0 names the store's client
			n++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d records left in the store after everything was acknowledged", n)
	}
}

func TestStoreFull(t *testing.T) {
	b := mqtttest.NewBroker(t)
	c := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "full", Store: store.NewMemoryLimit(200)})
	err := c.Publish(testCtx(t), mqtt.Message{Topic: "f", Payload: make([]byte, 500), QoS: 1})
	if !errors.Is(err, mqtt.ErrQueueFull) || !errors.Is(err, store.ErrFull) {
		t.Fatalf("publish into a full store: %v, want ErrQueueFull and store.ErrFull", err)
	}
	if err := c.Publish(testCtx(t), mqtt.Message{Topic: "f", Payload: make([]byte, 10), QoS: 1}); err != nil {
		t.Fatal(err)
	}
}

func TestStoreOfAnotherVersion(t *testing.T) {
	st := store.NewMemory()
	sb := mqtttest.NewScriptedBroker(t)
	c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "v", Store: st})
	scripted(t, sb)
	c.PublishAsync(testCtx(t), mqtt.Message{Topic: "a", QoS: 1})
	c.Close()
	_, err := mqtt.Dial(testCtx(t), mqtt.Config{Servers: []string{sb.URL()}, ClientID: "v", Store: st, Version: 5})
	if err == nil || !errorsContain(err, "protocol level 4") {
		t.Fatalf("Dial with a store of another version: %v", err)
	}
}

func errorsContain(err error, s string) bool {
	return err != nil && len(s) > 0 && contains(err.Error(), s)
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// slowDisk is a store whose Sync takes as long as a disk's fsync, and
// counts its calls.
type slowDisk struct {
	store.Store
	n atomic.Int64
}

func (s *slowDisk) Sync() error {
	s.n.Add(1)
	time.Sleep(2 * time.Millisecond) // the fsync's duration is the behaviour under test, not a wait
	return s.Store.Sync()
}

// Many concurrent publishers share one sync (group commit): those that
// arrive while a sync runs are all taken in before the next.
func TestStoreGroupCommit(t *testing.T) {
	st := &slowDisk{Store: store.NewMemory()}
	b := mqtttest.NewBroker(t)
	c := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "group", Store: st})
	const publishers, each = 32, 20
	var wg sync.WaitGroup
	for range publishers {
		wg.Go(func() {
			for range each {
				if err := c.Publish(testCtx(t), mqtt.Message{Topic: "g", Payload: []byte("x"), QoS: 1}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	// Without sharing, every publish has a sync of its own (640). With
	// it, 136-165 on a 2-core VM (10 runs each, plain and under the race
	// detector), which the old bound of 1 per 4 (160) cut through: the
	// bound is 1 per 2.
	if n := st.n.Load(); n > publishers*each/2 {
		t.Fatalf("%d syncs for %d publishes from %d goroutines; want them to share syncs (at most 1 per 2 publishes)", n, publishers*each, publishers)
	}
	t.Logf("%d syncs for %d publishes", st.n.Load(), publishers*each)
}

// An inbound QoS 2 message whose PUBREC was sent is remembered by the store:
// the broker's re-sent copy after a restart of the client is answered with
// PUBREC and not delivered again. A publish in flight when the broker has
// lost the session goes again as new, without DUP.
func TestStoreInboundQoS2AndSessionLost(t *testing.T) {
	sb := mqtttest.NewScriptedBroker(t)
	st := store.NewMemory()
	cfg := mqtt.Config{Servers: []string{sb.URL()}, ClientID: "inbound2", Store: st}
	c := dial(t, cfg)
	sc := scripted(t, sb)
	send(t, sc, 4, &codec.Publish{Topic: "in", Payload: []byte("once"), QoS: 2, PacketID: 9})
	if m := receive(t, c); string(m.Payload) != "once" {
		t.Fatalf("received %q", m.Payload)
	}
	if rec := nextOf[*codec.Pubrec](t, sc, 4); rec.PacketID != 9 {
		t.Fatalf("PUBREC for %d, want 9", rec.PacketID)
	}
	out := c.PublishAsync(testCtx(t), mqtt.Message{Topic: "out", QoS: 1})
	p := nextOf[*codec.Publish](t, sc, 4)
	c.Close()
	if err := <-out; !errors.Is(err, mqtt.ErrInStore) {
		t.Fatalf("publish at close: %v, want ErrInStore", err)
	}

	// The broker kept the session: its copy of message 9 is not news.
	sb.SetConnack(sessionPresent)
	c = dial(t, cfg)
	sc = scripted(t, sb)
	if again := nextOf[*codec.Publish](t, sc, 4); again.PacketID != p.PacketID || !again.Dup {
		t.Fatalf("re-sent %+v, want packet identifier %d with DUP", again, p.PacketID)
	}
	send(t, sc, 4, &codec.Publish{Topic: "in", Payload: []byte("once"), QoS: 2, PacketID: 9, Dup: true})
	if rec := nextOf[*codec.Pubrec](t, sc, 4); rec.PacketID != 9 {
		t.Fatalf("PUBREC for %d, want 9", rec.PacketID)
	}
	send(t, sc, 4, &codec.Pubrel{PacketID: 9})
	if comp := nextOf[*codec.Pubcomp](t, sc, 4); comp.PacketID != 9 {
		t.Fatalf("PUBCOMP for %d, want 9", comp.PacketID)
	}
	select {
	case m := <-c.Messages():
		t.Fatalf("message delivered twice: %q", m.Payload)
	default:
	}
	c.Close()

	// The broker lost the session: the publish goes again as new.
	sb.SetConnack([]byte{0x20, 0x02, 0x00, 0x00})
	c = dial(t, cfg)
	sc = scripted(t, sb)
	if again := nextOf[*codec.Publish](t, sc, 4); again.Topic != "out" || again.Dup {
		t.Fatalf("after a lost session sent %+v, want the publish to out without DUP", again)
	}
}
