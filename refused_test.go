package mqtt_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/mqtttest"
	"github.com/robustmqtt/mqtt/store"
)

// expectAlone checks that the client sends nothing more on sc for a
// moment: its probe waits alone for the broker's answer. (A bounded wait
// for something that must not happen: a client that sent more has
// written it with the probe, or right after it.)
func expectAlone(t *testing.T, sc *mqtttest.ScriptedConn, v byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if b, err := sc.ReadFrame(ctx); err == nil {
		p, _, _ := codec.Decode(b, v, 0)
		t.Fatalf("the client sent %v while its probe waited for the broker's answer", p)
	}
}

// answer plays a broker that takes everything on sc: it acknowledges every
// PUBLISH and PUBREL until n QoS 1/2 flows are complete, and returns the
// topics of the PUBLISHes it read, in order.
func answer(t *testing.T, sc *mqtttest.ScriptedConn, v byte, n int) []string {
	t.Helper()
	var topics []string
	for done := 0; done < n; {
		switch p := next(t, sc, v).(type) {
		case *codec.Publish:
			topics = append(topics, p.Topic)
			switch p.QoS {
			case mqtt.AtLeastOnce:
				send(t, sc, v, &codec.Puback{PacketID: p.PacketID})
				done++
			case mqtt.ExactlyOnce:
				send(t, sc, v, &codec.Pubrec{PacketID: p.PacketID})
			}
		case *codec.Pubrel:
			send(t, sc, v, &codec.Pubcomp{PacketID: p.PacketID})
			done++
		}
	}
	return topics
}

