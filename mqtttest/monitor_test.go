package mqtttest_test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"

	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/mqtttest"
)

// badClient is a hand-written MQTT client for the monitor's tests: it
// writes the frames a test gives it, valid or not, and reads what comes
// back with codec, with no protocol logic of its own.
type badClient struct {
	t       *testing.T
	conn    net.Conn
	r       *bufio.Reader
	version byte
}

func dialBad(t *testing.T, addr string, version byte) *badClient {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &badClient{t: t, conn: conn, r: bufio.NewReader(conn), version: version}
}

func (c *badClient) write(frames ...[]byte) {
	c.t.Helper()
	for _, f := range frames {
		if _, err := c.conn.Write(f); err != nil {
			c.t.Fatalf("write % x: %v", f, err)
		}
	}
}

// read returns the next packet from the server, or fails the test.
func (c *badClient) read() codec.Packet {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(ioTimeout))
	p, err := codec.ReadPacket(c.r, c.version, 0)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return p
}

// readUntil reads packets until one of type want, and returns it.
func (c *badClient) readUntil(want codec.PacketType) codec.Packet {
	c.t.Helper()
	for {
		if p := c.read(); p.Type() == want {
			return p
		}
	}
}

// sync sends PINGREQ and reads until the PINGRESP: the server, and so the
// monitor on its side, has read everything the client sent before.
func (c *badClient) sync() {
	c.t.Helper()
	c.write([]byte{0xC0, 0x00})
	c.readUntil(codec.TypePingresp)
}

// syncOrEnd is sync for a server that may close the connection instead.
func (c *badClient) syncOrEnd() {
	c.t.Helper()
	c.write([]byte{0xC0, 0x00})
	_ = c.conn.SetReadDeadline(time.Now().Add(ioTimeout))
	for {
		p, err := codec.ReadPacket(c.r, c.version, 0)
		if err != nil && isTimeout(err) {
			c.t.Fatalf("neither PINGRESP nor the end of the connection: %v", err)
		}
		if err != nil || p.Type() == codec.TypePingresp {
			return
		}
	}
}

