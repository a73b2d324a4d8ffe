package mqtt

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/conn"
)

// closeDisconnectWait bounds how long Close waits for its best-effort
// DISCONNECT to be written and the broker to close the connection before
// it cuts the connection; over a link slower than that, two round trips.
const closeDisconnectWait = 200 * time.Millisecond

// resubscribeBatch is how many filters go in one SUBSCRIBE when the client
// subscribes again after the broker lost the session: AWS IoT Core takes at
// most 8 per SUBSCRIBE (a hard limit) and ends the connection over a
// larger one, so a client whose application subscribed within that limit
// must not exceed it on its own.
const resubscribeBatch = 8

// session is the state of one MQTT session. Only the session goroutine
// (run) touches it; everything else sends it requests on the Client's
// channels.
type session struct {
	c   *Client
	cfg *settings

	// Where the session is in its life; see phase.
	phase      phase
	disconnect *disconnectRequest // the graceful Disconnect in progress (draining and after)
	finalFrame chan struct{}      // goodbye: closed once the DISCONNECT was written

	// The connection in use; nil while disconnected.
	cur       *conn.Conn
	window    int  // publishes in flight allowed on cur
	maxPacket int  // the broker's Maximum Packet Size; 0: no limit
	maxQoS    QoS  // the broker's Maximum QoS
	noRetain  bool // the broker said Retain Available = 0
	resumed   bool // cur's CONNACK said Session Present
	// unknownSession: a session the broker kept holds state this one
	// does not have: an earlier client's with this ClientID (no Store,
	// or a new one), or this client's from before it went on at another
	// server (newConn.presentElsewhere; see releaseForeign); false once
	// a CONNACK says the broker has none.
	unknownSession bool
	// probeNext: how the next connection sends what it owes, and
	// suspectID: the first PUBLISH owed when the broker last ended a
	// connection (see refused.go).
	probeNext probeMode
	// moves counts, modulo 256, the connections to another server than
	// the last one's that said Session Present (newConn.presentElsewhere):
	// a QoS 2 flow whose PUBREC came before the latest such move ends
	// with its PUBCOMP in doubt (see onPubcomp).
	moves      uint8
	suspectID  uint16
	aliases    map[uint16]string
	reauth     *reauthExchange // Client.Reauthenticate's exchange on cur; nil: none
	gen        uint64          // bumped whenever the broker lost the session
	connectedN int             // how many connections this session has had
	probe      *probe          // cur's probe (see refused.go); nil: none
	ctl        *ctlRefusal     // nil until a SUBSCRIBE or UNSUBSCRIBE is first sent alone (refused_control.go)

	// Outbound.
	queue          opQueue     // publishes not yet given a packet identifier
	flights        flightTable // by packet identifier: publishes, subscribes, unsubscribes
	seq            uint64      // order in which flights were first sent
	restoredRelSeq uint64      // the highest PUBREC place restored from the store
	takenIn        int64       // publishes taken from c.ctrl this turn (see allowDirect)

	// mu is held by whichever goroutine handles the session's state: the
	// session loop for each turn, or a reader handling an acknowledgement
	// inline (inlineAck). One owner at a time; the loop never holds it
	// while it waits.
	mu        sync.Mutex
	wake      chan struct{} // 1-buffered: inlineAck changed the loop's waitKey
	inlineErr error         // a store failure met inline: the loop stops with it
	// callerFlushes: frames are queued without waking the writer, and
	// flushOwed is the connection the inline caller must flush after.
	callerFlushes bool
	// dirty (Config.Store, below): records were written that must be
	// synced before the held frames go. Here, it packs with the fields
	// around it.
	dirty       bool
	nextID      uint16 // last packet identifier handed out
	lastSubID   uint32 // the last Subscription Identifier given to a route (here, it packs with the three above)
	flushOwed   *conn.Conn
	pubInflight int               // flights that are publishes
	resend      []*flight         // publishes owed again on cur, waiting for room in its window
	resendN     int               // how many of resend are still owed (the rest ended meanwhile)
	settled     *idSet            // identifiers whose publish flow ended on cur; nil until the first
	waitingCtl  []*ctlOp          // subscribes/unsubscribes waiting for a connection
	latest      map[string]*pubOp // LatestPerTopic: the newest queued publish per topic
	sentQoS0    fifo[*pubOp]      // QoS 0 publishes handed to cur and maybe not written yet
	flushes     []*flushWaiter    // Flush calls waiting

	// Config.Store (see session_store.go).
	storeSeq   uint64         // the last key given to an outbound record
	held       []conn.Frame   // frames waiting for the next commit, in order
	storedWait []*pubOp       // PublishAsync calls waiting for their message to be durable
	recBuf     []byte         // reused to encode records
	finishing  []finishLater  // results to give once the store's changes are durable
	subs       []Subscription // what the broker should have, in subscribe order

	// Inbound.
	in map[uint16]*inState // QoS 1/2 packet identifiers of the broker's, by state
	// brokerHeld: identifiers under which the broker holds QoS 2 flows
	// this session does not know (see heldID); not handed out.
	brokerHeld   map[uint16]*heldID
	pending      fifo[delivery] // messages waiting for the application
	pendingBytes int            // their size (see inboundSize)
	pendingQoS12 int            // how many of them are QoS 1/2
	arrivals     fifo[arrival]  // QoS 1/2 PUBLISHes received on cur, in order, until answered
	// inQuota is how many QoS 1/2 PUBLISHes the broker sent on cur that
	// it has no PUBACK or PUBCOMP for yet: under MQTT 5 at most the
	// Receive Maximum this client announced [MQTT-3.3.4-9].
	inQuota     int32 // (int32: it shares a word with the four flags below)
	overrunSaid bool  // the broker exceeding it was logged, on cur
	dropping    bool
	// downgradeSaid: a PUBACK for a QoS 2 publish was logged, on cur.
	downgradeSaid bool
	noSubIDs      bool      // the broker said Subscription Identifier Available 0 (here, it packs with inQuota)
	dropped       int       // QoS 0 messages dropped since the last MessagesDropped event
	dropSaid      time.Time // when the last MessagesDropped event went out

	// Routes and requests (routes.go, request.go).
	pendingN   int            // messages waiting for the application: in pending and in every route's queue
	routes     []*route       // in the order they were made
	turns      chan routeTurn // from the routes' relays; nil until the first route
	routesStop chan struct{}  // closed as the client stops: the relays exit
	relays     sync.WaitGroup // the routes' relays
	// lastSubID and noSubIDs sit above, where they pack with smaller fields.
	subIDOf   map[string]uint32         // the Subscription Identifier each filter was subscribed with, if any
	requests  map[string]chan<- Message // Request calls waiting for a reply, by correlation data
	respTopic string                    // the client's response topic, once looked up
}

