package mqtt_test

// Regression tests for the seams an outside review found: between the
// session and the store, the session and the writer, a ctx and the
// session, and between one connection of a session and the next.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/backoff"
	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/mqtttest"
	"github.com/robustmqtt/mqtt/store"
)

// crashStore is a store whose durable state is what its last Sync saw:
// durable() is what a process killed with SIGKILL at that instant would
// find on disk.
type crashStore struct {
	*store.Memory
	mu      sync.Mutex
	live    map[uint64][]byte
	synced  map[uint64][]byte
	started bool
}

func newCrashStore(records map[uint64][]byte) *crashStore {
	s := &crashStore{Memory: store.NewMemory(), live: maps.Clone(records), synced: maps.Clone(records)}
	if s.live == nil {
		s.live, s.synced = map[uint64][]byte{}, map[uint64][]byte{}
	}
	for k, v := range records {
		if err := s.Memory.Put(k, v); err != nil {
			panic(err)
		}
	}
	return s
}

func (s *crashStore) Put(key uint64, v []byte) error {
	if err := s.Memory.Put(key, v); err != nil {
		return err
	}
	s.mu.Lock()
	s.live[key] = append([]byte(nil), v...)
	s.mu.Unlock()
	return nil
}

func (s *crashStore) Delete(key uint64) error {
	s.mu.Lock()
	delete(s.live, key)
	s.mu.Unlock()
	return s.Memory.Delete(key)
}

func (s *crashStore) Sync() error {
	s.mu.Lock()
	s.synced = maps.Clone(s.live)
	s.mu.Unlock()
	return s.Memory.Sync()
}

// durable is the state a crash now would leave.
func (s *crashStore) durable() map[uint64][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.synced)
}

// A completed inbound QoS 2 flow is forgotten durably before PUBCOMP goes
// out: a process killed after PUBCOMP must not wait for a PUBREL that never
// comes, and take the broker's next message under that identifier for a
// duplicate, acknowledged and never delivered. Both ways an inbound
// identifier is forgotten are checked: PUBREL, and a broker that lost the
// session.
func TestInboundQoS2ForgottenDurably(t *testing.T) {
	for _, how := range []string{"pubrel", "session-lost"} {
		t.Run(how, func(t *testing.T) {
			sb := mqtttest.NewScriptedBroker(t)
			st := newCrashStore(nil)
			cfg := mqtt.Config{Servers: []string{sb.URL()}, ClientID: "in2-" + how, Store: st}
			c := dial(t, cfg)
			sc := scripted(t, sb)
			if how == "session-lost" {
				// A subscription, so that the client has something to say
				// first on a connection whose broker lost the session.
				go c.Subscribe(testCtx(t), mqtt.Subscription{Filter: "t/#", QoS: 2})
				sub := nextOf[*codec.Subscribe](t, sc, 4)
				send(t, sc, 4, &codec.Suback{PacketID: sub.PacketID, ReasonCodes: []codec.ReasonCode{2}})
			}
			send(t, sc, 4, &codec.Publish{Topic: "t/1", Payload: []byte("first"), QoS: 2, PacketID: 7})
			if m := receive(t, c); string(m.Payload) != "first" {
				t.Fatalf("got %q", m.Payload)
			}
			nextOf[*codec.Pubrec](t, sc, 4)
			var crashed map[uint64][]byte
			if how == "pubrel" {
				send(t, sc, 4, &codec.Pubrel{PacketID: 7})
				nextOf[*codec.Pubcomp](t, sc, 4)
				crashed = st.durable() // kill -9 right after PUBCOMP
			} else {
				sc.Close()
				sc = scripted(t, sb) // the default CONNACK: no session
				nextOf[*codec.Subscribe](t, sc, 4)
				crashed = st.durable() // kill -9 after the first frame on it
			}
			c.Close()

			// The next process finds the store as the crash left it.
			sb.SetConnack(sessionPresent)
			cfg.Store = newCrashStore(crashed)
			again := dial(t, cfg)
			sc = scripted(t, sb)
			// The broker, free to reuse identifier 7, sends a new message.
			send(t, sc, 4, &codec.Publish{Topic: "t/1", Payload: []byte("second"), QoS: 2, PacketID: 7})
			if m := receive(t, again); string(m.Payload) != "second" {
				t.Fatalf("got %q, want the new message under the reused identifier", m.Payload)
			}
		})
	}
}

