package mqtt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/conn"
	"github.com/robustmqtt/mqtt/store"
)

// How the session keeps itself in Config.Store.
//
// Keys: an outbound QoS 1/2 publish is stored under the order in which the
// session accepted it (1, 2, ...), so Load returns them in that order; an
// inbound QoS 2 packet identifier awaiting PUBREL under inboundKey(id).
//
// Key 0 names whose session the store holds, so that another client never
// sends what this one accepted [MQTT-3.1.3-2].
//
// Values, version 1:
//
//	session:  'S' version ClientID
//	outbound: 'P' version flags id(2) PUBLISH-frame
//	inbound:  'I'
//
// version is the protocol level the frame was encoded at; flags bit 0 says
// that PUBREC came (PUBREL is owed), bit 1 that an expiry deadline follows
// the header: 8 bytes, Unix nanoseconds, when the MQTT 5 Message Expiry
// Interval runs out (the frame keeps the interval as given); bit 2 that
// the PUBREC's place follows (after the deadline, if any): 8 bytes, a
// number that grows with each PUBREC the session receives, across
// restarts, so that PUBRELs go again in the order the PUBRECs came
// [MQTT-4.6.0-4]. A released record without it (written before bit 2
// existed) takes its place in the order of acceptance. id is the packet
// identifier, 0 while the message has not been sent.
const (
	recSession   = 'S'
	sessionKey   = 0
	recPublish   = 'P'
	recInbound   = 'I'
	flagReleased = 1
	flagExpires  = 2
	flagRelOrder = 4
	recHeader    = 5
	inboundKey   = 1 << 63
)

// restore loads the session from the store before anything connects. A
// store that holds another client's session (another ClientID, another
// protocol version) is an error: its messages are not this client's to
// send. A store without the record naming its client gets one.
func (s *session) restore() error {
	st := s.cfg.Store
	named := false
	err := st.Load(func(key uint64, v []byte) error {
		if key == sessionKey {
			named = true
			return s.checkOwner(v)
		}
		if key&inboundKey != 0 {
			if len(v) != 1 || v[0] != recInbound || key-inboundKey > 0xFFFF || key == inboundKey {
				return fmt.Errorf("mqtt: store: record %#x is not an inbound packet identifier", key)
			}
			s.putIn(uint16(key-inboundKey), &inState{qos: ExactlyOnce, gen: s.gen, stage: inAwaitRel, stored: true})
			return nil
		}
		return s.restorePublish(key, v)
	})
	if err != nil {
		return err
	}
	// PUBRECs to come take places after those of the restored flights.
	s.seq = max(s.seq, s.restoredRelSeq)
	if named {
		return nil
	}
	// A new store: a session the broker kept for this ClientID is an
	// earlier client's, whose state this one does not have.
	s.unknownSession = true
	owner := append([]byte{recSession, s.cfg.version}, s.cfg.ClientID...)
	return s.storePut(sessionKey, owner, sessionNamed)
}

// checkOwner checks that the store's session record names this client.
func (s *session) checkOwner(v []byte) error {
	if len(v) < 2 || v[0] != recSession {
		return fmt.Errorf("mqtt: store: record 0 does not name a session (%d bytes)", len(v))
	}
	if id := string(v[2:]); id != s.cfg.ClientID {
		return fmt.Errorf("mqtt: store: it holds the session of client ID %q, not %q: give each client its own store", id, s.cfg.ClientID)
	}
	if v[1] != s.cfg.version {
		return fmt.Errorf("mqtt: store: it holds an MQTT protocol level %d session, but Config.Version is %d: use the same version, or another store", v[1], s.cfg.version)
	}
	return nil
}

