package mqtt

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/robustmqtt/mqtt/conn"
)

// Stats is a snapshot of a client's counters since Dial, from Client.Stats.
// Counters only grow; Queued, Inflight and Connected are the state now.
type Stats struct {
	// Publishes counts finished publishes by QoS (index 0, 1, 2) and
	// outcome.
	Publishes [3]PublishStats
	// Received counts inbound messages handed to the application, by QoS.
	Received [3]uint64
	// ReceivedDropped counts inbound QoS 0 messages dropped because the
	// application fell Config.MaxPending messages behind.
	ReceivedDropped uint64
	// RepliesDropped counts messages on the response topic of Request
	// that answered no waiting request: the request's ctx had ended, the
	// same reply came twice, or it has no (or unknown) Correlation Data.
	RepliesDropped uint64

	// Connections counts connection attempts and how they ended.
	Connections ConnectionStats

	// BytesWritten and BytesRead count the MQTT bytes of every
	// connection (CONNECT, PINGREQ and all), above TLS and WebSocket
	// framing. A write is counted when it returns, which can be a moment
	// after the acknowledgement it brought was read (and a QoS 1/2
	// Publish returned); after Close the counts are final.
	BytesWritten, BytesRead uint64

	// Connected says whether a connection is up now. TimeConnected and
	// TimeDisconnected add up to the time since Dial.
	Connected                       bool
	TimeConnected, TimeDisconnected time.Duration

	// Queued is how many publishes are accepted and not yet sent or
	// finished; Inflight how many QoS 1/2 publishes are sent and not yet
	// acknowledged.
	Queued, Inflight int
}

// PublishStats counts publishes of one QoS by outcome. Each publish is
// counted once, when its result is delivered.
type PublishStats struct {
	Acknowledged uint64 // QoS 1/2: PUBACK/PUBCOMP; QoS 0: written
	Refused      uint64 // the broker refused it (*PublishError), or it did not fit the broker's limits
	Withdrawn    uint64 // its ctx ended before it was sent (ErrWithdrawn)
	Expired      uint64 // ErrExpired
	Dropped      uint64 // ErrDropped
	Superseded   uint64 // ErrSuperseded
	QueueFull    uint64 // ErrQueueFull
	Unknown      uint64 // ErrOutcomeUnknown: sent, not acknowledged
	Closed       uint64 // the client stopped first (ErrClosed)
}

// ConnectionStats counts connection attempts and losses.
type ConnectionStats struct {
	Attempts   uint64 // connection attempts: dial plus CONNECT
	Succeeded  uint64 // attempts that got a positive CONNACK
	Refused    uint64 // attempts the broker refused in CONNACK (*ConnectError)
	Failed     uint64 // attempts that failed otherwise: dial error, TLS, timeout
	Redirected uint64 // MQTT 5 redirects followed (Server Reference)
	// Lost counts live connections lost, by reason. Each is followed by a
	// reconnect unless the client stops.
	Lost LostStats
}

// LostStats counts lost connections by reason.
type LostStats struct {
	TakenOver    uint64 // another connection with the same ClientID took the session (ErrClientIDConflict)
	KeepAlive    uint64 // the broker stopped answering (ErrKeepAliveTimeout)
	ServerClosed uint64 // the broker closed the connection without a reason
	Disconnected uint64 // an MQTT 5 DISCONNECT from the broker (*DisconnectError)
	Protocol     uint64 // the broker broke the protocol (*ProtocolError)
	Network      uint64 // anything else: a reset, a write that failed, ...
}

// Publish outcomes, the second index of counters.pub.
const (
	outAcked = iota
	outRefused
	outWithdrawn
	outExpired
	outDropped
	outSuperseded
	outQueueFull
	outUnknown
	outClosed
	numOutcomes
)

// Loss reasons, the index of counters.lost.
const (
	lostKeepAlive = iota
	lostTakenOver
	lostServerClosed
	lostDisconnected
	lostProtocol
	lostNetwork
	numLost
)

// counters are a client's statistics, each updated with one atomic add by
// the goroutine that sees the event: reading them never blocks a publish.
type counters struct {
	born time.Time

	pub         [3][numOutcomes]atomic.Uint64
	recv        [3]atomic.Uint64
	recvDropped atomic.Uint64
	// repliesDropped: see Stats.RepliesDropped.
	repliesDropped atomic.Uint64

	attempts, succeeded, refused, failed, redirected atomic.Uint64
	lost                                             [numLost]atomic.Uint64

	io conn.Counters

	upSince  atomic.Int64 // nanoseconds since born when the current connection came up; -1 while down
	upTotal  atomic.Int64 // nanoseconds connected, not counting the current connection
	inflight atomic.Int64 // set by the session
}