// silent waits for d while sending nothing, as a client does that blocks
// on a read and forgets to ping: the misbehaviour of the Keep Alive tests.
func (c *badClient) silent(d time.Duration) {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(d))
	if _, err := c.r.Peek(1); !isTimeout(err) {
		c.t.Fatalf("silent for %s: read returned %v, want a timeout", d, err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// frames builds frames of one protocol version, with codec where the frame
// is valid; the invalid ones are written out byte by byte in the cases.
type frames struct {
	t testing.TB
	v byte
}

func (f frames) enc(p codec.Packet) []byte {
	f.t.Helper()
	b, err := p.AppendTo(nil, f.v)
	if err != nil {
		f.t.Fatalf("encode %s: %v", p.Type(), err)
	}
	return b
}

func (f frames) connect(id string, keepAlive uint16, clean bool) []byte {
	return f.enc(&codec.Connect{Version: f.v, ClientID: id, KeepAlive: keepAlive, CleanStart: clean})
}

func (f frames) connack(sessionPresent bool, p *codec.Properties) []byte {
	return f.enc(&codec.Connack{SessionPresent: sessionPresent, Properties: p})
}

func (f frames) publish(qos codec.QoS, id uint16, dup bool) []byte {
	return f.enc(&codec.Publish{Topic: "t", Payload: []byte("m"), QoS: qos, PacketID: id, Dup: dup})
}

func (f frames) puback(id uint16) []byte  { return f.enc(&codec.Puback{PacketID: id}) }
func (f frames) pubrec(id uint16) []byte  { return f.enc(&codec.Pubrec{PacketID: id}) }
func (f frames) pubrel(id uint16) []byte  { return f.enc(&codec.Pubrel{PacketID: id}) }
func (f frames) pubcomp(id uint16) []byte { return f.enc(&codec.Pubcomp{PacketID: id}) }

func (f frames) subscribe(id uint16, filter string) []byte {
	return f.enc(&codec.Subscribe{PacketID: id, Subscriptions: []codec.Subscription{{Filter: filter, QoS: 1}}})
}

var (
	pingreq    = []byte{0xC0, 0x00}
	disconnect = []byte{0xE0, 0x00}
)

func ptr[T any](v T) *T { return &v }

// step is one frame of a script: written by the client, or by the scripted
// broker to the client.
type step struct {
	client, server []byte
}

// scriptCase is a hand-written client's conversation with the scripted
// broker and the rule the monitor should find broken, "" for none.
type scriptCase struct {
	name    string
	version byte
	connack func(f frames) []byte // nil: the scripted broker's default
	first   []byte                // the client's first frame; nil: a CONNECT
	script  func(f frames) []step
	want    string
}

// runScript plays a case against a scripted broker and returns what its
// monitor found. The broker is closed first, so that every connection has
// ended and been checked.
func runScript(t *testing.T, tc scriptCase) []mqtttest.Violation {
	t.Helper()
	s := mqtttest.NewScriptedBroker(t)
	s.AllowViolations()
	s.KeepOpenAfterDisconnect(true) // so that it reads what a case sends after DISCONNECT
	f := frames{t, tc.version}
	if tc.connack != nil {
		s.SetConnack(tc.connack(f))
	}
	c := dialBad(t, s.Addr(), tc.version)
	first := tc.first
	if first == nil {
		first = f.connect("bad", 0, true)
	}
	c.write(first)
	if first[0] != 0x10 {
		// The scripted broker closes the connection once it has read it.
		_ = c.conn.SetReadDeadline(time.Now().Add(ioTimeout))
		_, _ = io.Copy(io.Discard, c.conn)
	} else {
		sc := accept(t, s)
		var steps []step
		if tc.script != nil {
			steps = tc.script(f)
		}
		for _, st := range steps {
			if st.client != nil {
				c.write(st.client)
				// Once the broker has it, so has its monitor. A frame that
				// ends the connection ends the script.
				if _, err := sc.ReadFrame(testCtx(t)); err != nil {
					break
				}
			}
			if st.server != nil {
				if err := sc.Write(st.server); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	_ = c.conn.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return s.Violations()
}

// expectRule fails the test unless found is exactly one violation of rule
// want, or none if want is "".
func expectRule(t *testing.T, found []mqtttest.Violation, want string) {
	t.Helper()
	switch {
	case want == "" && len(found) == 0:
	case want == "":
		t.Errorf("want no violation, got %d:\n%s", len(found), violationList(found))
	case len(found) != 1 || found[0].Rule != want:
		t.Errorf("want one violation of [%s], got %d:\n%s", want, len(found), violationList(found))
	default:
		v := found[0]
		if v.Requirement == "" || v.Detail == "" || v.Conn == "" || len(v.Frames) == 0 {
			t.Errorf("violation incomplete: %#v", v)
		}
	}
}

func violationList(vs []mqtttest.Violation) string {
	var b strings.Builder
	for _, v := range vs {
		b.WriteString(v.String() + "\n")
	}
	return b.String()
}

func cli(frame []byte) step { return step{client: frame} }
func srv(frame []byte) step { return step{server: frame} }

// TestMonitorRules has a hand-written client break each rule the monitor
// checks, on a scripted broker, and expects the monitor to name it; and
// has it come close without breaking it, where a monitor could err.
func TestMonitorRules(t *testing.T) {
	v5 := func(p *codec.Properties) func(f frames) []byte {
		return func(f frames) []byte { return f.connack(false, p) }
	}
	sessionPresent := func(f frames) []byte { return f.connack(true, nil) }
	tests := []scriptCase{
		// CONNECT first and once; nothing after DISCONNECT.
		{name: "PINGREQ first", version: 4, first: pingreq, want: "MQTT-3.1.0-1"},
		{name: "second CONNECT", version: 5, script: func(f frames) []step {
			return []step{cli(f.connect("bad", 0, true))}
		}, want: "MQTT-3.1.0-2"},
		{name: "PINGREQ after DISCONNECT v5", version: 5, script: func(f frames) []step {
			return []step{cli(disconnect), cli(pingreq)}
		}, want: "MQTT-3.14.4-1"},
		{name: "PUBACK after DISCONNECT v3.1.1", version: 4, script: func(f frames) []step {
			return []step{srv(f.publish(1, 3, false)), cli(disconnect), cli(f.puback(3))}
		}, want: "MQTT-3.14.4-2"},

		// The server's limits in its CONNACK.
		{name: "over Maximum Packet Size", version: 5, connack: v5(&codec.Properties{MaximumPacketSize: ptr[uint32](15)}),
			script: func(f frames) []step {
				return []step{cli(f.enc(&codec.Publish{Topic: "t", Payload: make([]byte, 10)})), cli(pingreq)} // 16 bytes
			}, want: "MQTT-3.2.2-15"},
		{name: "within Maximum Packet Size", version: 5, connack: v5(&codec.Properties{MaximumPacketSize: ptr[uint32](16)}),
			script: func(f frames) []step {
				return []step{cli(f.enc(&codec.Publish{Topic: "t", Payload: make([]byte, 10)}))}
			}},
		{name: "over Maximum QoS", version: 5, connack: v5(&codec.Properties{MaximumQoS: ptr[byte](0)}),
			script: func(f frames) []step { return []step{cli(f.publish(1, 1, false))} }, want: "MQTT-3.2.2-11"},
		{name: "retain unavailable", version: 5, connack: v5(&codec.Properties{RetainAvailable: ptr(false)}),
			script: func(f frames) []step {
				return []step{cli(f.enc(&codec.Publish{Topic: "t", Retain: true}))}
			}, want: "MQTT-3.2.2-14"},
		{name: "wildcard subscription unavailable", version: 5, connack: v5(&codec.Properties{WildcardSubAvailable: ptr(false)}),
			script: func(f frames) []step { return []step{cli(f.subscribe(1, "a/+/b"))} }, want: "MQTT-5.0 §3.2.2.3.11"},
		{name: "shared subscription unavailable", version: 5, connack: v5(&codec.Properties{SharedSubAvailable: ptr(false)}),
			script: func(f frames) []step { return []step{cli(f.subscribe(1, "$share/g/a"))} }, want: "MQTT-5.0 §3.2.2.3.13"},
		{name: "shared without wildcard allowed", version: 5, connack: v5(&codec.Properties{WildcardSubAvailable: ptr(false)}),
			script: func(f frames) []step { return []step{cli(f.subscribe(1, "$share/g/a"))} }},
		{name: "subscription identifiers unavailable", version: 5, connack: v5(&codec.Properties{SubIDAvailable: ptr(false)}),
			script: func(f frames) []step {
				return []step{cli(f.enc(&codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: "a"}},
					Properties: &codec.Properties{SubscriptionIdentifier: []uint32{7}}}))}
			}, want: "MQTT-5.0 §3.2.2.3.12"},

		// Flow control and packet identifiers.
		{name: "over Receive Maximum", version: 5, connack: v5(&codec.Properties{ReceiveMaximum: ptr[uint16](1)}),
			script: func(f frames) []step { return []step{cli(f.publish(1, 1, false)), cli(f.publish(2, 2, false))} },
			want:   "MQTT-3.3.4-7"},
		{name: "within Receive Maximum", version: 5, connack: v5(&codec.Properties{ReceiveMaximum: ptr[uint16](1)}),
			script: func(f frames) []step {
				return []step{cli(f.publish(2, 1, false)), srv(f.pubrec(1)), cli(f.pubrel(1)), srv(f.pubcomp(1)), cli(f.publish(1, 2, false))}
			}},
		{name: "PUBREC failure frees the place", version: 5, connack: v5(&codec.Properties{ReceiveMaximum: ptr[uint16](1)}),
			script: func(f frames) []step {
				return []step{cli(f.publish(2, 1, false)), srv(f.enc(&codec.Pubrec{PacketID: 1, ReasonCode: codec.QuotaExceeded})), cli(f.publish(1, 2, false))}
			}},
		{name: "SUBSCRIBE reuses a PUBLISH identifier", version: 5, script: func(f frames) []step {
			return []step{cli(f.publish(1, 1, false)), cli(f.subscribe(1, "a"))}
		}, want: "MQTT-2.2.1-3"},
		{name: "new PUBLISH reuses an identifier v3.1.1", version: 4, script: func(f frames) []step {
			return []step{cli(f.publish(1, 1, false)), cli(f.publish(2, 1, false))}
		}, want: "MQTT-2.3.1-2"},
		{name: "identifier free after PUBACK", version: 4, script: func(f frames) []step {
			return []step{cli(f.subscribe(1, "a")), srv(f.enc(&codec.Suback{PacketID: 1, ReasonCodes: []codec.ReasonCode{1}})),
				cli(f.publish(1, 1, false)), srv(f.puback(1)), cli(f.publish(1, 1, false))}
		}},

		// DUP.
		{name: "DUP on QoS 0", version: 5, script: func(f frames) []step {
			return []step{cli([]byte{0x38, 0x04, 0x00, 0x01, 't', 0x00})}
		}, want: "MQTT-3.3.1-2"},
		{name: "DUP on a first QoS 1 in a new session", version: 5, script: func(f frames) []step {
			return []step{cli(f.publish(1, 1, true))}
		}, want: "MQTT-4.3.2-2"},
		{name: "DUP on a first QoS 2 in a new session", version: 5, script: func(f frames) []step {
			return []step{cli(f.publish(2, 1, true))}
		}, want: "MQTT-4.3.3-2"},
		{name: "DUP on a first QoS 1 with clean session v3.1.1", version: 4, script: func(f frames) []step {
			return []step{cli(f.publish(1, 1, true))}
		}, want: "MQTT-4.3.2-1"},
		{name: "DUP on a re-send to a resumed session", version: 5, connack: sessionPresent, script: func(f frames) []step {
			return []step{cli(f.publish(1, 1, true)), cli(f.publish(2, 2, true))}
		}},
		{name: "DUP after the PUBACK v5", version: 5, connack: sessionPresent, script: func(f frames) []step {
			return []step{cli(f.publish(1, 1, false)), srv(f.puback(1)), cli(f.publish(1, 1, true))}
		}, want: "MQTT-4.3.2-2"},
		{name: "re-send on the same connection v5", version: 5, script: func(f frames) []step {
			return []step{cli(f.publish(1, 1, false)), cli(f.publish(1, 1, true))}
		}, want: "MQTT-4.4.0-1"},
		{name: "re-send on the same connection v3.1.1", version: 4, script: func(f frames) []step {
			return []step{cli(f.publish(1, 1, false)), cli(f.publish(1, 1, true))}
		}},

		// QoS 2.
		{name: "PUBLISH after PUBREL v5", version: 5, script: func(f frames) []step {
			return []step{cli(f.publish(2, 1, false)), srv(f.pubrec(1)), cli(f.pubrel(1)), cli(f.publish(2, 1, true))}
		}, want: "MQTT-4.3.3-6"},
		{name: "PUBLISH after PUBREL v3.1.1", version: 4, script: func(f frames) []step {
			return []step{cli(f.publish(2, 1, false)), srv(f.pubrec(1)), cli(f.pubrel(1)), cli(f.publish(2, 1, true))}
		}, want: "MQTT-4.3.3-1"},
		{name: "PUBREL before PUBREC", version: 5, script: func(f frames) []step {
			return []step{cli(f.publish(2, 1, false)), cli(f.pubrel(1))}
		}, want: "MQTT-4.3.3-4"},
		{name: "PUBREL re-sent to a resumed session", version: 5, connack: sessionPresent, script: func(f frames) []step {
			return []step{cli(f.pubrel(4)), srv(f.pubcomp(4)), cli(f.publish(2, 4, false))}
		}},
		{name: "PUBREC of a resumed session crosses the re-sent PUBLISH", version: 5, connack: sessionPresent, script: func(f frames) []step {
			return []step{srv(f.pubrec(4)), cli(f.publish(2, 4, true)), cli(f.pubrel(4))}
		}},

		// Acknowledgements of the server's messages.
		{name: "PUBACK for nothing", version: 5, script: func(f frames) []step {
			return []step{cli(f.puback(5))}
		}, want: "MQTT-2.2.1-5"},
		{name: "PUBREC for a QoS 1 PUBLISH v3.1.1", version: 4, script: func(f frames) []step {
			return []step{srv(f.publish(1, 5, false)), cli(f.pubrec(5))}
		}, want: "MQTT-2.3.1-6"},
		{name: "PUBCOMP for nothing", version: 5, script: func(f frames) []step {
			return []step{srv(f.publish(2, 5, false)), cli(f.pubrec(5)), cli(f.pubcomp(5))}
		}, want: "MQTT-4.3.3-11"},
		{name: "PUBACKs out of order", version: 5, script: func(f frames) []step {
			return []step{srv(f.publish(1, 1, false)), srv(f.publish(1, 2, false)), cli(f.puback(2)), cli(f.puback(1))}
		}, want: "MQTT-4.6.0-2"},
		{name: "PUBRECs out of order", version: 4, script: func(f frames) []step {
			return []step{srv(f.publish(2, 1, false)), srv(f.publish(2, 2, false)), cli(f.pubrec(2)), cli(f.pubrec(1))}
		}, want: "MQTT-4.6.0-3"},
		{name: "acks in order, QoS 1 and 2 apart", version: 5, script: func(f frames) []step {
			return []step{srv(f.publish(1, 1, false)), srv(f.publish(2, 2, false)), srv(f.publish(1, 3, false)), srv(f.publish(1, 1, true)),
				cli(f.pubrec(2)), cli(f.puback(1)), cli(f.puback(3)), cli(f.puback(1)), srv(f.pubrel(2)), cli(f.pubcomp(2))}
		}},
		{name: "PUBRELs out of order", version: 5, script: func(f frames) []step {
			return []step{cli(f.publish(2, 1, false)), cli(f.publish(2, 2, false)), srv(f.pubrec(2)), srv(f.pubrec(1)),
				cli(f.pubrel(1)), cli(f.pubrel(2))}
		}, want: "MQTT-4.6.0-4"},

		// Topic aliases.
		{name: "Topic Alias above the maximum", version: 5, connack: v5(&codec.Properties{TopicAliasMaximum: ptr[uint16](2)}),
			script: func(f frames) []step {
				return []step{cli(f.enc(&codec.Publish{Topic: "t", Properties: &codec.Properties{TopicAlias: ptr[uint16](3)}}))}
			}, want: "MQTT-3.2.2-17"},
		{name: "Topic Alias not allowed", version: 5, script: func(f frames) []step {
			return []step{cli(f.enc(&codec.Publish{Topic: "t", Properties: &codec.Properties{TopicAlias: ptr[uint16](1)}}))}
		}, want: "MQTT-3.2.2-18"},
		{name: "Topic Alias not set", version: 5, connack: v5(&codec.Properties{TopicAliasMaximum: ptr[uint16](2)}),
			script: func(f frames) []step {
				return []step{
					cli(f.enc(&codec.Publish{Topic: "t", Properties: &codec.Properties{TopicAlias: ptr[uint16](1)}})),
					cli(f.enc(&codec.Publish{Properties: &codec.Properties{TopicAlias: ptr[uint16](1)}})),
					cli(f.enc(&codec.Publish{Properties: &codec.Properties{TopicAlias: ptr[uint16](2)}})),
				}
			}, want: "MQTT-5.0 §3.3.2.3.4"},
		{name: "Topic Alias 0", version: 5, connack: v5(&codec.Properties{TopicAliasMaximum: ptr[uint16](2)}),
			script: func(f frames) []step {
				return []step{cli([]byte{0x30, 0x07, 0x00, 0x01, 't', 0x03, 0x23, 0x00, 0x00})}
			}, want: "MQTT-3.3.2-8"},
		{name: "Subscription Identifier in a PUBLISH", version: 5, script: func(f frames) []step {
			return []step{cli(f.enc(&codec.Publish{Topic: "t", Properties: &codec.Properties{SubscriptionIdentifier: []uint32{1}}}))}
		}, want: "MQTT-3.3.4-6"},
		{name: "AUTH without an Authentication Method", version: 5, script: func(f frames) []step {
			return []step{cli([]byte{0xF0, 0x02, 0x18, 0x00})}
		}, want: "MQTT-4.12.0-7"},

		// Well-formed packets.
		{name: "invalid UTF-8 v5", version: 5, script: func(f frames) []step {
			return []step{cli([]byte{0x30, 0x05, 0x00, 0x02, 0xC3, 0x28, 0x00})}
		}, want: "MQTT-1.5.4-1"},
		{name: "invalid UTF-8 v3.1.1", version: 4, script: func(f frames) []step {
			return []step{cli([]byte{0x30, 0x04, 0x00, 0x02, 0xC3, 0x28})}
		}, want: "MQTT-1.5.3-1"},
		{name: "U+0000", version: 5, script: func(f frames) []step {
			return []step{cli([]byte{0x30, 0x05, 0x00, 0x02, 'a', 0x00, 0x00})}
		}, want: "MQTT-1.5.4-2"},
		{name: "wildcard in a topic name", version: 4, script: func(f frames) []step {
			return []step{cli([]byte{0x30, 0x05, 0x00, 0x03, 'a', '/', '#'})}
		}, want: "MQTT-3.3.2-2"},
		{name: "reserved flags of PUBREL v5", version: 5, script: func(f frames) []step {
			return []step{cli(f.publish(2, 1, false)), srv(f.pubrec(1)), cli([]byte{0x60, 0x02, 0x00, 0x01})}
		}, want: "MQTT-2.1.3-1"},
		{name: "reserved flags of PINGREQ v3.1.1", version: 4, script: func(f frames) []step {
			return []step{cli([]byte{0xC1, 0x00})}
		}, want: "MQTT-2.2.2-1"},
		{name: "QoS 3", version: 4, script: func(f frames) []step {
			return []step{cli([]byte{0x36, 0x05, 0x00, 0x01, 't', 0x00, 0x01})}
		}, want: "MQTT-3.3.1-4"},
		{name: "packet identifier 0", version: 4, script: func(f frames) []step {
			return []step{cli([]byte{0x32, 0x05, 0x00, 0x01, 't', 0x00, 0x00})}
		}, want: "MQTT-2.3.1-1"},
		{name: "misplaced #", version: 5, script: func(f frames) []step {
			return []step{cli([]byte{0x82, 0x0B, 0x00, 0x01, 0x00, 0x00, 0x05, 'a', '/', '#', '/', 'b', 0x01})}
		}, want: "MQTT-4.7.1-1"},
		{name: "misplaced +", version: 4, script: func(f frames) []step {
			return []step{cli([]byte{0x82, 0x07, 0x00, 0x01, 0x00, 0x02, 'a', '+', 0x01})}
		}, want: "MQTT-4.7.1-3"},
		{name: "empty topic filter", version: 4, script: func(f frames) []step {
			return []step{cli([]byte{0x82, 0x05, 0x00, 0x01, 0x00, 0x00, 0x01})}
		}, want: "MQTT-4.7.3-1"},
		{name: "share name with a wildcard", version: 5, script: func(f frames) []step {
			sub := "$share/+/a"
			return []step{cli(append(append([]byte{0x82, byte(6 + len(sub)), 0x00, 0x01, 0x00, 0x00, byte(len(sub))}, sub...), 0x01))}
		}, want: "MQTT-4.8.2-2"},
		{name: "No Local on a shared subscription", version: 5, script: func(f frames) []step {
			sub := "$share/g/a"
			return []step{cli(append(append([]byte{0x82, byte(6 + len(sub)), 0x00, 0x01, 0x00, 0x00, byte(len(sub))}, sub...), 0x05))}
		}, want: "MQTT-3.8.3-4"},
		{name: "remaining length of five bytes", version: 5, script: func(f frames) []step {
			return []step{cli([]byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01})}
		}, want: "MQTT-5.0 §1.5.5"},
		{name: "properties past the end", version: 5, script: func(f frames) []step {
			return []step{cli([]byte{0x30, 0x04, 0x00, 0x01, 't', 0x05})}
		}, want: "malformed"},
		{name: "a packet only servers send", version: 5, script: func(f frames) []step {
			return []step{cli(f.enc(&codec.Suback{PacketID: 1, ReasonCodes: []codec.ReasonCode{0}}))}
		}, want: "malformed"},

		// Reason codes a client may send.
		{name: "PUBACK code not for PUBACK", version: 5, script: func(f frames) []step {
			return []step{srv(f.publish(1, 1, false)), cli([]byte{0x40, 0x03, 0x00, 0x01, 0x84})}
		}, want: "MQTT-3.4.2-1"},
		{name: "PUBREC code not for PUBREC", version: 5, script: func(f frames) []step {
			return []step{srv(f.publish(2, 1, false)), cli([]byte{0x50, 0x03, 0x00, 0x01, 0x01})}
		}, want: "MQTT-3.5.2-1"},
		{name: "PUBREL code not for PUBREL", version: 5, script: func(f frames) []step {
			return []step{cli(f.publish(2, 1, false)), srv(f.pubrec(1)), cli([]byte{0x62, 0x03, 0x00, 0x01, 0x80})}
		}, want: "MQTT-3.6.2-1"},
		{name: "PUBCOMP code not for PUBCOMP", version: 5, script: func(f frames) []step {
			return []step{srv(f.pubrel(9)), cli([]byte{0x70, 0x03, 0x00, 0x09, 0x80})}
		}, want: "MQTT-3.7.2-1"},
		{name: "DISCONNECT code only servers send", version: 5, script: func(f frames) []step {
			return []step{cli([]byte{0xE0, 0x02, 0x84, 0x00})}
		}, want: "MQTT-3.14.2-1"},
		{name: "PUBACK failure code a client may send", version: 5, script: func(f frames) []step {
			return []step{srv(f.publish(1, 1, false)), cli([]byte{0x40, 0x03, 0x00, 0x01, 0x87})}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			expectRule(t, runScript(t, tc), tc.want)
		})
	}
}

// The PUBRELs a client re-sends on a new connection follow the order in
// which the PUBRECs arrived on the earlier one [MQTT-4.6.0-4]: the monitor
// remembers that order per client identifier. It sees what the server
// wrote, not what the client read: a connection can die with PUBRECs
// unread, and a client restarted from its store knows only the PUBRECs it
// recorded. So a PUBREL may answer any copy of its PUBREC the server sent
// since the PUBLISH, and an order is reported only when no choice of
// copies explains it.
func TestMonitorPubrelOrderAcrossConnections(t *testing.T) {
	for _, tc := range []struct {
		name   string
		first  []uint16 // the server's PUBRECs on the first connection, after PUBLISH 1 and 2
		rels   []uint16 // the client's PUBRELs on the first connection
		cut    []uint16 // the PUBRECs the server sends again on a second connection, before it dies
		last   []uint16 // the PUBRECs the server sends again on the last connection
		resend []uint16 // the client's PUBRELs on the last connection
		want   string
	}{
		{name: "in PUBREC order", first: []uint16{2, 1}, rels: []uint16{2, 1}, resend: []uint16{2, 1}},
		{name: "in PUBLISH order", first: []uint16{2, 1}, rels: []uint16{2, 1}, resend: []uint16{1, 2}, want: "MQTT-4.6.0-4"},
		// Found by the crash test (seed 1796616477689480118): the client was
		// killed before it recorded the first connection's PUBRECs, the
		// second connection died with only PUBREC 1 sent again, and the
		// restarted client answers the last connection's PUBRECs in order.
		{name: "answering the last copies", first: []uint16{1, 2}, cut: []uint16{1}, last: []uint16{1, 2}, resend: []uint16{1, 2}},
		{name: "answering the first copies", first: []uint16{1, 2}, cut: []uint16{1}, last: []uint16{2, 1}, resend: []uint16{1, 2}},
		{name: "answering the last copies, reversed", first: []uint16{1, 2}, last: []uint16{2, 1}, resend: []uint16{2, 1}},
		{name: "no copy explains it", first: []uint16{1, 2}, last: []uint16{2}, resend: []uint16{2, 1}, want: "MQTT-4.6.0-4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mqtttest.NewScriptedBroker(t)
			s.AllowViolations()
			f := frames{t, 5}
			pubrecs := func(ids []uint16) []byte {
				var b []byte
				for _, id := range ids {
					b = append(b, f.pubrec(id)...)
				}
				return b
			}
			readFrames := func(sc *mqtttest.ScriptedConn, n int) {
				t.Helper()
				for range n {
					if _, err := sc.ReadFrame(testCtx(t)); err != nil {
						t.Fatal(err)
					}
				}
			}

			c := dialBad(t, s.Addr(), 5)
			c.write(f.connect("q2", 0, false))
			sc := accept(t, s)
			c.write(f.publish(2, 1, false), f.publish(2, 2, false))
			readFrames(sc, 2)
			if err := sc.Write(pubrecs(tc.first)); err != nil {
				t.Fatal(err)
			}
			c.readUntil(codec.TypeConnack)
			for range tc.first {
				c.readUntil(codec.TypePubrec)
			}
			for _, id := range tc.rels {
				c.write(f.pubrel(id)) // the PUBCOMPs never come
			}
			readFrames(sc, len(tc.rels))
			_ = c.conn.Close()
			<-sc.Done()

			s.SetConnack(f.connack(true, nil))
			if tc.cut != nil {
				c = dialBad(t, s.Addr(), 5)
				c.write(f.connect("q2", 0, false))
				sc = accept(t, s)
				if err := sc.Write(pubrecs(tc.cut)); err != nil {
					t.Fatal(err)
				}
				_ = c.conn.Close() // unread
				<-sc.Done()
			}

			c = dialBad(t, s.Addr(), 5)
			c.write(f.connect("q2", 0, false))
			sc = accept(t, s)
			if err := sc.Write(pubrecs(tc.last)); err != nil {
				t.Fatal(err)
			}
			for _, id := range tc.resend {
				c.write(f.pubrel(id))
			}
			readFrames(sc, len(tc.resend))
			_ = c.conn.Close()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			expectRule(t, s.Violations(), tc.want)
		})
	}
}

