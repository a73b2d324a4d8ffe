package mqtt

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"reflect"
	"slices"
	"time"

	"github.com/robustmqtt/mqtt/backoff"
	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/conn"
	"github.com/robustmqtt/mqtt/store"
)

// maxAdaptedConnectTimeout caps the default connect timeout as it adapts
// to a slow link (see Config.ConnectTimeout).
const maxAdaptedConnectTimeout = 2 * time.Minute

// Defaults for the zero values of Config. Each field's comment repeats its own.
const (
	DefaultKeepAlive       = 30 * time.Second
	DefaultConnectTimeout  = 10 * time.Second
	DefaultSessionExpiry   = 24 * time.Hour
	DefaultMaxInflight     = 20  // MQTT 3.1.1; see Config.MaxInflight
	DefaultMaxInflightV5   = 100 // MQTT 5, within the broker's Receive Maximum
	DefaultMaxQueued       = 1000
	DefaultMaxQueuedBytes  = 64 << 20
	DefaultMaxPending      = 1000
	DefaultMaxPendingBytes = 16 << 20
	DefaultMaxPacketSize   = 16 << 20
	// StableAfter is how long a connection must stay up before the
	// reconnect strategy starts again from its first attempt.
	DefaultStableAfter = 10 * time.Second
)

// defaultMaxInflight is what MaxInflight 0 means at protocol level version.
func defaultMaxInflight(version byte) int {
	if version == codec.V5 {
		return DefaultMaxInflightV5
	}
	return DefaultMaxInflight
}