// A broker that refuses a message by ending the connection (MQTT 3.1.1
// has no other way: RabbitMQ does so for a topic its permissions refuse,
// AWS IoT Core and Azure IoT Hub for QoS 2 and topics a client may not use; an MQTT 5 broker may say
// why in a DISCONNECT) would get it first on every reconnect, forever, and
// nothing behind it would ever go. After two such ends in a row with the
// same message first, the client sends it alone; the third time in a row
// that the broker ends the connection at once, the publish ends with
// ErrRefused, and the messages behind it go on. An end that is not about a
// message (an MQTT 5 server shutting down) does not count, and none of it
// looks like another client taking the session over.
func TestBrokerRefusesByClosing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		v      byte
		refuse func(t *testing.T, sc *mqtttest.ScriptedConn)
		// notRefusal, if set, ends the first probe's connection in a way
		// that does not count against the message, nor calls for a probe.
		notRefusal func(t *testing.T, sc *mqtttest.ScriptedConn)
	}{
		{name: "3.1.1 closes", v: 4, refuse: closeConn},
		{
			name: "5 says not authorized", v: 5,
			refuse: disconnectNotAuthorized,
			notRefusal: func(t *testing.T, sc *mqtttest.ScriptedConn) {
				send(t, sc, 5, &codec.Disconnect{ReasonCode: codec.ServerShuttingDown})
				sc.Close()
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sb := mqtttest.NewScriptedBroker(t)
			sb.SetConnack(frame(t, tc.v, &codec.Connack{SessionPresent: true}))
			st := store.NewMemory()
			c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "refused", Version: tc.v, Store: st})
			ctx := t.Context() // the publishes wait as long as the test runs
			sc := scripted(t, sb)
			poison := c.PublishAsync(ctx, mqtt.Message{Topic: "alarm/refused", Payload: []byte("x"), QoS: mqtt.ExactlyOnce})
			if p := nextOf[*codec.Publish](t, sc, tc.v); p.Topic != "alarm/refused" {
				t.Fatalf("first PUBLISH to %q", p.Topic)
			}
			good := c.PublishAsync(ctx, mqtt.Message{Topic: "alarm/taken", Payload: []byte("y"), QoS: mqtt.AtLeastOnce})
			nextOf[*codec.Publish](t, sc, tc.v) // pipelined behind it on the first connection
			tc.refuse(t, sc)
			// One end changes nothing: all that is owed goes at once. The
			// second end in a row with the same message first calls for
			// a probe.
			pipelined := func(when string) {
				sc = scripted(t, sb)
				for _, want := range []string{"alarm/refused", "alarm/taken"} {
					if p := nextOf[*codec.Publish](t, sc, tc.v); p.Topic != want || !p.Dup {
						t.Fatalf("%s: PUBLISH to %q DUP %v, want %s sent again", when, p.Topic, p.Dup, want)
					}
				}
				tc.refuse(t, sc) // sent with others: does not count
			}
			pipelined("after one end")

			probes := refuseAfter
			if tc.notRefusal != nil {
				probes++
			}
			for i := range probes {
				sc = scripted(t, sb)
				p := nextOf[*codec.Publish](t, sc, tc.v)
				if p.Topic != "alarm/refused" || !p.Dup {
					t.Fatalf("probe %d: PUBLISH to %q DUP %v, want the refused message sent again", i+1, p.Topic, p.Dup)
				}
				expectAlone(t, sc, tc.v)
				if i == 0 && tc.notRefusal != nil {
					// Not a refusal, and no reason to send alone on the
					// next connection, nor after the next end.
					tc.notRefusal(t, sc)
					pipelined("after a shutdown")
					pipelined("after a shutdown and one end")
					continue
				}
				tc.refuse(t, sc)
			}
			err := resultOf(t, poison)
			if !errors.Is(err, mqtt.ErrRefused) || !errors.Is(err, mqtt.ErrOutcomeUnknown) || !strings.Contains(err.Error(), "alarm/refused") {
				t.Fatalf("refused publish: %v, want ErrRefused and ErrOutcomeUnknown naming its topic", err)
			}
			if tc.v == 5 {
				var de *mqtt.DisconnectError
				if !errors.As(err, &de) || de.ReasonCode != codec.NotAuthorized {
					t.Fatalf("refused publish: %v, want it to wrap the broker's DISCONNECT (not authorized)", err)
				}
			}

			// The message behind it goes (alone first: the broker ended
			// the last connection with it in flight), the refused one
			// never again.
			onlyTakenGoes(t, sb, tc.v, good)
			if n := c.Stats().Connections.Lost.TakenOver; n != 0 {
				t.Fatalf("Stats Lost.TakenOver %d: a refusing broker was taken for another client with the ClientID", n)
			}
			c.Close()
			for _, r := range storeRecords(t, st) {
				if strings.Contains(r, "alarm/refused") {
					t.Fatalf("the refused message is still in the store: %s", r)
				}
			}
		})
	}
}

// closeConn is how an MQTT 3.1.1 broker refuses a packet: it closes the
// connection without a word.
func closeConn(_ *testing.T, sc *mqtttest.ScriptedConn) { sc.Close() }

// disconnectNotAuthorized is how an MQTT 5 broker may refuse a packet
// instead of answering it: DISCONNECT 0x87, then close.
func disconnectNotAuthorized(t *testing.T, sc *mqtttest.ScriptedConn) {
	send(t, sc, 5, &codec.Disconnect{ReasonCode: codec.NotAuthorized})
	sc.Close()
}

// onlyTakenGoes checks that the next connection of sb sends the PUBLISH to
// alarm/taken that waited behind a refused packet, and nothing else, and
// that its publish (good) succeeds once the broker answered it. It
// returns that connection.
func onlyTakenGoes(t *testing.T, sb *mqtttest.ScriptedBroker, v byte, good <-chan error) *mqtttest.ScriptedConn {
	t.Helper()
	sc := scripted(t, sb)
	if topics := answer(t, sc, v, 1); len(topics) != 1 || topics[0] != "alarm/taken" {
		t.Fatalf("after the refusal the client sent %v, want only alarm/taken", topics)
	}
	if err := resultOf(t, good); err != nil {
		t.Fatalf("the publish behind the refused packet: %v", err)
	}
	return sc
}

// refuseAfter is the client's: how many probes in a row the broker ends.
const refuseAfter = 3