// Whatever the encoder would refuse in a PUBLISH is refused at the call,
// with ErrInvalidMessage naming the property, and holds nothing: not the
// link (QoS 0 used to report ErrOutcomeUnknown for it), not a window slot
// (QoS 1/2 used to hold one forever).
func TestUnencodablePublishRefusedAtTheCall(t *testing.T) {
	b := mqtttest.NewBroker(t)
	c := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "unencodable", Version: 5, MaxInflight: 1})
	expiry := uint32(60)
	bad := []struct {
		name  string
		props *codec.Properties
		want  string
	}{
		{"session expiry", &codec.Properties{SessionExpiryInterval: &expiry}, "Session Expiry Interval"},
		{"response topic wildcard", &codec.Properties{ResponseTopic: "replies/+"}, "Response Topic"},
		{"subscription identifier", &codec.Properties{SubscriptionIdentifier: []uint32{3}}, "SubscriptionIdentifier"},
		{"reason string", &codec.Properties{ReasonString: "why"}, "Reason String"},
	}
	ctx := testCtx(t)
	for _, qos := range []mqtt.QoS{0, 1, 2} {
		for _, tc := range bad {
			// More than MaxInflight of them: none may hold the window.
			for range 3 {
				err := c.Publish(ctx, mqtt.Message{Topic: "a/b", Payload: []byte("x"), QoS: qos, Properties: tc.props})
				if !errors.Is(err, mqtt.ErrInvalidMessage) || errors.Is(err, mqtt.ErrOutcomeUnknown) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("QoS %d, %s: %v, want ErrInvalidMessage naming %q", qos, tc.name, err, tc.want)
				}
			}
		}
		if err := c.Publish(ctx, mqtt.Message{Topic: "a/b", Payload: []byte("ok"), QoS: qos}); err != nil {
			t.Fatalf("QoS %d: a valid publish after the refused ones: %v", qos, err)
		}
	}
	s := c.Stats()
	if s.Inflight != 0 || s.Queued != 0 {
		t.Fatalf("Stats: %d in flight, %d queued after every publish ended", s.Inflight, s.Queued)
	}
	// Refused at the call, they were never accepted: none was handed to
	// the session and refused on the way out.
	for qos, p := range s.Publishes {
		if p.Refused != 0 || p.Acknowledged != 1 {
			t.Fatalf("Stats, QoS %d: %+v: want only the valid publish counted", qos, p)
		}
	}
}

// connack encodes a v5 CONNACK with session present and props.
func connack(t *testing.T, props *codec.Properties) []byte {
	return frame(t, 5, &codec.Connack{SessionPresent: true, Properties: props})
}

