package mqtt

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

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
	if c.stopping.Load() {
		// The session said goodbye (or is closing) and stops the
		// supervisor next: the broker closing the last connection is not
		// a loss to recover from. A new connection now would take the
		// session at the broker and then be cut without DISCONNECT, and
		// the broker would publish the Will.
		<-ctx.Done()
		return context.Cause(ctx)
	}
	// server is what is dialed; shown, with any password redacted, is what
	// events, logs and errors say. A redirect target has no user
	// information (followRedirect sees to it), so it is both.
	server, shown, redirected := c.cfg.Servers[c.serverIdx], c.cfg.shown[c.serverIdx], false
	if c.redirect != "" {
		server, shown, redirected = c.redirect, c.redirect, true
		c.redirect = ""
		c.stats.redirected.Add(1)
	}
	c.runServer, c.runUp = shown, false
	c.stats.attempts.Add(1)
	timeout, began := c.attemptTimeout(), time.Now()
	// A stop (the session's, the only thing that ends ctx) that lands
	// after the CONNECT went out ends the connection with DISCONNECT, as
	// the stop would once connected, within as long: Close's bound, or a
	// graceful Disconnect's (the last connection's set-up, a round trip
	// or more, stands in for the link's round trip). Close's 200 ms cut
	// a CONNACK slower than that, and the broker, which held the client
	// connected, published the Will after a Disconnect that returned nil.
	quick, graceful := max(closeDisconnectWait, 2*c.connectTook), max(minGoodbyeWait, 2*c.connectTook)
	linger := func() time.Duration {
		if c.closing.Load() {
			return quick
		}
		return graceful
	}
	var cn *conn.Conn
	endTurn, err := c.takeAuthTurn(ctx)
	if err == nil {
		var connect *codec.Connect
		connect, err = c.connectFor(ctx, server, shown, timeout)
		if err == nil {
			cfg := conn.Config{
				Connect:        connect,
				ConnectTimeout: timeout,
				MaxPacketSize:  c.cfg.MaxPacketSize,
				TLS:            c.cfg.TLS,
				Inbound:        c.inbound,
				Inline:         c.inlineAck,
				MayLend:        c.nothingAwaited,
				OnFail:         c.wakeSession,
				Counters:       &c.stats.io,
				Dial:           c.cfg.Dial,
				Auth:           c.cfg.Auth,
				TopicAliases:   c.cfg.TopicAliases,
				LingerFor:      linger,
			}
			cn, err = conn.Open(ctx, server, cfg)
		}
		endTurn()
	}
	took := time.Since(began)
	if err != nil {
		if took >= timeout && ctx.Err() == nil {
			c.connectTimeouts++
		}
		if conn.ConnectMayHaveArrived(err) {
			c.connectUnanswered = true
		}
		c.stats.attemptFailed(err)
		if !redirected {
			c.serverIdx = (c.serverIdx + 1) % len(c.cfg.Servers)
		}
		c.followRedirect(err, shown)
		c.cfg.Logger.Debug("mqtt: connect failed", "server", shown, "err", err)
		return err
	}
	c.connectTook, c.connectTimeouts = took, 0
	ack := cn.Connack()
	// The session announces the connection as it takes it (see
	// newConn.announce): whatever it does with the connection (a
	// re-subscription too large for the new broker, reported at once) is
	// news of this connection and comes after its Connected and
	// SessionLost, and a call made once WaitConnected returned finds the
	// session connected. The CONNACK's properties themselves, which
	// nothing changes: emit hands the application a copy (see handOut).
	e := Event{Kind: Connected, Server: shown, SessionPresent: ack.SessionPresent, ClientID: c.cfg.ClientID,
		Connack: ack.Properties}
	if ack.Properties != nil && ack.Properties.AssignedClientID != "" {
		e.ClientID = ack.Properties.AssignedClientID
	}
	c.cfg.Logger.Info("mqtt: connected", "server", shown, "session_present", ack.SessionPresent)
	nc := newConn{cn: cn, presentUnproven: c.connectUnanswered && ack.SessionPresent,
		connected: e, sessionLost: c.connectedBefore && !c.cfg.CleanStart && !ack.SessionPresent,
		taken: make(chan struct{})}
	if nc.sessionLost {
		c.cfg.Logger.Warn("mqtt: the broker did not keep the session; subscribing again and re-sending what is owed", "server", shown)
	}
	c.connectUnanswered, c.connectedBefore = false, true
	if !redirected {
		// A broker's redirect names a server with the same sessions, by
		// its own word: only the servers of the list are told apart.
		nc.presentElsewhere = ack.SessionPresent && c.sessionAt != "" && c.sessionAt != server
		c.sessionAt = server
	}
	// The session must know the connection before its first frame, so
	// the reader starts only once the session has taken it; and its
	// Connected comes before any ConnectionLost of the loops.
	select {
	case c.ctrl <- nc:
		<-nc.taken // in the session's turn that took it
	case <-ctx.Done():
		cn.Leave(linger()) // the broker holds the client connected: no Will
		return context.Cause(ctx)
	}
	g.Up() // CONNACK is in: up, even if a loop fails the next instant
	// The loops' error says whether another client with the same ClientID
	// took the connection over, so that the strategy sees it too.
	l := &loops{cn: cn, watch: c.takeover, upAt: time.Now(), present: ack.SessionPresent, probed: &c.probed}
	g.Go(l.read)
	g.GoInline(l.write) // on the supervisor goroutine: one goroutine less per client
	c.runUp, c.runUpAt, c.runPresent = true, l.upAt, l.present
	return nil
}