// The Keep Alive rule [MQTT-3.1.2-20] holds the client to 1.5 times its
// Keep Alive, measured while the server waits for it, and excuses a client
// whose PINGREQ the server left unanswered, or the Proxy black-holed. Five
// clients with a Keep Alive of 1 s at once: while one pings in time for
// 1.8 s, the others stay silent.
func TestMonitorKeepAlive(t *testing.T) {
	t.Parallel()
	start := func(version byte) (*mqtttest.ScriptedBroker, *badClient, *mqtttest.ScriptedConn) {
		s := mqtttest.NewScriptedBroker(t)
		s.AllowViolations()
		c := dialBad(t, s.Addr(), version)
		c.write(frames{t, version}.connect("ka", 1, true))
		sc := accept(t, s)
		c.readUntil(codec.TypeConnack)
		return s, c, sc
	}
	read := func(sc *mqtttest.ScriptedConn) {
		t.Helper()
		if _, err := sc.ReadFrame(testCtx(t)); err != nil {
			t.Fatal(err)
		}
	}
	thenPing, c1, sc1 := start(4)
	untilEnd, c2, _ := start(5)
	unanswered, c3, sc3 := start(5)
	c3.write(pingreq)
	read(sc3)
	b := mqtttest.NewBroker(t)
	p := mqtttest.NewProxy(t, b.Addr())
	c4 := dialBad(t, p.Addr(), 5)
	c4.write(frames{t, 5}.connect("ka", 1, true))
	c4.readUntil(codec.TypeConnack)
	p.Blackhole(true)
	c4.write(pingreq)
	inTime, c5, sc5 := start(5)
	for range 3 {
		c5.silent(600 * time.Millisecond)
		c5.write(pingreq)
		read(sc5)
		if err := sc5.Write([]byte{0xD0, 0x00}); err != nil {
			t.Fatal(err)
		}
		c5.readUntil(codec.TypePingresp)
	}
	c1.write(pingreq)
	read(sc1)
	c3.write(pingreq)
	read(sc3)
	for _, c := range []*badClient{c1, c2, c3, c4, c5} {
		_ = c.conn.Close()
	}
	p.Cut()
	for _, tc := range []struct {
		name string
		end  interface{ Close() error }
		got  func() []mqtttest.Violation
		want string
	}{
		{"silent, then PINGREQ", thenPing, thenPing.Violations, "MQTT-3.1.2-23"},
		{"silent until the connection ends", untilEnd, untilEnd.Violations, "MQTT-3.1.2-20"},
		{"PINGREQ unanswered", unanswered, unanswered.Violations, ""},
		{"PINGREQ black-holed", p, p.Violations, ""},
		{"PINGREQ in time", inTime, inTime.Violations, ""},
	} {
		if err := tc.end.Close(); err != nil {
			t.Fatal(err)
		}
		t.Run(tc.name, func(t *testing.T) { expectRule(t, tc.got(), tc.want) })
	}
}