// A flight sent again after a reconnect fits the new connection's limits:
// one that cannot (a smaller Maximum Packet Size, a lower Maximum QoS, no
// retained messages) ends with its own error instead of being sent into a
// disconnect, again after every reconnect; and no more go at once than the
// new Receive Maximum allows.
func TestResentFlightsFitTheNewConnection(t *testing.T) {
	maxQoS1, noRetain, small := byte(1), false, uint32(100)
	cases := []struct {
		name  string
		msg   mqtt.Message
		props *codec.Properties
		want  string
	}{
		{"maximum packet size", mqtt.Message{Topic: "big", Payload: make([]byte, 1000), QoS: 1}, &codec.Properties{MaximumPacketSize: &small}, "Maximum Packet Size"},
		{"maximum qos", mqtt.Message{Topic: "two", Payload: []byte("x"), QoS: 2}, &codec.Properties{MaximumQoS: &maxQoS1}, "Maximum QoS"},
		{"retain available", mqtt.Message{Topic: "kept", Payload: []byte("x"), QoS: 1, Retain: true}, &codec.Properties{RetainAvailable: &noRetain}, "retained"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sb := mqtttest.NewScriptedBroker(t)
			c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "fit", Version: 5})
			sc := scripted(t, sb)
			ctx := testCtx(t)
			res := c.PublishAsync(ctx, tc.msg)
			nextOf[*codec.Publish](t, sc, 5) // sent, never acknowledged
			sb.SetConnack(connack(t, tc.props))
			sc.Close()
			sc = scripted(t, sb)
			err := resultOf(t, res)
			if !errors.Is(err, mqtt.ErrInvalidMessage) || !errors.Is(err, mqtt.ErrOutcomeUnknown) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("result: %v, want ErrInvalidMessage and ErrOutcomeUnknown (it was sent once) naming %q", err, tc.want)
			}
			if tc.msg.QoS == 2 {
				// The broker may hold the QoS 2 flow: the client finishes
				// it with PUBREL, so that the identifier is not reused
				// while the broker holds it.
				rel := nextOf[*codec.Pubrel](t, sc, 5)
				send(t, sc, 5, &codec.Pubcomp{PacketID: rel.PacketID})
			}
			barrier(t, sc, 5) // no PUBLISH was sent before the barrier's answer
			if err := c.Publish(ctx, mqtt.Message{Topic: "small", QoS: 0}); err != nil {
				t.Fatal(err)
			}
			if p := nextOf[*codec.Publish](t, sc, 5); p.Topic != "small" {
				t.Fatalf("sent %q, want the new message", p.Topic)
			}
		})
	}

	t.Run("receive maximum", func(t *testing.T) {
		sb := mqtttest.NewScriptedBroker(t)
		c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "window", Version: 5, MaxInflight: 5})
		sc := scripted(t, sb)
		ctx := testCtx(t)
		var res []<-chan error
		for i := range 5 {
			res = append(res, c.PublishAsync(ctx, mqtt.Message{Topic: fmt.Sprint("w/", i), QoS: 1}))
		}
		first := make([]uint16, 5)
		for i := range 5 {
			first[i] = nextOf[*codec.Publish](t, sc, 5).PacketID
		}
		two := uint16(2)
		sb.SetConnack(connack(t, &codec.Properties{ReceiveMaximum: &two}))
		sc.Close()
		sc = scripted(t, sb)
		// Two go again, in order, then nothing until one is acknowledged.
		for i := range 5 {
			if i >= 2 {
				send(t, sc, 5, &codec.Puback{PacketID: first[i-2]})
			}
			p := nextOf[*codec.Publish](t, sc, 5)
			if p.PacketID != first[i] || !p.Dup {
				t.Fatalf("re-sent %d (DUP %t), want %d with DUP", p.PacketID, p.Dup, first[i])
			}
			if i >= 1 {
				barrier(t, sc, 5) // with two in flight, nothing more comes
			}
		}
		send(t, sc, 5, &codec.Puback{PacketID: first[3]}, &codec.Puback{PacketID: first[4]})
		for i, ch := range res {
			if err := resultOf(t, ch); err != nil {
				t.Fatalf("publish %d: %v", i, err)
			}
		}
	})
}

// A queue policy decides whether the newer message fits before it drops or
// supersedes anything: when it does not fit even then, it fails alone and
// every waiting message stays.
func TestQueuePolicyDecidesBeforeDropping(t *testing.T) {
	for _, p := range []mqtt.QueuePolicy{mqtt.LatestPerTopic, mqtt.DropOldest} {
		t.Run(p.String(), func(t *testing.T) {
			b, sub, pub := offline(t, mqtt.Config{MaxQueuedBytes: 100})
			ctx := testCtx(t)
			reading := pub.PublishAsync(ctx, msg("q/t", strings.Repeat("r", 10), p)) // 13 bytes
			alarm := pub.PublishAsync(ctx, msg("q/alarm", strings.Repeat("a", 76), mqtt.Block))
			newer := pub.Publish(ctx, msg("q/t", strings.Repeat("n", 20), p)) // 23 bytes: 106 with the alarm
			if !errors.Is(newer, mqtt.ErrQueueFull) {
				t.Fatalf("newer reading: %v, want ErrQueueFull", newer)
			}
			if !pending(reading) || !pending(alarm) {
				t.Fatal("a waiting message ended for a newer one that was refused")
			}
			if err := b.Start(); err != nil {
				t.Fatal(err)
			}
			for _, ch := range []<-chan error{reading, alarm} {
				if err := resultOf(t, ch); err != nil {
					t.Fatal(err)
				}
			}
			got := payloads(t, sub, 2)
			if got[0] != "q/t="+strings.Repeat("r", 10) || got[1] != "q/alarm="+strings.Repeat("a", 76) {
				t.Fatalf("delivered %q, want the waiting reading then the alarm", got)
			}
			noMore(t, pub, sub)
		})
	}
}

