package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	pahomqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/robustmqtt/mqtt"
)

// The sink is a broker that routes nothing: it reads frames and answers
// each at once, so that the clients' own ceiling shows where mochi's is
// lower. MQTT 3.1.1 and 5, hand-rolled (no decoding into packets):
//
//	CONNECT      CONNACK, success; for MQTT 5 with no properties, so no
//	             Receive Maximum (the client may have 65535 in flight)
//	PUBLISH      QoS 1: PUBACK; QoS 2: PUBREC; QoS 0: nothing
//	PUBREL       PUBCOMP
//	SUBSCRIBE    SUBACK granting each filter the QoS asked for
//	UNSUBSCRIBE  UNSUBACK (MQTT 5: success for each filter)
//	PINGREQ      PINGRESP
//	anything else, DISCONNECT included: nothing (the client closes)
//
// Every answer is two to five bytes and owes nothing to the frame but its
// packet identifier, so one read of many frames is answered with one write
// (rawReadLoop). Nothing is ever delivered.
type sink struct {
	ln    net.Listener
	wg    sync.WaitGroup // the accept loop and one goroutine per connection
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// startSink listens on a random loopback port and serves until Close.
func startSink() (*sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &sink{ln: ln, conns: map[net.Conn]struct{}{}}
	s.wg.Go(s.accept)
	return s, nil
}

func (s *sink) Addr() string { return s.ln.Addr().String() }

func (s *sink) accept() {
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return // closed
		}
		s.mu.Lock()
		s.conns[nc] = struct{}{}
		s.mu.Unlock()
		s.wg.Go(func() {
			serveSink(nc)
			nc.Close()
			s.mu.Lock()
			delete(s.conns, nc)
			s.mu.Unlock()
		})
	}
}