// Config configures a Client. Two things have no default: Servers, and a
// ClientID for the default session, which is persistent (CleanStart
// false) and which the broker keeps under that identifier. Without a
// ClientID, set CleanStart for a session that lasts one connection (the
// broker then assigns an identifier). The client never makes one up: a
// random identifier would leave an orphan session at the broker every time
// the program starts. Every other field's zero value works, and each field
// says its default. Pass it to Dial or Start, which validate it.
type Config struct {
	// Servers are the brokers to connect to, tried in turn: a failed
	// connect moves to the next one. "tcp://host:1883" (or mqtt://),
	// "tls://host:8883" (or ssl://, mqtts://), "ws://host:80/mqtt",
	// "wss://host:443/mqtt". The default port of the scheme is used when a
	// URL has none, and /mqtt when a WebSocket URL has no path. At least
	// one is required. An MQTT 5 broker's redirect (Server Reference) is
	// tried once before the list, within the limits RedirectHosts states.
	//
	// Servers that do not share sessions (no cluster: a primary and a
	// backup) each keep their own (a broker's redirect is taken to lead
	// to a server with the same sessions). One that had the session when the
	// client left it keeps it as it was then, while the client's goes on
	// at the next server, anew if that one had none (SessionLost). Back
	// at the first, the client subscribes again (what it subscribed to
	// meanwhile is not in the session kept there) and copes with flows
	// that broker still holds under identifiers it has finished with, as
	// a restarted client does (see ClientID); what it unsubscribed from
	// meanwhile that server still delivers. A QoS 2 publish that one
	// server answered with PUBREC and another completed ends with
	// ErrOutcomeUnknown: unless the two share their sessions, the message
	// waits at the first for a PUBREL.
	//
	// The MQTT credentials are Username and Password, whatever the URL.
	// User information (user:password@) is accepted in ws:// and wss://
	// URLs only, as the HTTP Basic authentication of the WebSocket
	// upgrade (over ws:// it crosses the network in clear); in a tcp:// or
	// tls:// URL it would go unused, so it is an error. Events, logs and
	// errors show a URL with its password replaced by "xxxxx" (the user
	// name is shown: put a token in the password part).
	Servers []string

	// RedirectHosts are the hosts, besides those of Servers, that an
	// MQTT 5 broker may redirect the client to with a Server Reference
	// (reason "use another server" or "server moved"). An entry is a host
	// name or IP address, any port ("broker2.example", "10.0.0.7",
	// "::1"); a host and port ("broker2.example:8883", "[::1]:8883");
	// "*.example.com" for any name under example.com (not example.com
	// itself); or "*" for any host. The hosts of Servers are always
	// allowed, on any port. Nil: those only. A Server Reference to any
	// other host is logged and not followed; the next attempt goes to
	// Servers. The client sends Username and Password to wherever it is
	// redirected, so allow only hosts trusted with them.
	//
	// Whatever this allows, a redirect never leaves TLS: from a tls://,
	// ssl://, mqtts:// or wss:// server, only a reference to one of these
	// schemes is followed, and its certificate is verified for the new
	// host with TLS. A reference with user information is not followed.
	RedirectHosts []string

	// ClientID identifies the session at the broker. A persistent session
	// (CleanStart false) needs one. Empty with CleanStart lets the broker
	// choose (MQTT 5 reports the assigned identifier in Event.ClientID).
	//
	// The broker keeps a persistent session after the Client stops (MQTT
	// 5: for SessionExpiry, 24 h by default; 3.1.1: until a clean
	// connect), with the packet identifiers of the flows it has not
	// finished. The client's half lives in this Client's memory, or in
	// Store. A new Client with the same ClientID and without the old
	// one's Store (a program restarted after a crash) does not know
	// those identifiers. It copes with what the broker says of them: a
	// PUBREC of the old client's QoS 2 flow is answered with PUBREL (as
	// mochi-mqtt sends it again on every connection, taken for a
	// protocol error it made the client reconnect for ever), and a
	// message of its own that the broker answers with such a PUBREC
	// goes again under another identifier; its identifiers start far
	// from where the old client's began. What it cannot see: an MQTT
	// 3.1.1 broker that answers a QoS 2 PUBLISH under an identifier of
	// the old client's unfinished QoS 2 flow with a plain PUBREC takes
	// the message for the old one and drops it, and an inbound QoS 2
	// message the old Client had taken can be delivered again. So for
	// exactly once across processes, give the ClientID its Store, or
	// start with CleanStart (or a SessionExpiry of 0) when the state is
	// gone.
	ClientID string

	// Version is the protocol level: 4 for MQTT 3.1.1 (the default, also
	// chosen by 0) or 5 for MQTT 5.0.
	Version byte

	// CleanStart asks the broker to discard any session it holds for
	// ClientID on every connect. False (the default) keeps a persistent
	// session: subscriptions and undelivered QoS 1/2 messages survive a
	// lost connection.
	CleanStart bool

	// SessionExpiry (MQTT 5) is how long the broker keeps the session after
	// the connection closes. Zero means DefaultSessionExpiry (24 h) when
	// CleanStart is false and 0 (end with the connection) when it is true.
	// A negative value means 0. Values above 2^32-1 seconds mean "never".
	SessionExpiry time.Duration

	// KeepAlive is the longest the link may stay silent; the client pings
	// before then and declares the link dead when nothing comes back
	// within half an interval more (or within two of the link's round
	// trips, as the connection measured them, on a link slower than
	// that). Zero means DefaultKeepAlive (30 s); a negative value turns
	// keepalive off (a dead link may then go unnoticed). At most 65535 s.
	// An MQTT 5 broker may override it.
	KeepAlive time.Duration

	// ConnectTimeout bounds one connection attempt: dial plus
	// CONNECT/CONNACK. Zero means a timeout that adapts to the link:
	// DefaultConnectTimeout (10 s) for the first attempt; then at least
	// three times as long as the last attempt that connected took, and
	// twice as long as the attempt before if that one ran out of time, up
	// to 2 minutes. So a slow link (NB-IoT, a satellite hop, where a TLS
	// connection can take more than 10 s) is not cut off, every time,
	// before its handshake can finish, while a server that does not
	// answer is left after 10 s the first time. A value set here bounds
	// every attempt as it is.
	ConnectTimeout time.Duration

	// Username and Password are sent in CONNECT when set. For credentials
	// that change (a token that expires), set Credentials instead.
	Username string
	Password []byte

	// Credentials, if not nil, is asked for the username and password
	// before every connection attempt, with the server about to be dialed
	// (from Servers, or the target of a broker's redirect: it may refuse
	// to give credentials to it). An empty username is sent as none, and
	// so is a nil password (MQTT 3.1.1 allows no password without a
	// username). Its error fails that attempt, which counts as a failed
	// attempt for Backoff, and is in the Reconnecting event's Err. ctx
	// ends when the client stops, or after the attempt's connect timeout
	// (see ConnectTimeout); the client waits for Credentials to return
	// (Close too), so it must honour ctx.
	// It is called on a goroutine of the client, never two at a time. The
	// client neither keeps the password after the attempt nor ever logs
	// it. Set Credentials, or Username and Password, not both. Nil: the
	// fixed Username and Password.
	Credentials func(ctx context.Context, server string) (username string, password []byte, err error)

	// Auth (MQTT 5), if not nil, runs enhanced authentication (section
	// 4.12) on every connection: SCRAM, Kerberos, a challenge signed by a
	// device key, whatever the broker's method is. The CONNECT carries
	// Auth.Method() (asked once, by Dial or Start) and the data of
	// Auth.Start; each AUTH challenge the broker sends before CONNACK is
	// answered with Auth.Next's data; and a successful CONNACK's data goes
	// to Auth.Done, whose error fails the connection (the broker did not
	// prove itself). An error of Start, Next or Done fails that attempt
	// as a *AuthError, which counts as a failed attempt for Backoff; the
	// broker's refusal is a *ConnectError (0x8C Bad authentication method,
	// 0x87 Not authorized, ...). Client.Reauthenticate runs an exchange
	// again on a live connection. Its methods are called with a ctx that
	// ends when the client stops, or after the attempt's connect timeout
	// (see ConnectTimeout; in Reauthenticate: the caller's ctx), and must
	// honour it; never two
	// at a time, and in order within one exchange (Start, Next for each
	// challenge, Done), but an exchange may end after any step, when the
	// connection fails or ctx ends, so Start begins afresh. Username and
	// Password (or Credentials) are sent as well, if set. Nil: none.
	Auth Authenticator

	// ConnectProperties (MQTT 5) are the CONNECT properties the
	// application chooses: User (user properties, which some brokers pass
	// to their authentication and logging plugins), RequestProblemInfo
	// (Flag(false) asks the broker for no Reason String or User
	// Properties beyond PUBLISH, CONNACK and DISCONNECT) and
	// RequestResponseInfo (Flag(true) asks for Response Information,
	// which arrives in the Connected event's Connack). The other CONNECT
	// properties come from their own fields (SessionExpiry, MaxPending,
	// MaxPacketSize, TopicAliasMaximum), and any other property is an
	// error (enhanced authentication is Config.Auth's). It is copied.
	// Nil: none.
	ConnectProperties *Properties

	// Will is the message the broker publishes if this client disappears
	// without a DISCONNECT. Nil: no will.
	Will *Message

	// TLS configures tls://, ssl://, mqtts:// and wss:// servers: roots,
	// client certificates. It is cloned, never changed. Nil: the system
	// roots; an empty ServerName: the host of the URL.
	TLS *tls.Config

	// Dial, if not nil, opens the connection to a server instead of the
	// client's own dialer: through a proxy, over a Unix socket, or over an
	// in-memory net.Pipe in tests (with testing/synctest, a whole client
	// can run in a bubble). It gets the server URL from Servers (or a
	// redirect); the stream it returns is used as it is, so TLS, if wanted,
	// is its job. ConnectTimeout bounds it. Nil: tcp://, tls://, ws:// and
	// wss:// are dialed by the client.
	Dial func(ctx context.Context, server string) (net.Conn, error)

	// Backoff chooses the delay before each reconnect attempt, and when to
	// give up. Nil means backoff.Default(): exponential with full jitter,
	// forever. See package backoff for the built-in strategies.
	Backoff backoff.Strategy

	// MaxInflight bounds the QoS 1/2 publishes sent and not yet
	// acknowledged (QoS 2: until PUBCOMP). The window in force is the
	// smaller of this and an MQTT 5 broker's Receive Maximum. Zero means
	// the default of the Version: DefaultMaxInflight (20) for MQTT 3.1.1,
	// DefaultMaxInflightV5 (100) for MQTT 5.
	//
	// An MQTT 3.1.1 broker cannot announce its limit, and exceeding it can
	// lose acknowledged messages, so the 3.1.1 default is the smallest
	// limit among brokers in their default configuration. What each takes
	// in flight from a 3.1.1 client, and does beyond it (README.md has the
	// sources):
	//
	//   - Mosquitto 2.0: 20 QoS 2 awaiting PUBREL (max_inflight_messages).
	//     Beyond it, acknowledges and drops: with a window of 100, 60 of
	//     300 messages arrived, every publish reporting success.
	//   - EMQX 5: 100 QoS 2 awaiting PUBREL (mqtt.max_awaiting_rel).
	//     Closes the connection, unacknowledged: sent again, none lost.
	//   - mochi-mqtt v2: 1024 (Capabilities.ReceiveMaximum). Likewise.
	//   - Aedes 1.1.3 and later: 1000 QoS 2 awaiting PUBREL
	//     (maxInflightInbound). Likewise.
	//   - HiveMQ CE, VerneMQ, NanoMQ: no limit (HiveMQ's 10 and the
	//     others' Receive Maximum bind MQTT 5 clients only).
	//
	// Raise it only for a broker known to take more.
	MaxInflight int

	// MaxQueued bounds the publishes accepted and not yet finished
	// (queued while disconnected, waiting for the in-flight window, or in
	// flight). When it is reached, QueuePolicy decides. Zero means
	// DefaultMaxQueued (1000); it is raised to MaxInflight if lower.
	MaxQueued int

	// MaxQueuedBytes bounds the bytes (topic plus payload) of the same
	// publishes. A message larger than this on its own fails with
	// ErrQueueFull. Zero means DefaultMaxQueuedBytes (64 MiB).
	MaxQueuedBytes int

	// QueuePolicy is what a publish does when MaxQueued or MaxQueuedBytes
	// is reached: Block (the default, chosen by 0) waits for room until
	// its ctx ends, FailNewest fails at once, DropOldest and
	// LatestPerTopic drop older messages that allow it. Each publish may
	// override it with Message.QueuePolicy.
	QueuePolicy QueuePolicy

	// MaxPending bounds the inbound messages buffered for an application
	// that reads Messages more slowly than they arrive. QoS 1 and 2
	// messages are never dropped: they are acknowledged only once the
	// application has taken them, and flow control holds the rest back.
	// Under MQTT 5 this is the Receive Maximum the client announces, and
	// a broker that sends more unacknowledged QoS 1/2 messages than that
	// is disconnected with reason 0x93 (Receive Maximum exceeded); under
	// MQTT 3.1.1, which cannot announce it, the client stops reading the
	// connection while MaxPending QoS 1/2 messages wait, and TCP holds
	// the broker back. The broker then holds the backlog, up to a queue
	// limit of its own (Mosquitto's max_queued_messages, EMQX's
	// max_mqueue_len, HiveMQ's max-queue-size: 1000 by default), beyond
	// which it drops messages without telling either side. Against
	// mochi-mqtt v2.7.9, an MQTT 5 client that falls more than MaxPending
	// QoS 1/2 messages behind stalls (after about twice MaxPending,
	// nothing more arrives until it reconnects): use MQTT 3.1.1 there, or
	// set MaxPending to 65535, which announces no Receive Maximum at all
	// (mochi then holds nothing back). QoS 0 messages
	// that arrive while MaxPending messages (or MaxPendingBytes) are
	// buffered are dropped, and an Event of kind MessagesDropped says how
	// many. Zero means DefaultMaxPending (1000).
	//
	// While the client does not read, acknowledgements of its own
	// publishes wait in the same stream. So that an application that
	// publishes at QoS 1/2 from the goroutine that reads Messages does not
	// wait on itself, the client reads on while it has publishes or
	// subscriptions awaiting an acknowledgement, up to twice MaxPending
	// (and MaxPendingBytes); beyond that it stops regardless.
	MaxPending int

	// MaxPendingBytes bounds the same buffered inbound messages by size
	// (topic, payload and properties): once they reach it, QoS 0 messages
	// are dropped and the client stops reading until the application
	// catches up, under both protocol versions. One message larger than
	// this is still taken, alone. Zero means DefaultMaxPendingBytes
	// (16 MiB).
	MaxPendingBytes int

	// MaxPacketSize is the largest packet accepted from the broker, in
	// bytes; MQTT 5 brokers are told so. Zero means DefaultMaxPacketSize
	// (16 MiB).
	MaxPacketSize int

	// TopicAliasMaximum (MQTT 5) is how many topic aliases the broker may
	// use towards this client; inbound aliases are resolved into
	// Message.Topic, and the table costs at most this many topic strings.
	// Zero (the default) lets the broker use none: some brokers keep
	// using an alias from a previous connection when they re-send a
	// message after a reconnect (mochi-mqtt v2.7 does), which the protocol
	// forbids and the client must treat as an error.
	TopicAliasMaximum uint16

	// TopicAliases (MQTT 5) is how many topic aliases the client may give
	// the topics it publishes to, within the broker's Topic Alias Maximum
	// (its CONNACK: Mosquitto announces 10; a broker that announces none,
	// such as mochi-mqtt v2.7, gets none). With an alias, a topic goes
	// whole the first time on a connection and as a two-byte alias
	// afterwards: on a link that costs per byte, a long topic repeated
	// costs almost nothing (1000 readings of 20 bytes to a 40-byte topic:
	// 28040 bytes instead of 65000). The client chooses as it writes,
	// afresh on every connection (a message sent again after a reconnect
	// carries its topic): topics take the free aliases as they come, then
	// the most recently used keep theirs, and a new topic takes the
	// oldest's only if it was published to lately already. Topics shorter
	// than 4 bytes get none (they would save nothing), and the table holds
	// at most twice this many topic strings. Zero (the default): none. At
	// most 65535.
	TopicAliases int

	// ManualAck makes the application acknowledge each inbound QoS 1/2
	// message with Message.Ack; by default a message is acknowledged once
	// the application has received it from Messages. Acknowledgements go
	// out in the order the messages arrived, as the protocol requires
	// [MQTT-4.6.0-2, MQTT-4.6.0-3]: one acknowledged early waits for those
	// before it, so a message never acknowledged holds back all later
	// ones, and the broker, out of in-flight room, stops sending.
	ManualAck bool

	// StableAfter is how long a connection must stay up before the
	// reconnect strategy starts again from its first attempt. Zero means
	// DefaultStableAfter (10 s).
	StableAfter time.Duration

	// Store keeps the session's unfinished QoS 1/2 publishes and inbound
	// QoS 2 packet identifiers, so that a new process (or Client) with the
	// same ClientID and Store finishes what this one started. Nil: the
	// session lives in this Client's memory only. With a Store, a QoS 1/2
	// message is durably stored before its PUBLISH is written, and
	// PublishAsync returns only once it is; a full store fails the publish
	// with ErrQueueFull. Use store.Open for a file that survives a crash.
	// The Client syncs the store when it stops but never closes it: the
	// application does, after Close or Disconnect.
	Store store.Store

	// Logger receives the client's diagnostics. Nil: silent.
	Logger *slog.Logger
}

