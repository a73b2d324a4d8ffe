package mqtt

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/robustmqtt/mqtt/codec"
)

// ErrNeedsMQTT5 is returned by Request and Respond on a client that speaks
// MQTT 3.1.1, which has no Response Topic nor Correlation Data: set
// Config.Version to 5. It wraps ErrInvalidMessage.
var ErrNeedsMQTT5 = fmt.Errorf("%w: request/response needs MQTT 5 (Config.Version 5)", ErrInvalidMessage)

// Request publishes m as an MQTT 5 request and waits for its reply: it
// sets m's Response Topic to the client's response topic and its
// Correlation Data to a value of its own, unique to this call, and returns
// the first message that arrives on the response topic with that
// Correlation Data. A responder answers with Respond (or publishes to the
// Response Topic with the same Correlation Data itself).
//
// The response topic is "responses/{ClientID}", or "responses/" followed
// by 32 hexadecimal digits when the ClientID is empty or cannot be a topic
// level (it contains "/", "+" or "#"): derived from the ClientID, so that
// a persistent session's subscription outlives the process that made it,
// and a broker's access rules can name it (Mosquitto: "pattern readwrite
// responses/%c"). The first Request subscribes to it (QoS 2, so that the
// responder's QoS holds), and every later one shares that subscription;
// the broker's Response Information (Config.ConnectProperties,
// RequestResponseInfo) is not used. A message that arrives on the response
// topic never reaches Messages or a route: it is a reply, handed to the
// Request it answers, or dropped and counted in Stats.RepliesDropped when
// it answers none (the Request's ctx ended before, the same reply came
// twice, or it came from a previous process). A QoS 1/2 reply is
// acknowledged when it is handed over or dropped, ManualAck or not.
//
// ctx bounds the whole call: the subscription, the publish (as in
// Publish) and the wait for the reply. When it ends, the request is taken
// back, and the error wraps ctx's cause (with ErrWithdrawn if the request
// was never sent, ErrOutcomeUnknown if it was sent and not acknowledged);
// a reply the client received before it took the request back is returned
// instead, even if ctx has ended. m must not set ResponseTopic or
// CorrelationData itself. Under MQTT 3.1.1 it returns ErrNeedsMQTT5 at
// once.
func (c *Client) Request(ctx context.Context, m Message) (Message, error) {
	if c.cfg.version != codec.V5 {
		return Message{}, fmt.Errorf("%w: request to %q", ErrNeedsMQTT5, m.Topic)
	}
	if p := m.Properties; p != nil && (p.ResponseTopic != "" || p.CorrelationData != nil) {
		return Message{}, fmt.Errorf("%w: request to %q: leave ResponseTopic and CorrelationData unset: Request sets them", ErrInvalidMessage, m.Topic)
	}
	rr := c.rr.get(c)
	corr := rr.correlation()
	if m.Properties == nil {
		m.Properties = &codec.Properties{}
	} else {
		m.Properties = cloneProperties(m.Properties)
	}
	m.Properties.ResponseTopic, m.Properties.CorrelationData = rr.topic, corr
	if err := validateMessage(&m, c.cfg.version); err != nil {
		return Message{}, fmt.Errorf("%w: request to %q: %w", ErrInvalidMessage, m.Topic, err)
	}
	if err := c.subscribeResponses(ctx, rr); err != nil {
		return Message{}, err
	}

	key := string(corr)
	reply := make(chan Message, 1)
	select {
	case c.ctrl <- replyWait{key: key, reply: reply}:
	case <-c.done:
		return Message{}, fmt.Errorf("%w: request to %s", ErrClosed, m.Topic)
	}
	if err := c.Publish(ctx, m); err != nil {
		if r, ok := c.takeBack(key, reply); ok {
			return r, nil // sent after all, and answered
		}
		return Message{}, fmt.Errorf("mqtt: request: %w", err)
	}
	select {
	case r := <-reply:
		return r, nil
	case <-ctx.Done():
		if r, ok := c.takeBack(key, reply); ok {
			return r, nil
		}
		return Message{}, fmt.Errorf("mqtt: request to %s: no reply before the context ended: %w", m.Topic, context.Cause(ctx))
	case <-c.done:
		select {
		case r := <-reply:
			return r, nil
		default:
		}
		return Message{}, fmt.Errorf("%w: request to %s: the client stopped before the reply came", ErrClosed, m.Topic)
	}
}

// Respond publishes reply as the answer to the request req: to req's
// Response Topic, with req's Correlation Data, and otherwise as Publish
// does (ctx, QoS and result alike). reply.Topic must be empty (or that
// Response Topic), and reply's other properties are kept. A request
// without a Response Topic is an error wrapping ErrInvalidMessage, and
// nothing is sent; under MQTT 3.1.1 it returns ErrNeedsMQTT5.
func (c *Client) Respond(ctx context.Context, req Message, reply Message) error {
	if c.cfg.version != codec.V5 {
		return fmt.Errorf("%w: respond to a message on %q", ErrNeedsMQTT5, req.Topic)
	}
	if req.Properties == nil || req.Properties.ResponseTopic == "" {
		return fmt.Errorf("%w: respond to a message on %q: it has no Response Topic", ErrInvalidMessage, req.Topic)
	}
	to := req.Properties.ResponseTopic
	if reply.Topic != "" && reply.Topic != to {
		return fmt.Errorf("%w: respond to a message on %q: the reply's Topic is %q; leave it empty, it goes to the Response Topic %q",
			ErrInvalidMessage, req.Topic, reply.Topic, to)
	}
	reply.Topic = to
	if reply.Properties == nil {
		reply.Properties = &codec.Properties{}
	} else {
		reply.Properties = cloneProperties(reply.Properties)
	}
	reply.Properties.CorrelationData = req.Properties.CorrelationData
	return c.Publish(ctx, reply)
}