// restorePublish puts one stored outbound publish back: into the queue if
// it was never sent, or in flight under its packet identifier.
func (s *session) restorePublish(key uint64, v []byte) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("mqtt: store: record %d: "+format, append([]any{key}, args...)...)
	}
	if len(v) < recHeader || v[0] != recPublish {
		return bad("not a publish (%d bytes)", len(v))
	}
	version, flags, id := v[1], v[2], binary.BigEndian.Uint16(v[3:5])
	if version != s.cfg.version {
		return bad("written by an MQTT protocol level %d client, but Config.Version is %d: use the same version, or another store", version, s.cfg.version)
	}
	frame := v[recHeader:]
	var expires time.Time
	if flags&flagExpires != 0 {
		if len(frame) < 8 {
			return bad("expiry deadline cut short")
		}
		expires = time.Unix(0, int64(binary.BigEndian.Uint64(frame)))
		frame = frame[8:]
	}
	var relSeq uint64
	if flags&flagRelOrder != 0 {
		if len(frame) < 8 || flags&flagReleased == 0 {
			return bad("PUBREC order cut short, or without PUBREC")
		}
		relSeq = binary.BigEndian.Uint64(frame)
		frame = frame[8:]
	}
	p, n, err := codec.Decode(frame, version, 0)
	if err != nil {
		return bad("%w", err)
	}
	pub, ok := p.(*codec.Publish)
	if !ok || n != len(frame) || pub.QoS == AtMostOnce {
		return bad("not a QoS 1 or 2 PUBLISH")
	}
	if flags&flagReleased != 0 && (id == 0 || pub.QoS != ExactlyOnce) {
		return bad("released but not a sent QoS 2 publish")
	}
	if id != 0 && (s.flights.get(id) != nil) {
		return bad("packet identifier %d is used twice", id)
	}
	o := newPubOp()
	o.init(s.c, context.Background(), make(chan error, 1))
	o.restored = true
	o.expires = expires // the queue expires it, or a re-send says what is left
	o.qos, o.pkt, o.policy = int8(pub.QoS), *pub, Block
	o.size = len(pub.Topic) + len(pub.Payload)
	o.storeKey = key
	s.c.adm.force(o.size)
	o.holdsRoom = true
	s.storeSeq = max(s.storeSeq, key)
	if id == 0 {
		s.queue.push(o)
		return nil
	}
	o.state.Store(opClaimed) // it was written: DUP when sent again
	o.id, o.inFlight, o.pkt.PacketID = id, true, id
	s.seq++
	o.fl = flight{seq: s.seq, kind: codec.TypePublish, pub: o}
	if flags&flagReleased != 0 {
		o.fl.relNeeded = true
		o.fl.relSeq = o.fl.seq
		if relSeq != 0 {
			o.fl.relSeq = relSeq
			s.restoredRelSeq = max(s.restoredRelSeq, relSeq)
		}
		o.rel = codec.Pubrel{PacketID: id}
	}
	s.putFlight(id, &o.fl)
	s.pubInflight++
	s.nextID = max(s.nextID, id)
	return nil
}

// groupCommitMax bounds how many waiting publishes one turn of the
// session loop takes in to share a sync.
const groupCommitMax = 256

// takeWaiting hands what is already waiting on ch to f, at most
// groupCommitMax of it, without blocking. The session takes in publishes
// and reader frames so before it commits, so that the records they cause
// (accepted messages, released QoS 2 ones, new packet identifiers) share
// one sync: publishers that arrive while a sync runs are all waiting when
// it ends.
// more is asked before each.
func takeWaiting[T any](ch <-chan T, f func(T), more func() bool) {
	for range groupCommitMax {
		if !more() {
			return
		}
		select {
		case v := <-ch:
			f(v)
		default:
			return
		}
	}
}

// always is a takeWaiting condition that always takes more.
func always() bool { return true }

// storeChange is a kind of change the session makes to its store.
type storeChange int

const (
	pubAccepted  storeChange = iota // an outbound QoS 1/2 publish was accepted
	pubQoS1Sent                     // a QoS 1 publish got its packet identifier
	pubQoS2Sent                     // a QoS 2 publish got its packet identifier
	pubReleased                     // PUBREC came for a QoS 2 publish: PUBREL is owed
	pubAcked                        // the broker acknowledged a publish (PUBACK, PUBCOMP)
	pubAbandoned                    // a publish ended unsent or refused: never to be sent again
	inAccepted                      // an inbound QoS 2 message is about to get PUBREC
	inCompleted                     // an inbound QoS 2 flow ended (PUBREL came, or the broker lost the session)
	sessionNamed                    // the store was given the record naming its client
)

// mustSync decides, for every change, whether it must be durable before
// the next frame goes out and before the result that follows from it is
// given (see send and settle). This is the one place that decides it; what
// a crash between the change and the next sync would do if it were not
// synced is the reason for each answer.
func (c storeChange) mustSync() bool {
	switch c {
	case pubQoS1Sent:
		// Lost: the message goes again as new, which QoS 1 allows.
		return false
	case pubAcked:
		// Lost: a QoS 1 message goes again (allowed); a QoS 2 one was
		// synced as released before its PUBREL, so PUBREL goes again
		// and the broker answers PUBCOMP. Nothing is delivered twice.
		return false
	case pubAccepted:
		// PublishAsync returns once the message is durable.
		return true
	case pubQoS2Sent:
		// Lost: sent again under another identifier after a restart, the
		// message could be delivered twice.
		return true
	case pubReleased:
		// Lost: the PUBREL already sent could be followed by the PUBLISH
		// again after a restart.
		return true
	case pubAbandoned:
		// Lost: a message whose caller was told it failed (withdrawn,
		// refused, dropped) would be sent after a restart.
		return true
	case inAccepted:
		// Lost: after PUBREC, a restart would take the broker's copy for
		// a new message and deliver it twice.
		return true
	case sessionNamed:
		// Lost: the records written after it would be found without it,
		// which a store written by an older client looks like too.
		return true
	case inCompleted:
		// Lost: after PUBCOMP, a restart would wait for a PUBREL that
		// never comes and take the broker's next message under that
		// identifier for a duplicate, acknowledging it undelivered.
		return true
	}
	panic(fmt.Sprintf("mqtt: internal error: unknown store change %d", c))
}