// attemptTimeout is the connect timeout of the next attempt: the one
// Config sets, or, left to its default, one that adapts to the link (see
// Config.ConnectTimeout): DefaultConnectTimeout, at least three times what
// the last connection took to come up, doubled for each attempt in a row
// since then that ran out of time, at most maxAdaptedConnectTimeout.
func (c *Client) attemptTimeout() time.Duration {
	if !c.cfg.adaptConnect {
		return c.cfg.ConnectTimeout
	}
	t := max(DefaultConnectTimeout, 3*c.connectTook)
	for range c.connectTimeouts {
		if t >= maxAdaptedConnectTimeout {
			break
		}
		t *= 2
	}
	return min(t, maxAdaptedConnectTimeout)
}

// connectFor returns the CONNECT for one attempt to server (shown, as
// errors show it): the one built at start, or a copy of it with the
// credentials asked for now (Config.Credentials) and the Authentication
// Data of a new exchange (Config.Auth's Start), each bounded by timeout,
// the attempt's connect timeout. Their errors fail the
// attempt like a refused connection; so do credentials that CONNECT
// cannot carry. Neither the password nor anything derived from it goes
// into an error or a log.
func (c *Client) connectFor(ctx context.Context, server, shown string, timeout time.Duration) (*codec.Connect, error) {
	// Made for each attempt rather than kept: a client carries no CONNECT
	// while it is connected (0.1 KiB, 0.45 KiB with MQTT 5 properties).
	p := c.cfg.connectPacket()
	creds, auth := c.cfg.Credentials, c.cfg.Auth
	if creds != nil {
		ctx, cancel := context.WithTimeoutCause(ctx, timeout,
			fmt.Errorf("mqtt: Config.Credentials did not return within the connect timeout of %s", timeout))
		defer cancel()
		user, pass, err := creds(ctx, server)
		if err != nil {
			return nil, fmt.Errorf("mqtt: credentials for %s: %w", shown, err)
		}
		if err := checkCredentials(user, pass, c.cfg.version); err != nil {
			return nil, fmt.Errorf("mqtt: credentials for %s: %w", shown, err)
		}
		p.Username, p.HasUsername = user, user != ""
		p.Password, p.HasPassword = pass, pass != nil
	}
	if auth != nil {
		ctx, cancel := context.WithTimeoutCause(ctx, timeout,
			fmt.Errorf("mqtt: Config.Auth's Start did not return within the connect timeout of %s", timeout))
		defer cancel()
		data, err := authData(auth.Start(ctx, server))
		if err != nil {
			return nil, &AuthError{Server: shown, Method: c.cfg.authMethod, Op: "starting the exchange", Err: err}
		}
		p.Properties.AuthenticationData = data // Version 5: CONNECT has properties, this attempt's own
	}
	return p, nil
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
			c.setUp(false)
			c.stats.down(e.Err)
			if c.stopping.Load() {
				return // Close or Disconnect ended it: no news
			}
			c.followRedirect(e.Err, c.runServer)
			c.cfg.Logger.Info("mqtt: connection lost", "server", c.runServer, "err", e.Err)
			c.emit(Event{Kind: ConnectionLost, Server: c.runServer, Err: e.Err})
			if c.takeover.lost(e.Err, time.Since(c.runUpAt), c.runPresent) {
				c.cfg.Logger.Warn("mqtt: another client uses the same ClientID; each connection takes the session from the other", "client_id", c.cfg.ClientID, "server", c.runServer)
				c.emit(Event{Kind: ClientIDConflict, Server: c.runServer, ClientID: c.cfg.ClientID, Err: e.Err})
			}
		} else {
			c.takeover.attemptFailed()
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
// server, or that the redirect policy (newRedirectPolicy) refuses (it
// drops TLS, or leads to a host the user did not allow), is logged and
// not followed: the next
// attempt goes to Config.Servers, and Stats counts no redirect. from is
// the server as shown (redacted); its scheme is all that is used.
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
	if perr == nil {
		var policy *redirectPolicy
		if policy, perr = newRedirectPolicy(c.cfg.Servers, c.cfg.RedirectHosts); perr == nil { // valid: Start checked it
			perr = policy.check(target, from)
		}
	}
	if perr != nil {
		c.cfg.Logger.Warn("mqtt: not following the broker's redirect", "server", from,
			"reference", conn.RedactServer(ref), "reason", code.String(), "err", perr)
		return
	}
	c.cfg.Logger.Info("mqtt: the broker redirects the client", "server", from, "to", target, "reason", code.String())
	c.redirect = target
}

