package mqtttest_test

import (
	"bufio"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/robustmqtt/mqtt/mqtttest"
)

// publishInBackground publishes the payloads "0" to "n-1" on topic at QoS 1
// from pub, one after the other, each after the PUBACK of the one before.
// The returned function waits until all are acknowledged. If the test ends
// first, the publisher is stopped and waited for.
func publishInBackground(t *testing.T, pub *rawClient, topic string, n int) (wait func()) {
	t.Helper()
	frames := make([][]byte, n)
	for i := range frames {
		frames[i] = encode(t, packets.Packet{
			FixedHeader:     packets.FixedHeader{Type: packets.Publish, Qos: 1},
			ProtocolVersion: pub.version,
			TopicName:       topic,
			Payload:         []byte(strconv.Itoa(i)),
			PacketID:        uint16(i%65535 + 1),
		})
	}
	var wg sync.WaitGroup
	var stopped atomic.Bool
	wg.Go(func() {
		for _, frame := range frames {
			if _, err := pub.conn.Write(frame); err != nil {
				if !stopped.Load() {
					t.Errorf("publish: %v", err)
				}
				return
			}
			if ack, err := pub.read(ioTimeout); err != nil || ack.FixedHeader.Type != packets.Puback {
				if !stopped.Load() {
					t.Errorf("PUBACK expected, got type %d, error %v", ack.FixedHeader.Type, err)
				}
				return
			}
		}
	})
	t.Cleanup(func() {
		stopped.Store(true)
		_ = pub.conn.Close() // ends the publisher early if the test failed
		wg.Wait()
	})
	return wg.Wait
}

// connectReceiveMaximum connects an MQTT 5 client that announces a Receive
// Maximum, with a persistent session if persistent.
func connectReceiveMaximum(t *testing.T, addr, clientID string, persistent bool, max uint16) *rawClient {
	t.Helper()
	c := dialRaw(t, addr, 5)
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Connect},
		Connect:     packets.ConnectParams{ProtocolName: []byte("MQTT"), ClientIdentifier: clientID, Clean: !persistent},
		Properties:  packets.Properties{ReceiveMaximum: max},
	}
	if persistent {
		pk.Properties.SessionExpiryInterval = 300
		pk.Properties.SessionExpiryIntervalFlag = true
	}
	c.send(pk)
	if ack := c.recv(); ack.FixedHeader.Type != packets.Connack || ack.ReasonCode != 0 {
		t.Fatalf("CONNACK expected, got type %d reason %#x", ack.FixedHeader.Type, ack.ReasonCode)
	}
	return c
}

// mochi v2.7.9's flow control towards an MQTT 5 client that sets a Receive
// Maximum stalls after twice that many messages, and can deadlock under load
// (see brokerHook.OnConnect). The Broker turns it off, so this load flows.
func TestBrokerV5ReceiveMaximumLoad(t *testing.T) {
	const n = 1000
	b := mqtttest.NewBroker(t)
	sub := connectReceiveMaximum(t, b.Addr(), "sub", false, 5)
	sub.subscribe("load", 1)
	pub, _ := connect(t, b.Addr(), 5, "pub", false)
	published := publishInBackground(t, pub, "load", n)
	deadline := time.Now().Add(ioTimeout)
	for i := range n {
		pk, err := sub.read(time.Until(deadline))
		if err != nil {
			t.Fatalf("message %d of %d: %v (mochi's flow control stalled?)", i, n, err)
		}
		sub.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID})
	}
	published()
}

// A persistent subscriber that keeps reconnecting while messages stream in
// gets every one of them, in order: mochi alone loses the messages routed
// during a session takeover and mixes up the order of those it resends
// (see brokerHook.OnSessionEstablish).
func TestBrokerReconnectUnderLoad(t *testing.T) {
	forVersions(t, func(t *testing.T, version byte) {
		const n, perConnection = 1500, 50
		b := mqtttest.NewBroker(t)
		leave(t, b, version, "sub", "load")
		pub, _ := connect(t, b.Addr(), version, "pub", false)
		published := publishInBackground(t, pub, "load", n)

		seen := make([]bool, n)
		received, last, reconnects := 0, -1, 0
		deadline := time.Now().Add(ioTimeout)
		for received < n {
			var sub *rawClient
			if version == 5 {
				sub = connectReceiveMaximum(t, b.Addr(), "sub", true, 10)
			} else {
				sub, _ = connect(t, b.Addr(), version, "sub", true)
			}
			reconnects++
			// Count only new messages: a connection that only saw copies
			// of what it had acknowledged must not end before mochi has
			// taken the acknowledgements in.
			for k := 0; k < perConnection && received < n; {
				pk, err := sub.read(time.Until(deadline))
				if err != nil {
					t.Fatalf("%d of %d messages received, then: %v", received, n, err)
				}
				if pk.FixedHeader.Type != packets.Publish {
					t.Fatalf("PUBLISH expected, got type %d", pk.FixedHeader.Type)
				}
				i, err := strconv.Atoi(string(pk.Payload))
				if err != nil || i < 0 || i >= n {
					t.Fatalf("unexpected payload %q", pk.Payload)
				}
				if !seen[i] { // QoS 1 may repeat a message; its first copy must be in order
					if i < last {
						t.Errorf("message %d arrived after %d", i, last)
					}
					seen[i], last = true, max(last, i)
					received++
					k++
				}
				sub.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID})
			}
			_ = sub.conn.Close() // gone without DISCONNECT, messages in flight
		}
		published()
		t.Logf("%d messages over %d connections", n, reconnects)
	})
}