// storePut writes a record for change c.
func (s *session) storePut(key uint64, v []byte, c storeChange) error {
	if err := s.cfg.Store.Put(key, v); err != nil {
		return err
	}
	s.dirty = s.dirty || c.mustSync()
	return nil
}

// storeDelete removes a record for change c.
func (s *session) storeDelete(key uint64, c storeChange) error {
	err := s.cfg.Store.Delete(key)
	s.dirty = s.dirty || c.mustSync()
	return err
}

// storePublish writes an accepted QoS 1/2 publish to the store; the next
// commit makes it durable before anything of it is written.
func (s *session) storePublish(o *pubOp) error {
	s.storeSeq++
	o.storeKey = s.storeSeq
	if err := s.putPublish(o, 0, pubAccepted); err != nil {
		o.storeKey = 0
		return err
	}
	if o.stored != nil {
		s.storedWait = append(s.storedWait, o)
	}
	return nil
}

// putPublish writes o's record with its packet identifier and flags.
func (s *session) putPublish(o *pubOp, flags byte, c storeChange) error {
	if !o.expires.IsZero() {
		flags |= flagExpires
	}
	if flags&flagReleased != 0 {
		flags |= flagRelOrder
	}
	b := append(s.recBuf[:0], recPublish, s.cfg.version, flags, byte(o.id>>8), byte(o.id))
	if !o.expires.IsZero() {
		b = binary.BigEndian.AppendUint64(b, uint64(o.expires.UnixNano()))
	}
	if flags&flagRelOrder != 0 {
		b = binary.BigEndian.AppendUint64(b, o.fl.relSeq)
	}
	p := o.pkt
	if p.PacketID == 0 {
		p.PacketID = 1 // a placeholder the encoder needs; the header has the real one
	}
	p.Dup = false
	b, err := p.AppendTo(b, s.cfg.version)
	if err != nil {
		return fmt.Errorf("mqtt: store: encode publish to %s: %w", p.Topic, err)
	}
	s.recBuf = b
	return s.storePut(o.storeKey, b, c)
}

// storeProgress records a stored publish's progress: its packet
// identifier once it is given one (pubQoS1Sent, pubQoS2Sent), and PUBREC
// for QoS 2 (pubReleased).
func (s *session) storeProgress(o *pubOp, c storeChange) error {
	if o.storeKey == 0 {
		return nil
	}
	var flags byte
	if c == pubReleased {
		flags = flagReleased
	}
	if err := s.putPublish(o, flags, c); err != nil {
		s.cfg.Logger.Error("mqtt: cannot record a publish's progress in the store; after a restart it may be sent as new", "topic", o.pkt.Topic, "err", err)
		return err
	}
	return nil
}

// storeFailed closes the current connection because a record a frame
// depends on could not be written: the frame is not sent, and the broker
// sends its side again on the next connection, when the store may work
// (3.1.1 [MQTT-4.8.0-2]).
func (s *session) storeFailed(err error) {
	if s.cur == nil {
		return
	}
	s.cur.Fail(fmt.Errorf("mqtt: the store failed, so the next packet cannot be sent safely; reconnecting: %w", err))
	s.lost()
}

// unstore removes the record of a publish that has its result: c is
// pubAcked or pubAbandoned.
func (s *session) unstore(o *op, c storeChange) {
	if o.storeKey == 0 {
		return
	}
	if err := s.storeDelete(o.storeKey, c); err != nil {
		s.cfg.Logger.Error("mqtt: cannot remove a finished publish from the store", "err", err)
	}
	o.storeKey = 0
}

// settle gives o its result err and removes its record: for a publish that
// ended unsent or refused (abandoned), the result is given only once the
// removal is durable, so that no caller told it failed sees it sent after
// a restart; otherwise at once.
func (s *session) settle(o *op, err error, abandoned bool) {
	c := pubAcked
	if abandoned {
		c = pubAbandoned
	}
	durable := o.storeKey != 0 && c.mustSync()
	s.unstore(o, c)
	if !durable {
		o.finish(err)
		return
	}
	s.finishing = append(s.finishing, finishLater{o: o, err: err})
}