// A publisher that waits for each result never finds the queue full
// because of its own previous message, and Stats counts a publish before
// its caller sees the result.
func TestSequentialPublisherNeverQueueFull(t *testing.T) {
	b := mqtttest.NewBroker(t)
	c := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "sequential", MaxQueued: 1, QueuePolicy: mqtt.FailNewest})
	ctx := testCtx(t)
	const n = 20000
	for i := range n {
		if err := c.Publish(ctx, mqtt.Message{Topic: "seq", Payload: []byte("x")}); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		if got := c.Stats().Publishes[0].Acknowledged; got != uint64(i+1) {
			t.Fatalf("after publish %d returned, Stats counts %d written", i+1, got)
		}
	}
}

// lateCtx is a context that has ended, but whose first Err call says it
// has not: the ctx ends exactly while the call hands its op to the
// session, after the call's own check.
type lateCtx struct {
	context.Context
	done  chan struct{}
	asked atomic.Bool
}

func newLateCtx() *lateCtx {
	c := &lateCtx{Context: context.Background(), done: make(chan struct{})}
	close(c.done)
	return c
}

func (c *lateCtx) Done() <-chan struct{} { return c.done }

func (c *lateCtx) Err() error {
	if c.asked.CompareAndSwap(false, true) {
		return nil
	}
	return context.Canceled
}

// A ctx that ends as its op reaches the session is a race between the
// ctx watcher and the caller registering it; the race detector used to
// report it. Every call still gets exactly one result.
func TestCtxEndingAsTheOpArrives(t *testing.T) {
	b := mqtttest.NewBroker(t)
	c := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "late-ctx", Version: 5})
	expiry := uint32(3600)
	for i := range 200 {
		m := mqtt.Message{Topic: "late", QoS: mqtt.QoS(i % 3)}
		if i%2 == 0 {
			m.Properties = &codec.Properties{MessageExpiry: &expiry}
		}
		err := c.Publish(newLateCtx(), m)
		if err != nil && !errors.Is(err, mqtt.ErrWithdrawn) && !errors.Is(err, mqtt.ErrOutcomeUnknown) {
			t.Fatalf("publish %d: %v", i, err)
		}
		err = c.Subscribe(newLateCtx(), mqtt.Subscription{Filter: "late/#"})
		if err != nil && !errors.Is(err, mqtt.ErrWithdrawn) && !errors.Is(err, mqtt.ErrOutcomeUnknown) {
			t.Fatalf("subscribe %d: %v", i, err)
		}
	}
	if err := c.Flush(testCtx(t)); err != nil {
		t.Fatal(err)
	}
}

// manualBroker is a one-connection MQTT 3.1.1 server whose reading the
// test controls: until the test reads, what the client writes piles up in
// the socket buffers, and the client's writer blocks.
type manualBroker struct {
	t  *testing.T
	ln net.Listener
	nc net.Conn
	br *bufio.Reader
}

func newManualBroker(t *testing.T) *manualBroker {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return &manualBroker{t: t, ln: ln}
}

// accept takes the client's connection, reads CONNECT, accepts it.
func (b *manualBroker) accept() {
	nc, err := b.ln.Accept()
	if err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(func() { nc.Close() })
	b.nc, b.br = nc, bufio.NewReader(nc)
	if p := b.read(); p.Type() != codec.TypeConnect {
		b.t.Fatalf("first packet %s, want CONNECT", p.Type())
	}
	b.write(&codec.Connack{})
}

// dial connects a client with cfg (its Servers set to the broker) and
// accepts its connection, and closes the client when the test ends.
func (b *manualBroker) dial(cfg mqtt.Config) *mqtt.Client {
	b.t.Helper()
	cfg.Servers = []string{"tcp://" + b.ln.Addr().String()}
	dialed := make(chan *mqtt.Client, 1)
	go func() {
		c, err := mqtt.Dial(testCtx(b.t), cfg)
		if err != nil {
			b.t.Error(err)
		}
		dialed <- c
	}()
	b.accept()
	c := <-dialed
	if c == nil {
		b.t.FailNow()
	}
	b.t.Cleanup(func() { c.Close() })
	return c
}

