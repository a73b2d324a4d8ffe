package mqtt

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/robustmqtt/mqtt/codec"
)

// Route receives the inbound messages of some topic filters on a channel
// of its own, so that each part of a program can read what concerns it
// while Client.Messages gets the rest. Make one with Client.Route (topic
// filters the client is subscribed to anyway) or Client.SubscribeRoute
// (which subscribes and routes what that subscription brings).
//
// # Which route a message goes to
//
// Every inbound message goes to exactly one place: one route, or
// Client.Messages. It goes to the first route, in the order the routes
// were made, that
//
//  1. was made by SubscribeRoute, when the message carries that
//     subscription's MQTT 5 Subscription Identifier; failing that,
//  2. has a filter that matches the message's topic (see Match). Under
//     MQTT 5 with a broker that supports Subscription Identifiers (most
//     do; one that does not says so in its CONNACK), a route made by
//     SubscribeRoute, whose subscription the broker holds with the
//     route's identifier, takes part in this step only for a message
//     that carries no identifier and that no subscription made without
//     one matches (brokers leave the identifier out of some retained
//     messages). So it gets exactly the messages of its own
//     subscription, even where filters overlap.
//
// A message that no route takes goes to Client.Messages. So, as in a
// switch statement, make the more specific routes first. MQTT 3.1.1, and
// a broker without Subscription Identifiers, route by topic alone.
//
// # A slow route
//
// Each route has its own queue: a route whose reader is behind does not
// hold back a route whose reader keeps up, within two limits that come
// with sharing one connection:
//
//   - The queues share Config.MaxPending and MaxPendingBytes. Once that
//     many messages wait, on all routes and Messages together, the client
//     stops reading the connection (as it does without routes), and every
//     route waits until the slow one is read. QoS 0 messages that arrive
//     meanwhile are dropped (a MessagesDropped event says how many).
//   - A QoS 1/2 message is acknowledged once it is received from its
//     route (or acked, with ManualAck), and MQTT requires the
//     acknowledgements in the order the messages arrived
//     [MQTT-4.6.0-2, MQTT-4.6.0-3]. So an unread message on a slow route
//     holds back the acknowledgements of every later message, on every
//     route. The broker sends only so many unacknowledged messages (MQTT
//     5: MaxPending, the client's Receive Maximum; 3.1.1: a limit of its
//     own, 20 for Mosquitto), and then every route waits too.
//
// Nothing is lost at QoS 1/2 meanwhile; a route that is never read stalls
// them all. Read every route promptly, hand slow work to a goroutine of
// your own, or Close a route that is no longer read.
//
// Each route costs a goroutine of the client, which ends with Close or
// when the client stops.
type Route struct {
	client  <-chan struct{} // the client's done: closed once every relay has exited
	filters []string
	ch      chan Message  // the application's; closed by the relay as it exits
	closing chan struct{} // closed by Close
	once    sync.Once
	done    chan struct{} // closed once the relay has exited
}

// Route returns a route for the messages whose topic matches one of
// filters ("$share/{ShareName}/{filter}" matches what its filter part
// matches). It changes no subscription: subscribe to the filters (or to
// broader ones) with Subscribe. A message that matches the filters of
// several routes goes to the one made first; see Route for the rules and
// for what a slow route holds back. It returns an error wrapping
// ErrInvalidMessage for an invalid filter, and ErrClosed once the client
// has stopped.
func (c *Client) Route(filters ...string) (*Route, error) {
	if err := checkRouteFilters(filters); err != nil {
		return nil, err
	}
	r := newRoute(c, filters)
	select {
	case c.ctrl <- &routeRequest{r: r}:
		return r, nil
	case <-c.done:
		return nil, ErrClosed
	}
}

// SubscribeRoute subscribes as Subscribe does and returns a route for the
// messages of these subscriptions. The route is in place before the
// SUBSCRIBE is sent, so it also gets the retained messages the broker
// sends at once. Under MQTT 5 the SUBSCRIBE carries a Subscription
// Identifier of the route's own, when the broker supports them, and the
// route gets exactly the messages that carry it (see Route); otherwise it
// gets the messages whose topic matches the subscriptions' filters.
//
// A subscription to the same filter made later, by Subscribe or another
// SubscribeRoute, replaces this one at the broker, identifier included
// [MQTT-3.8.4-3]; the route then takes the messages of its filters by
// topic, as one made by Route does. Close does not unsubscribe: call
// Unsubscribe for that, or the messages of the subscription go to
// Client.Messages once the route is closed.
//
// On error it returns no route, and the errors are those of Subscribe: a
// *SubscribeError if the broker refused some of the filters (those it
// granted are in effect, and their messages go to Client.Messages, or to
// a matching route), ErrWithdrawn or ErrOutcomeUnknown if ctx ended.
func (c *Client) SubscribeRoute(ctx context.Context, subs ...Subscription) (*Route, error) {
	o, err := c.subscribeOp(subs)
	if err != nil {
		return nil, err
	}
	filters := make([]string, len(subs))
	for i, s := range subs {
		filters[i] = s.Filter
	}
	r := newRoute(c, filters)
	if handed, err := c.controlAs(ctx, o, "subscribe", &routeRequest{r: r, sub: o}); err != nil {
		if handed { // else the route never was
			r.Close()
		}
		return nil, err
	}
	return r, nil
}

