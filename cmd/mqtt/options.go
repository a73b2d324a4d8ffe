package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/codec"
)

// connOptions are the flags pub and sub share: where to connect, as whom,
// with which session, will and TLS. Their names are mosquitto's.
type connOptions struct {
	host       string
	port       int
	url        string
	clientID   string
	username   string
	password   string
	keepAlive  int
	persistent bool
	version    string
	qos        int
	timeout    seconds
	debug      bool

	willTopic   string
	willPayload string
	willQoS     int
	willRetain  bool

	cafile   string
	cert     string
	key      string
	insecure bool

	pwFile string

	expiry   expiryFlag    // -x
	idPrefix string        // -I
	nodelay  bool          // --nodelay: accepted, and what Go does anyway
	propArgs []propertyArg // every -D, taken out of the arguments by setup
	props    properties    // propArgs, checked by config

	set map[string]bool // the flags given on the command line

	// Set by config, for setup to say on stderr.
	warnings       []string // one line each, without the "mqtt <command>: " prefix
	passwordSource string   // where the password came from: -P, --url, --pw-file or $MQTT_CLI_PASSWORD; "" for none
}

// register defines the flags every command shares on fs.
func (o *connOptions) register(fs *flag.FlagSet, command string) {
	fs.StringVar(&o.host, "h", "localhost", "broker `host` to connect to")
	fs.IntVar(&o.port, "p", 0, "broker `port` (default 1883, or 8883 with a TLS flag); -p 8883 means TLS")
	fs.StringVar(&o.url, "url", "", "broker `URL` instead of -h and -p: mqtt[s]://[user[:password]@]host[:port][/topic],\n\tor tcp://, tls://, ws://, wss:// (for ws and wss the path is the WebSocket path)")
	fs.StringVar(&o.url, "L", "", "`URL`, the same as --url")
	fs.StringVar(&o.clientID, "i", "", "client `id` (default mqtt_<command>_<process id>)")
	fs.StringVar(&o.idPrefix, "I", "", "client id `prefix`: the id is the prefix followed by the process id")
	fs.StringVar(&o.username, "u", "", "`username` to log in with")
	fs.StringVar(&o.password, "P", "", "`password` to log in with; every user of the machine can read it in ps:\n\tprefer --pw-file or $"+passwordEnv)
	fs.StringVar(&o.pwFile, "pw-file", "", "read the password from the first line of `file` (which only you should be able to read);\n\tnot with -P or a password in --url")
	fs.IntVar(&o.keepAlive, "k", 60, "keepalive in `seconds`; 0 turns it off")
	fs.BoolVar(&o.persistent, "c", false, "no clean session: a persistent session that outlives the connection (needs -i)")
	if command == "rr" {
		fs.StringVar(&o.version, "V", "5", "MQTT `version`: 5 (or mqttv5), the only one rr takes")
	} else {
		fs.StringVar(&o.version, "V", "311", "MQTT `version`: 311 (or mqttv311) or 5 (or mqttv5); -D and -x choose 5")
	}
	fs.Var(&o.expiry, "x", "session expiry interval in `seconds` (MQTT 5): 0 to 4294967294, or -1 for never;\n\tdefault -1 with -c, 0 without")
	fs.Var(propertyFlag{}, "D", "`command identifier value`: "+propertyUsage(command))
	fs.BoolVar(&o.nodelay, "nodelay", false, "accepted for mosquitto's scripts: Go never delays small writes (TCP_NODELAY is always on)")
	fs.IntVar(&o.qos, "q", 0, "`QoS` 0, 1 or 2")
	fs.Var(&o.timeout, "W", "give up after `seconds` (5, 0.5 or 500ms), exit status 27; 0: no limit")
	fs.BoolVar(&o.debug, "d", false, "say on stderr when connected, subscribed (sub), acknowledged (pub), and why each retry waits")
	fs.StringVar(&o.willTopic, "will-topic", "", "`topic` of the will, which the broker publishes if the client vanishes")
	fs.StringVar(&o.willPayload, "will-payload", "", "`payload` of the will (default empty)")
	fs.IntVar(&o.willQoS, "will-qos", 0, "`QoS` of the will")
	fs.BoolVar(&o.willRetain, "will-retain", false, "retain the will")
	fs.StringVar(&o.cafile, "cafile", "", "PEM `file` of the certificate authorities to trust (default: the system's); turns TLS on")
	fs.StringVar(&o.cert, "cert", "", "PEM `file` of the client certificate; turns TLS on; needs --key")
	fs.StringVar(&o.key, "key", "", "PEM `file` of the client certificate's private key")
	fs.BoolVar(&o.insecure, "insecure", false, "do not check that the server certificate names the host (the chain is still verified); turns TLS on")
}

