// Package mqtttest injects the faults an MQTT client has to survive, for the
// tests of this module and of programs built on it. It has three tools:
//
//   - [Broker]: a real MQTT 3.1.1 and 5 broker (mochi-mqtt v2) embedded in
//     the test process on a loopback port. It can be stopped, restarted and
//     made to drop its clients, and it keeps its sessions meanwhile, so a
//     test can show that a persistent session gets what was published
//     while it was away.
//   - [Proxy]: a TCP proxy to put between a client and a broker, which cuts
//     every connection, black-holes the traffic (the half-dead link only a
//     keepalive can notice), delays it, chops it into small writes, or
//     refuses new connections.
//   - [ScriptedBroker]: a fake server that answers the CONNECT and then lets
//     the test read the client's frames and write any bytes it likes:
//     malformed frames, absurd lengths, protocol violations, silence. Like
//     a broker, it closes a connection after the client's DISCONNECT
//     (KeepOpenAfterDisconnect, to see what a client sends after it).
//
// The Broker speaks MQTT over TCP by default, and over TLS, WebSocket or
// both with [BrokerConfig].TLS and WebSocket; [CA] makes the certificates
// for it in the test, with no files:
//
//	ca := mqtttest.NewCA(t)
//	b := mqtttest.NewBrokerWith(t, mqtttest.BrokerConfig{
//		TLS:       &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "127.0.0.1")}},
//		WebSocket: true,
//	})
//	// b.URL() is "wss://127.0.0.1:port/mqtt"; trust ca.Pool() to dial it.
//
// Each has a constructor for tests, NewBroker(t), NewProxy(t, target) and
// NewScriptedBroker(t), which registers Close with t.Cleanup, so it is shut
// down even when the test fails midway; and one for programs, StartBroker,
// StartProxy and StartScriptedBroker, whose caller must Close. After Close no
// goroutine of theirs remains, so go.uber.org/goleak stays quiet. Everything
// listens on 127.0.0.1 only.
//
// # A test that restarts the broker
//
// With this module's client (package mqtt, github.com/robustmqtt/mqtt), a
// window alarm that must survive a broker restart:
//
//	func TestAlarmSurvivesRestart(t *testing.T) {
//		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
//		defer cancel()
//		b := mqtttest.NewBroker(t)
//
//		panel, err := mqtt.Dial(ctx, mqtt.Config{
//			Servers:  []string{b.URL()},
//			ClientID: "panel", // CleanStart false: a persistent session
//		})
//		if err != nil {
//			t.Fatal(err)
//		}
//		defer panel.Close()
//		err = panel.Subscribe(ctx, mqtt.Subscription{Filter: "alarm/#", QoS: 1})
//		if err != nil {
//			t.Fatal(err)
//		}
//
//		// The outage: the panel's connection drops and the port refuses it
//		// until Start; the session, with its subscription, stays.
//		if err := b.Stop(); err != nil {
//			t.Fatal(err)
//		}
//		if err := b.Start(); err != nil {
//			t.Fatal(err)
//		}
//		// Published while the panel may still be reconnecting: its session
//		// queues the message.
//		if err := b.Publish("alarm/window", []byte("broken"), 1, false); err != nil {
//			t.Fatal(err)
//		}
//
//		select {
//		case m := <-panel.Messages():
//			if string(m.Payload) != "broken" {
//				t.Errorf("got %q", m.Payload)
//			}
//		case <-ctx.Done():
//			t.Fatal("the alarm was lost across the restart")
//		}
//	}
//
// Put a Proxy between them, Servers: []string{p.URL()}, for the network's
// faults: p.Blackhole(true) with a short KeepAlive, then wait for the
// client's ConnectionLost event; p.Cut() to drop the link at a chosen moment;
// p.SplitWrites(1) to feed every frame to the client one byte at a time.
//
// # Faults, and what the client sees
//
//	Broker.Stop        connections end (EOF, no DISCONNECT); new ones are refused
//	Broker.Start       the same port accepts again, with the same sessions
//	Broker.Kick        connections end (EOF); reconnecting works at once
//	Proxy.Cut          connections end (EOF) on both sides
//	Proxy.Blackhole    nothing arrives and nothing fails: only a timeout notices
//	Proxy.Refuse       new connections are reset before any CONNACK
//	Proxy.Latency      every chunk arrives d later, in order
//	Proxy.SplitWrites  frames arrive in writes of at most n bytes
//
// # Waiting, not sleeping
//
// Tests should wait for events, not for time. Broker.WaitConnected,
// WaitDisconnected and WaitInflight, and more generally Broker.Wait with a
// condition, block until the broker has done something; Proxy.WaitStats
// until the proxy's counters say so. All take a context for the deadline.
// Stop, Restart and Kick return only once the broker has finished with the
// dropped connections, and Proxy.Cut once the connections are closed.
//
// # The protocol monitor
//
// Every connection a client makes to a Broker, a Proxy or a ScriptedBroker
// is checked against the client-side MUSTs of MQTT 3.1.1 and 5.0 by a
// [Monitor], which follows the connection both ways: what the client was
// told (the limits in the CONNACK, the PUBLISHes and PUBRECs of the server
// and the order they came in) as well as what it sent. A breach fails the
// test that made the endpoint (NewBroker, NewProxy, NewScriptedBroker),
// naming the normative statement, the connection and the last frames each
// way:
//
//	mqtttest: the client broke the MQTT protocol on the scripted broker's connection: [MQTT-3.14.4-1] the client sent PUBACK after DISCONNECT
//		requirement: after DISCONNECT the client sends nothing more on the connection
//		connection: scripted broker 127.0.0.1:40969, connection 1 from 127.0.0.1:52786 (client "c", MQTT 5.0)
//		last frames (→ client to server, ← server to client):
//			  → CONNECT v5 client="c" keepalive=30 clean (18 bytes)
//			  ← CONNACK code=0x00 (5 bytes)
//			  ← PUBLISH qos=1 topic="t" id=1 (9 bytes)
//			  → DISCONNECT (2 bytes)
//			! → PUBACK id=1 (4 bytes)
//
// It checks: CONNECT first and once, nothing after DISCONNECT, a packet
// within 1.5 times the Keep Alive (the server's, if its CONNACK has one);
// every packet within the server's Maximum Packet Size, every PUBLISH
// within its Maximum QoS and without RETAIN if it has no retained
// messages, no wildcard, shared or identified subscription it does not
// support; at most Receive Maximum QoS 1 and 2 PUBLISHes unacknowledged,
// no packet identifier reused while in flight, DUP only on a PUBLISH sent
// again and only on a new connection (MQTT 5.0), no PUBLISH after its
// PUBREL, PUBREL only after PUBREC; PUBACK and PUBREC only for a PUBLISH
// of the server and in the order those arrived, PUBCOMP only for a PUBREL,
// PUBRELs in the order the PUBRECs arrived, also those sent again on a new
// connection (where the server sent a PUBREC more than once, as brokers do
// when a session resumes, any copy may be the one a PUBREL answers: the
// monitor sees what the server wrote, not what the client read before a
// connection died or a restart lost it); Topic Aliases within the server's maximum and set before
// use, no Subscription Identifier in a PUBLISH, no AUTH without an
// Authentication Method; well-formed packets (decoded with package codec:
// UTF-8, reserved flags, topic names and filters, ...) with reason codes a
// client may send. Its Violation names the statement of the connection's
// protocol version.
//
// A test whose client breaks the protocol on purpose calls
// AllowViolations on the endpoint. Violations returns what the monitor
// found, also on an endpoint made by StartBroker, StartProxy or
// StartScriptedBroker, which has no test to fail: that is the only way to
// see them there.
//
// Where it looks: the Broker checks each connection under its TLS and
// WebSocket layers, on the MQTT bytes, and sees the frames it holds back
// for a client's Receive Maximum when they go out; the ScriptedBroker
// sees its CONNACK and whatever the test writes. The Proxy sees the bytes
// the client sends as they arrive and those it receives as they leave the
// proxy, after Latency and SplitWrites. A connection through a Proxy is
// checked by the Proxy alone, never by the endpoint behind it, which sees
// the bytes after the proxy's faults; one the Proxy cannot read as MQTT
// (TLS, WebSocket) is left to the endpoint behind it. When Blackhole drops
// bytes on their way to the client, the rules that depend on what the
// client received are off for the rest of that connection. The Keep Alive
// rule counts only the time the endpoint spent waiting for the client,
// from the CONNACK on, and excuses a client whose last PINGREQ the server
// did not answer within half a Keep Alive: a busy endpoint or a
// black-holed link does not make a client look silent.
//
// # How mochi behaves
//
// The Broker is mochi-mqtt v2.7.9, with every client allowed everything and
// its log discarded (see [BrokerConfig] to see it or to change mochi's
// options). That version has bugs that would make a correct client look
// wrong under load or across reconnections. The Broker works around them,
// with mochi's hooks:
//
//   - mochi loses the messages routed to a persistent session while its
//     client reconnects, and may send some before the CONNACK. The Broker
//     holds routing back while the session changes hands.
//   - mochi resends a session's queued messages in an arbitrary order
//     within each second. The Broker resends them in the order they were
//     queued.
//   - mochi's flow control towards an MQTT 5 client that sets a Receive
//     Maximum stalls for good after twice that many messages are
//     outstanding (the rest wait in the session until the client
//     reconnects), and can deadlock. The Broker does the flow control
//     itself: it holds back the messages beyond the client's Receive
//     Maximum and sends each, in order, once a PUBACK or PUBCOMP frees a
//     place.
//   - When mochi fails to write the PUBACK or PUBREC of a client's message
//     it does not route the message, yet sends the acknowledgement when the
//     session resumes. The Broker drops it, so the client sends the message
//     again.
//   - mochi answers a QoS 2 PUBLISH sent again (DUP) while its PUBREL is
//     awaited with "packet identifier in use". The Broker makes it a
//     success, as MQTT requires.
//
// Worth knowing when writing assertions, as mochi does it still:
//
//   - mochi sends PUBACK before it routes the message to subscribers. A test
//     that publishes and then looks at a subscriber's session should wait for
//     it with WaitInflight. Stop, Restart and Kick wait for the routing
//     themselves.
//   - A resumed session gets its stored messages right after the CONNACK
//     (an MQTT 5 client as many as its Receive Maximum allows), all with
//     DUP set, even those never sent before; then the new ones.
//     A message acknowledged just before the connection dropped may come
//     again: QoS 1 allows duplicates.
//   - A session holds at most 8192 unacknowledged messages, and a
//     connection at most 8192 unwritten ones; beyond that mochi drops
//     messages, QoS 1 and 2 included (Server().Info.InflightDropped and
//     MessagesDropped count them).
//   - When a client connects with the identifier of a connected one, mochi
//     sends the old connection a DISCONNECT (session taken over), even over
//     MQTT 3.1.1, where a server never sends DISCONNECT. The Broker never
//     uses mochi's own shutdown, which does the same to every client.
//   - mochi closes a connection that has been silent for 1.5 times its
//     keepalive, in whole seconds: a keepalive of 1 s gives 1 s.
//   - An MQTT 3.1.1 session with clean session false never expires; an
//     MQTT 5 session ends with its connection unless the CONNECT set a
//     session expiry interval.
//   - Sessions live in memory: they survive Stop and Start, not Close.
package mqtttest