// requester is what the Request calls of a Client share. get sets it up
// on first use.
type requester struct {
	once  sync.Once
	topic string        // the response topic
	nonce [8]byte       // random, per Client: the first half of every correlation
	seq   atomic.Uint64 // the second half
	// sem is held by the Request that subscribes to the response topic,
	// while it does; subscribed is set once one did.
	sem        chan struct{}
	subscribed atomic.Bool
}

// get returns c's requester, set up.
func (rr *requester) get(c *Client) *requester {
	rr.once.Do(func() {
		_, _ = rand.Read(rr.nonce[:]) // never fails [crypto/rand.Read]
		rr.sem = make(chan struct{}, 1)
		rr.topic = responseTopic(c.cfg.ClientID)
	})
	return rr
}

// responseTopic is the response topic of a client with ClientID id; see
// Request.
func responseTopic(id string) string {
	if t := "responses/" + id; id != "" && !strings.ContainsAny(id, "/+#") && codec.ValidateTopicName(t) == nil {
		return t
	}
	var b [16]byte
	if id != "" {
		h := sha256.Sum256([]byte(id))
		copy(b[:], h[:])
	} else {
		_, _ = rand.Read(b[:]) // the broker assigns the identifier: nothing outlives the session
	}
	return "responses/" + hex.EncodeToString(b[:])
}

// correlation returns Correlation Data no other request of this client
// (nor, with its random half, of another process) uses.
func (rr *requester) correlation() []byte {
	b := make([]byte, 16)
	copy(b, rr.nonce[:])
	binary.BigEndian.PutUint64(b[8:], rr.seq.Add(1))
	return b
}

// subscribeResponses subscribes to the response topic unless a Request
// already did. Requests that come while one subscribes wait for it.
func (c *Client) subscribeResponses(ctx context.Context, rr *requester) error {
	if rr.subscribed.Load() {
		return nil
	}
	select {
	case rr.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("%w: request: waiting for the subscription to the response topic: %w", ErrWithdrawn, context.Cause(ctx))
	case <-c.done:
		return fmt.Errorf("%w: request", ErrClosed)
	}
	defer func() { <-rr.sem }()
	if rr.subscribed.Load() {
		return nil
	}
	if err := c.Subscribe(ctx, Subscription{Filter: rr.topic, QoS: ExactlyOnce}); err != nil {
		return fmt.Errorf("mqtt: request: subscribe to the response topic %s: %w", rr.topic, err)
	}
	rr.subscribed.Store(true)
	return nil
}

// takeBack withdraws a Request's claim on its reply. It reports whether
// the reply had come first, and returns it then.
func (c *Client) takeBack(key string, reply chan Message) (Message, bool) {
	answered := make(chan bool, 1)
	select {
	case c.ctrl <- replyCancel{key: key, answered: answered}:
		if <-answered { // the session answers in the same turn
			return <-reply, true
		}
		return Message{}, false
	case <-c.done:
		select {
		case r := <-reply:
			return r, true
		default:
			return Message{}, false
		}
	}
}

// replyWait registers a Request for its reply, before it publishes.
type replyWait struct {
	key   string // the correlation data
	reply chan<- Message
}

// replyCancel takes a Request back: answered receives whether its reply
// had come.
type replyCancel struct {
	key      string
	answered chan<- bool
}

// awaitReply registers a Request.
func (s *session) awaitReply(w replyWait) {
	if s.requests == nil {
		s.requests = make(map[string]chan<- Message)
	}
	s.requests[w.key] = w.reply
}

// cancelReply takes a Request back.
func (s *session) cancelReply(r replyCancel) {
	_, waiting := s.requests[r.key]
	delete(s.requests, r.key)
	r.answered <- !waiting
}

// isReply says whether an inbound message is on the response topic (MQTT
// 5 only), and so goes to Request, not to Messages or a route.
func (s *session) isReply(m *Message) bool {
	if s.cfg.version != codec.V5 {
		return false
	}
	if s.respTopic == "" {
		s.respTopic = s.c.rr.get(s.c).topic
	}
	return m.Topic == s.respTopic
}

// reply hands an inbound reply to the Request waiting for its Correlation
// Data, or drops it, and acknowledges it either way: nobody else will.
func (s *session) reply(d delivery) {
	m := d.msg
	m.ack = nil
	var w chan<- Message
	var key string
	if m.Properties != nil && m.Properties.CorrelationData != nil {
		key = string(m.Properties.CorrelationData)
		w = s.requests[key]
	}
	if w != nil {
		delete(s.requests, key)
		w <- m // 1-buffered, and sent to once
		s.c.stats.recv[m.QoS].Add(1)
	} else {
		s.c.stats.repliesDropped.Add(1)
		s.cfg.Logger.Debug("mqtt: dropping a reply that answers no waiting request", "topic", m.Topic)
	}
	if m.QoS > AtMostOnce {
		s.appReceived(d.id, d.gen)
	}
}
