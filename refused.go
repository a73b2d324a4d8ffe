package mqtt

import (
	"errors"
	"fmt"
	"io"
	"syscall"
	"time"

	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/conn"
)

// A broker that will not take a message may say so (MQTT 5: a PUBACK or
// PUBREC with a reason code, see PublishError), or just end the
// connection: MQTT 3.1.1 has no other way, and RabbitMQ (a topic its
// permissions refuse), AWS IoT Core and Azure IoT Hub (QoS 2, a topic the
// client may not use, a message too large) and Mosquitto (max_qos,
// max_packet_size) do so. (RabbitMQ takes a QoS 2 message as QoS 1 and
// answers PUBACK: see pubackEnds.) A QoS 1/2
// message is sent again first on the next connection [MQTT-4.4.0-1], and
// the broker ends that one too: left at that, one such message holds back
// every message after it, forever (with a Store, across restarts too).
//
// So when the broker ended two connections in a row (closed or reset
// them, or sent a DISCONNECT whose reason may concern a message; not one
// that says it shuts down, moves, timed the client out, or is over a quota
// or a rate) while the same PUBLISH was the first of those waiting for
// their acknowledgement, the next connection sends it alone (the probe),
// and the others once the broker has answered it: one round trip, when the
// ends had nothing to do with the message. A single end changes nothing:
// what is owed goes again at once, as the window allows. When the broker
// ends a connection again soon after it answered a probe, the culprit was
// among the others: the next connection sends each PUBLISH it owes alone,
// in order, each once the one before was answered.
//
// A probe counts against its message when the broker ends the connection
// within refuseWindow of it (plus two of the connection's round trips: see
// refusalWithin), before answering it, having taken the bytes
// (the write succeeded). From the second time on, the probe waits until
// its connection has been up for probeQuiet: a broker that ends
// connections whatever they carry (restarting, overloaded, or a link that
// drops) ends one before the probe goes, and the count starts again.
// refuseAfter counts in a row refuse the message: its publish ends with
// ErrRefused, and the messages behind it go on.

// ErrRefused means the broker ended the connection each time a QoS 1/2
// message (or a SUBSCRIBE or UNSUBSCRIBE) was sent on its own, at once and
// before acknowledging it, while it kept the connection open otherwise: the
// broker will not take it (an MQTT 3.1.1 broker refuses a QoS it does not
// support, a topic the client may not use or a message too large by
// closing the connection; AWS IoT Core refuses a topic filter the same
// way), so it is not sent again. The error also wraps ErrOutcomeUnknown
// (the broker did not say what it did with it) and the error of the last
// connection's end.
var ErrRefused = errors.New("mqtt: refused: the broker ends the connection whenever this is sent")

// errProbeUnanswered is wrapped in the error of a connection the broker
// ended while its probe waited for an answer: the loss is then the
// broker's answer to a message, not a sign of a twin (takeover.go).
var errProbeUnanswered = errors.New("the broker ended the connection before acknowledging the message sent alone to see whether it takes it")

const (
	// refuseAfter is how many probes in a row of one message the broker
	// must answer by ending the connection before the message counts as
	// refused.
	refuseAfter = 3
	// refuseWindow bounds how soon after a probe the connection's end
	// must come to count against it: a broker that refuses a message
	// closes the connection as soon as it has read it. Two of the
	// connection's round trips are added (see refusalWithin).
	refuseWindow = time.Second
	// probeQuiet is how long a connection must have been up before a
	// probe goes, from the second probe of a message on.
	probeQuiet = time.Second
)

// isolateWithin: a connection the broker ends this soon after it answered
// a probe (plus two of its round trips) makes the next connection send
// each PUBLISH it owes alone.
const isolateWithin = 5 * time.Second

// refusalWithin is how soon after a packet sent on cn the broker's end of
// cn must come to count as its refusal of the packet: refuseWindow, plus
// two of the link's round trips as cn measured them (conn.RoundTrip: the
// smaller of the TCP handshake and CONNECT/CONNACK, so that a broker slow
// to accept does not widen it). The end comes a round trip after the
// packet left (half of it for the packet to arrive, half for the close to
// come back): on a link whose round trips take a second or more (NB-IoT,
// GPRS, a satellite hop) a fixed window would never see a refusal, and one
// message the broker will not take would hold back every message behind
// it, forever.
func refusalWithin(cn *conn.Conn) time.Duration {
	return refuseWindow + 2*cn.RoundTrip()
}

// probeMode is how a connection sends the PUBLISHes it owes.
type probeMode uint8

