package mqtt

import (
	"context"

	"github.com/robustmqtt/mqtt/conn"
	"github.com/robustmqtt/mqtt/supervisor"
)

// startRun is the supervisor's Start: one connection attempt. It dials the
// current server, and on CONNACK hands the connection to the session and
// starts its reader and writer as the run's members. A failed connect moves
// on to the next server; a connection that was up and then lost is retried
// on the same server first.
func (c *Client) startRun(ctx context.Context, g *supervisor.Group) error {
	server := c.cfg.Servers[c.serverIdx]
	c.runServer, c.runUp = server, false
	cn, err := conn.Open(ctx, server, conn.Config{
		Connect:        c.connect,
		ConnectTimeout: c.cfg.ConnectTimeout,
		MaxPacketSize:  c.cfg.MaxPacketSize,
		TLS:            c.cfg.TLS,
		Inbound:        c.inbound,
	})
	if err != nil {
		c.serverIdx = (c.serverIdx + 1) % len(c.cfg.Servers)
		c.cfg.Logger.Debug("mqtt: connect failed", "server", server, "err", err)
		return err
	}
	// The session must know the connection before its first frame, so
	// the reader starts only once the session has taken it.
	select {
	case c.conns <- cn:
	case <-ctx.Done():
		cn.Close()
		return context.Cause(ctx)
	}
	g.Up() // CONNACK is in: up, even if a loop fails the next instant
	g.Go(cn.ReadLoop)
	g.Go(cn.WriteLoop)
	c.runUp = true

	ack := cn.Connack()
	e := Event{Kind: Connected, Server: server, SessionPresent: ack.SessionPresent, ClientID: c.cfg.ClientID}
	if ack.Properties != nil && ack.Properties.AssignedClientID != "" {
		e.ClientID = ack.Properties.AssignedClientID
	}
	c.cfg.Logger.Info("mqtt: connected", "server", server, "session_present", ack.SessionPresent)
	c.emit(e)
	if c.connectedBefore && !c.cfg.CleanStart && !ack.SessionPresent {
		c.cfg.Logger.Warn("mqtt: the broker did not keep the session; subscribing again and re-sending what is owed", "server", server)
		c.emit(Event{Kind: SessionLost, Server: server})
	}
	c.connectedBefore = true
	c.firstUpOnce.Do(func() { close(c.firstUp) })
	return nil
}

// onSupervisorEvent turns the supervisor's events into the client's. It
// runs on the supervisor goroutine and never blocks (emit does not).
func (c *Client) onSupervisorEvent(e supervisor.Event) {
	switch e.Kind {
	case supervisor.Down:
		c.lastErrMu.Lock()
		c.lastErr = e.Err
		c.lastErrMu.Unlock()
		if c.runUp {
			c.runUp = false
			c.cfg.Logger.Info("mqtt: connection lost", "server", c.runServer, "err", e.Err)
			c.emit(Event{Kind: ConnectionLost, Server: c.runServer, Err: e.Err})
		}
	case supervisor.Retrying:
		c.emit(Event{Kind: Reconnecting, Attempt: e.Attempt, Delay: e.Delay})
	case supervisor.GaveUp:
		c.cfg.Logger.Warn("mqtt: the reconnect strategy gave up", "err", e.Err)
		c.emit(Event{Kind: GaveUp, Err: &supervisor.GaveUpError{Attempt: e.Attempt}})
	}
}