// The embedded broker's monitor sees the MQTT bytes whatever the transport:
// under TLS and inside WebSocket messages. Through a Proxy, the Proxy checks
// a bare MQTT connection, and leaves one it cannot read to the broker.
func TestMonitorBrokerTransports(t *testing.T) {
	ca := mqtttest.NewCA(t)
	serverTLS := &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "127.0.0.1")}}
	for _, tc := range []struct {
		scheme string
		cfg    mqtttest.BrokerConfig
	}{
		{"tcp", mqtttest.BrokerConfig{}},
		{"tls", mqtttest.BrokerConfig{TLS: serverTLS}},
		{"ws", mqtttest.BrokerConfig{WebSocket: true}},
		{"wss", mqtttest.BrokerConfig{TLS: serverTLS, WebSocket: true}},
	} {
		for _, proxied := range []bool{false, true} {
			name := tc.scheme
			if proxied {
				name += " through a proxy"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				cfg := tc.cfg
				cfg.Configure = func(o *mochi.Options) { o.Capabilities.MaximumQos = 1 }
				b := mqtttest.NewBrokerWith(t, cfg)
				b.AllowViolations()
				url := b.URL()
				var p *mqtttest.Proxy
				if proxied {
					p = mqtttest.NewProxy(t, b.Addr())
					p.AllowViolations()
					url = strings.Replace(url, b.Addr(), p.Addr(), 1)
				}
				rc, err := dialURL(t, url, ca.Pool(), 5, "mqtt")
				if err != nil {
					t.Fatal(err)
				}
				c := &badClient{t: t, conn: rc.conn, r: bufio.NewReader(rc.conn), version: 5}
				f := frames{t, 5}
				c.write(f.connect("qos2", 0, true))
				c.readUntil(codec.TypeConnack)
				c.write(f.publish(2, 1, false))
				c.syncOrEnd()
				if p != nil {
					if err := p.Close(); err != nil {
						t.Fatal(err)
					}
				}
				if err := b.Close(); err != nil {
					t.Fatal(err)
				}
				checker, other := b.Violations(), []mqtttest.Violation(nil)
				if p != nil && tc.scheme == "tcp" {
					checker, other = p.Violations(), b.Violations()
				} else if p != nil {
					other = p.Violations()
				}
				expectRule(t, checker, "MQTT-3.2.2-11")
				expectRule(t, other, "")
			})
		}
	}
}