// propertyUsage is the help of -D for command.
func propertyUsage(command string) string {
	s := "an MQTT 5 property (sets -V 5); user-property takes a name and a value; repeat -D for more.\n\t" +
		"connect: " + strings.Join(supported["connect"], " ") + "\n\t"
	if command != "sub" {
		s += "publish: " + strings.Join(supported["publish"], " ") + "\n\t"
	}
	return s + "will: those of publish, and will-delay-interval (with --will-topic)"
}

// config turns the options into a client configuration for command, and
// returns the topic that --url gave, if any.
func (o *connOptions) config(command string) (mqtt.Config, string, error) {
	var cfg mqtt.Config
	version, err := o.protocolVersion()
	if err != nil {
		return cfg, "", err
	}
	if o.props, err = checkProperties(command, o.propArgs, command == "pub" || command == "rr"); err != nil {
		return cfg, "", err
	}
	if o.qos < 0 || o.qos > 2 {
		return cfg, "", usagef("-q %d: QoS is 0, 1 or 2", o.qos)
	}
	if o.keepAlive < 0 || o.keepAlive > math.MaxUint16 {
		return cfg, "", usagef("-k %d: keepalive is 0 (off) to 65535 seconds", o.keepAlive)
	}
	if o.set["i"] && o.set["I"] {
		return cfg, "", usagef("give -i or -I, not both")
	}
	if o.persistent && !o.set["i"] {
		return cfg, "", usagef("-c (a persistent session) needs a client id: give -i")
	}
	if o.set["x"] && o.props.given["connect/session-expiry-interval"] {
		return cfg, "", usagef("give -x or -D connect session-expiry-interval, not both")
	}
	if o.expiry.never() && !o.set["i"] {
		return cfg, "", usagef("-x %s (a session that never expires) needs a client id: give -i", o.expiry)
	}
	tlsConfig, err := o.tlsConfig()
	if err != nil {
		return cfg, "", err
	}

	var (
		server, topic string
		u             brokerURL
	)
	if o.url != "" {
		if o.set["h"] || o.set["p"] {
			return cfg, "", usagef("give either --url or -h and -p, not both")
		}
		if u, err = parseBrokerURL(o.url); err != nil {
			return cfg, "", err
		}
		if tlsConfig != nil && !u.tls {
			return cfg, "", usagef("--cafile, --cert, --key and --insecure need a TLS URL (mqtts://, tls://, ssl:// or wss://), not %s", u.scheme+"://")
		}
		server, topic = u.server, u.topic
	} else if server, err = o.hostPort(tlsConfig != nil); err != nil {
		return cfg, "", err
	}
	username := o.username
	if u.hasUser && !o.set["u"] {
		username = u.user
	}
	password, hasPassword, err := o.choosePassword(username, u)
	if err != nil {
		return cfg, "", err
	}
	if hasPassword && username == "" && version == codec.V311 {
		return cfg, "", usagef("a password needs a username (-u) in MQTT 3.1.1")
	}

	cfg = mqtt.Config{
		Servers:    []string{server},
		ClientID:   o.clientID,
		Version:    version,
		CleanStart: !o.persistent,
		KeepAlive:  time.Duration(o.keepAlive) * time.Second,
		Username:   username,
		TLS:        tlsConfig,
		Backoff:    cliBackoff(),
	}
	if o.keepAlive == 0 {
		cfg.KeepAlive = -1 // off
	}
	switch {
	case o.set["x"]:
		cfg.SessionExpiry = o.expiry.duration()
	case o.persistent:
		// As mosquitto's -c: the session never expires (MQTT 5).
		cfg.SessionExpiry = math.MaxInt64
	}
	if err := o.props.applyConnect(&cfg); err != nil {
		return cfg, "", err
	}
	if cfg.SessionExpiry == math.MaxInt64 && !o.set["i"] { // -D connect session-expiry-interval 4294967295
		return cfg, "", usagef("a session that never expires needs a client id: give -i")
	}
	switch {
	case o.set["I"]:
		cfg.ClientID = fmt.Sprintf("%s%d", o.idPrefix, os.Getpid())
	case !o.set["i"]:
		cfg.ClientID = fmt.Sprintf("mqtt_%s_%d", command, os.Getpid())
	}
	if hasPassword {
		cfg.Password = []byte(password)
	}
	if o.timeout > 0 {
		cfg.ConnectTimeout = min(time.Duration(o.timeout), mqtt.DefaultConnectTimeout)
	}
	will, err := o.will()
	if err != nil {
		return cfg, "", err
	}
	cfg.Will = will
	return cfg, topic, nil
}

