package fleet

import (
	"context"
	"fmt"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	pahomqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/backoff"
)

// The clients a fleet can be made of, as the -client flag takes them.
const (
	Robust   = "robustmqtt"       // this module, MQTT 3.1.1
	Robust5  = "robustmqtt-v5"    // this module, MQTT 5
	PahoV3   = "paho.mqtt.golang" // github.com/eclipse/paho.mqtt.golang, MQTT 3.1.1
	PahoAuto = "paho.golang"      // github.com/eclipse/paho.golang/autopaho, MQTT 5 (the reconnecting client)
)

// Kinds are the clients a fleet can be made of.
var Kinds = []string{Robust, Robust5, PahoV3, PahoAuto}

// sessionExpiry is the MQTT 5 session expiry the fleet asks for: longer
// than any run, so the session is persistent.
const sessionExpiry = time.Hour

// member is one client of the fleet, connected, with a persistent session
// and subscribed at QoS 1 to its own topic.
type member interface {
	close()
	// lost counts connections lost since it was dialed.
	lost() uint64
}

// memberConfig is what every member is dialed with.
type memberConfig struct {
	kind      string
	addr      string // host:port
	id, topic string
	keepAlive time.Duration
	strategy  backoff.Strategy // robustmqtt only; nil: the library's default
}

func dialMember(ctx context.Context, mc memberConfig) (member, error) {
	switch mc.kind {
	case Robust, Robust5:
		return dialRobust(ctx, mc)
	case PahoV3:
		return dialPahoV3(ctx, mc)
	case PahoAuto:
		return dialAutopaho(ctx, mc)
	}
	return nil, fmt.Errorf("fleet: no client %q", mc.kind)
}

// robustMember is a client of this module. The fleet reads its Events and
// Messages only during a storm (a watcher per client); while idle nothing
// reads them, so the client's own goroutines are all there is.
type robustMember struct {
	c     *mqtt.Client
	topic string
}

func dialRobust(ctx context.Context, mc memberConfig) (*robustMember, error) {
	cfg := mqtt.Config{
		Servers:   []string{"tcp://" + mc.addr},
		ClientID:  mc.id,
		KeepAlive: mc.keepAlive,
		Backoff:   mc.strategy,
	}
	if mc.kind == Robust5 {
		cfg.Version = 5
		cfg.SessionExpiry = sessionExpiry
	}
	c, err := mqtt.Dial(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := c.Subscribe(ctx, mqtt.Subscription{Filter: mc.topic, QoS: 1}); err != nil {
		c.Close()
		return nil, err
	}
	return &robustMember{c: c, topic: mc.topic}, nil
}

func (m *robustMember) close() { m.c.Close() }

func (m *robustMember) lost() uint64 {
	l := m.c.Stats().Connections.Lost
	return l.TakenOver + l.KeepAlive + l.ServerClosed + l.Disconnected + l.Protocol + l.Network
}

// pahoV3Member is a paho.mqtt.golang client: clean session false, its
// automatic reconnect on (the default), a handler for its topic.
type pahoV3Member struct {
	c      pahomqtt.Client
	nlost  atomic.Uint64
	nrecvd atomic.Uint64
}

func dialPahoV3(ctx context.Context, mc memberConfig) (*pahoV3Member, error) {
	m := &pahoV3Member{}
	opts := pahomqtt.NewClientOptions().
		AddBroker("tcp://" + mc.addr).
		SetClientID(mc.id).
		SetCleanSession(false).
		SetKeepAlive(mc.keepAlive).
		SetConnectionLostHandler(func(pahomqtt.Client, error) { m.nlost.Add(1) })
	m.c = pahomqtt.NewClient(opts)
	if err := waitToken(ctx, m.c.Connect()); err != nil {
		return nil, fmt.Errorf("paho.mqtt.golang: connect: %w", err)
	}
	tok := m.c.Subscribe(mc.topic, 1, func(pahomqtt.Client, pahomqtt.Message) { m.nrecvd.Add(1) })
	if err := waitToken(ctx, tok); err != nil {
		m.c.Disconnect(0)
		return nil, fmt.Errorf("paho.mqtt.golang: subscribe: %w", err)
	}
	return m, nil
}

func waitToken(ctx context.Context, t pahomqtt.Token) error {
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (m *pahoV3Member) close()       { m.c.Disconnect(0) }
func (m *pahoV3Member) lost() uint64 { return m.nlost.Load() }

// autopahoMember is a paho.golang autopaho connection manager: MQTT 5,
// a session expiry of an hour, clean start off, subscribed once connected.
type autopahoMember struct {
	cm    *autopaho.ConnectionManager
	nlost atomic.Uint64
}

func dialAutopaho(ctx context.Context, mc memberConfig) (*autopahoMember, error) {
	u, err := url.Parse("mqtt://" + mc.addr)
	if err != nil {
		return nil, err
	}
	m := &autopahoMember{}
	cfg := autopaho.ClientConfig{
		ServerUrls:            []*url.URL{u},
		KeepAlive:             uint16(mc.keepAlive / time.Second),
		SessionExpiryInterval: uint32(sessionExpiry / time.Second),
		OnConnectionDown:      func() bool { m.nlost.Add(1); return true },
		ClientConfig: paho.ClientConfig{
			ClientID: mc.id,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){
				func(paho.PublishReceived) (bool, error) { return true, nil },
			},
		},
	}
	// The manager lives until Disconnect, not until ctx ends.
	cm, err := autopaho.NewConnection(context.Background(), cfg)
	if err != nil {
		return nil, err
	}
	m.cm = cm
	if err := cm.AwaitConnection(ctx); err != nil {
		m.close()
		return nil, fmt.Errorf("paho.golang: connect: %w", err)
	}
	_, err = cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: mc.topic, QoS: 1}}})
	if err != nil {
		m.close()
		return nil, fmt.Errorf("paho.golang: subscribe: %w", err)
	}
	return m, nil
}

func (m *autopahoMember) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m.cm.Disconnect(ctx)
	select {
	case <-m.cm.Done():
	case <-ctx.Done():
	}
}

func (m *autopahoMember) lost() uint64 { return m.nlost.Load() }
