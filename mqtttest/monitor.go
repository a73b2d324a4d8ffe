package mqtttest

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/robustmqtt/mqtt/codec"
)

// Violation is a client-side MUST of MQTT 3.1.1 or 5.0 that a client broke
// on a connection a Monitor watched.
type Violation struct {
	// Rule names the normative statement, as the standard of the
	// connection's protocol version numbers it ("MQTT-3.14.4-1" in MQTT
	// 5.0, "MQTT-3.14.4-2" in 3.1.1). A requirement the standard states
	// without a number is named by its section ("MQTT-5.0 §3.2.2.3.11"),
	// and a malformed packet that no single statement covers is
	// "malformed".
	Rule string

	// Requirement says what the rule asks of a client, in short.
	Requirement string

	// Detail says what the client did.
	Detail string

	// Conn names the connection: the endpoint, the client's address, the
	// client identifier and the protocol version.
	Conn string

	// Frames are the last frames each way up to the violation, oldest
	// first: "→" marks those of the client, "←" those of the server, and
	// "!" the frame in breach, if one is.
	Frames []string
}

// String returns the violation on several lines: the rule and what the
// client did, the requirement, the connection and the frames.
func (v Violation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] %s\n\trequirement: %s\n\tconnection: %s", v.Rule, v.Detail, v.Requirement, v.Conn)
	if len(v.Frames) > 0 {
		b.WriteString("\n\tlast frames (→ client to server, ← server to client):")
		for _, f := range v.Frames {
			b.WriteString("\n\t\t" + f)
		}
	}
	return b.String()
}

// maxViolations bounds what one connection records: a client that breaks a
// rule usually breaks it again with every packet.
const maxViolations = 10

// Monitor checks the frames of one MQTT connection against the client-side
// MUSTs of MQTT 3.1.1 and 5.0 and records every breach as a Violation. It
// follows the connection's state in both directions: the client's CONNECT
// (protocol version, Keep Alive), the server's CONNACK (its limits), the
// packet identifiers in flight each way, the order in which the server's
// PUBLISHes and PUBRECs arrived, the topic aliases set. So it checks what
// depends on what the client was told, not only each packet by itself.
//
// The Broker, the Proxy and the ScriptedBroker run one on every connection
// (see the package documentation); NewMonitor is for a transport of one's
// own. Its methods are safe for concurrent use: the two directions may be
// fed from different goroutines, as long as each frame from the server is
// given to Server before the client can have received it, and each frame
// from the client to Client once it arrived.
type Monitor struct {
	mu   sync.Mutex
	conn string          // Violation.Conn, less the client identifier
	sink func(Violation) // nil: keep them only
	book *sessionBook    // PUBREC order across connections of a client

	up, down splitter // the two directions, when fed as byte streams
	tapped   bool     // quiet time comes from the tap, not from the wall clock

	found []Violation
	st    connState
}

// NewMonitor returns a Monitor for one connection, described by name in its
// violations (an address, say). It checks the frames given to Client and
// Server; Violations returns what it found.
//
// The Keep Alive rule is checked on the time between Client calls, and
// between the last of them and Close: call Client as each frame arrives,
// and Close when the connection ends.
func NewMonitor(name string) *Monitor {
	return newMonitor(name, nil, &sessionBook{})
}

func newMonitor(name string, sink func(Violation), book *sessionBook) *Monitor {
	m := &Monitor{conn: name, sink: sink, book: book}
	m.up.keep = clientKeep
	m.down.keep = serverKeep
	m.st.init()
	return m
}

// clientKeep is the largest client frame the Monitor decodes; of a larger
// one it checks only the fixed header and the size.
const clientKeep = 16 << 20

// serverKeep is how much of each server frame the Monitor keeps: enough for
// the fixed header, the longest topic and the packet identifier of a
// PUBLISH, and any CONNACK worth reading.
const serverKeep = 70 << 10