// protocolVersion reads -V. -D and -x, which only MQTT 5 has, choose it
// when -V is not given, as mosquitto's -D does; with -V 311 they are an
// error, where mosquitto sends nothing (-D) or leaves them out (-x).
func (o *connOptions) protocolVersion() (byte, error) {
	version, err := parseVersion(o.version)
	if err != nil {
		return 0, err
	}
	needs := ""
	switch {
	case len(o.propArgs) > 0:
		needs = o.propArgs[0].String()
	case o.set["x"]:
		needs = "-x"
	}
	switch {
	case needs == "" || version == codec.V5:
		return version, nil
	case !o.set["V"]:
		o.version = "5"
		return codec.V5, nil
	}
	return 0, usagef("%s is MQTT 5: give -V 5, or leave -V out", needs)
}

// hostPort returns the server that -h and -p name. Any TLS flag (tls)
// makes it TLS, with port 8883 unless -p says otherwise; so does -p 8883,
// with the system's certificate authorities, as mosquitto_pub does. A
// password is then never sent in clear to a port or with flags that ask for
// TLS: mosquitto's --insecure without --cafile connects in clear, ours does
// not. Plain MQTT on port 8883 takes --url tcp://host:8883.
func (o *connOptions) hostPort(tls bool) (string, error) {
	port := 1883
	if tls {
		port = 8883
	}
	if o.set["p"] {
		port = o.port
	}
	if port < 1 || port > math.MaxUint16 {
		return "", usagef("-p %d: a port is 1 to 65535", port)
	}
	if o.host == "" {
		return "", usagef("-h: the host is empty")
	}
	if strings.ContainsAny(o.host, "@/?#") {
		// Not shown: it may be a URL with a password in it.
		return "", usagef("-h takes a host name or an IP address, not a URL: give a URL with --url")
	}
	scheme := "tcp"
	if tls || port == 8883 {
		scheme = "tls"
	}
	return scheme + "://" + net.JoinHostPort(o.host, strconv.Itoa(port)), nil
}

// will returns the will message the flags describe, nil for none.
func (o *connOptions) will() (*mqtt.Message, error) {
	if o.willTopic == "" {
		if o.set["will-payload"] || o.set["will-qos"] || o.set["will-retain"] {
			return nil, usagef("--will-payload, --will-qos and --will-retain need --will-topic")
		}
		if o.props.will != nil {
			return nil, usagef("-D will ... needs --will-topic")
		}
		return nil, nil
	}
	if err := codec.ValidateTopicName(o.willTopic); err != nil {
		return nil, usagef("--will-topic %q: %v", o.willTopic, err)
	}
	if o.willQoS < 0 || o.willQoS > 2 {
		return nil, usagef("--will-qos %d: QoS is 0, 1 or 2", o.willQoS)
	}
	return &mqtt.Message{Topic: o.willTopic, Payload: []byte(o.willPayload), QoS: mqtt.QoS(o.willQoS), Retain: o.willRetain,
		Properties: o.props.will}, nil
}