// Restarts while messages stream from a publisher that resends what was not
// acknowledged to a persistent subscriber: nothing is lost, and the first
// copies arrive in order.
func TestBrokerRestartUnderLoad(t *testing.T) {
	const n, restarts = 1200, 3
	b := mqtttest.NewBroker(t)
	leave(t, b, 4, "sub", "load")

	// After each restart the publisher, told so on restarted, reconnects,
	// says so on resumed, and sends again, with DUP, the message it had no
	// PUBACK for. It skips PUBACKs for other packet identifiers: mochi
	// resends a session's PUBACKs that it failed to write, after the
	// CONNACK, though the client will publish the message again.
	restarted, resumed, finished := make(chan struct{}), make(chan struct{}), make(chan struct{})
	pub, _ := connect(t, b.Addr(), 4, "pub", true)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(finished)
		dup := false
		for i := 0; i < n; {
			id := uint16(i%65535 + 1)
			frame := encode(t, packets.Packet{
				FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Dup: dup},
				TopicName:   "load",
				Payload:     []byte(strconv.Itoa(i)),
				PacketID:    id,
			})
			_, err := pub.conn.Write(frame)
			for err == nil {
				var ack packets.Packet
				if ack, err = pub.read(ioTimeout); err == nil && ack.FixedHeader.Type == packets.Puback && ack.PacketID == id {
					break
				}
			}
			if err == nil {
				i, dup = i+1, false
				continue
			}
			select { // the broker went away
			case <-restarted:
			case <-t.Context().Done():
				return
			}
			_ = pub.conn.Close()
			if pub, err = reconnect(t, b.Addr(), "pub"); err != nil {
				t.Errorf("publisher: %v", err)
				return
			}
			dup = true
			resumed <- struct{}{}
		}
	})
	t.Cleanup(wg.Wait)

	seen := make([]bool, n)
	received, last, done := 0, -1, 0
	sub, _ := connect(t, b.Addr(), 4, "sub", true)
	for received < n {
		if done < restarts && received >= (done+1)*n/(restarts+1) {
			if err := b.Restart(); err != nil {
				t.Fatal(err)
			}
			done++
			select { // one restart at a time for the publisher
			case restarted <- struct{}{}:
				<-resumed
			case <-finished:
			}
			sub, _ = connect(t, b.Addr(), 4, "sub", true)
		}
		pk, err := sub.read(ioTimeout)
		if err != nil {
			missing := slices.Index(seen, false)
			t.Fatalf("%d of %d received (first missing %d, last %d), %d restarts, then: %v; session holds %d, connected %q",
				received, n, missing, last, done, err, b.Inflight("sub"), b.Connected())
		}
		if pk.FixedHeader.Type != packets.Publish {
			t.Fatalf("PUBLISH expected, got type %d", pk.FixedHeader.Type)
		}
		i, err := strconv.Atoi(string(pk.Payload))
		if err != nil || i < 0 || i >= n {
			t.Fatalf("unexpected payload %q", pk.Payload)
		}
		if !seen[i] {
			if i < last {
				t.Errorf("message %d arrived after %d", i, last)
			}
			seen[i], last = true, max(last, i)
			received++
		}
		sub.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID})
	}
	t.Logf("%d messages, %d restarts", n, done)
}

// reconnect opens a persistent MQTT 3.1.1 session for clientID, from a
// goroutine other than the test's: it reports errors instead of failing.
func reconnect(t *testing.T, addr, clientID string) (*rawClient, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = conn.Close() })
	c := &rawClient{t: t, conn: conn, r: bufio.NewReader(conn), version: 4}
	connect := encode(t, packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: 4,
		Connect:         packets.ConnectParams{ProtocolName: []byte("MQTT"), ClientIdentifier: clientID},
	})
	if _, err := conn.Write(connect); err != nil {
		return nil, err
	}
	ack, err := c.read(ioTimeout)
	if err != nil || ack.FixedHeader.Type != packets.Connack || ack.ReasonCode != 0 {
		return nil, fmt.Errorf("no CONNACK: type %d reason %#x, error %v", ack.FixedHeader.Type, ack.ReasonCode, err)
	}
	return c, nil
}