// redirectTarget turns a Server Reference into a server URL. The
// specification leaves its format open; brokers send "host", "host:port"
// or a URL, and a list separated by spaces, of which the first is taken.
// Without a scheme, the scheme of from is kept. A reference with user
// information is refused: the broker does not choose credentials.
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
	if u, err := url.Parse(ref); err == nil && u.User != nil {
		return "", errors.New("the reference carries user information, which the client does not take from a broker")
	}
	u, err := conn.ParseServer(ref)
	if err != nil {
		return "", err
	}
	return u.String(), nil
}

// redirectPolicy says where a Server Reference may lead: see
// Config.RedirectHosts. It is built once, by Config.validate, and only
// read afterwards.
type redirectPolicy struct {
	any   bool          // "*": any host
	hosts []hostPattern // the hosts of Servers (any port), then RedirectHosts
}

// hostPattern is one entry of redirectPolicy.
type hostPattern struct {
	host string // lower case, without brackets; "*.example.com" for a suffix
	ip   net.IP // host as an address, if it is one
	port string // "" for any port
}

// newRedirectPolicy allows the hosts of servers, which are valid, on any
// port, and the entries of extra, which it checks.
func newRedirectPolicy(servers, extra []string) (*redirectPolicy, error) {
	p := &redirectPolicy{}
	for _, srv := range servers {
		u, err := conn.ParseServer(srv)
		if err != nil {
			return nil, err
		}
		p.hosts = append(p.hosts, newHostPattern(u.Hostname(), ""))
	}
	for i, e := range extra {
		bad := func(why string) (*redirectPolicy, error) {
			return nil, fmt.Errorf("RedirectHosts[%d] %q %s", i, e, why)
		}
		switch {
		case e == "*":
			p.any = true
			continue
		case e == "":
			return bad("is empty; give a host name, an IP address or host:port")
		case strings.ContainsAny(e, "/@?#"):
			return bad("is not a host; give a host name, an IP address or host:port, without a scheme (a redirect keeps TLS whatever this allows)")
		}
		host, port := e, ""
		if h, pt, err := net.SplitHostPort(e); err == nil {
			host, port = h, pt
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				return bad("has a bad port; give a number from 1 to 65535")
			}
		} else if strings.HasPrefix(e, "[") && strings.HasSuffix(e, "]") {
			host = e[1 : len(e)-1] // "[::1]": an address without a port
		}
		if host == "" || strings.ContainsAny(host, "[] ") {
			return bad("is not a host; give a host name, an IP address or host:port ([::1]:8883 for an IPv6 address and port)")
		}
		if host == "*" || strings.Contains(host[1:], "*") || strings.HasPrefix(host, "*") && !strings.HasPrefix(host, "*.") {
			return bad(`is not a host; a wildcard is "*" alone or "*.domain" in front`)
		}
		p.hosts = append(p.hosts, newHostPattern(host, port))
	}
	return p, nil
}