// Messages returns the route's channel. Receiving a QoS 1/2 message from
// it is the application's receipt, as with Client.Messages. It is closed
// after Close, and after the client stops.
func (r *Route) Messages() <-chan Message { return r.ch }

// Close ends the route and returns once its channel is closed. The
// messages that waited for it, and those that arrive later, go where they
// would go had the route never been made: to a later route that takes
// them, or to Client.Messages, behind the messages already waiting there.
// Close does not unsubscribe. Calling it again, or after the client
// stopped, does nothing.
func (r *Route) Close() {
	r.once.Do(func() { close(r.closing) })
	select {
	case <-r.done:
	case <-r.client: // the client stopped: every relay has exited
	}
}

// checkRouteFilters checks the filters of a Route.
func checkRouteFilters(filters []string) error {
	if len(filters) == 0 {
		return fmt.Errorf("%w: Route needs at least one filter", ErrInvalidMessage)
	}
	for _, f := range filters {
		if err := codec.ValidateTopicFilter(f); err != nil {
			return fmt.Errorf("%w: route: %w", ErrInvalidMessage, err)
		}
	}
	return nil
}

func newRoute(c *Client, filters []string) *Route {
	return &Route{
		client:  c.done,
		filters: slices.Clone(filters),
		ch:      make(chan Message),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
}

// routeRequest adds a route; with sub, it also subscribes, in the same
// turn, so that nothing the subscription brings can miss the route.
type routeRequest struct {
	r   *Route
	sub *ctlOp
}

// route is the session's side of a Route. Only the session goroutine
// touches it; its relay only hands it back, as the identity of its turns.
type route struct {
	filters []string
	subID   uint32         // the Subscription Identifier of SubscribeRoute; 0: none
	queue   fifo[delivery] // messages waiting for the route's reader
	next    chan Message   // 1-buffered: the relay's next message, the front of queue
	waiting bool           // the relay waits for a message and queue is empty
}

// routeTurn is a relay's report: it took the message it was given to the
// application (took), and it is ready for the next one, or it is closing.
type routeTurn struct {
	st      *route
	took    bool
	closing bool
}

// relay carries a route's messages from the session to the application,
// one at a time: it reports (turns) that it is ready, the session hands it
// the front of the route's queue on next, it sends that on the route's
// channel, and reports whether the application took it with its next
// turn. Only then does the session count the message as received and
// acknowledge it. Every wait is in a select with the route's Close and the
// client's stop; it closes the route's channel as it exits.
func (r *Route) relay(st *route, turns chan<- routeTurn, stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	defer close(r.done)
	defer close(r.ch)
	took := false
	for {
		closing := false
		select {
		case <-r.closing:
			closing = true
		default:
		}
		select {
		case turns <- routeTurn{st: st, took: took, closing: closing}:
		case <-stop:
			return
		}
		if closing {
			return
		}
		took = false
		select {
		case m := <-st.next:
			select {
			case r.ch <- m:
				took = true
			case <-r.closing:
			case <-stop:
				return
			}
		case <-r.closing:
		case <-stop:
			return
		}
	}
}

// addRoute registers a new route after the others and starts its relay;
// a SubscribeRoute's subscribe goes out in the same turn, with the
// route's Subscription Identifier.
func (s *session) addRoute(req *routeRequest) {
	st := &route{filters: req.r.filters, next: make(chan Message, 1)}
	if req.sub != nil && s.cfg.version == codec.V5 && s.lastSubID < maxSubscriptionID {
		s.lastSubID++
		st.subID = s.lastSubID
		req.sub.subID = st.subID
	}
	if s.turns == nil {
		s.turns = make(chan routeTurn)
		s.routesStop = make(chan struct{})
	}
	s.routes = append(s.routes, st)
	s.relays.Add(1)
	go req.r.relay(st, s.turns, s.routesStop, &s.relays)
	if req.sub != nil {
		s.acceptControl(req.sub)
	}
}

// maxSubscriptionID is the largest Subscription Identifier (section 3.8.2.1.2).
const maxSubscriptionID = 268_435_455

// routeTurn handles a relay's report.
func (s *session) routeTurn(t routeTurn) {
	st := t.st
	if t.took {
		d := *st.queue.front()
		st.queue.pop()
		s.handedOver(d)
	}
	if t.closing {
		s.removeRoute(st)
		return
	}
	st.waiting = true
	s.offer(st)
}

// offer hands the front of a route's queue to its waiting relay.
func (s *session) offer(st *route) {
	if !st.waiting || st.queue.len() == 0 || s.phase >= goodbye {
		return
	}
	st.waiting = false
	st.next <- st.queue.front().msg // never blocks: the relay took the last one
}

// removeRoute ends a closed route: what waited for it is routed again,
// in order, as if it had never been made.
func (s *session) removeRoute(st *route) {
	s.routes = slices.DeleteFunc(s.routes, func(r *route) bool { return r == st })
	for st.queue.len() > 0 {
		d := *st.queue.front()
		st.queue.pop()
		s.place(d)
	}
}

// stopRoutes ends every relay, which closes its route's channel, and
// waits for them: part of the client's stop.
func (s *session) stopRoutes() {
	if s.routesStop != nil {
		close(s.routesStop)
		s.relays.Wait()
	}
}

// place puts a message, already counted as pending, in the queue of the
// route that takes it, or in the queue of Messages.
func (s *session) place(d delivery) {
	st := s.routeOf(&d.msg)
	if st == nil {
		s.pending.push(d)
		return
	}
	st.queue.push(d)
	s.offer(st)
}

// routeOf returns the route a message goes to, or nil for Messages; see
// Route for the rules.
func (s *session) routeOf(m *Message) *route {
	if len(s.routes) == 0 {
		return nil
	}
	byID := s.subIDsOn()
	var ids []uint32
	if byID && m.Properties != nil {
		ids = m.Properties.SubscriptionIdentifier
	}
	for _, st := range s.routes {
		if st.subID != 0 && slices.Contains(ids, st.subID) {
			return st
		}
	}
	// idRoutes: whether routes made by SubscribeRoute may take the message
	// by topic. With identifiers in use, only a message that carries none
	// and that no subscription made without one matches: a broker left it
	// out (mochi-mqtt v2.7 does on retained messages).
	idRoutes := 0 // 0: not known yet; 1: yes; -1: no
	for _, st := range s.routes {
		if byID && s.subscribedWithID(st) {
			if idRoutes == 0 {
				idRoutes = -1
				if len(ids) == 0 && !s.plainSubscriptionMatches(m.Topic) {
					idRoutes = 1
				}
			}
			if idRoutes < 0 {
				continue
			}
		}
		for _, f := range st.filters {
			if match(f, m.Topic) {
				return st
			}
		}
	}
	return nil
}

// subscribedWithID says whether the broker has a subscription of st's with
// st's Subscription Identifier, as far as its SUBACKs tell: st was made
// by SubscribeRoute, the identifier was sent (the broker takes them), and
// no later subscription to the filter replaced it.
func (s *session) subscribedWithID(st *route) bool {
	if st.subID == 0 {
		return false
	}
	for _, f := range st.filters {
		if s.subIDOf[f] == st.subID {
			return true
		}
	}
	return false
}

// plainSubscriptionMatches says whether a subscription made without a
// Subscription Identifier matches topic.
func (s *session) plainSubscriptionMatches(topic string) bool {
	for _, sub := range s.subs {
		if s.subIDOf[sub.Filter] == 0 && match(sub.Filter, topic) {
			return true
		}
	}
	return false
}

// subIDsOn says whether subscriptions carry Subscription Identifiers: MQTT
// 5, and the broker did not say Subscription Identifier Available 0 on the
// current connection (or, while disconnected, on the last one).
func (s *session) subIDsOn() bool {
	if s.cfg.version != codec.V5 {
		return false
	}
	if s.cur != nil {
		p := s.cur.Connack().Properties
		s.noSubIDs = p != nil && p.SubIDAvailable != nil && !*p.SubIDAvailable
	}
	return !s.noSubIDs
}

// withSubID gives a SUBSCRIBE the Subscription Identifier id, if it is
// not 0 and the broker takes them.
func (s *session) withSubID(p *codec.Subscribe, id uint32) *codec.Subscribe {
	if id != 0 && s.subIDsOn() {
		p.Properties = &codec.Properties{SubscriptionIdentifier: []uint32{id}}
	}
	return p
}

// noteSubID records the Subscription Identifier a granted filter was
// subscribed with (none: forgets it), so that a re-subscribe after the
// broker lost the session carries it again.
func (s *session) noteSubID(filter string, sent *codec.Properties) {
	if sent == nil || len(sent.SubscriptionIdentifier) == 0 {
		delete(s.subIDOf, filter)
		return
	}
	if s.subIDOf == nil {
		s.subIDOf = make(map[string]uint32)
	}
	s.subIDOf[filter] = sent.SubscriptionIdentifier[0]
}

// sameSubID returns how many of the first n of subs share the
// Subscription Identifier of the first (one SUBSCRIBE carries at most
// one).
func (s *session) sameSubID(subs []Subscription, n int) int {
	id := s.subIDOf[subs[0].Filter]
	for i := 1; i < n; i++ {
		if s.subIDOf[subs[i].Filter] != id {
			return i
		}
	}
	return n
}

// resubscribePacket is the SUBSCRIBE for subs, which share one
// Subscription Identifier (see sameSubID), on a re-subscribe.
func (s *session) resubscribePacket(subs []Subscription) *codec.Subscribe {
	return s.withSubID(subscribePacket(1, subs), s.subIDOf[subs[0].Filter])
}
