package mqtt_test

// What a hostile or careless broker can make the client hold: the messages
// it buffers for the application, the answers it queues, the frames a
// topic alias pins; and the secrets the caller handed to Dial.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/conn"
	"github.com/robustmqtt/mqtt/mqtttest"
)

// Under MQTT 5 the client enforces the Receive Maximum it announced: a
// broker that sends far more unacknowledged QoS 1/2 messages is
// disconnected with 0x93 [MQTT-3.3.4-9]. A small overrun, which Mosquitto
// 2.0.11 commits, is tolerated (flow control holds it back), so that it
// does not cost a reconnect, again and again.
func TestReceiveMaximumEnforced(t *testing.T) {
	const rm, tolerated = 5, 2*5 + 20
	sb := mqtttest.NewScriptedBroker(t)
	// ManualAck, never acked: the messages stay unacknowledged although
	// the application takes them, so flow control does not stop reading.
	c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "recvmax", Version: 5, MaxPending: rm, ManualAck: true})
	sc := scripted(t, sb)
	publish := func(from, to int) {
		var ps []codec.Packet
		for i := from; i < to; i++ {
			ps = append(ps, &codec.Publish{Topic: "f", Payload: []byte{byte(i)}, QoS: 1, PacketID: uint16(i + 1)})
		}
		send(t, sc, 5, ps...)
	}
	publish(0, tolerated)
	for i := range tolerated {
		if m := receive(t, c); m.Payload[0] != byte(i) {
			t.Fatalf("message %d: %v", i, m.Payload)
		}
	}
	if s := c.Stats(); s.Connections.Succeeded != 1 || !s.Connected {
		t.Fatalf("an overrun to %d (Receive Maximum %d) cost the connection: %+v", tolerated, rm, s.Connections)
	}
	publish(tolerated, tolerated+1)
	d := nextOf[*codec.Disconnect](t, sc, 5)
	if d.ReasonCode != codec.ReceiveMaximumExceeded {
		t.Fatalf("DISCONNECT reason %v, want receive maximum exceeded", d.ReasonCode)
	}
	e := waitEvent(t, c, mqtt.ConnectionLost)
	var pe *conn.ProtocolError
	if !errors.As(e.Err, &pe) || pe.Code != codec.ReceiveMaximumExceeded {
		t.Fatalf("ConnectionLost: %v, want a *ProtocolError 0x93", e.Err)
	}
}

// stalls reports when n stops growing for a while: the writer feeding the
// client is blocked because the client stopped reading. It fails the test
// if done closes first (everything was taken in).
func stalls(t *testing.T, n *atomic.Int64, done <-chan struct{}, what string) int64 {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(wait)
	last, still := int64(-1), 0
	for {
		select {
		case <-done:
			t.Fatalf("%s: the client took in everything (%d) while the application read nothing", what, n.Load())
		case <-deadline:
			t.Fatalf("%s: no stall within the deadline", what)
		case <-tick.C:
			// A quiet writer for half a second: TCP's buffers are full.
			if cur := n.Load(); cur == last {
				if still++; still == 10 {
					return cur
				}
			} else {
				last, still = cur, 0
			}
		}
	}
}