// Close stops listening, closes every connection and waits for their
// goroutines.
func (s *sink) Close() error {
	err := s.ln.Close()
	s.mu.Lock()
	for nc := range s.conns {
		nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// serveSink answers one connection's frames until it fails or closes.
func serveSink(nc net.Conn) error {
	version := byte(4)
	bye := false
	return rawReadLoop(afterBye{nc, &bye}, func(h byte, body, out []byte) []byte {
		if h>>4 == 14 {
			bye = true // DISCONNECT: the connection ends after it, as brokers end it
		}
		return sinkAnswer(&version, h, body, out)
	})
}

// afterBye is a connection that reads as ended once *bye is set: the sink
// stops reading after the client's DISCONNECT, and its caller closes the
// connection. (A client that waits for the broker to close after its
// DISCONNECT would otherwise wait for nothing.)
type afterBye struct {
	net.Conn
	bye *bool
}

func (c afterBye) Read(b []byte) (int, error) {
	if *c.bye {
		return 0, io.EOF
	}
	return c.Conn.Read(b)
}

// sinkAnswer appends the answer to one frame (first byte h) to out. version
// is the connection's protocol level, set by its CONNECT. A frame too short
// for what the answer needs gets none.
func sinkAnswer(version *byte, h byte, body, out []byte) []byte {
	switch h >> 4 {
	case 1: // CONNECT: protocol name (2-byte length, then the name), level
		if len(body) >= 2 {
			if at := 2 + int(binary.BigEndian.Uint16(body)); at < len(body) {
				*version = body[at]
			}
		}
		if *version == 5 {
			return append(out, 0x20, 0x03, 0x00, 0x00, 0x00) // properties: none
		}
		return append(out, 0x20, 0x02, 0x00, 0x00)
	case 3: // PUBLISH: topic (2-byte length, then the name), packet identifier
		qos := (h >> 1) & 3
		if qos == 0 || len(body) < 2 {
			return out
		}
		at := 2 + int(binary.BigEndian.Uint16(body))
		if len(body) < at+2 {
			return out
		}
		if qos == 1 {
			return append(out, 0x40, 0x02, body[at], body[at+1]) // PUBACK
		}
		return append(out, 0x50, 0x02, body[at], body[at+1]) // PUBREC
	case 6: // PUBREL
		if len(body) < 2 {
			return out
		}
		return append(out, 0x70, 0x02, body[0], body[1]) // PUBCOMP
	case 8: // SUBSCRIBE
		return sinkSuback(*version, body, out)
	case 10: // UNSUBSCRIBE
		if len(body) < 2 {
			return out
		}
		if *version != 5 {
			return append(out, 0xB0, 0x02, body[0], body[1])
		}
		n, ok := countFilters(body, true, false)
		if !ok {
			return out
		}
		out = appendFixedHeader(out, 0xB0, 3+n)
		out = append(out, body[0], body[1], 0x00) // properties: none
		for range n {
			out = append(out, 0x00) // success
		}
		return out
	case 12: // PINGREQ
		return append(out, 0xD0, 0x00)
	}
	return out
}

// sinkSuback answers a SUBSCRIBE: each filter is granted the QoS it asked
// for.
func sinkSuback(version byte, body, out []byte) []byte {
	if len(body) < 2 {
		return out
	}
	n, ok := countFilters(body, version == 5, true)
	if !ok {
		return out
	}
	extra := 2
	if version == 5 {
		extra = 3
	}
	out = appendFixedHeader(out, 0x90, extra+n)
	out = append(out, body[0], body[1])
	if version == 5 {
		out = append(out, 0x00) // properties: none
	}
	i := skipProperties(body, 2, version == 5)
	for i < len(body) { // countFilters checked the layout
		i += 2 + int(binary.BigEndian.Uint16(body[i:]))
		out = append(out, body[i]&3) // the options byte: its QoS
		i++
	}
	return out
}

// countFilters counts the topic filters of a SUBSCRIBE (withOptions: each
// followed by an options byte) or UNSUBSCRIBE body, after the packet
// identifier and (v5) the properties; false when they do not fill the body
// exactly or there are none.
func countFilters(body []byte, v5, withOptions bool) (int, bool) {
	i := skipProperties(body, 2, v5)
	if i < 0 {
		return 0, false
	}
	opt := 0
	if withOptions {
		opt = 1
	}
	n := 0
	for i < len(body) {
		if i+2 > len(body) {
			return 0, false
		}
		i += 2 + int(binary.BigEndian.Uint16(body[i:])) + opt
		if i > len(body) {
			return 0, false
		}
		n++
	}
	return n, n > 0
}

// skipProperties returns the offset after the MQTT 5 properties that start
// at i (a variable byte integer length, then that many bytes), or i when
// v5 is false; -1 when they run past body.
func skipProperties(body []byte, i int, v5 bool) int {
	if !v5 {
		return i
	}
	n, shift := 0, 0
	for {
		if i >= len(body) || shift > 21 {
			return -1
		}
		c := body[i]
		i++
		n |= int(c&0x7f) << shift
		shift += 7
		if c&0x80 == 0 {
			break
		}
	}
	if i+n > len(body) {
		return -1
	}
	return i + n
}

// appendFixedHeader appends a first byte and a remaining length.
func appendFixedHeader(out []byte, first byte, n int) []byte {
	out = append(out, first)
	for {
		c := byte(n & 0x7f)
		n >>= 7
		if n > 0 {
			c |= 0x80
		}
		out = append(out, c)
		if n == 0 {
			return out
		}
	}
}

// TestSinkAnswers checks the sink's answer to each kind of frame.
func TestSinkAnswers(t *testing.T) {
	for _, c := range []struct {
		name    string
		version byte // the connection's, before the frame
		frame   []byte
		want    []byte
		after   byte // the connection's version after the frame
	}{
		{"CONNECT 3.1.1", 4, []byte{0x10, 0x0d, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 30, 0, 1, 'c'}, []byte{0x20, 2, 0, 0}, 4},
		{"CONNECT 5", 4, []byte{0x10, 0x0e, 0, 4, 'M', 'Q', 'T', 'T', 5, 2, 0, 30, 0, 0, 1, 'c'}, []byte{0x20, 3, 0, 0, 0}, 5},
		{"PUBLISH QoS 0", 4, []byte{0x30, 3, 0, 1, 't'}, nil, 4},
		{"PUBLISH QoS 1", 4, []byte{0x32, 6, 0, 1, 't', 0x12, 0x34, 'x'}, []byte{0x40, 2, 0x12, 0x34}, 4},
		{"PUBLISH QoS 2, MQTT 5", 5, []byte{0x34, 6, 0, 1, 't', 0x12, 0x34, 0}, []byte{0x50, 2, 0x12, 0x34}, 5},
		{"PUBREL", 4, []byte{0x62, 2, 0, 7}, []byte{0x70, 2, 0, 7}, 4},
		{"SUBSCRIBE 3.1.1", 4, []byte{0x82, 10, 0, 9, 0, 1, 'a', 1, 0, 1, 'b', 2}, []byte{0x90, 4, 0, 9, 1, 2}, 4},
		{"SUBSCRIBE 5", 5, []byte{0x82, 11, 0, 9, 0, 0, 1, 'a', 1, 0, 1, 'b', 0x22}, []byte{0x90, 5, 0, 9, 0, 1, 2}, 5},
		{"UNSUBSCRIBE 3.1.1", 4, []byte{0xA2, 5, 0, 3, 0, 1, 'a'}, []byte{0xB0, 2, 0, 3}, 4},
		{"UNSUBSCRIBE 5", 5, []byte{0xA2, 9, 0, 3, 0, 0, 1, 'a', 0, 1, 'b'}, []byte{0xB0, 5, 0, 3, 0, 0, 0}, 5},
		{"PINGREQ", 4, []byte{0xC0, 0}, []byte{0xD0, 0}, 4},
		{"DISCONNECT", 4, []byte{0xE0, 0}, nil, 4},
		{"PUBLISH QoS 1, cut short", 4, []byte{0x32, 3, 0, 1, 't'}, nil, 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := c.version
			var got []byte
			n := walkFrames(c.frame, func(h byte, body []byte) { got = sinkAnswer(&v, h, body, got) })
			if n != len(c.frame) {
				t.Fatalf("walkFrames took %d of %d bytes", n, len(c.frame))
			}
			if !bytes.Equal(got, c.want) || v != c.after {
				t.Fatalf("answer % x, version %d; want % x, version %d", got, v, c.want, c.after)
			}
		})
	}
}

// TestSinkClients runs every client's calls against the sink in its child
// process: connect, subscribe, publish at each QoS, unsubscribe.
func TestSinkClients(t *testing.T) {
	addr := brokerAddrOf(t, sinkBroker)
	const filter = "bench/sink/#"
	for _, kind := range []string{robust, robust5, pahoV3, pahoV5} {
		t.Run("client="+kind, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			var err error
			switch kind {
			case robust, robust5:
				var c *mqtt.Client
				if c, err = dialOurs(ctx, kind, addr, nil); err != nil {
					break
				}
				defer c.Close()
				err = c.Subscribe(ctx, mqtt.Subscription{Filter: filter, QoS: mqtt.ExactlyOnce}, mqtt.Subscription{Filter: "x", QoS: mqtt.AtMostOnce})
				for qos := range mqtt.QoS(3) {
					if err == nil {
						err = c.Publish(ctx, mqtt.Message{Topic: topic, Payload: payload, QoS: qos})
					}
				}
				if err == nil {
					err = c.Unsubscribe(ctx, filter, "x")
				}
				if err == nil {
					err = c.Disconnect(ctx)
				}
			case pahoV3:
				var c pahomqtt.Client
				if c, err = dialPahoV3(addr, clientID(kind), nil); err != nil {
					break
				}
				defer c.Disconnect(100)
				err = waitToken(c.Subscribe(filter, 2, func(pahomqtt.Client, pahomqtt.Message) {}))
				for qos := range byte(3) {
					if err == nil {
						err = waitToken(c.Publish(topic, qos, false, payload))
					}
				}
				if err == nil {
					err = waitToken(c.Unsubscribe(filter))
				}
			case pahoV5:
				var c *paho.Client
				if c, err = dialPahoV5(ctx, addr, nil); err != nil {
					break
				}
				defer closePahoV5(c)
				_, err = c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 2}, {Topic: "x", QoS: 1}}})
				for qos := range byte(3) {
					if err == nil {
						_, err = c.Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Payload: payload})
					}
				}
				if err == nil {
					_, err = c.Unsubscribe(ctx, &paho.Unsubscribe{Topics: []string{filter, "x"}})
				}
			}
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestLatencies checks the histogram's buckets and quantiles.
func TestLatencies(t *testing.T) {
	for _, v := range []uint64{0, 1, 127, 128, 129, 1000, 31_999, 1 << 20, 1<<40 + 12345, 1<<63 - 1} {
		got := latencyValue(latencyBucket(v))
		if d := math.Abs(got-float64(v)) / max(float64(v), 1); d > 1.0/64 {
			t.Errorf("%d is in a bucket of middle %.0f, %.2f%% off", v, got, 100*d)
		}
	}
	var l latencies
	if l.quantile(0.5) != 0 {
		t.Fatal("quantile of nothing is not 0")
	}
	for i := 1; i <= 1000; i++ {
		l.record(time.Duration(i) * time.Microsecond)
	}
	for _, c := range []struct{ q, want float64 }{{0.5, 500e3}, {0.99, 990e3}, {1, 1000e3}, {0, 1e3}} {
		if got := l.quantile(c.q); math.Abs(got-c.want)/c.want > 1.0/64 {
			t.Errorf("quantile(%v) = %.0f, want %.0f", c.q, got, c.want)
		}
	}
}
