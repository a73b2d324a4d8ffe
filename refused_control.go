package mqtt

import (
	"fmt"
	"math"
	"time"

	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/conn"
)

// A broker refuses a SUBSCRIBE or UNSUBSCRIBE the same way it refuses a
// PUBLISH (see refused.go): AWS IoT Core ends the connection when a client
// subscribes to a topic filter its policy does not allow. The client sends
// a SUBSCRIBE that got no SUBACK again on the next connection, so left at
// that, one such Subscribe ends every connection right after it starts,
// forever, also once its caller has given up waiting; nothing else the
// client does gets through.
//
// So a SUBSCRIBE or UNSUBSCRIBE that the broker did not answer before
// ending two connections in a row, each within refuseWindow (plus two
// round trips, see refusalWithin) of its being written, is sent alone on
// the next connection: nothing else is sent until the broker answers it.
// Each time the broker ends that connection that soon after it, before
// answering, counts against it; from the
// second count on it goes only once its connection has been up for
// probeQuiet, and an end before that starts the count again. The
// refuseAfter-th count in a row refuses it: its call ends with ErrRefused,
// and it is not sent again. A SUBSCRIBE the client sends on its own after
// the broker lost the session is refused the same way, and said so in the
// log; when it held several filters, each goes again alone, so that only
// the one the broker refuses is given up, and dropped from the
// subscriptions the client makes again after a later loss.

// ctlRefusal is the session's state for SUBSCRIBE and UNSUBSCRIBE sent
// alone, made the first time one is (most sessions never need it, and an
// idle client's session stays small).
type ctlRefusal struct {
	probe *ctlProbe // the one the current connection sends alone; nil: none
	next  *flight   // the one the next connection sends alone; nil: none
	held  []*flight // those owed on the current connection that wait for probe
}

// ctlProbeOut is the SUBSCRIBE or UNSUBSCRIBE the current connection sends
// alone (or waits to), nil if none.
func (s *session) ctlProbeOut() *ctlProbe {
	if s.ctl == nil {
		return nil
	}
	return s.ctl.probe
}

// ctlProbe is a SUBSCRIBE or UNSUBSCRIBE sent alone on a connection.
type ctlProbe struct {
	cn   *conn.Conn
	f    *flight
	sent bool // written to cn's queue; until then it waits for probeQuiet
	// stop stops the timer that says when it may go (nil: none armed);
	// due is set once it fired.
	stop func() bool
	due  bool
}

// startCtlProbe gives cn, the new connection, the SUBSCRIBE or UNSUBSCRIBE
// the last one's end called to send alone, if any, and if it still waits
// for its answer.
func (s *session) startCtlProbe(cn *conn.Conn) {
	if s.ctl == nil {
		return
	}
	if f := s.ctl.next; f != nil && s.flights.get(controlID(f.pkt)) == f {
		s.ctl.probe = &ctlProbe{cn: cn, f: f}
	}
	s.ctl.next = nil
}

// sendCtl sends f, a SUBSCRIBE or UNSUBSCRIBE with its packet identifier,
// on the current connection; while another is sent alone it waits
// (ctlRefusal.held), and one sent alone from its second count on waits until its
// connection has been up for probeQuiet.
func (s *session) sendCtl(f *flight) {
	if p := s.ctlProbeOut(); p != nil {
		if p.f != f {
			s.ctl.held = append(s.ctl.held, f)
			return
		}
		if f.refusals > 0 && !p.due {
			if p.stop == nil {
				p.stop = s.afterQuiet(p.cn)
			}
			return
		}
		p.sent = true
		s.c.probed.Store(s.cur) // its loss is the broker's answer, not a twin's doing
	}
	f.sentOn, f.sentAt = s.connectedN, time.Now()
	s.send(conn.Frame{Packet: f.pkt, Track: trackerOf(f.ctl)})
}

// ctlProbeDue sends the SUBSCRIBE or UNSUBSCRIBE that waited for cn to be
// up for probeQuiet, if cn is still the current connection.
func (s *session) ctlProbeDue(cn *conn.Conn) {
	p := s.ctlProbeOut()
	if p == nil || p.cn != cn || s.cur != cn || p.sent {
		return
	}
	p.due = true
	s.sendCtl(p.f)
}

// ctlProbeHolds reports whether a SUBSCRIBE or UNSUBSCRIBE sent alone (or
// waiting to be) holds everything else back. When none does, it sends
// what waited for one.
func (s *session) ctlProbeHolds() bool {
	r := s.ctl
	if r == nil {
		return false // none ever was: nothing waits for one
	}
	if r.probe != nil {
		return true
	}
	if len(r.held)+len(s.waitingCtl) == 0 || s.cur == nil || s.phase >= goodbye {
		return false
	}
	held, waiting := r.held, s.waitingCtl
	r.held, s.waitingCtl = nil, nil
	for _, f := range held {
		if s.flights.get(controlID(f.pkt)) == f {
			s.sendCtl(f)
		}
	}
	for _, o := range waiting {
		s.sendControl(o)
	}
	return false // none is made mid-connection
}

// endCtlProbe ends the SUBSCRIBE or UNSUBSCRIBE sent alone, if any: it
// was answered, or its connection ended. What it held back goes at the
// next pump.
func (s *session) endCtlProbe() {
	p := s.ctlProbeOut()
	if p == nil {
		return
	}
	s.ctl.probe = nil
	if p.stop != nil {
		p.stop()
	}
	s.c.probed.CompareAndSwap(p.cn, nil)
}