// phase is where a session is in its life. It only moves forward.
type phase int

const (
	// running: the normal life, connected or not.
	running phase = iota
	// draining: Disconnect was called; no new work is accepted, and what
	// was accepted is given until Disconnect's ctx ends to finish.
	draining
	// goodbye: DISCONNECT is queued. Nothing is sent after it
	// [MQTT-3.14.4-1] and nothing received is taken in; the session ends
	// once it is written.
	goodbye
	// stopped: the session loop ends at the end of this turn.
	stopped
)

// flight is one packet identifier in use by this client.
type flight struct {
	seq       uint64
	kind      codec.PacketType // TypePublish, TypeSubscribe, TypeUnsubscribe
	pub       *pubOp           // publish
	ctl       *ctlOp           // subscribe/unsubscribe; nil for a re-subscribe after a lost session
	pkt       codec.Packet     // subscribe/unsubscribe as sent
	relNeeded bool             // QoS 2: PUBREC received, PUBREL sent, waiting for PUBCOMP
	relSeq    uint64           // relNeeded: when its PUBREC came, in the order of seq
	owed      bool             // in session.resend: its PUBLISH goes again on this connection
	// moves counts the identifiers the publish left because the broker
	// held flows of its own under them (see movePastStale).
	moves uint8
	// relMoves is session.moves when the PUBREC came (relNeeded).
	relMoves uint8
	// sentBeforeLoss: a QoS 2 PUBLISH that may have reached a broker
	// that then lost the session, sent again as a new message (see
	// brokerLostSession): it may be delivered twice.
	sentBeforeLoss bool
	// SUBSCRIBE and UNSUBSCRIBE (see refused_control.go): the connection
	// it was last sent on (its connectedN) and when; how many ends of
	// connections in a row may have been the broker's refusal of it,
	// among others (ends) and sent alone (refusals).
	sentOn         int
	sentAt         time.Time
	ends, refusals uint8
}

// inState is where an inbound QoS 1/2 message is in its flow.
type inState struct {
	qos    QoS
	stage  inStage
	stored bool // QoS 2: its record is in Config.Store
	gen    uint64
	// sum is the message's fingerprint (inboundSum); 0 for a record
	// restored from the store, which has none.
	sum uint64
}

type inStage uint8

const (
	inDelivering inStage = iota // waiting for the application
	inAckOwed                   // the application has it; PUBACK/PUBREC not sent yet
	inAwaitRel                  // QoS 2: PUBREC sent, waiting for PUBREL
)

func newSession(c *Client) *session {
	return &session{
		c:      c,
		cfg:    c.cfg,
		maxQoS: ExactlyOnce,
		wake:   make(chan struct{}, 1),
	}
}

// run is the session goroutine.
func (s *session) run() {
	c := s.c
	var stopErr error
	defer func() {
		s.mu.Lock() // held to the end: nothing is handled inline any more
		s.shutdown(stopErr)
	}()
	for {
		s.mu.Lock()
		key := s.waitKey()
		var deliver chan<- Message
		var head Message
		if key.deliver {
			deliver, head = c.messages, s.pending.front().msg
		}
		finalFrame, turns := s.finalFrame, s.turns
		s.mu.Unlock()
		inbound := c.inbound
		if key.paused {
			inbound = nil // flow control: the reader waits, TCP holds the broker back
		}
		var r any
		var in conn.Inbound
		var t routeTurn
		var what int
		select {
		case r = <-c.ctrl:
			what = 2
		case in = <-inbound:
			what = 4
		case deliver <- head:
			what = 6
		case t = <-turns:
			what = 7
		case <-s.wake:
			what = 9
		case <-finalFrame:
			return
		}
		if what == 9 {
			if c.supDone.Load() {
				stopErr = c.supErr
				return
			}
			if c.closing.Load() {
				s.mu.Lock()
				s.closeNow()
				s.mu.Unlock()
				return
			}
		}
		s.mu.Lock()
		switch what {
		// Whatever else waits on the same channel is taken in the same
		// turn: one wake-up for a burst, and with a store one sync.
		case 2:
			s.control(r)
			takeWaiting(c.ctrl, s.control, always)
		case 4:
			s.takeInbound(in)
			takeWaiting(c.inbound, s.takeInbound, s.inboundOpen)
		case 6:
			s.delivered()
		case 7:
			s.routeTurn(t)
		case 9:
			// Something handled inline changed what this loop waits for,
			// or stopped the session; or a publish finished while a Flush
			// or Disconnect waits (c.progress): endTurn checks them; or
			// the connection failed (conn.Config.OnFail): below.
		}
		if s.cur != nil && s.cur.Err() != nil {
			// Its end is news to this turn whatever woke it: OnFail's
			// wake-up, or a connection that failed before the session
			// took it (its OnFail found no current one to settle).
			s.lost()
		}
		err := s.inlineErr
		if err == nil {
			err = s.endTurn()
		}
		if err != nil {
			s.mu.Unlock()
			s.cfg.Logger.Error("mqtt: store failure", "err", err)
			stopErr = err
			return
		}
		stop := s.phase == stopped
		if !stop {
			s.allowDirect()
		}
		s.mu.Unlock()
		if stop {
			return
		}
	}
}