func (b *manualBroker) read() codec.Packet {
	b.nc.SetReadDeadline(time.Now().Add(wait))
	p, err := codec.ReadPacket(b.br, 4, 0)
	if err != nil {
		b.t.Fatalf("manual broker: read: %v", err)
	}
	return p
}

func (b *manualBroker) write(p codec.Packet) {
	buf, err := p.AppendTo(nil, 4)
	if err == nil {
		_, err = b.nc.Write(buf)
	}
	if err != nil {
		b.t.Fatalf("manual broker: write %s: %v", p.Type(), err)
	}
}

// Nothing follows the DISCONNECT of a graceful Disconnect [MQTT-3.14.4-1]:
// an acknowledgement the application gives while the DISCONNECT waits to
// be written is not sent after it.
func TestNothingAfterDisconnect(t *testing.T) {
	b := newManualBroker(t)
	c := b.dial(mqtt.Config{ClientID: "goodbye", ManualAck: true})

	// A message the application takes and acknowledges only later.
	b.write(&codec.Publish{Topic: "in", Payload: []byte("x"), QoS: 1, PacketID: 5})
	m := receive(t, c)

	// A publish too large for the socket buffers: the writer is busy
	// with it until the broker reads. The broker acknowledges it first.
	ctx := testCtx(t)
	res := c.PublishAsync(ctx, mqtt.Message{Topic: "big", Payload: make([]byte, 32<<20), QoS: 1})
	b.write(&codec.Puback{PacketID: 1 << 15}) // a new session's first identifier
	if err := resultOf(t, res); err != nil {
		t.Fatal(err)
	}

	// Disconnect: nothing is left, so DISCONNECT is queued behind the
	// big write at once. A second call is refused only after the first
	// was taken in: then the DISCONNECT is queued.
	results := make(chan error, 2)
	for range 2 {
		go func() { results <- c.Disconnect(ctx) }()
	}
	if err := <-results; err == nil || !strings.Contains(err.Error(), "already in progress") {
		t.Fatalf("Disconnect: %v, want one call refused as already in progress", err)
	}
	if err := m.Ack(); err != nil && !errors.Is(err, mqtt.ErrClosed) {
		t.Fatal(err)
	}

	for {
		p := b.read()
		if p.Type() == codec.TypeDisconnect {
			break
		}
		if pub, ok := p.(*codec.Publish); !ok || pub.Topic != "big" {
			t.Fatalf("before DISCONNECT: %s, want the big PUBLISH", p.Type())
		}
	}
	// The broker ends its side, as brokers do on DISCONNECT; the client
	// then closes, with nothing sent in between.
	b.nc.(*net.TCPConn).CloseWrite()
	b.nc.SetReadDeadline(time.Now().Add(wait))
	if p, err := codec.ReadPacket(b.br, 4, 0); !errors.Is(err, io.EOF) {
		t.Fatalf("after DISCONNECT the client sent %v (err %v), want the end of the stream", p, err)
	}
	if err := <-results; err != nil {
		t.Fatalf("Disconnect: %v", err)
	}
}

// Publish recycles its result channels per Client: a channel made inside
// one testing/synctest bubble and reused by a client in another was a
// fatal error ("send on synctest channel from outside bubble"), found by
// the model test.
func TestPublishInSuccessiveBubbles(t *testing.T) {
	for range 3 {
		synctest.Test(t, func(t *testing.T) {
			pb := newPipeBroker(t, 4)
			c, err := mqtt.Dial(t.Context(), mqtt.Config{Servers: []string{"tcp://pipe:1883"}, ClientID: "pipe", Dial: pb.dial})
			if err != nil {
				t.Fatal(err)
			}
			pc := pb.accept(t)
			res := make(chan error, 1)
			go func() { res <- c.Publish(t.Context(), mqtt.Message{Topic: "bubble", QoS: 1}) }()
			p := pipeNext[*codec.Publish](t, pc)
			pc.write(t, &codec.Puback{PacketID: p.PacketID})
			if err := <-res; err != nil {
				t.Fatal(err)
			}
			c.Close()
		})
	}
}