const (
	probeNone probeMode = iota // all at once, as the window allows
	probeHead                  // the first alone, then the others
	probeEach                  // each alone, in order
)

// probe is the state of a connection that sends PUBLISHes it owes alone.
type probe struct {
	cn   *conn.Conn
	each bool      // probeEach: every PUBLISH owed goes alone
	id   uint16    // the probe out: its packet identifier; 0: none
	sent time.Time // when it was sent
	// answered is when the broker last answered a probe on cn (zero:
	// never); done is set once cn sends without probes (what it owed
	// is out).
	answered time.Time
	done     bool
	// stop stops the timer that says when a probe may go, after
	// probeQuiet (nil: none armed); due is set when it fired.
	stop func() bool
	due  bool
}

// probeDue is the request of a probe's timer: the connection cn has been
// up for probeQuiet.
type probeDue struct{ cn *conn.Conn }

// startProbe gives cn, the new connection, the probe the last one's end
// called for, if any.
func (s *session) startProbe(cn *conn.Conn) {
	if s.probeNext != probeNone {
		s.probe = &probe{cn: cn, each: s.probeNext == probeEach}
	}
	s.probeNext = probeNone
}

// probing reports whether the current connection still sends what it
// owes one PUBLISH at a time.
func (s *session) probing() bool { return s.probe != nil && !s.probe.done }

// probeOut reports whether a probe waits for the broker's answer: nothing
// else is published meanwhile.
func (s *session) probeOut() bool { return s.probe != nil && s.probe.id != 0 }

// probeHolds reports whether the PUBLISH of o, owed on the current
// connection, must wait because of a probe: one is out, or o is the next
// and must wait until the connection has been up for probeQuiet (then
// the timer is armed).
func (s *session) probeHolds(o *pubOp) bool {
	p := s.probe
	switch {
	case !s.probing():
		return false
	case p.id != 0:
		return true
	case o.refusals == 0 || p.due:
		return false
	}
	if p.stop == nil {
		p.stop = s.afterQuiet(p.cn)
	}
	return true
}

// afterQuiet arms the timer that tells the session (probeDue) when cn has
// been up for probeQuiet, and returns its Stop.
func (s *session) afterQuiet(cn *conn.Conn) func() bool {
	c := s.c
	return time.AfterFunc(probeQuiet, func() {
		select {
		case c.ctrl <- probeDue{cn}:
		case <-c.done:
		}
	}).Stop
}

// probeDue lets a probe that waits for probeQuiet go, if cn is still the
// current connection.
func (s *session) probeDue(cn *conn.Conn) {
	if s.probe == nil || s.probe.cn != cn || s.cur != cn {
		return
	}
	s.probe.due = true
	s.pump()
}

// probeSent notes o, a PUBLISH just sent alone on the current connection,
// queued at queued (before the writer could write it): nothing else is
// published on it until the broker has answered o.
func (s *session) probeSent(o *pubOp, queued time.Time) {
	s.probe.id, s.probe.sent = o.id, queued
	s.c.probed.Store(s.cur)
}

// probeAnswered ends the probe out if it is the flight id: the broker
// acknowledged it (PUBACK, PUBREC, or a refusal with a reason code), or its
// flight ended otherwise. It reports whether it did; what waited behind
// it goes next (the caller pumps).
func (s *session) probeAnswered(id uint16) bool {
	p := s.probe
	if p == nil || id == 0 || p.id != id {
		return false
	}
	p.id, p.answered = 0, time.Now()
	p.done = p.done || !p.each
	s.c.probed.CompareAndSwap(p.cn, nil)
	return true
}

// owedSent notes that the current connection has sent everything it owed:
// it publishes without probes from now on.
func (s *session) owedSent() {
	if s.probe != nil {
		s.probe.done = true
	}
}

// endProbe forgets the current connection's probe, if any.
func (s *session) endProbe() {
	p := s.probe
	if p == nil {
		return
	}
	s.probe = nil
	if p.stop != nil {
		p.stop()
	}
	s.c.probed.CompareAndSwap(p.cn, nil)
}