// When the application is behind, the client stops reading: under MQTT
// 3.1.1 once MaxPending QoS 1/2 messages wait (a 3.1.1 broker cannot be
// told the limit), under both versions once MaxPendingBytes do. Memory
// stays bounded, the link is not declared dead meanwhile, and once the
// application reads again every message arrives, in order, on the same
// connection.
func TestSlowApplicationStopsTheReader(t *testing.T) {
	const size, n = 64 << 10, 2000 // 128 MiB in all
	cases := []struct {
		name string
		cfg  mqtt.Config
	}{
		{"3.1.1 by count", mqtt.Config{Version: 4, MaxPending: 5}},
		{"5 by bytes", mqtt.Config{Version: 5, MaxPendingBytes: 1 << 20}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sb := mqtttest.NewScriptedBroker(t)
			cfg := tc.cfg
			cfg.Servers, cfg.ClientID, cfg.KeepAlive = []string{sb.URL()}, "slow-app", time.Second
			c := dial(t, cfg)
			sc := scripted(t, sb)
			var written atomic.Int64
			done := make(chan struct{})
			go func() {
				defer close(done)
				payload := make([]byte, size)
				for i := range n {
					p := &codec.Publish{Topic: "flood", Payload: payload, QoS: 1, PacketID: uint16(i + 1)}
					b, _ := p.AppendTo(nil, cfg.Version)
					if sc.Write(b) != nil {
						return
					}
					written.Add(1)
				}
			}()
			start := time.Now()
			stalled := stalls(t, &written, done, tc.name)
			taken := c.Stats().BytesRead
			if taken > 32<<20 {
				t.Fatalf("the client read %d bytes while the application read nothing", taken)
			}
			t.Logf("the broker wrote %d messages (%d MiB) before TCP held it back; the client read %d KiB",
				stalled, stalled*size>>20, taken>>10)
			if d := time.Since(start); d < 2*time.Second {
				// Stalled past 1.5 keepalives: the link must survive it.
				<-time.After(2*time.Second - d) // the stall itself is under test
			}
			for i := range n {
				m := receive(t, c)
				if len(m.Payload) != size || m.Topic != "flood" {
					t.Fatalf("message %d: %s with %d bytes", i, m.Topic, len(m.Payload))
				}
			}
			<-done
			if s := c.Stats(); s.Connections.Succeeded != 1 {
				t.Fatalf("%d connections: the stall cost a reconnect", s.Connections.Succeeded)
			}
		})
	}
}

// A broker that floods what the client must answer (PUBREL for an unknown
// identifier gets PUBCOMP) and never reads cannot grow the client's send
// queue without bound: the reader stops while the queue is long.
func TestAnswersToAFloodAreThrottled(t *testing.T) {
	b := newManualBroker(t)
	c := b.dial(mqtt.Config{ClientID: "flood", KeepAlive: -1, Backoff: fastRetry})
	var chunk []byte
	for i := range 1 << 14 { // 64 KiB of PUBRELs
		chunk = append(chunk, 0x62, 0x02, byte(i>>8|0x80), byte(i))
	}
	var written atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 1024 { // 64 MiB, 16 million PUBRELs
			if _, err := b.nc.Write(chunk); err != nil {
				return
			}
			written.Add(int64(len(chunk)))
		}
	}()
	stalled := stalls(t, &written, done, "PUBREL flood")
	// Every PUBREL read gets a 4-byte PUBCOMP; those not yet written wait
	// in the send queue, at most about twice the reader's limit (the
	// queue and the batch the writer is stuck on).
	s := c.Stats()
	unanswered := (int64(s.BytesRead) - int64(s.BytesWritten)) / 4
	t.Logf("the broker wrote %d KiB of PUBREL before TCP held it back; %d answers wait in the client", stalled>>10, unanswered)
	if unanswered > 3*4096 {
		t.Fatalf("%d PUBCOMPs queued for a broker that reads nothing", unanswered)
	}
	c.Close()
	b.nc.Close()
	<-done
}