func newCounters() *counters {
	c := &counters{born: time.Now()}
	c.upSince.Store(-1)
	return c
}

// published counts one finished publish.
func (c *counters) published(qos int8, err error) {
	c.pub[qos][outcomeOf(err)].Add(1)
}

// outcomeOf classifies a publish's result.
func outcomeOf(err error) int {
	switch {
	case err == nil:
		return outAcked
	case errors.Is(err, ErrWithdrawn):
		return outWithdrawn
	case errors.Is(err, ErrExpired):
		return outExpired
	case errors.Is(err, ErrDropped):
		return outDropped
	case errors.Is(err, ErrSuperseded):
		return outSuperseded
	case errors.Is(err, ErrQueueFull):
		return outQueueFull
	case errors.Is(err, ErrOutcomeUnknown):
		return outUnknown
	case errors.Is(err, ErrClosed):
		return outClosed
	}
	return outRefused // *PublishError, ErrInvalidMessage
}

// up records that a connection came up; down that it ended, and why.
func (c *counters) up() {
	c.succeeded.Add(1)
	c.upSince.Store(int64(time.Since(c.born)))
}

func (c *counters) down(err error) {
	if since := c.upSince.Swap(-1); since >= 0 {
		c.upTotal.Add(int64(time.Since(c.born)) - since)
	}
	var de *DisconnectError
	var pe *ProtocolError
	switch {
	case errors.Is(err, ErrClientIDConflict):
		c.lost[lostTakenOver].Add(1)
	case errors.Is(err, ErrKeepAliveTimeout):
		c.lost[lostKeepAlive].Add(1)
	case errors.Is(err, conn.ErrServerClosed):
		c.lost[lostServerClosed].Add(1)
	case errors.As(err, &de):
		c.lost[lostDisconnected].Add(1)
	case errors.As(err, &pe):
		c.lost[lostProtocol].Add(1)
	default:
		c.lost[lostNetwork].Add(1)
	}
}

// attemptFailed counts a connection attempt that did not come up.
func (c *counters) attemptFailed(err error) {
	var ce *ConnectError
	if errors.As(err, &ce) {
		c.refused.Add(1)
	} else {
		c.failed.Add(1)
	}
}

// Stats returns a snapshot of the client's counters. It is cheap (a few
// dozen atomic loads and one short lock) and may be called at any rate,
// also after the client stopped.
func (c *Client) Stats() Stats {
	k := c.stats
	var st Stats
	for q := range st.Publishes {
		p := &k.pub[q]
		st.Publishes[q] = PublishStats{
			Acknowledged: p[outAcked].Load(),
			Refused:      p[outRefused].Load(),
			Withdrawn:    p[outWithdrawn].Load(),
			Expired:      p[outExpired].Load(),
			Dropped:      p[outDropped].Load(),
			Superseded:   p[outSuperseded].Load(),
			QueueFull:    p[outQueueFull].Load(),
			Unknown:      p[outUnknown].Load(),
			Closed:       p[outClosed].Load(),
		}
		st.Received[q] = k.recv[q].Load()
	}
	st.ReceivedDropped = k.recvDropped.Load()
	st.RepliesDropped = k.repliesDropped.Load()
	st.Connections = ConnectionStats{
		Attempts:   k.attempts.Load(),
		Succeeded:  k.succeeded.Load(),
		Refused:    k.refused.Load(),
		Failed:     k.failed.Load(),
		Redirected: k.redirected.Load(),
		Lost: LostStats{
			TakenOver:    k.lost[lostTakenOver].Load(),
			KeepAlive:    k.lost[lostKeepAlive].Load(),
			ServerClosed: k.lost[lostServerClosed].Load(),
			Disconnected: k.lost[lostDisconnected].Load(),
			Protocol:     k.lost[lostProtocol].Load(),
			Network:      k.lost[lostNetwork].Load(),
		},
	}
	st.BytesWritten = uint64(k.io.Written.Load())
	st.BytesRead = uint64(k.io.Read.Load())
	now := int64(time.Since(k.born))
	connected := k.upTotal.Load()
	if since := k.upSince.Load(); since >= 0 {
		st.Connected = true
		connected += now - since
	}
	st.TimeConnected = time.Duration(connected)
	st.TimeDisconnected = time.Duration(max(now-connected, 0))
	st.Inflight = int(k.inflight.Load())
	st.Queued = max(c.adm.count()-st.Inflight, 0)
	return st
}