// waitKey is what the session loop waits on besides its fixed channels.
// When an acknowledgement handled inline (inlineAck) changes it, the loop
// is woken to wait on the new one.
// Acknowledgements never change the messages waiting for the application,
// so their place in the queue stands for the message offered.
type waitKey struct {
	deliver                 bool // a message waits for the application
	pendingLen, pendingHead int  // where the message offered is
	cur                     *conn.Conn
	paused                  bool // inbound flow control: the reader waits
	phase                   phase
}

func (s *session) waitKey() waitKey {
	return waitKey{
		deliver:    s.pending.len() > 0 && s.phase < goodbye,
		pendingLen: s.pending.len(), pendingHead: s.pending.head,
		cur: s.cur, paused: s.inboundPaused(), phase: s.phase,
	}
}

// takePublish accepts a publish that came through c.ctrl, which stops
// being in transit at the end of the turn (see allowDirect).
func (s *session) takePublish(o *pubOp) {
	s.takenIn++
	s.acceptPublish(o)
}

// inlinePublish accepts o on its caller's goroutine, when the session is
// not busy (the lock is free): the caller does what the session loop
// would, and the loop is not woken unless what it waits on changed. The
// caller has nothing of its own in transit (Client.publish checks), so its
// publishes stay in order. It reports false, changing nothing, when o
// must go through c.ctrl.
//
// callerFlushes: the caller waits for the result anyway and may block on
// the socket (a synchronous Publish whose ctx has no deadline), so the
// frames this turn queues are written on its goroutine (conn.FlushNow)
// instead of waking the writer for them; flushed is then the connection
// they went to, whose answer the caller reads itself or leaves to the
// reader with conn.Reclaim.
func (s *session) inlinePublish(o *pubOp, callerFlushes bool) (taken bool, flushed *conn.Conn) {
	if !s.mu.TryLock() {
		return false, nil
	}
	if s.phase == stopped || s.inlineErr != nil {
		s.mu.Unlock()
		return false, nil
	}
	s.callerFlushes = callerFlushes
	if callerFlushes && s.cur != nil && s.cur.Interruptible() {
		o.reading.Store(s.cur) // its ctx, if it ends, interrupts the caller's read
	}
	s.inline(func() { s.acceptPublish(o) })
	return true, s.unlockAndFlush()
}

// unlockAndFlush ends a turn taken on a caller's goroutine that may have
// set callerFlushes: it releases the session, then writes on that
// goroutine the frames the turn queued quietly (conn.FlushNow). It returns
// the connection they went to, if any.
func (s *session) unlockAndFlush() *conn.Conn {
	s.callerFlushes = false
	owed := s.flushOwed
	s.flushOwed = nil
	s.mu.Unlock()
	if owed != nil {
		owed.FlushNow()
	}
	return owed
}

// takeInbound handles a frame the reader sent through the channel, and
// tells its connection it was taken, which lets the reader hand the next
// acknowledgement over inline.
func (s *session) takeInbound(in conn.Inbound) {
	s.inbound(in)
	in.Conn.Taken()
}

// inlineAck handles, on the reader's goroutine, acknowledgements (PUBACK,
// PUBREC, PUBCOMP) of the current connection, those one read brought, in
// one turn, when the session is not busy (the lock is free) and the reader
// has nothing waiting in the channel (see conn.Config.Inline): the
// publishers get their results without a wake-up of the session goroutine.
// Everything the session loop does at the end of a turn happens here too;
// if that changes what the loop waits on, or stops the session, the loop
// is woken. It returns how many it handled, from the first; the others go
// through the channel.
//
// When a caller reads the socket itself (conn.Await: a synchronous Publish
// that waits for its answer), the frames the turn queues (a QoS 2
// publish's PUBREL) are written on its goroutine, as inlinePublish's are,
// instead of waking the writer for them.
func (s *session) inlineAck(cn *conn.Conn, acks []conn.Ack) int {
	if !s.mu.TryLock() {
		return 0
	}
	open := func() bool {
		return s.phase < goodbye && cn == s.cur && !s.inboundPaused() && s.inlineErr == nil
	}
	if !open() {
		s.mu.Unlock()
		return 0
	}
	n := 0
	s.callerFlushes = cn.ReadByCaller()
	s.inline(func() {
		// One turn for the lot, as the loop takes what waits in its
		// channel; each ack may change what the next finds (a protocol
		// error ends the connection).
		for _, a := range acks {
			if n > 0 && !open() {
				break
			}
			s.inbound(conn.Inbound{Conn: cn, Ack: a.Type, ID: a.ID})
			n++
		}
	})
	s.unlockAndFlush()
	return n
}