// The broker's own frames count, those mochi writes and those the Broker
// holds back for the client's Receive Maximum alike.
func TestMonitorBrokerAckOrder(t *testing.T) {
	b := mqtttest.NewBroker(t)
	b.AllowViolations()
	f := frames{t, 5}
	c := dialBad(t, b.Addr(), 5)
	c.write(f.enc(&codec.Connect{Version: 5, ClientID: "sub", CleanStart: true,
		Properties: &codec.Properties{ReceiveMaximum: ptr[uint16](1)}}))
	c.readUntil(codec.TypeConnack)
	c.write(f.subscribe(1, "t"))
	c.readUntil(codec.TypeSuback)
	for _, m := range []string{"1", "2"} {
		if err := b.Publish("t", []byte(m), 1, false); err != nil {
			t.Fatal(err)
		}
	}
	first := c.readUntil(codec.TypePublish).(*codec.Publish)
	c.write(f.puback(first.PacketID))
	second := c.readUntil(codec.TypePublish).(*codec.Publish) // held until the PUBACK
	c.write(f.puback(second.PacketID), f.puback(first.PacketID))
	c.sync()
	expectRule(t, b.Violations(), "") // a second PUBACK of one PUBLISH is not a breach
	c.write(f.puback(4321))
	c.sync()
	expectRule(t, b.Violations(), "MQTT-2.2.1-5")
}