// settings is a validated Config with every default applied.
type settings struct {
	Config
	shown   []string // Servers as events, logs and errors show them (conn.RedactServer)
	version byte
	// adaptConnect: ConnectTimeout was left to its default, which adapts
	// to the link (Client.attemptTimeout).
	adaptConnect bool
	keepAlive    uint16 // seconds
	expiry       uint32 // seconds, MQTT 5
	// authMethod is Config.Auth's Method, asked once; "" without Auth.
	authMethod string
}

// validate checks cfg and fills in defaults. Nothing is dialed.
func (cfg Config) validate() (*settings, error) {
	s := &settings{Config: cfg}
	bad := func(format string, args ...any) (*settings, error) {
		return nil, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	if len(cfg.Servers) == 0 {
		return bad("Servers is empty; give at least one broker URL such as tcp://127.0.0.1:1883")
	}
	s.Servers = append([]string(nil), cfg.Servers...)
	s.shown = make([]string, len(cfg.Servers))
	for i, srv := range cfg.Servers {
		// ParseServer's errors show the URL redacted.
		if _, err := conn.ParseServer(srv); err != nil {
			return bad("Servers[%d]: %v", i, err)
		}
		s.shown[i] = conn.RedactServer(srv)
	}
	// Checked now, made again when a broker redirects (rarely): a client
	// does not carry its policy while it is connected.
	if _, err := newRedirectPolicy(cfg.Servers, cfg.RedirectHosts); err != nil {
		return bad("%v", err)
	}
	switch cfg.Version {
	case 0, codec.V311:
		s.version = codec.V311
	case codec.V5:
		s.version = codec.V5
	default:
		return bad("Version %d is not supported; use 4 (MQTT 3.1.1) or 5 (MQTT 5.0)", cfg.Version)
	}
	if err := codec.ValidateClientID(cfg.ClientID, s.version); err != nil {
		return bad("ClientID: %v", err)
	}
	if cfg.ClientID == "" && !cfg.CleanStart {
		return bad("a persistent session (CleanStart false) needs a ClientID; set one, or set CleanStart")
	}
	if cfg.Username != "" {
		if err := codec.ValidateString(cfg.Username); err != nil {
			return bad("Username: %v", err)
		}
	}
	if len(cfg.Password) > math.MaxUint16 {
		return bad("Password is %d bytes; at most 65535 fit", len(cfg.Password))
	}
	if cfg.Credentials != nil && (cfg.Username != "" || cfg.Password != nil) {
		return bad("set Credentials, or Username and Password, not both; Credentials returns the username too")
	}
	if cfg.ConnectProperties != nil {
		if s.version != codec.V5 {
			return bad("ConnectProperties need MQTT 5 (Version 5)")
		}
		if err := checkConnectProperties(cfg.ConnectProperties); err != nil {
			return bad("ConnectProperties: %v", err)
		}
		s.ConnectProperties = cloneProperties(cfg.ConnectProperties)
	}
	if cfg.Auth != nil {
		if s.version != codec.V5 {
			return bad("Auth (enhanced authentication) needs MQTT 5 (Version 5)")
		}
		s.authMethod = cfg.Auth.Method()
		if s.authMethod == "" {
			return bad("Auth.Method() is empty; enhanced authentication needs the name of a method the broker knows, such as SCRAM-SHA-256")
		}
		if err := codec.ValidateString(s.authMethod); err != nil {
			return bad("Auth.Method(): %v", err)
		}
	}
	switch {
	case cfg.TopicAliases < 0 || cfg.TopicAliases > math.MaxUint16:
		return bad("TopicAliases %d is out of range (0..65535)", cfg.TopicAliases)
	case cfg.TopicAliases > 0 && s.version != codec.V5:
		return bad("TopicAliases needs MQTT 5 (Version 5); MQTT 3.1.1 has no topic aliases")
	}
	switch {
	case cfg.KeepAlive == 0:
		s.KeepAlive = DefaultKeepAlive
	case cfg.KeepAlive < 0:
		s.KeepAlive = 0
	case cfg.KeepAlive > math.MaxUint16*time.Second:
		return bad("KeepAlive %s is longer than the protocol's 65535 s", cfg.KeepAlive)
	case cfg.KeepAlive < time.Second:
		return bad("KeepAlive %s is shorter than the protocol's unit of 1 s", cfg.KeepAlive)
	}
	s.keepAlive = uint16(s.KeepAlive / time.Second)
	expiry := cfg.SessionExpiry
	if expiry == 0 && !cfg.CleanStart {
		expiry = DefaultSessionExpiry
	}
	switch {
	case expiry <= 0:
		s.expiry = 0
	case expiry/time.Second >= math.MaxUint32:
		s.expiry = math.MaxUint32
	default:
		s.expiry = uint32(expiry / time.Second)
	}
	if s.ConnectTimeout == 0 {
		s.ConnectTimeout, s.adaptConnect = DefaultConnectTimeout, true
	} else if s.ConnectTimeout < 0 {
		return bad("ConnectTimeout %s is negative", cfg.ConnectTimeout)
	}
	if s.Backoff == nil {
		s.Backoff = backoff.Default()
	}
	for _, f := range []struct {
		name string
		v    *int
		def  int
		max  int
	}{
		{"MaxInflight", &s.MaxInflight, defaultMaxInflight(s.version), math.MaxUint16},
		{"MaxQueued", &s.MaxQueued, DefaultMaxQueued, math.MaxInt32},
		{"MaxQueuedBytes", &s.MaxQueuedBytes, DefaultMaxQueuedBytes, math.MaxInt},
		{"MaxPending", &s.MaxPending, DefaultMaxPending, math.MaxInt32},
		{"MaxPendingBytes", &s.MaxPendingBytes, DefaultMaxPendingBytes, math.MaxInt / 2},
		{"MaxPacketSize", &s.MaxPacketSize, DefaultMaxPacketSize, 268435460},
	} {
		switch {
		case *f.v == 0:
			*f.v = f.def
		case *f.v < 0 || *f.v > f.max:
			return bad("%s %d is out of range (1..%d, or 0 for the default %d)", f.name, *f.v, f.max, f.def)
		}
	}
	s.MaxQueued = max(s.MaxQueued, s.MaxInflight)
	switch cfg.QueuePolicy {
	case 0:
		s.QueuePolicy = Block
	case Block, FailNewest, DropOldest, LatestPerTopic:
	default:
		return bad("QueuePolicy %d is not one of Block, FailNewest, DropOldest, LatestPerTopic", cfg.QueuePolicy)
	}
	if s.StableAfter == 0 {
		s.StableAfter = DefaultStableAfter
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	// The client keeps its own copies of what it sends on every attempt:
	// a program may zero its password buffer after Dial, as security
	// guides advise, or reuse the will's buffers.
	s.Password = bytes.Clone(cfg.Password)
	if cfg.Will != nil {
		w := *cfg.Will
		w.Payload = bytes.Clone(w.Payload)
		w.Properties = cloneProperties(w.Properties)
		if err := checkMessage(&w, s.version); err != nil {
			return bad("Will: %v", err)
		}
		s.Will = &w
	}
	// The CONNECT goes out on every attempt: whatever the encoder would
	// refuse in it (a will property CONNECT may not carry, ...) is a
	// configuration error now, not a failed attempt later.
	if _, err := codec.Size(s.connectPacket(), s.version); err != nil {
		return bad("the CONNECT packet cannot be encoded: %v", err)
	}
	return s, nil
}

// connectPropertyField says, for each field of Properties that CONNECT can
// carry but a Config field sets, which one.
var connectPropertyField = map[string]string{
	"SessionExpiryInterval": "set Config.SessionExpiry",
	"ReceiveMaximum":        "set Config.MaxPending",
	"MaximumPacketSize":     "set Config.MaxPacketSize",
	"TopicAliasMaximum":     "set Config.TopicAliasMaximum",
	"AuthenticationMethod":  "set Config.Auth (enhanced authentication)",
	"AuthenticationData":    "set Config.Auth (enhanced authentication)",
}

// checkConnectProperties checks that p sets only the CONNECT properties
// the application chooses: User, RequestProblemInfo, RequestResponseInfo.
func checkConnectProperties(p *Properties) error {
	for _, f := range []struct {
		name string
		v    *byte
	}{{"RequestProblemInfo", p.RequestProblemInfo}, {"RequestResponseInfo", p.RequestResponseInfo}} {
		if f.v != nil && *f.v > 1 {
			return fmt.Errorf("%s is %d; it is 0 or 1 (use Flag)", f.name, *f.v)
		}
	}
	rest := *p
	rest.User, rest.RequestProblemInfo, rest.RequestResponseInfo = nil, nil, nil
	v := reflect.ValueOf(rest)
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			continue
		}
		name := v.Type().Field(i).Name
		if how, ok := connectPropertyField[name]; ok {
			return fmt.Errorf("%s is set; %s", name, how)
		}
		return fmt.Errorf("%s is set, but it is no CONNECT property; set User, RequestProblemInfo or RequestResponseInfo only", name)
	}
	return nil
}