// The topic alias table keeps a copy of each topic, not a view into the
// frame that carried it: ten aliased 8 MiB messages dropped by the
// application leave nothing of them alive.
func TestTopicAliasDoesNotPinFrames(t *testing.T) {
	sb := mqtttest.NewScriptedBroker(t)
	c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "alias-pin", Version: 5, TopicAliasMaximum: 10})
	sc := scripted(t, sb)
	payload := make([]byte, 8<<20)
	for i := range 10 {
		alias := uint16(i + 1)
		send(t, sc, 5, &codec.Publish{Topic: fmt.Sprint("big/", i), Payload: payload, Properties: &codec.Properties{TopicAlias: &alias}})
		if m := receive(t, c); len(m.Payload) != len(payload) {
			t.Fatalf("message %d: %d bytes", i, len(m.Payload))
		}
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if ms.HeapAlloc > 40<<20 {
		t.Fatalf("%d MiB live after the application dropped ten 8 MiB messages (the test's own payload is 8 MiB)", ms.HeapAlloc>>20)
	}
	// The aliases still work.
	alias := uint16(3)
	send(t, sc, 5, &codec.Publish{Payload: []byte("x"), Properties: &codec.Properties{TopicAlias: &alias}})
	if m := receive(t, c); m.Topic != "big/2" {
		t.Fatalf("alias 3 resolved to %q", m.Topic)
	}
	runtime.KeepAlive(payload)
}

// The client keeps its own copy of the password and the will: a program
// that zeroes its buffers after Dial, as security guides advise, still
// reconnects with them.
func TestDialCopiesSecrets(t *testing.T) {
	sb := mqtttest.NewScriptedBroker(t)
	password := []byte("s3cret")
	will := &mqtt.Message{Topic: "will", Payload: []byte("gone"), Properties: &codec.Properties{CorrelationData: []byte("corr")}}
	c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "secrets", Version: 5, Username: "u", Password: password, Will: will})
	sc := scripted(t, sb)
	clear(password)
	clear(will.Payload)
	clear(will.Properties.CorrelationData)
	will.Topic = "changed"
	sc.Close()
	waitEvent(t, c, mqtt.ConnectionLost)
	sc = scripted(t, sb)
	p, _, err := codec.Decode(sc.Connect(), 5, 0)
	if err != nil {
		t.Fatal(err)
	}
	cp := p.(*codec.Connect)
	if !bytes.Equal(cp.Password, []byte("s3cret")) || cp.Will == nil || cp.Will.Topic != "will" ||
		!bytes.Equal(cp.Will.Payload, []byte("gone")) || !bytes.Equal(cp.Will.Properties.CorrelationData, []byte("corr")) {
		t.Fatalf("second CONNECT: password %q, will %+v: want the values given to Dial", cp.Password, cp.Will)
	}
}

// A PUBLISH beyond this client's limits (more than codec.MaxUserProperties
// user properties) is refused in its PUBACK (0x83), not by closing the
// connection: closed, a persistent session would get it again on every
// reconnect, for ever.
func TestPublishBeyondLimitsIsRefusedNotLooped(t *testing.T) {
	sb := mqtttest.NewScriptedBroker(t)
	c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "too-many-props", Version: 5})
	sc := scripted(t, sb)
	var props []byte
	for range codec.MaxUserProperties + 1 {
		props = append(props, 0x26, 0, 0, 0, 0) // an empty User Property
	}
	body := []byte{0, 1, 't', 0, 9} // topic "t", packet identifier 9
	body = binary.AppendUvarint(body, uint64(len(props)))
	body = append(append(body, props...), 'x')
	frame := binary.AppendUvarint([]byte{0x32}, uint64(len(body)))
	if err := sc.Write(append(frame, body...)); err != nil {
		t.Fatal(err)
	}
	ack := nextOf[*codec.Puback](t, sc, 5)
	if ack.PacketID != 9 || ack.ReasonCode != codec.ImplementationSpecificError {
		t.Fatalf("PUBACK %d reason %v, want 9 with implementation specific error", ack.PacketID, ack.ReasonCode)
	}
	send(t, sc, 5, &codec.Publish{Topic: "t", Payload: []byte("next"), QoS: 1, PacketID: 10})
	if m := receive(t, c); string(m.Payload) != "next" {
		t.Fatalf("got %q", m.Payload)
	}
	if s := c.Stats(); s.Connections.Succeeded != 1 || s.ReceivedDropped != 1 {
		t.Fatalf("Stats: %d connections, %d dropped; want 1 and 1", s.Connections.Succeeded, s.ReceivedDropped)
	}
}