// endTwice dials a client of sb with the session kept, publishes m/0,
// m/1 and m/2 at q, and ends the connection after reading them, twice:
// the second end in a row with m/0 first. It returns the results.
func endTwice(t *testing.T, sb *mqtttest.ScriptedBroker, id string, q mqtt.QoS) []<-chan error {
	t.Helper()
	sb.SetConnack(sessionPresent)
	c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: id})
	ctx := t.Context() // the publishes wait as long as the test runs
	sc := scripted(t, sb)
	var results []<-chan error
	for i := range 3 {
		results = append(results, c.PublishAsync(ctx, mqtt.Message{Topic: fmt.Sprintf("m/%d", i), QoS: q}))
		nextOf[*codec.Publish](t, sc, 4)
	}
	sc.Close() // the broker restarts, say: all go again at once
	sc = scripted(t, sb)
	for range 3 {
		nextOf[*codec.Publish](t, sc, 4)
	}
	sc.Close()
	return results
}

// After two ends in a row with the same message first, that message goes
// alone; once the broker has answered it (PUBACK, or for QoS 2 already
// PUBREC), the others follow pipelined, without waiting for each other.
func TestProbeAnsweredLetsTheRestGo(t *testing.T) {
	for _, q := range []mqtt.QoS{mqtt.AtLeastOnce, mqtt.ExactlyOnce} {
		t.Run(fmt.Sprintf("qos%d", q), func(t *testing.T) {
			t.Parallel()
			sb := mqtttest.NewScriptedBroker(t)
			results := endTwice(t, sb, "probe", q)
			sc := scripted(t, sb)
			probe := nextOf[*codec.Publish](t, sc, 4)
			if probe.Topic != "m/0" {
				t.Fatalf("probe to %q, want the first message owed", probe.Topic)
			}
			expectAlone(t, sc, 4)
			if q == mqtt.AtLeastOnce {
				send(t, sc, 4, &codec.Puback{PacketID: probe.PacketID})
			} else {
				send(t, sc, 4, &codec.Pubrec{PacketID: probe.PacketID})
				nextOf[*codec.Pubrel](t, sc, 4)
			}
			// Both others come now, before anything else is answered.
			for _, want := range []string{"m/1", "m/2"} {
				if p := nextOf[*codec.Publish](t, sc, 4); p.Topic != want {
					t.Fatalf("PUBLISH to %q, want %s", p.Topic, want)
				}
			}
			if q == mqtt.ExactlyOnce {
				send(t, sc, 4, &codec.Pubcomp{PacketID: probe.PacketID})
			}
			if err := resultOf(t, results[0]); err != nil {
				t.Fatalf("the probe: %v", err)
			}
		})
	}
}

// A broker that ends connections whatever they carry (restarting, or a
// link that drops) refuses nothing: from the second probe of a message on,
// the probe waits until its connection has been up a moment, and a
// connection that ends before then starts the message's count again.
// Without that, the third probe ended here would refuse the message.
func TestBrokerEndingEveryConnectionRefusesNothing(t *testing.T) {
	sb := mqtttest.NewScriptedBroker(t)
	sb.SetConnack(sessionPresent)
	c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "flaky"})
	ctx := t.Context() // the publishes wait as long as the test runs
	sc := scripted(t, sb)
	res := c.PublishAsync(ctx, mqtt.Message{Topic: "alarm/window", QoS: mqtt.AtLeastOnce})
	nextOf[*codec.Publish](t, sc, 4)
	sc.Close()
	sc = scripted(t, sb)
	nextOf[*codec.Publish](t, sc, 4) // all at once after one end
	sc.Close()
	for range refuseAfter {
		sc = scripted(t, sb)
		nextOf[*codec.Publish](t, sc, 4) // the probe, ended at once
		sc.Close()
		sc = scripted(t, sb) // ended before the probe could go
		sc.Close()
	}
	sc = scripted(t, sb)
	if topics := answer(t, sc, 4, 1); len(topics) != 1 || topics[0] != "alarm/window" {
		t.Fatalf("the client sent %v, want alarm/window", topics)
	}
	if err := resultOf(t, res); err != nil {
		t.Fatalf("publish: %v, want it delivered: the broker ended connections whatever they carried", err)
	}
}