// tlsConfig returns the TLS configuration the flags describe, nil when they
// say nothing about TLS.
func (o *connOptions) tlsConfig() (*tls.Config, error) {
	if o.cafile == "" && o.cert == "" && o.key == "" && !o.insecure {
		return nil, nil
	}
	cfg := &tls.Config{}
	if o.cafile != "" {
		pem, err := os.ReadFile(o.cafile)
		if err != nil {
			return nil, fmt.Errorf("--cafile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--cafile %s: no PEM certificate in it", o.cafile)
		}
		cfg.RootCAs = pool
	}
	if (o.cert == "") != (o.key == "") {
		return nil, usagef("--cert and --key go together: give both")
	}
	if o.cert != "" {
		pair, err := tls.LoadX509KeyPair(o.cert, o.key)
		if err != nil {
			return nil, fmt.Errorf("--cert %s, --key %s: %w", o.cert, o.key, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	if o.insecure {
		// mosquitto's --insecure skips the host name check only: the
		// certificate must still chain to a trusted authority.
		cfg.InsecureSkipVerify = true
		roots := cfg.RootCAs
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the server sent no certificate")
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter})
			return err
		}
	}
	return cfg, nil
}

// parseVersion reads -V: mosquitto's names, or the plain numbers.
func parseVersion(v string) (byte, error) {
	switch strings.ToLower(v) {
	case "311", "mqttv311", "3.1.1", "4":
		return codec.V311, nil
	case "5", "mqttv5", "5.0":
		return codec.V5, nil
	case "31", "mqttv31", "3.1", "3":
		return 0, usagef("-V %s: MQTT 3.1 is not supported; use 311 or 5", v)
	}
	return 0, usagef("-V %q: use 311 (mqttv311) or 5 (mqttv5)", v)
}

// brokerURL is a parsed --url.
type brokerURL struct {
	scheme      string
	server      string // for Config.Servers: scheme://host[:port][/path for ws]
	topic       string // mqtt://host/topic: the path, verbatim ("#" and "+" included)
	user        string
	password    string
	hasUser     bool
	hasPassword bool
	tls         bool
}

// parseBrokerURL reads mosquitto's -L form,
// scheme://[user[:password]@]host[:port][/topic]. It is not parsed as a
// URL: a topic such as a/# would lose its fragment. For ws:// and wss://
// the path is the WebSocket endpoint's and there is no topic. The user name
// and password are %-decoded; the scheme is checked by the client.
//
// As with mosquitto and RFC 3986, the host ends at the first '/', so a '/'
// in a password must be written %2F. No error shows the password, even
// part of one: one that fits on ours is redacted (see redactURL); one
// about the host and port, which would hold the start of a password with
// an unencoded '/' ("mqtt://u:pa/ss@host"), does not show the URL; and a
// URL with a ':' before its first '/' and an '@' after it is refused: it
// may be host:port and a topic with an '@', or such a password.
func parseBrokerURL(s string) (brokerURL, error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || scheme == "" {
		return brokerURL{}, usagef("--url has no scheme: write it as mqtt://host:port/topic")
	}
	u := brokerURL{scheme: strings.ToLower(scheme)}
	authority, path, hasPath := strings.Cut(rest, "/")
	if strings.Contains(authority, ":") && strings.Contains(path, "@") {
		// mqtt://u:12/34@host would be host u, port 12, topic 34@host,
		// and mqtt://u:p@ss/w@host user u, password p, host ss: a
		// connection to the wrong host, and errors that name it, the
		// start of the password. mqtt://host:1883/a@b reads the same.
		return brokerURL{}, usagef("--url: an '@' after the first '/' makes it unclear where the host is: write a '/' in a password as %%2F, or give a topic with an '@' in it with -t")
	}
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		user, password, hasPassword := strings.Cut(authority[:i], ":")
		var err error
		// url's errors quote the bad escape, a piece of the password.
		if u.user, err = url.PathUnescape(user); err != nil {
			return brokerURL{}, usagef("--url: the user name has a %% that does not start an escape such as %%40: write %% as %%25")
		}
		if u.password, err = url.PathUnescape(password); err != nil {
			return brokerURL{}, usagef("--url: the password has a %% that does not start an escape such as %%2F: write %% as %%25")
		}
		u.hasUser, u.hasPassword = true, hasPassword
		authority = authority[i+1:]
	}
	if authority == "" {
		return brokerURL{}, usagef("--url %q has no host: write it as %s://host:port/topic", redactURL(s), u.scheme)
	}
	if !validHostPort(authority) {
		return brokerURL{}, usagef("--url: what follows %s:// is not host, host:port or [IPv6 address]:port, with a port from 1 to 65535", u.scheme)
	}
	u.server = u.scheme + "://" + authority
	switch u.scheme {
	case "ws", "wss":
		if hasPath {
			u.server += "/" + path
		}
	default:
		u.topic = path
	}
	switch u.scheme {
	case "mqtts", "tls", "ssl", "wss":
		u.tls = true
	}
	return u, nil
}