// checkCredentials checks what Config.Credentials returned against what
// CONNECT can carry. Its errors never show the password.
func checkCredentials(user string, pass []byte, version byte) error {
	if user != "" {
		if err := codec.ValidateString(user); err != nil {
			return fmt.Errorf("the username: %w", err)
		}
	}
	if len(pass) > math.MaxUint16 {
		return fmt.Errorf("the password is %d bytes; at most 65535 fit", len(pass))
	}
	if pass != nil && user == "" && version != codec.V5 {
		return errors.New("a password without a username, which MQTT 3.1.1 does not allow [MQTT-3.1.2-22]")
	}
	return nil
}

// cloneProperties returns a deep copy of p: nothing in it shares memory
// with p.
func cloneProperties(p *Properties) *Properties {
	if p == nil {
		return nil
	}
	c := *p
	for _, ptr := range []**byte{&c.PayloadFormat, &c.RequestProblemInfo, &c.RequestResponseInfo, &c.MaximumQoS} {
		*ptr = clonePtr(*ptr)
	}
	for _, ptr := range []**uint32{&c.MessageExpiry, &c.SessionExpiryInterval, &c.WillDelayInterval, &c.MaximumPacketSize} {
		*ptr = clonePtr(*ptr)
	}
	for _, ptr := range []**uint16{&c.ServerKeepAlive, &c.ReceiveMaximum, &c.TopicAliasMaximum, &c.TopicAlias} {
		*ptr = clonePtr(*ptr)
	}
	for _, ptr := range []**bool{&c.RetainAvailable, &c.WildcardSubAvailable, &c.SubIDAvailable, &c.SharedSubAvailable} {
		*ptr = clonePtr(*ptr)
	}
	c.CorrelationData = bytes.Clone(p.CorrelationData)
	c.AuthenticationData = bytes.Clone(p.AuthenticationData)
	c.SubscriptionIdentifier = slices.Clone(p.SubscriptionIdentifier)
	c.User = slices.Clone(p.User)
	return &c
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// connectPacket is the CONNECT this client sends on every attempt.
func (s *settings) connectPacket() *codec.Connect {
	p := &codec.Connect{
		Version:     s.version,
		CleanStart:  s.CleanStart,
		KeepAlive:   s.keepAlive,
		ClientID:    s.ClientID,
		Username:    s.Username,
		HasUsername: s.Username != "",
		Password:    s.Password,
		HasPassword: s.Password != nil,
	}
	if s.Will != nil {
		p.Will = &codec.Will{Topic: s.Will.Topic, Payload: s.Will.Payload, QoS: s.Will.QoS,
			Retain: s.Will.Retain, Properties: s.Will.Properties}
	}
	if s.version == codec.V5 {
		maxPacket := uint32(s.MaxPacketSize)
		aliasMax := s.TopicAliasMaximum
		p.Properties = &codec.Properties{
			SessionExpiryInterval: &s.expiry,
			MaximumPacketSize:     &maxPacket,
			TopicAliasMaximum:     &aliasMax,
		}
		if s.MaxPending < math.MaxUint16 {
			// Absent, it is 65535: brokers then run no flow control for
			// this client at all (see MaxPending on mochi).
			recvMax := uint16(s.MaxPending)
			p.Properties.ReceiveMaximum = &recvMax
		}
		if cp := s.ConnectProperties; cp != nil {
			p.Properties.User = cp.User
			p.Properties.RequestProblemInfo = cp.RequestProblemInfo
			p.Properties.RequestResponseInfo = cp.RequestResponseInfo
		}
		// Each attempt adds the Authentication Data of its own exchange
		// (connectFor).
		p.Properties.AuthenticationMethod = s.authMethod
	}
	return p
}
