package mqtttest

import (
	"context"
	"fmt"
	"slices"
)

// Accepted returns how many connections the broker has accepted since it
// started, across restarts: TCP connections, or with BrokerConfig.WebSocket
// upgraded WebSocket connections.
func (b *Broker) Accepted() int64 { return b.accepted.Load() }

// Connected returns the client identifiers of the clients connected now
// (CONNACK sent, connection not yet ended), sorted.
func (b *Broker) Connected() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	ids := make([]string, 0, len(b.conns))
	for _, bc := range b.conns {
		if bc.clientID != "" {
			ids = append(ids, bc.clientID)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids) // a session taken over is briefly connected twice
}

// isConnected reports whether a client with this identifier is connected.
func (b *Broker) isConnected(clientID string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, bc := range b.conns {
		if bc.clientID == clientID {
			return true
		}
	}
	return false
}

// HasSession reports whether the broker holds a session for clientID:
// the client is connected, or it was connected with a persistent session
// that has not expired.
func (b *Broker) HasSession(clientID string) bool {
	_, ok := b.srv.Clients.Get(clientID)
	return ok
}

// Inflight returns how many QoS 1 and 2 messages the broker holds in the
// session of clientID: messages queued while the client was away and
// messages sent but not yet acknowledged, plus the state of QoS 2 messages
// the client is publishing. Zero if there is no such session.
func (b *Broker) Inflight(clientID string) int {
	cl, ok := b.srv.Clients.Get(clientID)
	if !ok {
		return 0
	}
	return cl.State.Inflight.Len()
}

// Publish publishes a message from the broker itself, to every matching
// subscription, as if a client had published it with this QoS. It returns
// once the message is routed: queued in the sessions of offline persistent
// subscribers, handed to the connections of online ones. The publisher is
// mochi's built-in client, whose identifier is "inline": do not give a test
// client that identifier.
func (b *Broker) Publish(topic string, payload []byte, qos byte, retain bool) error {
	b.publishMu.Lock() // one mochi client for every caller: see enterRoute
	defer b.publishMu.Unlock()
	if err := b.srv.Publish(topic, payload, retain, qos); err != nil {
		return fmt.Errorf("mqtttest: publish to %q: %w", topic, err)
	}
	return nil
}

// Wait blocks until cond returns true or ctx ends. It calls cond now and
// again after every broker event: a client connected or its connection
// ended, a subscription added or removed, a message published, queued,
// written to a client, acknowledged or dropped. cond runs on the calling
// goroutine.
func (b *Broker) Wait(ctx context.Context, cond func() bool) error {
	if err := b.changed.until(ctx, cond); err != nil {
		return fmt.Errorf("mqtttest: wait for the broker: %w", err)
	}
	return nil
}

// WaitConnected blocks until a client with this identifier is connected (its
// CONNACK sent) or ctx ends.
func (b *Broker) WaitConnected(ctx context.Context, clientID string) error {
	err := b.changed.until(ctx, func() bool { return b.isConnected(clientID) })
	if err != nil {
		return fmt.Errorf("mqtttest: wait for client %q to connect: %w", clientID, err)
	}
	return nil
}

// WaitDisconnected blocks until no client with this identifier is connected
// and mochi has finished with its last connection (will published, clean
// session removed), or ctx ends.
func (b *Broker) WaitDisconnected(ctx context.Context, clientID string) error {
	err := b.changed.until(ctx, func() bool { return !b.isConnected(clientID) })
	if err != nil {
		return fmt.Errorf("mqtttest: wait for client %q to disconnect: %w", clientID, err)
	}
	return nil
}

// WaitInflight blocks until the session of clientID holds at least n
// messages (see Inflight) or ctx ends. Use it to be sure a message published
// for an offline subscriber has been queued: mochi acknowledges a PUBLISH
// before it routes it.
func (b *Broker) WaitInflight(ctx context.Context, clientID string, n int) error {
	err := b.changed.until(ctx, func() bool { return b.Inflight(clientID) >= n })
	if err != nil {
		return fmt.Errorf("mqtttest: wait for %d messages in the session of %q: %w", n, clientID, err)
	}
	return nil
}