// An MQTT 5 message's expiry interval runs from the call, also while the
// publish waits for room in a full queue: it expires there (ErrExpired)
// rather than going out late with its whole interval. Found by the model
// test (seed 2).
func TestExpiryRunsWhileWaitingForRoom(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := pipeClientV5NoAcks(t)
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		held := c.PublishAsync(ctx, mqtt.Message{Topic: "holds/the/room", QoS: 1}) // never acknowledged
		expiry := uint32(2)
		start := time.Now()
		err := c.Publish(ctx, mqtt.Message{Topic: "stale", QoS: 1, Properties: &codec.Properties{MessageExpiry: &expiry}})
		if !errors.Is(err, mqtt.ErrExpired) || time.Since(start) != 2*time.Second {
			t.Fatalf("after %s: %v, want ErrExpired after 2s", time.Since(start), err)
		}
		c.Close()
		<-held
	})
}

// pipeClientV5NoAcks dials an MQTT 5 client with a window and queue of one
// over net.Pipe to a broker that accepts it and acknowledges nothing.
func pipeClientV5NoAcks(t *testing.T) *mqtt.Client {
	t.Helper()
	pb := newPipeBroker(t, 5)
	c, err := mqtt.Dial(t.Context(), mqtt.Config{Servers: []string{"tcp://pipe:1883"}, ClientID: "no-acks", Version: 5,
		MaxInflight: 1, MaxQueued: 1, Dial: pb.dial})
	if err != nil {
		t.Fatal(err)
	}
	pb.accept(t)
	return c
}

// An inbound QoS 2 message the application takes while the client is
// disconnected is recorded in the store then, not only when its PUBREC
// can go: a client on the same store answers the broker's copy with
// PUBREC and does not deliver it again. Found by the model test (seed 20).
func TestInboundQoS2TakenOfflineIsRecorded(t *testing.T) {
	sb := mqtttest.NewScriptedBroker(t)
	st := store.NewMemory()
	cfg := mqtt.Config{Servers: []string{sb.URL()}, ClientID: "offline-take", Store: st}
	c := dial(t, cfg)
	sc := scripted(t, sb)
	send(t, sc, 4, &codec.Publish{Topic: "t", Payload: []byte("once"), QoS: 2, PacketID: 2})
	barrier(t, sc, 4)       // the client has it, and sent nothing yet
	sb.SetConnack([]byte{}) // the next attempts get no CONNACK: offline
	sc.Close()
	waitEvent(t, c, mqtt.ConnectionLost)
	if m := receive(t, c); string(m.Payload) != "once" {
		t.Fatalf("got %q", m.Payload)
	}
	c.Close()

	sb.SetConnack(sessionPresent)
	again := dial(t, cfg)
	sc = scripted(t, sb)
	send(t, sc, 4, &codec.Publish{Topic: "t", Payload: []byte("once"), QoS: 2, PacketID: 2, Dup: true})
	if p := nextOf[*codec.Pubrec](t, sc, 4); p.PacketID != 2 {
		t.Fatalf("PUBREC for %d", p.PacketID)
	}
	send(t, sc, 4, &codec.Publish{Topic: "t", Payload: []byte("marker")})
	if m := receive(t, again); string(m.Payload) != "marker" {
		t.Fatalf("got %q: a message the application had taken was delivered again", m.Payload)
	}
}

// Disconnect returns once nothing is left, also when the last flight ends
// while a new connection is taken into use and its caller already had a
// result (here: a QoS 2 publish past PUBREC whose ctx ended, ended by a
// broker that lost the session). Found by the model test; it hung.
func TestDisconnectDrainsWhenTheLastFlightEndsOnReconnect(t *testing.T) {
	sb := mqtttest.NewScriptedBroker(t)
	c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "drain"})
	sc := scripted(t, sb)
	ctx, cancel := context.WithCancel(testCtx(t))
	res := c.PublishAsync(ctx, mqtt.Message{Topic: "q2", QoS: 2})
	p := nextOf[*codec.Publish](t, sc, 4)
	send(t, sc, 4, &codec.Pubrec{PacketID: p.PacketID})
	nextOf[*codec.Pubrel](t, sc, 4)
	cancel()
	if err := resultOf(t, res); !errors.Is(err, mqtt.ErrOutcomeUnknown) {
		t.Fatalf("result when its ctx ended: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Disconnect(testCtx(t)) }()
	barrier(t, sc, 4) // Disconnect is draining: it waits for the flight
	sc.Close()        // the reconnect finds the session lost: the flight ends there
	scripted(t, sb)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Disconnect: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("Disconnect did not return after the last flight ended")
	}
}