// probeLost settles the probe of cn, the connection that just ended, whose
// frames in unwritten were never written: when the broker ended cn soon
// after the probe, before answering it, that counts against its message,
// which is refused the refuseAfter-th time; when it ended cn before a
// probe went, the count of the message that waited starts again. It also
// decides how the next connection sends what it owes.
func (s *session) probeLost(cn *conn.Conn, unwritten []conn.Frame) {
	err := cn.Err()
	byBroker := brokerEnded(err)
	p := s.probe
	s.endProbe()
	s.probeNext = probeNone
	head := s.firstPublishInFlight()
	if byBroker && refusalEnd(err) && head != nil {
		switch {
		case p != nil && (p.each && !p.done || !p.answered.IsZero() && time.Since(p.answered) < isolateWithin+2*p.cn.RoundTrip()):
			s.probeNext = probeEach
		case p != nil && !p.done || head.id == s.suspectID:
			s.probeNext = probeHead // a probe still out or waiting, or the same first twice
		}
		s.suspectID = head.id
	} else {
		s.suspectID = 0
	}
	if p == nil || p.cn != cn || !byBroker {
		return
	}
	if p.id == 0 {
		if p.answered.IsZero() && !p.done || p.stop != nil && !p.due {
			// Ended before a probe went (maybe before the session could
			// send one), or while one waited to: the broker ends
			// connections whatever they carry.
			if head != nil {
				head.refusals = 0 // the one that would have gone next
			}
		}
		return
	}
	f := s.flights.get(p.id)
	if f == nil || f.kind != codec.TypePublish || f.relNeeded {
		return
	}
	o := f.pub
	if !refusedBy(cn, err, o, p.sent, unwritten) {
		o.refusals = 0 // counts in a row only
		return
	}
	o.refusals++
	if o.refusals < refuseAfter {
		return
	}
	refused := fmt.Errorf("%w: %w: publish to %s (QoS %d, %d bytes of payload): the broker ended the last %d connections within %s of its being sent alone on each, before acknowledging it, so it will not take it (brokers that refuse by closing do so for a QoS they do not support, a topic the client may not use, or a message too large); it is not sent again: %w",
		ErrRefused, ErrOutcomeUnknown, o.pkt.Topic, o.pkt.QoS, len(o.pkt.Payload), refuseAfter, refusalWithin(cn).Round(time.Millisecond), err)
	s.cfg.Logger.Warn("mqtt: the broker refuses a message", "err", refused)
	s.settle(&o.op, refused, true)
	s.endFlight(p.id)
}

// refusedBy reports whether the end err of cn counts as the broker's
// refusal of o, its probe sent at sent: o was written (not in unwritten,
// and a write succeeded since), the client was reading all the broker sent
// (cn not stalled), and the broker ended cn within refusalWithin(cn) of it
// in a way that can refuse a message.
func refusedBy(cn *conn.Conn, err error, o *pubOp, sent time.Time, unwritten []conn.Frame) bool {
	for _, fr := range unwritten {
		if fr.Track == conn.Tracker(o) {
			return false // it never reached the broker on cn
		}
	}
	// A write that failed: the broker had ended cn before. A reader that
	// had stopped reading (the application behind) may have left the
	// broker's answer unread.
	return cn.WroteSince(sent) && !cn.Stalled() && refusalEnd(err) && time.Since(sent) <= refusalWithin(cn)
}

// firstPublishInFlight is the publish in flight that was sent first and
// has no PUBREC yet: the one the next connection sends again first; nil
// if none.
func (s *session) firstPublishInFlight() *pubOp {
	var first *flight
	for f := range s.flights.all() {
		if f.kind == codec.TypePublish && !f.relNeeded && (first == nil || f.seq < first.seq) {
			first = f
		}
	}
	if first == nil {
		return nil
	}
	return first.pub
}

// brokerEnded reports whether err, a connection's end, came from the
// broker's side: it closed the connection (also an in-memory pipe, as
// conn.Establish may be given), reset it, or (MQTT 5) sent DISCONNECT. A
// keepalive timeout, a failure of the client's own, or a protocol error it
// found are not.
func brokerEnded(err error) bool {
	var de *DisconnectError
	return errors.Is(err, conn.ErrServerClosed) || errors.As(err, &de) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, io.ErrClosedPipe)
}

// refusalEnd reports whether err, an end that came from the broker, can
// be its refusal of something the client sent: a close or reset without
// a word, or an MQTT 5 DISCONNECT whose reason concerns a packet of the
// client's. Not a shutdown, a keepalive, a takeover, a redirect, nor a
// quota or a rate: those pass, and a message refused for them would be
// one the broker takes a moment later.
func refusalEnd(err error) bool {
	var de *DisconnectError
	if !errors.As(err, &de) {
		return true
	}
	switch de.ReasonCode {
	case codec.UnspecifiedError, codec.MalformedPacket, codec.ProtocolError, codec.ImplementationSpecificError,
		codec.NotAuthorized, codec.TopicNameInvalid, codec.TopicAliasInvalid, codec.PacketTooLarge,
		codec.PayloadFormatInvalid, codec.RetainNotSupported, codec.QoSNotSupported:
		return true
	}
	return false
}