// When the broker ends the connection again soon after it answered the
// probe, the culprit was among the messages that followed it: the next
// connection sends each message it owes alone, each once the one before
// was answered.
func TestEndSoonAfterAProbeSendsEachAlone(t *testing.T) {
	sb := mqtttest.NewScriptedBroker(t)
	results := endTwice(t, sb, "each", mqtt.AtLeastOnce)
	sc := scripted(t, sb)
	probe := nextOf[*codec.Publish](t, sc, 4)
	expectAlone(t, sc, 4)
	send(t, sc, 4, &codec.Puback{PacketID: probe.PacketID})
	nextOf[*codec.Publish](t, sc, 4) // m/1 and m/2, at once
	nextOf[*codec.Publish](t, sc, 4)
	sc.Close() // one of them, say

	sc = scripted(t, sb)
	for _, want := range []string{"m/1", "m/2"} {
		p := nextOf[*codec.Publish](t, sc, 4)
		if p.Topic != want {
			t.Fatalf("PUBLISH to %q, want %s", p.Topic, want)
		}
		expectAlone(t, sc, 4)
		send(t, sc, 4, &codec.Puback{PacketID: p.PacketID})
	}
	for i, ch := range results {
		if err := resultOf(t, ch); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
}

// refusingBroker plays a broker that ends the connection whenever it reads
// a PUBLISH to alarm/refused and acknowledges any other, on connection
// after connection, until it has acknowledged one or ended conns of them.
// It returns how many it ended.
func refusingBroker(t *testing.T, sb *mqtttest.ScriptedBroker, conns int) int {
	t.Helper()
	for ended := 0; ended < conns; {
		sc := scripted(t, sb)
		for {
			pub, ok := next(t, sc, 4).(*codec.Publish)
			if !ok {
				continue
			}
			if pub.Topic == "alarm/refused" {
				sc.Close()
				ended++
				break
			}
			send(t, sc, 4, &codec.Puback{PacketID: pub.PacketID})
			return ended
		}
	}
	return conns
}

// Over a slow link (NB-IoT, GPRS, a satellite hop: round trips of a second
// or more) the broker's close comes a whole round trip after the refused
// message left, later than the one second a fast link needs; counted only
// within that second, no close would ever count, and the refused message
// would hold back everything behind it forever. The window grows with the
// link's round trip as each connection measured it (its TCP handshake,
// here Config.Dial's, and CONNECT/CONNACK: the smaller). Here it is 1.2 s,
// and the client runs with its defaults.
func TestBrokerRefusesByClosingOverASlowLink(t *testing.T) {
	t.Parallel()
	sb := mqtttest.NewScriptedBroker(t)
	sb.SetConnack(frame(t, 4, &codec.Connack{SessionPresent: true}))
	p := mqtttest.NewProxy(t, sb.Addr())
	p.Latency(600 * time.Millisecond)
	c := dial(t, mqtt.Config{Servers: []string{p.URL()}, ClientID: "slow-link", Dial: p.Dial(1200 * time.Millisecond)})
	ctx := t.Context()
	poison := c.PublishAsync(ctx, mqtt.Message{Topic: "alarm/refused", Payload: []byte("x"), QoS: mqtt.AtLeastOnce})
	good := c.PublishAsync(ctx, mqtt.Message{Topic: "alarm/taken", Payload: []byte("y"), QoS: mqtt.AtLeastOnce})
	if ended := refusingBroker(t, sb, 8); ended == 8 {
		t.Fatalf("the broker ended %d connections on reading the refused message, and the client still sends it", ended)
	}
	if err := <-poison; !errors.Is(err, mqtt.ErrRefused) {
		t.Fatalf("the refused publish: %v, want ErrRefused", err)
	}
	if err := <-good; err != nil {
		t.Fatalf("the publish behind it: %v", err)
	}
}

// The window grows with the link's round trip, not with a broker slow to
// answer: on a fast link (a TCP handshake of no time) to a broker that
// takes 1.2 s to answer anything and to end a connection, an end that
// comes more than a second after the message is not its refusal. (Timed
// by CONNECT/CONNACK alone, the window would take the broker's slowness
// for the link's, and a broker that, overloaded, ends connections a few
// seconds after accepting them would have its messages refused.)
func TestSlowBrokerDoesNotWidenTheRefusalWindow(t *testing.T) {
	t.Parallel()
	sb := mqtttest.NewScriptedBroker(t)
	sb.SetConnack(frame(t, 4, &codec.Connack{SessionPresent: true}))
	p := mqtttest.NewProxy(t, sb.Addr())
	p.Latency(600 * time.Millisecond)
	c := dial(t, mqtt.Config{Servers: []string{p.URL()}, ClientID: "slow-broker", Dial: p.Dial(0)})
	poison := c.PublishAsync(t.Context(), mqtt.Message{Topic: "alarm/refused", Payload: []byte("x"), QoS: mqtt.AtLeastOnce})
	refusingBroker(t, sb, 6) // two ends, then four probes ended after 1.2 s
	select {
	case err := <-poison:
		t.Fatalf("the publish ended with %v after 6 ends, each 1.2 s after it", err)
	default:
	}
}

// A client whose application is behind stops reading the connection (flow
// control, MaxPending), so the broker's answer to a message may sit unread
// when the broker ends the connection: that end is no refusal. Here, on a
// slow satellite link (20 s to connect, 20 s for the CONNACK: a refusal
// window of 81 s) and in synctest's time, a broker sends more QoS 1
// messages than the client reads on for, acknowledges the client's
// PUBLISH behind them, and ends the connection; the client sees the end
// when it next writes (its PINGREQ). Six times: the message must not end
// as refused. (The model test found it: a QoS 2 message whose PUBREC the
// client never read was given up as refused, and its identifier, which the
// broker still held, reused.)
func TestUnreadAnswerIsNoRefusal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const delay = 20 * time.Second
		var greeting []byte
		greeting = append(greeting, frame(t, 4, &codec.Connack{SessionPresent: true})...)
		for i := range 6 {
			greeting = append(greeting, frame(t, 4, &codec.Publish{Topic: "in", QoS: 1, PacketID: uint16(100 + i), Payload: []byte("unread")})...)
		}
		acked := make(chan struct{}, 16)
		broker := func(nc net.Conn) {
			defer nc.Close()
			br := bufio.NewReader(nc)
			if _, err := codec.ReadPacket(br, 4, 0); err != nil {
				return
			}
			time.Sleep(delay) // the CONNACK's way back, on synctest's clock
			if _, err := nc.Write(greeting); err != nil {
				return
			}
			for {
				p, err := codec.ReadPacket(br, 4, 0)
				if err != nil {
					return
				}
				if pub, ok := p.(*codec.Publish); ok && pub.Topic == "alarm/taken" {
					// The PUBACK waits in the pipe for a reader that has
					// stopped; the end comes right after.
					go func() { _, _ = nc.Write(frame(t, 4, &codec.Puback{PacketID: pub.PacketID})) }()
					acked <- struct{}{}
					return
				}
			}
		}
		c, err := mqtt.Start(mqtt.Config{Servers: []string{"tcp://satellite:1883"}, ClientID: "behind", MaxPending: 1,
			Dial: func(ctx context.Context, _ string) (net.Conn, error) {
				time.Sleep(delay) // the TCP handshake
				client, server := net.Pipe()
				go broker(server)
				return client, nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		result := c.PublishAsync(t.Context(), mqtt.Message{Topic: "alarm/taken", Payload: []byte("x"), QoS: mqtt.AtLeastOnce})
		for i := range 6 {
			select {
			case <-acked:
			case err := <-result:
				t.Fatalf("after %d connections, the publish the broker acknowledged each time ended with %v", i, err)
			}
		}
	})
}