// A publish kept in the store keeps its MQTT 5 expiry deadline across a
// restart: the next client does not send it late with its whole interval
// (model seed 15505509734414080539), and since its caller was told
// ErrInStore, the application hears of its end from a StoredPublishFailed
// event (model finding F9).
func TestStoredPublishKeepsItsExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := store.NewMemory()
		offline := func(ctx context.Context, server string) (net.Conn, error) {
			return nil, errors.New("the broker is away")
		}
		cfg := mqtt.Config{Servers: []string{"tcp://pipe:1883"}, ClientID: "expiring", Version: 5, Store: st,
			Dial: offline, Backoff: backoff.Constant(time.Second)}
		first, err := mqtt.Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		expiry := uint32(2)
		res := first.PublishAsync(t.Context(), mqtt.Message{Topic: "stale", QoS: 1, Properties: &codec.Properties{MessageExpiry: &expiry}})
		first.Close()
		if err := <-res; !errors.Is(err, mqtt.ErrInStore) {
			t.Fatalf("at Close: %v, want ErrInStore", err)
		}
		time.Sleep(3 * time.Second) // the process is down longer than the interval

		pb := newPipeBroker(t, 5)
		pb.setConnack(t, &codec.Connack{SessionPresent: true})
		cfg.Dial = pb.dial
		second, err := mqtt.Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer second.Close()
		pc := pb.accept(t)
		for {
			select {
			case p := <-pc.frames:
				t.Fatalf("the expired message was sent: %+v", p)
			case e := <-second.Events():
				if e.Kind != mqtt.StoredPublishFailed {
					continue
				}
				if !errors.Is(e.Err, mqtt.ErrExpired) {
					t.Fatalf("StoredPublishFailed: %v, want ErrExpired", e.Err)
				}
			}
			break
		}
	})
}

// failingSync is a store whose Sync fails once told to.
type failingSync struct {
	*store.Memory
	fail atomic.Bool
}

func (s *failingSync) Sync() error {
	if s.fail.Load() {
		return errors.New("disk gone")
	}
	return s.Memory.Sync()
}

// When the sync that would make a withdrawn publish's removal durable
// fails, its result does not promise "never sent": the record may still be
// in the store for the next client (model seed 4, finding F7).
func TestWithdrawnWhenTheStoreFailsIsNotNever(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &failingSync{Memory: store.NewMemory()}
		offline := func(ctx context.Context, server string) (net.Conn, error) {
			return nil, errors.New("the broker is away")
		}
		c, err := mqtt.Start(mqtt.Config{Servers: []string{"tcp://pipe:1883"}, ClientID: "sync-fails", Store: st,
			Dial: offline, Backoff: backoff.Constant(time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ctx, cancel := context.WithCancel(t.Context())
		res := c.PublishAsync(ctx, mqtt.Message{Topic: "press", QoS: 1}) // durable once this returns
		st.fail.Store(true)
		cancel()
		err = <-res
		if errors.Is(err, mqtt.ErrWithdrawn) || !errors.Is(err, mqtt.ErrInStore) {
			t.Fatalf("result: %v, want ErrInStore (the store failed), not ErrWithdrawn", err)
		}
		<-c.Done()
		if !strings.Contains(fmt.Sprint(c.Err()), "disk gone") {
			t.Fatalf("Err: %v, want the store's failure", c.Err())
		}
	})
}

// deleteFails is a store whose Delete of inbound records fails while fail
// is set.
type deleteFails struct {
	*store.Memory
	fail atomic.Bool
}

func (s *deleteFails) Delete(key uint64) error {
	if s.fail.Load() && key&(1<<63) != 0 {
		return errors.New("disk gone")
	}
	return s.Memory.Delete(key)
}

// When the broker lost the session and the store cannot record that the
// inbound QoS 2 identifiers are gone, the connection closes before
// anything goes out, and the next one removes them: left in the store, a
// restart would take new messages under those identifiers for duplicates
// and swallow them (model finding F10).
func TestSessionLossTheStoreCannotRecord(t *testing.T) {
	sb := mqtttest.NewScriptedBroker(t)
	st := &deleteFails{Memory: store.NewMemory()}
	c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "loss-unrecorded", Store: st})
	sc := scripted(t, sb)
	send(t, sc, 4, &codec.Publish{Topic: "t", Payload: []byte("x"), QoS: 2, PacketID: 7})
	receive(t, c)
	nextOf[*codec.Pubrec](t, sc, 4)
	st.fail.Store(true)
	sc.Close()
	sc = scripted(t, sb) // Session Present 0: the delete fails
	if b, err := sc.ReadFrame(testCtx(t)); !errors.Is(err, mqtttest.ErrClosed) {
		t.Fatalf("the client sent % x (err %v), want the connection closed", b, err)
	}
	st.fail.Store(false)
	sc = scripted(t, sb)
	barrier(t, sc, 4)
	inbound := 0
	st.Load(func(k uint64, _ []byte) error {
		if k&(1<<63) != 0 {
			inbound++
		}
		return nil
	})
	if inbound != 0 {
		t.Fatalf("%d inbound records left in the store after the broker lost the session", inbound)
	}
}