func newHostPattern(host, port string) hostPattern {
	return hostPattern{host: strings.ToLower(host), ip: net.ParseIP(host), port: port}
}

// matches reports whether host:port (host without brackets) is allowed by
// the pattern.
func (h hostPattern) matches(host, port string) bool {
	if h.port != "" && h.port != port {
		return false
	}
	if h.ip != nil {
		ip := net.ParseIP(host)
		return ip != nil && ip.Equal(h.ip)
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if suffix, ok := strings.CutPrefix(h.host, "*"); ok { // ".example.com"
		return strings.HasSuffix(host, suffix) && len(host) > len(suffix)
	}
	return host == strings.TrimSuffix(h.host, ".")
}

// check says why the client must not follow a redirect from the server
// from to target, both valid server URLs, or nil when it may.
func (p *redirectPolicy) check(target, from string) error {
	t, err := conn.ParseServer(target)
	if err != nil {
		return err
	}
	f, err := conn.ParseServer(from)
	if err != nil {
		return err
	}
	// Dropping TLS would send the CONNECT, password and all, in clear to
	// whoever answers at the target (issue "No downgrade, no leak").
	if conn.IsSecure(f.Scheme) && !conn.IsSecure(t.Scheme) {
		return fmt.Errorf("the reference %s would leave TLS (%s:// to %s://); a redirect never does", target, f.Scheme, t.Scheme)
	}
	if p.any {
		return nil
	}
	for _, h := range p.hosts {
		if h.matches(t.Hostname(), t.Port()) {
			return nil
		}
	}
	return fmt.Errorf("the reference %s leads to host %s, which is neither a host of Config.Servers nor allowed by Config.RedirectHosts", target, t.Hostname())
}

// loops runs a connection's reader and writer as members of a supervisor
// run; the error each returns says whether another client with the same
// ClientID took the connection over, so that the strategy sees it too.
type loops struct {
	cn      *conn.Conn
	watch   takeoverWatch // as it was when the connection came up
	upAt    time.Time
	present bool // the CONNACK's Session Present
	// probed is Client.probed: cn, while a publish sent alone waits for
	// the broker's answer (see refused.go).
	probed *atomic.Pointer[conn.Conn]
}

// read runs the reader. The writer watches the run's ctx: when it ends,
// the writer fails the connection, which ends the reader too (one
// context.AfterFunc per connection rather than two; the writer always
// runs, see supervisor.Group.GoInline).
func (l *loops) read(context.Context) error {
	return l.cause(l.cn.ReadLoop(context.Background()))
}

// write runs the writer.
func (l *loops) write(ctx context.Context) error { return l.cause(l.cn.WriteLoop(ctx)) }

// cause is the error the connection ended with, as the application and
// the strategy see it: it says whether another client with the same
// ClientID took the connection over, or that the broker ended it while a
// publish sent alone waited for its answer (then no twin is suspected: the
// broker may refuse that message).
func (l *loops) cause(err error) error {
	if l.probed.Load() == l.cn && brokerEnded(err) {
		return fmt.Errorf("%w (%w)", err, errProbeUnanswered)
	}
	return l.watch.cause(err, time.Since(l.upAt), l.present)
}
