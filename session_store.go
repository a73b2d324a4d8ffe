package mqtt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

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
// Values, version 1:
//
//	outbound: 'P' version flags id(2) PUBLISH-frame
//	inbound:  'I'
//
// version is the protocol level the frame was encoded at; flags bit 0 says
// that PUBREC came (PUBREL is owed); id is the packet identifier, 0 while
// the message has not been sent.
const (
	recPublish   = 'P'
	recInbound   = 'I'
	flagReleased = 1
	recHeader    = 5
	inboundKey   = 1 << 63
)

// restore loads the session from the store before anything connects.
func (s *session) restore() error {
	st := s.cfg.Store
	return st.Load(func(key uint64, v []byte) error {
		if key&inboundKey != 0 {
			if len(v) != 1 || v[0] != recInbound || key-inboundKey > 0xFFFF || key == inboundKey {
				return fmt.Errorf("mqtt: store: record %#x is not an inbound packet identifier", key)
			}
			s.in[uint16(key-inboundKey)] = &inState{qos: ExactlyOnce, gen: s.gen, stage: inAwaitRel}
			return nil
		}
		return s.restorePublish(key, v)
	})
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
	p, n, err := codec.Decode(v[recHeader:], version, 0)
	if err != nil {
		return bad("%w", err)
	}
	pub, ok := p.(*codec.Publish)
	if !ok || n != len(v)-recHeader || pub.QoS == AtMostOnce {
		return bad("not a QoS 1 or 2 PUBLISH")
	}
	if flags&flagReleased != 0 && (id == 0 || pub.QoS != ExactlyOnce) {
		return bad("released but not a sent QoS 2 publish")
	}
	if id != 0 && (s.flights[id] != nil) {
		return bad("packet identifier %d is used twice", id)
	}
	o := &pubOp{}
	o.init(s.c, context.Background(), make(chan error, 1))
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
		o.rel = codec.Pubrel{PacketID: id}
	}
	s.flights[id] = &o.fl
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
func takeWaiting[T any](ch <-chan T, f func(T)) {
	for range groupCommitMax {
		select {
		case v := <-ch:
			f(v)
		default:
			return
		}
	}
}

// storePublish writes an accepted QoS 1/2 publish to the store; the next
// commit makes it durable before anything of it is written.
func (s *session) storePublish(o *pubOp) error {
	s.storeSeq++
	o.storeKey = s.storeSeq
	if err := s.putPublish(o, 0); err != nil {
		o.storeKey = 0
		return err
	}
	if o.stored != nil {
		s.storedWait = append(s.storedWait, o)
	}
	return nil
}

// putPublish writes o's record with its packet identifier and flags.
func (s *session) putPublish(o *pubOp, flags byte) error {
	b := append(s.recBuf[:0], recPublish, s.cfg.version, flags, byte(o.id>>8), byte(o.id))
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
	if err := s.cfg.Store.Put(o.storeKey, b); err != nil {
		return err
	}
	s.dirty = true
	return nil
}

// storeProgress records a stored publish's progress: its packet
// identifier once it is given one, and PUBREC for QoS 2.
func (s *session) storeProgress(o *pubOp, flags byte) {
	if o.storeKey == 0 {
		return
	}
	if err := s.putPublish(o, flags); err != nil {
		s.cfg.Logger.Error("mqtt: cannot record a publish's progress in the store; after a restart it may be sent as new", "topic", o.pkt.Topic, "err", err)
	}
}

// storeProgressLazily records a QoS 1 publish's packet identifier without
// asking for a sync: if it is lost in a crash, the message goes again as
// new, which at-least-once allows.
func (s *session) storeProgressLazily(o *pubOp) {
	dirty := s.dirty
	s.storeProgress(o, 0)
	s.dirty = dirty
}

// unstore removes a publish that has its result. durable: the removal is
// synced before the next frame goes out (the publish failed, and must not
// be sent again after a restart); otherwise it rides on the next sync.
func (s *session) unstore(o *op, durable bool) {
	if o.storeKey == 0 {
		return
	}
	if err := s.cfg.Store.Delete(o.storeKey); err != nil {
		s.cfg.Logger.Error("mqtt: cannot remove a finished publish from the store", "err", err)
	}
	o.storeKey = 0
	s.dirty = s.dirty || durable
}

// storeInbound records an inbound QoS 2 packet identifier before PUBREC.
func (s *session) storeInbound(id uint16) {
	if s.cfg.Store == nil {
		return
	}
	if err := s.cfg.Store.Put(inboundKey|uint64(id), []byte{recInbound}); err != nil {
		s.cfg.Logger.Error("mqtt: cannot record an inbound QoS 2 message in the store", "id", id, "err", err)
		return
	}
	s.dirty = true
}

// unstoreInbound forgets an inbound QoS 2 packet identifier.
func (s *session) unstoreInbound(id uint16) {
	if s.cfg.Store == nil {
		return
	}
	if err := s.cfg.Store.Delete(inboundKey | uint64(id)); err != nil {
		s.cfg.Logger.Error("mqtt: cannot remove an inbound QoS 2 identifier from the store", "id", id, "err", err)
	}
}

// send queues f on the current connection. With a store, frames wait while
// records they depend on are not yet durable, and go out in order at the
// next commit.
func (s *session) send(f conn.Frame) bool {
	if s.cfg.Store != nil && (s.dirty || len(s.held) > 0) {
		s.held = append(s.held, f)
		return true
	}
	return s.cur.Send(f)
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
	s.queue.pushFront(back)
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
