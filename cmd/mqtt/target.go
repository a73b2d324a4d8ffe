package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/backoff"
	"github.com/robustmqtt/mqtt/mqtttest"
)

// target is where the demo's devices and monitor connect: the embedded
// broker behind the fault proxy, or the user's broker (-url), behind the
// proxy when there are faults.
type target struct {
	server   string      // what the clients dial
	tls      *tls.Config // for a TLS server through the proxy: the broker's name; nil otherwise
	username string
	password []byte
	prefix   string // of every topic: "" or "something/"
	idPrefix string // of every client identifier
	describe string // where the demo runs, for its first line

	broker     *mqtttest.Broker // the embedded broker; nil for the user's
	userServer string           // the user's broker (-url without user information); "" for the embedded one
	proxy      *mqtttest.Proxy  // nil: no faults
}

// embeddedTarget starts the embedded broker and the fault proxy in front
// of it.
func embeddedTarget() (*target, error) {
	broker, err := mqtttest.StartBroker()
	if err != nil {
		return nil, fmt.Errorf("start the embedded broker: %w", err)
	}
	proxy, err := mqtttest.StartProxy(broker.Addr())
	if err != nil {
		broker.Close()
		return nil, fmt.Errorf("start the fault proxy: %w", err)
	}
	return &target{server: proxy.URL(), broker: broker, proxy: proxy,
		describe: fmt.Sprintf("broker on %s behind a fault proxy on %s", broker.Addr(), proxy.Addr())}, nil
}

// userTarget is the user's broker at rawURL, mosquitto's -L form, with the
// fault proxy in front of it if faults. The proxy forwards bytes, so TLS
// goes through it (the clients check the certificate for the broker's
// name); a WebSocket's HTTP Host would name the proxy, so ws:// and wss://
// take no faults.
func userTarget(rawURL string, faults bool) (*target, error) {
	u, err := parseBrokerURL(rawURL)
	if err != nil {
		return nil, err
	}
	t := &target{server: u.server, userServer: u.server, username: u.user, prefix: u.topic,
		idPrefix: fmt.Sprintf("mqtt-demo-%d-", os.Getpid())}
	if u.hasPassword {
		t.password = []byte(u.password)
	}
	if t.prefix == "" {
		t.prefix = fmt.Sprintf("mqtt-demo/%d", os.Getpid())
	}
	if !strings.HasSuffix(t.prefix, "/") {
		t.prefix += "/"
	}
	if !faults {
		t.describe = fmt.Sprintf("your broker at %s; topics under %s", u.server, t.prefix)
		return t, nil
	}
	port := "1883"
	switch u.scheme {
	case "tcp", "mqtt":
	case "tls", "ssl", "mqtts":
		port = "8883"
	default:
		return nil, usagef("-url %s://: the fault proxy cannot sit in front of a WebSocket broker; give -faults 0, or a tcp:// or tls:// URL", u.scheme)
	}
	hostPort := strings.TrimPrefix(u.server, u.scheme+"://")
	host, p, err := net.SplitHostPort(hostPort)
	if err != nil { // no port
		host = strings.Trim(hostPort, "[]")
		hostPort = net.JoinHostPort(host, port)
	} else {
		port = p
	}
	proxy, err := mqtttest.StartProxy(hostPort)
	if err != nil {
		return nil, fmt.Errorf("start the fault proxy: %w", err)
	}
	t.proxy = proxy
	t.server = u.scheme + "://" + proxy.Addr()
	if u.tls {
		t.tls = &tls.Config{ServerName: host}
	}
	t.describe = fmt.Sprintf("your broker at %s, behind a fault proxy on %s; topics under %s", u.server, proxy.Addr(), t.prefix)
	return t, nil
}

// config is the base configuration of the client named name.
func (t *target) config(name string) mqtt.Config {
	return mqtt.Config{Servers: []string{t.server}, ClientID: t.idPrefix + name, TLS: t.tls,
		Username: t.username, Password: t.password, KeepAlive: keepAlive, ConnectTimeout: time.Second}
}

// dial connects with cfg, for at most connectWait, and fails at once if
// the broker refuses (see failFast): the demo must not hang on a mistyped
// -url.
func dial(ctx context.Context, cfg mqtt.Config) (*mqtt.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, connectWait)
	defer cancel()
	var up atomic.Bool
	if cfg.Backoff == nil {
		cfg.Backoff = backoff.Default()
	}
	cfg.Backoff = failFast(cfg.Backoff, &up)
	c, err := mqtt.Dial(ctx, cfg)
	up.Store(true)
	return c, err
}

// forgetSessions ends the persistent sessions that clients with cfgs made
// at the user's broker: a connection with a clean session discards the one
// the broker keeps.
func (t *target) forgetSessions(cfgs []mqtt.Config) {
	for _, cfg := range cfgs {
		if cfg.CleanStart {
			continue
		}
		cfg.CleanStart, cfg.Backoff = true, backoff.Never()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if c, err := mqtt.Dial(ctx, cfg); err == nil {
			c.Disconnect(ctx)
		}
		cancel()
	}
}

// close stops what the target started.
func (t *target) close() {
	if t.proxy != nil {
		t.proxy.Close()
	}
	if t.broker != nil {
		t.broker.Close()
	}
}