// Client checks a whole frame the client sent. A frame that is not exactly
// one MQTT frame is a violation.
func (m *Monitor) Client(frame []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.st.ended {
		return
	}
	now := time.Now()
	m.wallGap(now)
	total, _, ok, bad := fixedHeader(frame)
	if bad || !ok || total != len(frame) {
		m.st.history(true, frame, len(frame))
		m.violate(ruleMalformed, fmt.Sprintf("%d bytes given as a frame are not one whole MQTT frame", len(frame)), true)
		return
	}
	m.client(frame, total, now)
}

// Server takes note of a whole frame the server sent.
func (m *Monitor) Server(frame []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	total, _, _, _ := fixedHeader(frame)
	m.server(frame, max(total, len(frame)), time.Now())
}

// Close tells the Monitor that the connection has ended, for the Keep Alive
// rule: a client silent since its last frame for 1.5 times its Keep Alive
// is in breach. Frames given after Close are ignored. Idempotent.
func (m *Monitor) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.tapped {
		m.wallGap(time.Now())
	}
	m.endLocked()
}

// Violations returns what the Monitor found so far, oldest first, at most
// ten per connection.
func (m *Monitor) Violations() []Violation {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.found)
}

// wallGap measures the client's silence by the wall clock, for a Monitor
// fed frame by frame. Called with mu held.
func (m *Monitor) wallGap(now time.Time) {
	s := &m.st
	if s.ended || !s.armed() {
		return
	}
	since := later(s.lastClient, s.armedAt)
	s.checkGap(m, now.Sub(since))
}

// clientBytes feeds bytes the client sent, as read from the connection
// between start and end, and checks the frames they complete. The time
// spent waiting in that read while no frame was in progress counts as the
// client's silence. Called by a tap.
func (m *Monitor) clientBytes(p []byte, start, end time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := &m.st
	if s.ended || s.clientBroken {
		return
	}
	if m.up.idle() && s.armed() {
		if from := later(start, s.armedAt); end.After(from) {
			s.quiet += end.Sub(from)
		}
		if len(p) > 0 {
			s.checkGap(m, s.quiet)
			s.quiet = 0
		}
	}
	if len(p) == 0 {
		return
	}
	if !m.up.feed(p, func(frame []byte, total int) { m.client(frame, total, end) }) {
		s.clientBroken = true
		m.st.history(true, p[:min(len(p), 8)], len(p))
		m.violate(ruleRemainingLength, "a remaining length longer than four bytes: the rest of the stream cannot be read", true)
	}
}

// serverBytes feeds bytes the server is about to send. Called by a tap.
func (m *Monitor) serverBytes(p []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.st.ended || m.st.serverLost {
		return
	}
	now := time.Now()
	if !m.down.feed(p, func(frame []byte, total int) { m.server(frame, total, now) }) {
		// A server that breaks framing is another test's business; what
		// the client makes of the rest cannot be judged.
		m.st.lose()
	}
}

// lose tells the Monitor that bytes from the server were lost on the way to
// the client (the Proxy's Blackhole): what the client received is no longer
// known, so the rules that depend on it are off for this connection.
func (m *Monitor) lose() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.st.lose()
}

// end checks the client's final silence and stops the Monitor. Called by a
// tap when the connection ends.
func (m *Monitor) end() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.endLocked()
}

func (m *Monitor) endLocked() {
	s := &m.st
	if s.ended {
		return
	}
	if m.tapped && m.up.idle() && s.armed() {
		s.checkGap(m, s.quiet)
	}
	s.ended = true
}

// violate records a breach of r. offending says whether the last client
// frame is the one in breach. Called with mu held.
func (m *Monitor) violate(r rule, detail string, offending bool) {
	s := &m.st
	s.violations++
	if s.violations > maxViolations {
		return
	}
	conn := m.conn
	if s.version != 0 {
		v := "5.0"
		if s.version == codec.V311 {
			v = "3.1.1"
		}
		conn += fmt.Sprintf(" (client %q, MQTT %s)", s.clientID, v)
	}
	v := Violation{
		Rule:        r.id(s.version),
		Requirement: r.text,
		Detail:      detail,
		Conn:        conn,
		Frames:      s.frames(offending),
	}
	if s.violations == maxViolations {
		v.Detail += " (further violations on this connection are not recorded)"
	}
	m.found = append(m.found, v)
	if m.sink != nil {
		m.sink(v)
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
