package mqtt

import (
	"context"
	"errors"
	"strings"

	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/conn"
	"github.com/robustmqtt/mqtt/supervisor"
)

// startRun is the supervisor's Start: one connection attempt. It dials the
// current server, and on CONNACK hands the connection to the session and
// starts its reader and writer as the run's members. A failed connect moves
// on to the next server; a connection that was up and then lost is retried
// on the same server first. An MQTT 5 redirect (Server Reference) is tried
// once, before the configured servers.
func (c *Client) startRun(ctx context.Context, g *supervisor.Group) error {
	server, redirected := c.cfg.Servers[c.serverIdx], false
	if c.redirect != "" {
		server, redirected = c.redirect, true
		c.redirect = ""
		c.stats.redirected.Add(1)
	}
	c.runServer, c.runUp = server, false
	c.stats.attempts.Add(1)
	cn, err := conn.Open(ctx, server, conn.Config{
		Connect:        c.connect,
		ConnectTimeout: c.cfg.ConnectTimeout,
		MaxPacketSize:  c.cfg.MaxPacketSize,
		TLS:            c.cfg.TLS,
		Inbound:        c.inbound,
		Counters:       &c.stats.io,
	})
	if err != nil {
		c.stats.attemptFailed(err)
		if !redirected {
			c.serverIdx = (c.serverIdx + 1) % len(c.cfg.Servers)
		}
		c.followRedirect(err, server)
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
	c.stats.up()
	g.Go(cn.ReadLoop)
	g.GoInline(cn.WriteLoop) // on the supervisor goroutine: one goroutine less per client
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
			c.stats.down(e.Err)
			if c.stopping.Load() {
				return // Close or Disconnect ended it: no news
			}
			c.followRedirect(e.Err, c.runServer)
			c.cfg.Logger.Info("mqtt: connection lost", "server", c.runServer, "err", e.Err)
			c.emit(Event{Kind: ConnectionLost, Server: c.runServer, Err: e.Err})
		}
	case supervisor.Retrying:
		if c.stopping.Load() {
			return // the session is stopping the supervisor
		}
		c.emit(Event{Kind: Reconnecting, Attempt: e.Attempt, Delay: e.Delay, Err: e.Err})
	case supervisor.GaveUp:
		// The same words as Client.Err (and Dial's error) will say.
		err := c.gaveUp(&supervisor.GaveUpError{Attempt: e.Attempt})
		c.cfg.Logger.Warn("mqtt: the reconnect strategy gave up", "server", c.runServer, "err", err)
		c.emit(Event{Kind: GaveUp, Server: c.runServer, Err: err})
	}
}

// followRedirect notes an MQTT 5 "use another server" or "server moved"
// from the broker at from (in CONNACK or DISCONNECT), so that the next
// attempt goes to its Server Reference. A reference that is not a usable
// server is logged and ignored.
func (c *Client) followRedirect(err error, from string) {
	var code codec.ReasonCode
	var ref string
	var ce *ConnectError
	var de *DisconnectError
	switch {
	case errors.As(err, &ce):
		code, ref = ce.ReasonCode, ce.ServerReference
	case errors.As(err, &de):
		code, ref = de.ReasonCode, de.ServerReference
	default:
		return
	}
	if (code != codec.UseAnotherServer && code != codec.ServerMoved) || ref == "" {
		return
	}
	target, perr := redirectTarget(ref, from)
	if perr != nil {
		c.cfg.Logger.Warn("mqtt: ignoring the broker's server reference", "server", from, "reference", ref, "err", perr)
		return
	}
	c.cfg.Logger.Info("mqtt: the broker redirects the client", "server", from, "to", target, "reason", code.String())
	c.redirect = target
}

// redirectTarget turns a Server Reference into a server URL. The
// specification leaves its format open; brokers send "host", "host:port"
// or a URL, and a list separated by spaces, of which the first is taken.
// Without a scheme, the scheme of from is kept.
func redirectTarget(ref, from string) (string, error) {
	fields := strings.Fields(ref)
	if len(fields) == 0 {
		return "", errors.New("the reference is blank")
	}
	ref = fields[0]
	if !strings.Contains(ref, "://") {
		cur, err := conn.ParseServer(from)
		if err != nil {
			return "", err
		}
		ref = cur.Scheme + "://" + ref
	}
	u, err := conn.ParseServer(ref)
	if err != nil {
		return "", err
	}
	return u.String(), nil
}