// Through a Proxy, the Proxy checks the connection, on the client's bytes
// as they arrive and the server's as they leave, however they are split;
// the broker behind it does not check it a second time.
func TestMonitorProxy(t *testing.T) {
	b := mqtttest.NewBroker(t)
	p := mqtttest.NewProxy(t, b.Addr())
	p.AllowViolations()
	p.SplitWrites(1)
	f := frames{t, 4}
	c := dialBad(t, p.Addr(), 4)
	c.write(f.connect("sub", 0, true))
	c.readUntil(codec.TypeConnack)
	c.write(f.subscribe(1, "t"))
	c.readUntil(codec.TypeSuback)
	for _, m := range []string{"1", "2"} {
		if err := b.Publish("t", []byte(m), 1, false); err != nil {
			t.Fatal(err)
		}
	}
	first := c.readUntil(codec.TypePublish).(*codec.Publish)
	second := c.readUntil(codec.TypePublish).(*codec.Publish)
	c.write(f.puback(second.PacketID), f.puback(first.PacketID))
	c.sync()
	expectRule(t, p.Violations(), "MQTT-4.6.0-2")
	expectRule(t, b.Violations(), "")
}

// Bytes the Proxy's Blackhole drops on their way to the client leave the
// monitor not knowing what the client received: it stops the rules that
// depend on it rather than blame the client.
func TestMonitorProxyBlackhole(t *testing.T) {
	s := mqtttest.NewScriptedBroker(t)
	p := mqtttest.NewProxy(t, s.Addr())
	p.AllowViolations()
	f := frames{t, 4}
	c := dialBad(t, p.Addr(), 4)
	c.write(f.connect("bh", 0, true))
	sc := accept(t, s)
	c.readUntil(codec.TypeConnack)
	ctx := testCtx(t)

	// Half a PUBLISH gets through, the other half is lost.
	pub := f.publish(1, 5, false)
	const down = 4 // the CONNACK
	if err := p.WaitStats(ctx, func(st mqtttest.ProxyStats) bool { return st.BytesDown == down }); err != nil {
		t.Fatal(err)
	}
	if err := sc.Write(pub[:3]); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitStats(ctx, func(st mqtttest.ProxyStats) bool { return st.BytesDown == down+3 }); err != nil {
		t.Fatal(err)
	}
	p.Blackhole(true)
	if err := sc.Write(pub[3:]); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitStats(ctx, func(st mqtttest.ProxyStats) bool { return st.Dropped == int64(len(pub)-3) }); err != nil {
		t.Fatal(err)
	}
	p.Blackhole(false)
	// What the client makes of the rest is beyond the monitor now.
	if err := sc.Write(f.publish(1, 6, false)); err != nil {
		t.Fatal(err)
	}
	c.write(f.puback(6), f.puback(7))
	for range 2 {
		if _, err := sc.ReadFrame(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// What it sends by itself is still checked.
	c.write([]byte{0x30, 0x05, 0x00, 0x03, 'a', '/', '#'})
	if _, err := sc.ReadFrame(ctx); err != nil {
		t.Fatal(err)
	}
	expectRule(t, p.Violations(), "MQTT-3.3.2-2")
	expectRule(t, s.Violations(), "")
}

// A connection a Proxy cannot read as MQTT (TLS, WebSocket, or a client
// whose first packet is no CONNECT) is checked by the endpoint behind it.
func TestMonitorProxyForeign(t *testing.T) {
	s := mqtttest.NewScriptedBroker(t)
	s.AllowViolations()
	p := mqtttest.NewProxy(t, s.Addr())
	c := dialBad(t, p.Addr(), 4)
	c.write(pingreq)
	_ = c.conn.SetReadDeadline(time.Now().Add(ioTimeout))
	_, _ = io.Copy(io.Discard, c.conn) // the scripted broker closes it
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	expectRule(t, s.Violations(), "MQTT-3.1.0-1")
	expectRule(t, p.Violations(), "")
}

// errorTB records the errors a test would fail with.
type errorTB struct {
	testing.TB
	mu     sync.Mutex
	errors []string
}

func (e *errorTB) Errorf(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.errors = append(e.errors, fmt.Sprintf(format, args...))
}

func (e *errorTB) recorded() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.errors)
}