// A graceful Disconnect to a broker slow to read: what it reported written
// (QoS 0 messages and the DISCONNECT) was still in the client's socket
// buffer when it closed the connection, and with bytes received and not
// read (messages the application had not taken) the operating system
// resets such a connection and discards what it has not sent. The broker
// saw the connection fail instead of the DISCONNECT (a broker publishes
// the Will then) and never got the messages. Now the client waits for the
// broker to close.
func TestDisconnectDeliversWhatItWrote(t *testing.T) {
	b := newManualBroker(t)
	saidGoodbye := make(chan struct{})
	dial := func(ctx context.Context, server string) (net.Conn, error) {
		var d net.Dialer
		nc, err := d.DialContext(ctx, "tcp", strings.TrimPrefix(server, "tcp://"))
		if err != nil {
			return nil, err
		}
		return &goodbyeSpy{TCPConn: nc.(*net.TCPConn), said: saidGoodbye}, nil
	}
	c := b.dial(mqtt.Config{ClientID: "goodbye", Dial: dial})

	// More QoS 1 messages than the application may fall behind by
	// (MaxPending, 1000): the client stops reading after 1000, and the
	// rest waits unread in its socket.
	var frames []byte
	for id := range uint16(1100) {
		frames, _ = (&codec.Publish{Topic: "in", Payload: []byte("x"), QoS: 1, PacketID: id + 1}).AppendTo(frames, 4)
	}
	if _, err := b.nc.Write(frames); err != nil {
		t.Fatal(err)
	}

	// 512 KiB of QoS 0 messages that the broker does not read yet: each is
	// reported written once it is in the socket's buffers.
	ctx := testCtx(t)
	const n = 8
	var results []<-chan error
	for range n {
		results = append(results, c.PublishAsync(ctx, mqtt.Message{Topic: "big", Payload: make([]byte, 64<<10)}))
	}
	for _, res := range results {
		if err := resultOf(t, res); err != nil {
			t.Fatal(err)
		}
	}
	disconnected := make(chan error, 1)
	go func() { disconnected <- c.Disconnect(ctx) }()
	select {
	case <-saidGoodbye:
	case <-ctx.Done():
		t.Fatal("the client wrote no DISCONNECT")
	}

	// Only now does the broker read: every message, the DISCONNECT, and
	// the end of the stream.
	got := 0
	for {
		p := b.read()
		if p.Type() == codec.TypeDisconnect {
			break
		}
		if pub, ok := p.(*codec.Publish); ok && pub.Topic == "big" {
			got++
		}
	}
	if got != n {
		t.Fatalf("the broker got %d of the %d messages Disconnect finished before its DISCONNECT", got, n)
	}
	b.nc.Close() // as a broker does on DISCONNECT
	if err := <-disconnected; err != nil {
		t.Fatalf("Disconnect: %v", err)
	}
}

// goodbyeSpy is a TCP connection that closes said once a write that ends
// with a DISCONNECT (E0 00) has returned.
type goodbyeSpy struct {
	*net.TCPConn
	said chan struct{}
	once sync.Once
}

func (g *goodbyeSpy) Write(b []byte) (int, error) {
	n, err := g.TCPConn.Write(b)
	if err == nil && bytes.HasSuffix(b, []byte{0xE0, 0x00}) {
		g.once.Do(func() { close(g.said) })
	}
	return n, err
}