// inline runs handle, a turn's work, off the session loop with s.mu held,
// then what the loop does at the end of a turn; it wakes the loop when
// what the loop waits on changed, or a store failure must stop it.
func (s *session) inline(handle func()) {
	before := s.waitKey()
	handle()
	if err := s.endTurn(); err != nil {
		s.inlineErr = err
	} else if s.phase != stopped {
		s.allowDirect()
	}
	if s.inlineErr != nil || s.waitKey() != before {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// allowDirect runs at the end of every turn: it lets a QoS 0 Publish write
// on the connection itself (Client.publishNow) only while that cannot
// overtake anything accepted before it, which is while nothing waits in the
// session to be written: no queue, nothing owed from before the
// connection, nothing held for the store. What waits in the connection's
// own queue the writer of the direct path sees under its lock. Then the
// publishes taken in this turn stop counting as in transit, after direct
// says whether they wait.
func (s *session) allowDirect() {
	var cn *conn.Conn
	if s.phase == running && s.cur != nil && s.resendN == 0 && !s.probing() && s.ctlProbeOut() == nil && s.queue.len() == 0 && len(s.held) == 0 {
		cn = s.cur
	}
	if s.c.direct.Load() != cn {
		s.c.direct.Store(cn)
	}
	if s.takenIn > 0 {
		s.c.inTransit.Add(-s.takenIn)
		s.takenIn = 0
	}
}

// endTurn runs at the end of every turn of the session loop. Whatever the
// turn did, one place decides whether a Disconnect has nothing left to wait
// for and which Flush calls are done (work can end in many places, some of
// which give no result: an op whose ctx already ended), then the store's
// changes are committed, and again until nothing is left to commit.
func (s *session) endTurn() error {
	// Before the checks: a publish that finishes after them signals
	// progress, one that finished before is seen by them.
	// Stored only when it changes: every publish's finish reads it,
	// and a store every turn would take its cache line from the
	// publishers' processor each time.
	if want := len(s.flushes) > 0 || s.phase == draining; s.c.wantProgress.Load() != want {
		s.c.wantProgress.Store(want)
	}
	for {
		if s.phase == draining {
			s.checkDrained()
		}
		if len(s.flushes) > 0 {
			s.checkFlushes()
		}
		if s.cfg.Store == nil || !(s.dirty || len(s.held) > 0 || len(s.storedWait) > 0 || len(s.finishing) > 0) {
			return nil
		}
		if err := s.commit(); err != nil {
			return err
		}
	}
}

// inbound handles one frame from a connection reader.
func (s *session) inbound(in conn.Inbound) {
	if in.Conn != s.cur || s.phase >= goodbye {
		// From a connection already given up; or after our DISCONNECT,
		// when nothing more may be answered: the broker sends again
		// whatever it has no acknowledgement for.
		return
	}
	switch {
	case in.Refused != nil:
		s.refusePublish(in.Refused)
	case in.Packet == nil:
		s.receiveAck(in.Ack, in.ID)
	default:
		s.receive(in.Packet)
	}
}

// control handles one request from c.ctrl.
func (s *session) control(r any) {
	switch r := r.(type) {
	case *pubOp:
		s.takePublish(r)
	case *ctlOp:
		s.acceptControl(r)
	case newConn:
		s.connected(r)
	case cancelRequest:
		s.cancel(r.o)
	case expireRequest:
		s.expire(r.o)
	case probeDue:
		s.probeDue(r.cn)
		s.ctlProbeDue(r.cn)
	case *flushWaiter:
		s.flush(r)
	case flushCancel:
		r.remaining <- s.unflush(r.w)
	case ackRequest:
		s.appReceived(r.a.id, r.a.gen)
	case *routeRequest:
		s.addRoute(r)
	case replyWait:
		s.awaitReply(r)
	case replyCancel:
		s.cancelReply(r)
	case unsendableRequest:
		s.unsendable(r.o, r.err)
	case reauthBegin:
		s.beginReauth(r)
	case reauthSend:
		s.sendReauth(r)
	case reauthEnd:
		s.endReauth(r)
	case *disconnectRequest:
		if s.phase != running {
			r.reply <- errDisconnecting
			return
		}
		s.phase, s.disconnect = draining, r
		s.checkDrained()
	default:
		panic(fmt.Sprintf("mqtt: internal error: the session got an unknown request %T", r))
	}
}

// connected takes a new connection into use, in the order the protocol
// asks: adopt the limits its CONNACK announced, deal with a session the
// broker lost, send again what the session owes (resendOwed), then new
// work.
func (s *session) connected(nc newConn) {
	cn := nc.cn
	if s.cur != nil {
		// The old connection's end and the new one arrived together and
		// select picked the new one first: settle the old one now.
		s.lost()
	}
	s.cur = cn
	defer close(nc.taken) // the supervisor starts the loops after this turn
	s.c.announce(nc)
	s.connectedN++
	s.startProbe(cn)
	s.startCtlProbe(cn)
	s.aliases = nil
	s.inQuota, s.overrunSaid, s.downgradeSaid = 0, false, false
	if s.settled != nil {
		clear(s.settled[:])
	}
	ack := cn.Connack()
	s.resumed = ack.SessionPresent
	if nc.presentElsewhere {
		s.moves++
	}
	if s.connectedN == 1 && s.cfg.Store == nil || nc.presentElsewhere {
		// A session the broker kept is an earlier client's (as with a
		// new Store, see restore), or this one's as it was when the
		// client left that server.
		s.unknownSession = true
	}
	switch {
	case !ack.SessionPresent:
		s.unknownSession = false // whatever the broker held is gone
		clear(s.brokerHeld)
	case s.unknownSession && s.nextID == 0:
		// A session this Client has no state for: an earlier client's
		// with this ClientID, without its Store. The broker may hold
		// QoS 2 flows of that client's under identifiers from 1 on, which
		// would take a new QoS 2 message of this one for theirs (see
		// releaseForeign): this one's start elsewhere.
		s.nextID = resumedFirstID(time.Now())
	}
	if s.nextID == 0 {
		// Brokers count the identifiers of their messages to the client
		// from 1, and mochi-mqtt v2.7 mixes the two directions: a PUBLISH
		// from the client under the identifier of one of its messages in
		// flight to the client ends that message's flow, and it is never
		// sent again if it had not arrived when the connection failed.
		// The client's own start half the space away.
		s.nextID = firstID - 1
	}
	s.arrivals = fifo[arrival]{}
	s.adoptLimits(ack)
	if s.cfg.CleanStart && ack.SessionPresent {
		// A client that asked for a new session has no state for the
		// broker's to match [MQTT-3.2.2-4].
		s.protocolError(codec.ProtocolError, codec.TypeConnack, "Session Present 1 in answer to a CONNECT with Clean Start [MQTT-3.2.2-4]")
		return
	}

	// The flights to send again, listed before re-subscribing adds its own.
	unfinished := s.flightsInOrder()
	if !ack.SessionPresent {
		var ok bool
		if unfinished, ok = s.brokerLostSession(unfinished); !ok {
			return // the store failed: this connection is closed, the next one tries again
		}
	} else if nc.presentUnproven || nc.presentElsewhere {
		// The session the broker calls present may be one it made for an
		// unanswered CONNECT after losing ours, or the one this server
		// kept as it was when the client left it for another, without
		// what was subscribed since: subscribing again costs a SUBACK if
		// the subscriptions are there, and saves them if not. Flights go
		// again as for a kept session; a broker that does not know them
		// takes the PUBLISHes as new and completes the PUBRELs.
		if nc.presentElsewhere {
			s.cfg.Logger.Info("mqtt: the session this server kept may be older than the one the last server had; subscribing again", "server", cn.Server())
		} else {
			s.cfg.Logger.Info("mqtt: an earlier CONNECT went unanswered, so the session the broker calls present may be new; subscribing again")
		}
		s.resubscribe(true, nil)
	}
	// Acknowledgements the application gave while we were away are not
	// sent now: the broker re-sends every message it has no
	// acknowledgement for [MQTT-4.4.0-1], and each is answered as it comes
	// (onPublish). Sent now, an ack would cross the re-sent copy, which
	// then looks new, and the broker, free to reuse the identifier, could
	// send a new message under it that would look like that copy and be
	// dropped as a duplicate.
	s.resendOwed(unfinished)
	waiting := s.waitingCtl
	s.waitingCtl = nil
	for _, o := range waiting {
		s.sendControl(o)
	}
	s.pump()
}

// adoptLimits takes the limits a CONNACK announced for this connection:
// the in-flight window (MQTT 5 Receive Maximum), Maximum Packet Size,
// Maximum QoS and Retain Available. Every PUBLISH sent on the connection,
// new or sent again, is checked against them (fits) and counted against
// the window (pump).
func (s *session) adoptLimits(ack *codec.Connack) {
	s.window, s.maxPacket, s.maxQoS, s.noRetain = s.cfg.MaxInflight, 0, ExactlyOnce, false
	p := ack.Properties
	if p == nil {
		return
	}
	if p.ReceiveMaximum != nil && *p.ReceiveMaximum > 0 {
		s.window = min(s.window, int(*p.ReceiveMaximum))
	}
	if p.MaximumPacketSize != nil {
		s.maxPacket = int(min(*p.MaximumPacketSize, math.MaxInt32))
	}
	if p.MaximumQoS != nil {
		s.maxQoS = QoS(*p.MaximumQoS)
	}
	if p.RetainAvailable != nil && !*p.RetainAvailable {
		s.noRetain = true
	}
}

// brokerLostSession handles a connection whose broker has none of the
// session (Session Present 0: it lost it, or the client asked for a new
// one with CleanStart) [MQTT-3.2.2-5]. Nothing of the old session is
// resumed [MQTT-4.4.0-1]:
//
//   - The inbound side is forgotten: acks for it are meaningless now. The
//     forgetting is made durable before anything goes out on the new
//     connection, so that a restart cannot take a new message for one of
//     them.
//   - A QoS 2 publish the broker had acknowledged with PUBREC ends with
//     ErrOutcomeUnknown: no PUBREL goes into a session that never saw its
//     PUBLISH, and whether the broker delivered the message before it
//     lost it depends on the broker (some deliver on PUBLISH, some on
//     PUBREL); sending it again could deliver it twice.
//   - Every other unfinished publish, subscribe and unsubscribe is sent
//     again as a new packet of the new session (DUP 0; its identifier is
//     free there): the client still owes it. A QoS 2 publish among them
//     that may have reached the broker before (written on an earlier
//     connection) ends with ErrOutcomeUnknown even when its PUBCOMP
//     comes: a broker that delivers on PUBLISH (EMQX, mochi-mqtt; not
//     Mosquitto, which delivers on PUBREL) delivered the first copy
//     already, so nil, exactly once, would be a promise the client
//     cannot know it kept.
//   - The subscriptions are made again.
//
// It returns the flights to send, or false when the store could not record
// that the inbound identifiers are gone: then the connection is closed
// before anything goes out, and the next one tries again (left in the
// store, a restart would take the broker's new messages under those
// identifiers for duplicates and swallow them).
func (s *session) brokerLostSession(unfinished []*flight) ([]*flight, bool) {
	for id := range s.in {
		if err := s.unstoreInbound(id); err != nil {
			s.storeFailed(err)
			return nil, false
		}
	}
	s.gen++
	clear(s.in)
	// A re-subscription of the client's own still in flight from before
	// (the connections since ended before its SUBACK) goes again as it
	// is, carrying its count of ends (refused_control.go), and the new
	// one leaves its filters out: made anew on every connection that
	// finds the session lost, they would pile up, one more for every
	// such connection, each sent again on the next.
	covered := map[string]bool{}
	again := unfinished[:0]
	for _, f := range unfinished {
		if sub, ok := f.pkt.(*codec.Subscribe); ok && f.ctl == nil {
			if !s.stillSubscribed(sub, covered) {
				s.endFlight(sub.PacketID) // an older one makes it, or the application left it since
				continue
			}
			for _, one := range sub.Subscriptions {
				covered[one.Filter] = true
			}
		}
		if f.kind == codec.TypePublish && !f.relNeeded && f.pub.pkt.QoS == ExactlyOnce && f.pub.state.Load() == opClaimed {
			f.sentBeforeLoss = true
		}
		if f.kind == codec.TypePublish && f.relNeeded {
			o := f.pub
			err := fmt.Errorf("%w: publish to %s: the broker acknowledged receipt (PUBREC), then lost the session before the flow completed; whether it delivered the message depends on the broker",
				ErrOutcomeUnknown, o.pkt.Topic)
			s.settle(&o.op, err, false)
			s.endFlight(o.id)
			continue
		}
		again = append(again, f)
	}
	s.resubscribe(false, covered)
	return again, true
}

// stillSubscribed reports whether sub, a re-subscription of the client's
// own, asks for what the client holds now (filters, options and MQTT 5
// Subscription Identifier; the application may have changed them since),
// and none of its filters is in covered.
func (s *session) stillSubscribed(sub *codec.Subscribe, covered map[string]bool) bool {
	var subID uint32
	if p := sub.Properties; p != nil && len(p.SubscriptionIdentifier) > 0 {
		subID = p.SubscriptionIdentifier[0]
	}
	for _, one := range sub.Subscriptions {
		i := slices.IndexFunc(s.subs, func(h Subscription) bool { return h.Filter == one.Filter })
		if covered[one.Filter] || i < 0 || s.subIDOf[one.Filter] != subID {
			return false
		}
		h := s.subs[i]
		if h.QoS != one.QoS || h.NoLocal != one.NoLocal || h.RetainAsPublished != one.RetainAsPublished {
			return false
		}
	}
	return true
}

// renumber gives a SUBSCRIBE or UNSUBSCRIBE sent again on a new connection
// a new packet identifier, which MQTT allows (only PUBLISH and PUBREL keep
// theirs). mochi-mqtt v2.7 refuses a SUBSCRIBE whose identifier equals one
// of its own messages in flight to the client (0x91, in a 3.1.1 SUBACK
// too, where it is a protocol error); it sends those again on the new
// connection, so the same identifier would be refused again, forever.
func (s *session) renumber(f *flight) {
	id, ok := s.allocID()
	if !ok {
		return
	}
	s.delFlight(controlID(f.pkt))
	switch p := f.pkt.(type) {
	case *codec.Subscribe:
		q := *p // a copy: a writer may still hold the old one
		q.PacketID = id
		f.pkt = &q
	case *codec.Unsubscribe:
		q := *p
		q.PacketID = id
		f.pkt = &q
	}
	if f.ctl != nil {
		f.ctl.id = id
	}
	s.putFlight(id, f)
}

// resendOwed sends again the flights a new connection inherits: SUBSCRIBE
// and UNSUBSCRIBE at once; PUBLISH (DUP if the broker may have seen it)
// and PUBREL in their original order [MQTT-4.4.0-1], ahead of every new
// message, each PUBLISH when the window of this connection has room for
// it (see sendOwed).
func (s *session) resendOwed(unfinished []*flight) {
	for _, f := range unfinished {
		if f.kind != codec.TypePublish {
			if n, ok := s.fitsPacket(f.pkt); !ok {
				// It may have reached the broker on the earlier connection.
				err := fmt.Errorf("%w: %w: the %s is %d bytes on the wire, more than this broker's Maximum Packet Size of %d",
					ErrOutcomeUnknown, ErrInvalidMessage, f.pkt.Type(), n, s.maxPacket)
				s.cfg.Logger.Warn("mqtt: cannot send again on this connection", "err", err)
				s.endFlight(controlID(f.pkt))
				if f.ctl != nil {
					f.ctl.finish(err)
				}
				continue
			}
			s.renumber(f)
			s.sendCtl(f)
			continue
		}
		f.owed = true
		// s.resend may hold it after its result: not used again.
		f.pub.recyclable = false
		s.resend = append(s.resend, f)
		s.resendN++
	}
}

// sendOwed sends the owed PUBLISH and PUBREL packets, in order, while the
// window of this connection has room. It reports whether all of them are sent: new messages wait
// until they are. A publish that no longer fits this connection's limits
// (a smaller Maximum Packet Size, a lower Maximum QoS, no retained
// messages) ends with its own error instead of going out: sent, it would
// make the broker close the connection, and it would be sent again first
// after every reconnect.
func (s *session) sendOwed() bool {
	for s.resendN > 0 && s.cur != nil {
		f := s.resend[0]
		if !f.owed {
			s.resend = s.resend[1:] // it ended while it waited
			continue
		}
		// A PUBREL needs no room: its flow already counts against
		// the window, at the broker as here. A PUBLISH waits while a
		// probe is out.
		if !f.relNeeded && (s.probeHolds(f.pub) || s.pubInflight-s.resendN >= s.window) {
			return false
		}
		s.resend[0] = nil
		s.resend = s.resend[1:]
		f.owed = false
		s.resendN--
		if f.relNeeded {
			if !s.sendPubrel(f.pub) {
				return false
			}
			continue
		}
		o := f.pub
		if o.state.Load() != opClaimed && !o.expires.IsZero() && !time.Now().Before(o.expires) {
			// Never written (a frame Drain or Unclaim gave back), and
			// expired meanwhile: its timer's word may still be on its
			// way, or came while a writer held a claim it then took
			// back. It is not sent, not even with sentAgain's second.
			s.settle(&o.op, expiredError(o), true) // first: endFlight would forget its record lazily
			s.endFlight(o.id)
			continue
		}
		p := sentAgain(o) // a copy: a writer may still hold the old one
		if err := s.fits(&p); err != nil {
			if o.state.Load() != opClaimed {
				s.settle(&o.op, err, true) // the broker never saw it; first: endFlight would forget its record lazily
				s.endFlight(o.id)
				continue
			}
			err = fmt.Errorf("%w: it was sent on an earlier connection and cannot be sent again on this one: %w", ErrOutcomeUnknown, err)
			if o.pkt.QoS == ExactlyOnce {
				// The broker may hold the flow under this identifier,
				// waiting for PUBREL; freed now, the identifier could
				// carry a new message the broker takes for this one and
				// drops. So the flow is finished with PUBREL, which fits
				// any limit, and the identifier is freed at PUBCOMP. The
				// result is unknown either way; delivery is one outcome.
				o.finish(err)
				f.relNeeded = true
				o.rel = codec.Pubrel{PacketID: o.id}
				s.seq++
				f.relSeq = s.seq
				s.storeProgress(o, pubReleased)
				if !s.sendPubrel(o) {
					return false
				}
				continue
			}
			s.settle(&o.op, err, true)
			s.endFlight(o.id)
			continue
		}
		p.Dup = s.resumed && o.state.Load() == opClaimed
		queued := time.Now() // before: the writer may write it at once
		if !s.sendPublish(o, &p) {
			return false
		}
		if s.probing() {
			s.probeSent(o, queued)
		} else {
			o.refusals = 0 // sent with others: the count is of probes in a row
		}
	}
	s.resend = s.resend[:0]
	s.owedSent()
	return true
}

// lost is called when the current connection has ended. Queued frames that
// were never written go back to the session; the flights stay, to be sent
// again on the next connection.
func (s *session) lost() {
	cn := s.cur
	s.cur = nil
	s.reauth = nil // an exchange belongs to its connection; its caller sees cn end
	// Frames the connection never wrote, then those held for the store's
	// sync, which came after them.
	unwritten := append(cn.Drain(), s.held...)
	s.probeLost(cn, unwritten)
	s.ctlProbeLost(cn, unwritten)
	s.unhold(unwritten)
	clear(s.held)
	s.held = s.held[:0]
	s.sentQoS0 = fifo[*pubOp]{}
	for _, f := range s.resend {
		if f != nil {
			f.owed = false
		}
	}
	clear(s.resend)
	s.resend, s.resendN = s.resend[:0], 0
	if s.phase == goodbye {
		s.phase = stopped // the goodbye of a Disconnect has nowhere to go now
	}
}

// flightsInOrder lists the flights in the order they are sent again: in
// the order they were first sent [MQTT-4.6.0-1], except that those owing
// a PUBREL take the places of such flights in the order their PUBRECs
// came [MQTT-4.6.0-4].
func (s *session) flightsInOrder() []*flight {
	fs := make([]*flight, 0, s.flights.len())
	for f := range s.flights.all() {
		fs = append(fs, f)
	}
	sortFlights(fs)
	var rels []*flight
	for _, f := range fs {
		if f.relNeeded {
			rels = append(rels, f)
		}
	}
	if len(rels) > 1 {
		byRec := slices.Clone(rels)
		slices.SortFunc(byRec, func(a, b *flight) int { return cmp.Compare(a.relSeq, b.relSeq) })
		i := 0
		for j, f := range fs {
			if f.relNeeded {
				fs[j] = byRec[i]
				i++
			}
		}
	}
	return fs
}

// resumedFirstID is where the packet identifiers of a Client that resumed
// a session it has no state for start: at least 4096, past those of an
// earlier client that began at 1, and otherwise where a hash of the clock
// says, so that clients started at different times, even a crash loop's a
// fixed interval apart, begin at unrelated places. (Not a random number:
// the model test replays histories in fake time, where it is the same for
// the same history; two clients started at the same instant begin at the
// same place there.)
func resumedFirstID(now time.Time) uint16 {
	const low = 4096
	h := uint64(now.UnixNano()) * 0x9E3779B97F4A7C15 // Fibonacci hashing: near times land far apart
	return uint16(low + (h>>32)%(math.MaxUint16-low))
}

// firstID is the first packet identifier of a session this client starts
// (see connected).
const firstID = 1 << 15

// allocID hands out a packet identifier not in use [MQTT-2.2.1-3]. It
// reports false when all 65535 are in use.
func (s *session) allocID() (uint16, bool) {
	if s.flights.len()+len(s.in) >= math.MaxUint16 {
		return 0, false
	}
	for {
		s.nextID++
		if s.nextID == 0 {
			s.nextID = 1
		}
		// Skipping identifiers of the broker's own unfinished flows is not
		// required (the two directions are separate spaces) but some brokers
		// mix them: mochi-mqtt v2.7 refuses an UNSUBSCRIBE whose identifier
		// is in its outbound inflight with 0x91 Packet Identifier In Use.
		if s.flights.get(s.nextID) == nil && s.in[s.nextID] == nil && (len(s.brokerHeld) == 0 || s.brokerHeld[s.nextID] == nil) {
			return s.nextID, true
		}
	}
}

// protocolError ends the current connection because of what the broker
// sent; the supervisor reconnects.
func (s *session) protocolError(code codec.ReasonCode, t codec.PacketType, format string, args ...any) {
	err := &conn.ProtocolError{Code: code, Packet: t, Reason: fmt.Sprintf(format, args...)}
	s.cfg.Logger.Warn("mqtt: protocol error from the broker", "err", err)
	s.cur.Fail(err)
	s.lost()
}

// checkDrained finishes a graceful Disconnect once nothing is left to do:
// it sends DISCONNECT, and the session stops once that is written (or at
// once, with no connection to say goodbye on).
func (s *session) checkDrained() {
	if s.phase != draining {
		return
	}
	if s.queue.peek() != nil || s.flights.len() > 0 || len(s.waitingCtl) > 0 || s.c.adm.count() > 0 {
		return
	}
	s.disconnect.reply <- nil
	if s.cur == nil || !s.sendFinal() {
		s.phase = stopped
	}
}

// sendFinal queues the DISCONNECT of a graceful stop and moves to goodbye:
// nothing is sent after it, and the session stops once it is written.
func (s *session) sendFinal() bool {
	s.c.stopping.Store(true) // the broker may close first: not a loss
	s.finalFrame = make(chan struct{})
	ok := s.send(conn.Frame{Packet: &codec.Disconnect{ReasonCode: codec.NormalDisconnection},
		Track: closeOnWrite(s.finalFrame)})
	s.phase = goodbye
	return ok
}

// closeNow is Close: a best-effort DISCONNECT, bounded in time.
func (s *session) closeNow() {
	s.c.stopping.Store(true)
	if s.cur == nil || s.cur.Err() != nil {
		return
	}
	written := make(chan struct{})
	if !s.cur.Send(conn.Frame{Packet: &codec.Disconnect{ReasonCode: codec.NormalDisconnection}, Track: closeOnWrite(written)}) {
		return
	}
	t := time.NewTimer(max(closeDisconnectWait, 2*s.cur.RoundTrip()))
	defer t.Stop()
	select {
	case <-written:
		s.awaitBrokerClose(t.C)
	case <-s.cur.Done():
	case <-t.C:
	}
}

// goodbyeWait bounds how long a graceful stop waits, after its DISCONNECT
// was written, for the broker to close the connection: at least
// minGoodbyeWait, longer over a slow link (a broker closes as it reads the
// DISCONNECT, a round trip after it was written, later when the bytes
// written before it are still on their way).
func goodbyeWait(cn *conn.Conn) time.Duration {
	return max(minGoodbyeWait, 4*cn.RoundTrip())
}

// minGoodbyeWait is the least goodbyeWait.
const minGoodbyeWait = time.Second

// awaitBrokerClose runs once the DISCONNECT of a stop was written on cur:
// it waits until the broker has closed the connection, or until timeout
// fires or Close is called, taking in and dropping every frame that
// arrives meanwhile [MQTT-3.14.4-1: nothing is answered after DISCONNECT].
// Closing at once could reset the connection and make the broker publish
// the Will (see conn.Conn.SaidGoodbye). Once the broker closed, it read
// everything up to the DISCONNECT.
func (s *session) awaitBrokerClose(timeout <-chan time.Time) {
	cn := s.cur
	if cn == nil || !cn.SaidGoodbye() {
		return
	}
	c := s.c
	// Close's own wait (closeNow) is bounded by its timer alone; a
	// Disconnect's ends early when Close is called meanwhile.
	closing := c.closing.Load()
	for {
		select {
		case in := <-c.inbound:
			in.Conn.Taken() // the reader hands the next one over
		case <-cn.Done():
			return
		case <-timeout:
			return
		case <-s.wake:
			if !closing && c.closing.Load() {
				return
			}
		}
	}
}

// shutdown stops the supervisor and every connection, waits for their
// goroutines, fails every unfinished call, and closes the client's
// channels. err is why the client stopped (nil for Close/Disconnect).
func (s *session) shutdown(err error) {
	c := s.c
	c.direct.Store(nil)    // every Publish takes the queue, which says ErrClosed
	c.stopping.Store(true) // the connection's end is not news now
	if err == nil && s.finalFrame != nil && s.cur != nil && !c.closing.Load() {
		// A graceful Disconnect's DISCONNECT was written (run returns
		// only then): the broker closes once it has read it. (Close's
		// own DISCONNECT had its wait in closeNow.)
		t := time.NewTimer(goodbyeWait(s.cur))
		s.awaitBrokerClose(t.C)
		t.Stop()
	}
	c.stopRun.Stop()
	c.supWG.Wait()
	if s.cur != nil {
		s.cur.Close()
		s.lost()
	}
	err = c.stopError(err) // a give-up in the client's words, for every result too
	failed := ErrClosed
	if err != nil {
		failed = fmt.Errorf("%w: %w", ErrClosed, err)
	}
	inStore := ErrInStore
	serr := s.closeStore()
	if serr != nil {
		s.cfg.Logger.Error("mqtt: cannot sync the store as the client stops", "err", serr)
		inStore = fmt.Errorf("%w (the store failed to sync: %w)", failed, serr)
	}
	// Results held for a removal from the store to be durable: true now
	// if the last sync worked; if it failed, the record may still be
	// there, and the next client on the store may send the message, so
	// the result must not promise it never will.
	for _, f := range s.finishing {
		err := f.err
		if serr != nil {
			err = fmt.Errorf("%w: it had ended (%v), but the store failed before its removal was durable, so the next client on this store may still send it: %w",
				ErrInStore, f.err, serr)
		}
		f.o.finish(err)
	}
	s.finishing = nil

	endPub := func(o *pubOp) {
		if o.storeKey != 0 {
			o.finish(inStore)
		} else {
			o.finish(failed)
		}
	}
	for o := range s.queue.all() {
		endPub(o)
	}
	for _, f := range s.flightsInOrder() {
		if f.pub != nil {
			endPub(f.pub)
		}
		if f.ctl != nil {
			f.ctl.finish(failed)
		}
	}
	for _, o := range s.waitingCtl {
		o.finish(failed)
	}
	if s.disconnect != nil {
		select {
		case s.disconnect.reply <- failed:
		default: // it already has its answer
		}
	}
	for _, w := range s.flushes {
		w.err = ErrClosed
		close(w.done)
	}
	c.err = err
	s.stopRoutes()
	close(c.messages)
	c.eventsMu.Lock()
	c.eventsClosed = true
	if c.events != nil {
		close(c.events)
	} // otherwise Events makes it closed
	c.eventsMu.Unlock()
	close(c.done)
}

// closeOnWrite is a conn.Tracker that closes ch once its frame was written
// (or failed to be).
type closeOnWrite chan struct{}

func (ch closeOnWrite) Claim() bool   { return true }
func (ch closeOnWrite) Written(error) { close(ch) }

// trackerOf returns o's tracker, or nil (not a nil *op) when o is nil.
func trackerOf(o *ctlOp) conn.Tracker {
	if o == nil {
		return nil
	}
	return o
}

// errDisconnecting answers a Disconnect made while another is in progress.
var errDisconnecting = errors.New("mqtt: Disconnect is already in progress")

// errDraining answers calls made while a graceful Disconnect is under way.
var errDraining = fmt.Errorf("%w: Disconnect is in progress; no new work is accepted", ErrClosed)

// putIn and putLatest store into the session's maps, which are made on
// first use: a client that never receives at QoS 2 or never uses
// LatestPerTopic carries neither.
func (s *session) putIn(id uint16, st *inState) {
	if s.in == nil {
		s.in = make(map[uint16]*inState)
	}
	s.in[id] = st
}

func (s *session) putLatest(topic string, o *pubOp) {
	if s.latest == nil {
		s.latest = make(map[string]*pubOp)
	}
	s.latest[topic] = o
}