// finishLater is a result waiting for the next commit.
type finishLater struct {
	o   *op
	err error
}

// storeInbound records an inbound QoS 2 packet identifier before PUBREC.
func (s *session) storeInbound(id uint16) error {
	if s.cfg.Store == nil {
		return nil
	}
	return s.storePut(inboundKey|uint64(id), []byte{recInbound}, inAccepted)
}

// unstoreInbound forgets an inbound QoS 2 packet identifier; the PUBCOMP
// that follows waits for the removal to be durable.
func (s *session) unstoreInbound(id uint16) error {
	if s.cfg.Store == nil {
		return nil
	}
	if err := s.storeDelete(inboundKey|uint64(id), inCompleted); err != nil {
		s.cfg.Logger.Error("mqtt: cannot remove an inbound QoS 2 identifier from the store", "id", id, "err", err)
		return err
	}
	return nil
}

// send queues f on the current connection. With a store, frames wait while
// records they depend on are not yet durable, and go out in order at the
// next commit. Once the DISCONNECT of a Disconnect is queued, nothing more
// is: send reports false, as for a connection that died.
func (s *session) send(f conn.Frame) bool {
	if s.phase >= goodbye {
		return false // nothing follows DISCONNECT [MQTT-3.14.4-1]
	}
	if s.cfg.Store != nil && (s.dirty || len(s.held) > 0) {
		s.held = append(s.held, f)
		return true
	}
	if s.callerFlushes {
		s.flushOwed = s.cur
		return s.cur.SendQuiet(f)
	}
	return s.cur.Send(f)
}

// sendPublish sends pkt, the PUBLISH of o (o.pkt, or a copy of it), with
// a reference to o for the frame (see pubOp.release).
func (s *session) sendPublish(o *pubOp, pkt *codec.Publish) bool {
	o.hold()
	if !s.send(conn.Frame{Packet: pkt, Track: o}) {
		o.release() // not queued: no writer will say it was written
		return false
	}
	return true
}

// sendPubrel sends the PUBREL of o (o.rel), with a reference to o for the
// frame.
func (s *session) sendPubrel(o *pubOp) bool {
	o.hold()
	if !s.send(conn.Frame{Packet: &o.rel, Track: (*pubrelTracker)(o)}) {
		o.release()
		return false
	}
	return true
}

// commit syncs the store, then lets the held frames go out and tells the
// waiting PublishAsync calls that their messages are durable. It runs once
// per turn of the session loop, so that everything that turn stored
// shares one sync. A failed sync stops the client: a store that cannot
// sync cannot keep the promise that an accepted message survives a crash
// (store.File refuses all further use after a failed write anyway).
func (s *session) commit() error {
	if s.dirty {
		if err := s.cfg.Store.Sync(); err != nil {
			return fmt.Errorf("mqtt: the store failed, so nothing more can be made durable; the client stops: %w", err)
		}
		s.dirty = false
	}
	held := s.held
	s.held = nil
	for i, f := range held {
		if s.cur == nil || !s.cur.Send(f) {
			s.unhold(held[i:])
			break
		}
	}
	clear(held)
	s.held = held[:0]
	for _, o := range s.storedWait {
		close(o.stored)
	}
	clear(s.storedWait)
	s.storedWait = s.storedWait[:0]
	for _, f := range s.finishing {
		f.o.finish(f.err)
	}
	clear(s.finishing)
	s.finishing = s.finishing[:0]
	return nil
}

// unhold takes back frames that will not be written (queued on a
// connection that died, or held for a sync): QoS 0 publishes go back to the
// front of the queue, in their order; the rest is sent again from the
// session's state on the next connection.
func (s *session) unhold(frames []conn.Frame) {
	var back []*pubOp
	for _, f := range frames {
		if o, ok := f.Track.(*pubOp); ok && o.finishOnWrite && !o.done() {
			back = append(back, o)
		}
	}
	s.requeue(back)
}

// closeStore syncs the store when the session ends. The application owns
// the store and closes it.
func (s *session) closeStore() error {
	if s.cfg.Store == nil {
		return nil
	}
	return s.cfg.Store.Sync()
}

// ErrInStore is the result of a QoS 1/2 publish that was durably in
// Config.Store when the client stopped before the broker acknowledged it:
// it is not lost, the next client that opens the same store with the same
// ClientID sends it.
var ErrInStore = errors.New("mqtt: the client stopped before the broker acknowledged the message; it is kept in the store for the next client with the same store")

var _ store.Store = (*store.Memory)(nil)