// A violation fails the test that made the endpoint, with the rule, the
// connection and the frames; AllowViolations turns that off; an endpoint
// without a test only records it.
func TestMonitorReports(t *testing.T) {
	misbehave := func(t *testing.T, s *mqtttest.ScriptedBroker) {
		s.KeepOpenAfterDisconnect(true) // so that it reads what follows
		f := frames{t, 5}
		c := dialBad(t, s.Addr(), 5)
		c.write(f.connect("late", 0, true))
		sc := accept(t, s)
		c.write(disconnect, f.subscribe(1, "a"))
		for range 2 {
			if _, err := sc.ReadFrame(testCtx(t)); err != nil {
				t.Fatal(err)
			}
		}
		_ = c.conn.Close()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("fails the test", func(t *testing.T) {
		tb := &errorTB{TB: t}
		s := mqtttest.NewScriptedBroker(tb)
		misbehave(t, s)
		errs := tb.recorded()
		if len(errs) != 1 {
			t.Fatalf("%d errors, want 1: %q", len(errs), errs)
		}
		for _, want := range []string{
			"[MQTT-3.14.4-1] the client sent SUBSCRIBE after DISCONNECT",
			"scripted broker " + s.Addr() + ", connection 1 from 127.0.0.1:",
			`(client "late", MQTT 5.0)`,
			"→ CONNECT v5 client=\"late\"",
			"← CONNACK code=0x00",
			"  → DISCONNECT",
			"! → SUBSCRIBE id=1 \"a\"/1",
			"AllowViolations",
		} {
			if !strings.Contains(errs[0], want) {
				t.Errorf("the error does not say %q:\n%s", want, errs[0])
			}
		}
	})
	t.Run("allowed", func(t *testing.T) {
		tb := &errorTB{TB: t}
		s := mqtttest.NewScriptedBroker(tb)
		s.AllowViolations()
		misbehave(t, s)
		if errs := tb.recorded(); len(errs) > 0 {
			t.Errorf("errors after AllowViolations: %q", errs)
		}
		expectRule(t, s.Violations(), "MQTT-3.14.4-1")
	})
	t.Run("no test", func(t *testing.T) {
		s, err := mqtttest.StartScriptedBroker()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		misbehave(t, s)
		expectRule(t, s.Violations(), "MQTT-3.14.4-1")
	})
}