// ctlProbeLost counts, when cn ended, against each SUBSCRIBE and
// UNSUBSCRIBE written on it that the broker had not answered, refuses the
// one that reached refuseAfter, and chooses the one the next connection
// sends alone. unwritten are the frames cn never wrote.
func (s *session) ctlProbeLost(cn *conn.Conn, unwritten []conn.Frame) {
	err := cn.Err()
	mayRefuse := brokerEnded(err) && refusalEnd(err)
	p := s.ctlProbeOut()
	s.endCtlProbe()
	if s.ctl != nil {
		s.ctl.held = nil // still in flight: the next connection sends them again
		s.ctl.next = nil
	}
	var refused []*flight
	for f := range s.flights.all() {
		if f.kind == codec.TypePublish {
			continue
		}
		alone := p != nil && p.f == f
		switch {
		case alone && !p.sent:
			// Ended before it could go alone: the broker ends
			// connections whatever they carry.
			f.refusals = 0
		case f.sentOn != s.connectedN:
			// Not sent on cn (it waited for the one sent alone).
		case mayRefuse && wroteCtl(cn, f, unwritten) && !cn.Stalled() && time.Since(f.sentAt) <= refusalWithin(cn):
			if alone {
				f.refusals++
				if f.refusals >= refuseAfter {
					refused = append(refused, f)
				}
			} else {
				f.ends = min(f.ends+1, math.MaxUint8)
				f.refusals = 0 // the count is of ends while it was alone
			}
		default:
			f.ends, f.refusals = 0, 0
		}
	}
	for _, f := range refused {
		s.refuseCtl(f, err, refusalWithin(cn))
	}
	if !mayRefuse {
		return
	}
	var next *flight
	for f := range s.flights.all() {
		if f.kind != codec.TypePublish && (f.refusals > 0 || f.ends >= 2) && (next == nil || f.seq < next.seq) {
			next = f
		}
	}
	if next != nil {
		if s.ctl == nil {
			s.ctl = new(ctlRefusal)
		}
		s.ctl.next = next
	}
}

// wroteCtl reports whether f's packet reached cn's socket: it is not among
// the frames cn never wrote, and a write succeeded after it was queued.
func wroteCtl(cn *conn.Conn, f *flight, unwritten []conn.Frame) bool {
	for _, fr := range unwritten {
		if fr.Packet == f.pkt {
			return false
		}
	}
	return cn.WroteSince(f.sentAt)
}

// refuseCtl ends f, a SUBSCRIBE or UNSUBSCRIBE the broker refused by
// ending the connection (end is the last end's error, which came within
// the given time of f): its call ends with ErrRefused, and it is not sent
// again.
func (s *session) refuseCtl(f *flight, end error, within time.Duration) {
	what := "SUBSCRIBE to"
	var filters []string
	switch p := f.pkt.(type) {
	case *codec.Subscribe:
		for _, sub := range p.Subscriptions {
			filters = append(filters, sub.Filter)
		}
	case *codec.Unsubscribe:
		what, filters = "UNSUBSCRIBE from", p.Filters
	}
	why := "brokers that refuse by closing do so for a topic filter the client may not use"
	if len(filters) > resubscribeBatch {
		why += fmt.Sprintf(", or for more filters in one packet than they take (AWS IoT Core takes %d)", resubscribeBatch)
	}
	err := fmt.Errorf("%w: %w: %s %q: the broker ended the last %d connections within %s of its being sent alone on each, before answering it, so it will not take it (%s); it is not sent again: %w",
		ErrRefused, ErrOutcomeUnknown, what, filters, refuseAfter, within.Round(time.Millisecond), why, end)
	s.endFlight(controlID(f.pkt))
	if sub, ok := f.pkt.(*codec.Subscribe); ok && f.ctl == nil && len(sub.Subscriptions) > 1 {
		// The client's own re-subscription: the broker may refuse one
		// filter of it, so each goes again on its own, to be answered
		// or refused alone.
		s.cfg.Logger.Warn("mqtt: the broker refuses a re-subscription of several filters; subscribing to each on its own", "err", err)
		for i, one := range sub.Subscriptions {
			id, ok := s.allocID()
			if !ok {
				var left []string
				for _, sub := range sub.Subscriptions[i:] {
					left = append(left, sub.Filter)
				}
				s.resubscribeFailed(left, errIDsExhausted)
				return
			}
			s.seq++
			pkt := &codec.Subscribe{PacketID: id, Subscriptions: []codec.Subscription{one}, Properties: sub.Properties}
			s.putFlight(id, &flight{seq: s.seq, kind: codec.TypeSubscribe, pkt: pkt})
		}
		return
	}
	if sub, ok := f.pkt.(*codec.Subscribe); ok && f.ctl == nil {
		// The client's own re-subscription of one filter: made again
		// after every later session loss (with a clean session, on
		// every connection), it would cost that many connections each
		// time; the broker no longer takes it.
		s.unsubscribed(sub.Subscriptions[0].Filter)
		s.resubscribeFailed([]string{sub.Subscriptions[0].Filter}, err)
		return
	}
	s.cfg.Logger.Warn("mqtt: the broker refuses a subscription request", "err", err)
	if f.ctl != nil {
		f.ctl.finish(err)
	}
}