// validHostPort reports whether s is host, host:port or [host]:port, with a
// port of digits from 1 to 65535.
func validHostPort(s string) bool {
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		return len(s) > 2
	}
	if !strings.Contains(s, ":") {
		return !strings.ContainsAny(s, "[]")
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" || strings.Trim(port, "0123456789") != "" {
		return false
	}
	n, err := strconv.Atoi(port)
	return err == nil && n >= 1 && n <= math.MaxUint16
}

// redactURL returns a --url as an error may show it: whatever could be a
// password replaced by "xxxxx". That is everything from the first ':'
// after the scheme to the last '@' of the whole string, not of the
// authority as a URL parser sees it, so that a password with an unencoded
// '/', '?' or '#' is hidden too. A topic with an '@' in it loses some of
// itself as well, in an error message only.
func redactURL(s string) string {
	start := 0
	if i := strings.Index(s, "://"); i >= 0 {
		start = i + len("://")
	}
	at := strings.LastIndexByte(s[start:], '@')
	if at < 0 {
		return s
	}
	at += start
	colon := strings.IndexByte(s[start:at], ':')
	if colon < 0 {
		return s
	}
	return s[:start+colon+1] + "xxxxx" + s[at:]
}

// seconds is a flag.Value for a duration in seconds, as mosquitto's flags
// take it ("5", "0.5"), or as a Go duration ("500ms").
type seconds time.Duration

func (s *seconds) Set(v string) error {
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		if f < 0 || math.IsNaN(f) || f > math.MaxInt64/float64(time.Second) {
			return errors.New("want a number of seconds such as 5 or 0.5")
		}
		*s = seconds(f * float64(time.Second))
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return errors.New("want a number of seconds such as 5 or 0.5, or a duration such as 500ms")
	}
	*s = seconds(d)
	return nil
}

func (s seconds) String() string {
	if s == 0 {
		return "0"
	}
	return time.Duration(s).String()
}

// expiryFlag is -x: a session expiry interval in seconds, 0 to
// 4294967294, or -1, 4294967295 or ∞ for a session that never expires,
// as mosquitto takes it.
type expiryFlag int64 // seconds; -1: never

func (e *expiryFlag) Set(v string) error {
	if v == "∞" || v == "-1" {
		*e = -1
		return nil
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return errors.New("want seconds from 0 to 4294967294, or -1 for a session that never expires")
	}
	*e = expiryFlag(n)
	if n == math.MaxUint32 {
		*e = -1
	}
	return nil
}

func (e expiryFlag) String() string { return strconv.FormatInt(int64(e), 10) }

func (e expiryFlag) never() bool { return e < 0 }

// duration is e as Config.SessionExpiry takes it.
func (e expiryFlag) duration() time.Duration { return expiryDuration(int64(e)) }

// expiryDuration turns a session expiry interval in seconds (-1 or
// 4294967295: never) into Config.SessionExpiry, where 0 means the default
// and a negative value 0.
func expiryDuration(seconds int64) time.Duration {
	switch {
	case seconds < 0 || seconds >= math.MaxUint32:
		return math.MaxInt64
	case seconds == 0:
		return -1
	}
	return time.Duration(seconds) * time.Second
}

// stringList is a flag.Value that collects every use of a repeated flag.
type stringList []string

func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

func (l *stringList) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(*l, ",")
}
