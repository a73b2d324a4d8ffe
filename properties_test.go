package mqtt_test

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/mqtttest"
)

// Config.ConnectProperties go out in the CONNECT, next to the properties
// the client sets from its own fields; the CONNACK's properties arrive,
// all of them, in the Connected event.
func TestConnectPropertiesAndConnack(t *testing.T) {
	connack := &mqtt.Properties{
		AssignedClientID:     "assigned-7",
		ServerKeepAlive:      new(uint16(90)),
		ReceiveMaximum:       new(uint16(10)),
		MaximumQoS:           new(byte(1)),
		RetainAvailable:      new(false),
		MaximumPacketSize:    new(uint32(1 << 20)),
		TopicAliasMaximum:    new(uint16(5)),
		ResponseInfo:         "resp/for/you",
		ReasonString:         "welcome",
		WildcardSubAvailable: new(true),
		SubIDAvailable:       new(false),
		SharedSubAvailable:   new(true),
		User:                 []mqtt.UserProperty{{Key: "region", Value: "eu"}},
	}
	sb := mqtttest.NewScriptedBroker(t)
	sb.SetConnack(frame(t, 5, &codec.Connack{Properties: connack}))
	user := []mqtt.UserProperty{{Key: "fw", Value: "1.2.0"}, {Key: "fw", Value: "again"}}
	cfg := mqtt.Config{Servers: []string{sb.URL()}, CleanStart: true, Version: 5,
		ConnectProperties: &mqtt.Properties{
			User:                user,
			RequestProblemInfo:  mqtt.Flag(false),
			RequestResponseInfo: mqtt.Flag(true),
		}}
	c := start(t, cfg)
	cfg.ConnectProperties.User[0].Value = "changed after Start" // the client has its copy
	sc := scripted(t, sb)
	p := connectOf(t, sc, 5).Properties
	if p == nil || !reflect.DeepEqual(p.User, []codec.UserProperty{{Key: "fw", Value: "1.2.0"}, {Key: "fw", Value: "again"}}) ||
		p.RequestProblemInfo == nil || *p.RequestProblemInfo != 0 || p.RequestResponseInfo == nil || *p.RequestResponseInfo != 1 {
		t.Fatalf("CONNECT properties %+v, want the user properties and both requests", p)
	}
	if p.SessionExpiryInterval == nil || p.MaximumPacketSize == nil || p.ReceiveMaximum == nil {
		t.Errorf("CONNECT properties %+v lost those the client sets itself", p)
	}

	e := waitEvent(t, c, mqtt.Connected)
	if !reflect.DeepEqual(e.Connack, connack) {
		t.Fatalf("Connected event's Connack\n%+v\nwant\n%+v", e.Connack, connack)
	}
	if e.ClientID != "assigned-7" {
		t.Errorf("ClientID %q, want the assigned one", e.ClientID)
	}
}

// Under MQTT 3.1.1 the Connected event has no Connack; a v5 broker that
// sends properties (mochi sends its limits) fills it in.
func TestConnackByVersion(t *testing.T) {
	b := mqtttest.NewBroker(t)
	for _, version := range []byte{4, 5} {
		c := start(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "connack", Version: version, CleanStart: true})
		e := waitEvent(t, c, mqtt.Connected)
		switch {
		case version == 4 && e.Connack != nil:
			t.Errorf("MQTT 3.1.1: Connack %+v, want nil", e.Connack)
		case version == 5 && (e.Connack == nil || e.Connack.ReceiveMaximum == nil):
			t.Errorf("MQTT 5: Connack %+v, want mochi's Receive Maximum at least", e.Connack)
		}
		c.Close()
	}
}

// ConnectProperties hold what the application chooses; a property that
// another Config field sets, one CONNECT cannot carry, or enhanced
// authentication is a configuration error that says what to do instead.
func TestConnectPropertiesInvalid(t *testing.T) {
	for _, tc := range []struct {
		version byte
		props   mqtt.Properties
		want    string // "" for valid
	}{
		{5, mqtt.Properties{User: []mqtt.UserProperty{{Key: "k", Value: "v"}}}, ""},
		{5, mqtt.Properties{RequestProblemInfo: mqtt.Flag(true), RequestResponseInfo: mqtt.Flag(false)}, ""},
		{5, mqtt.Properties{}, ""},
		{4, mqtt.Properties{User: []mqtt.UserProperty{{Key: "k", Value: "v"}}}, "need MQTT 5"},
		{5, mqtt.Properties{SessionExpiryInterval: new(uint32(5))}, "set Config.SessionExpiry"},
		{5, mqtt.Properties{ReceiveMaximum: new(uint16(5))}, "set Config.MaxPending"},
		{5, mqtt.Properties{MaximumPacketSize: new(uint32(5))}, "set Config.MaxPacketSize"},
		{5, mqtt.Properties{TopicAliasMaximum: new(uint16(5))}, "set Config.TopicAliasMaximum"},
		{5, mqtt.Properties{AuthenticationMethod: "SCRAM-SHA-1"}, "set Config.Auth"},
		{5, mqtt.Properties{ContentType: "text/plain"}, "ContentType is set, but it is no CONNECT property"},
		{5, mqtt.Properties{CorrelationData: []byte{}}, "CorrelationData is set"},
		{5, mqtt.Properties{RequestProblemInfo: new(byte(2))}, "RequestProblemInfo is 2"},
		{5, mqtt.Properties{User: []mqtt.UserProperty{{Key: "bad\x00", Value: "v"}}}, "cannot be encoded"},
	} {
		c, err := mqtt.Start(mqtt.Config{Servers: []string{"tcp://127.0.0.1:1"}, ClientID: "props", Version: tc.version,
			ConnectProperties: &tc.props, Backoff: fastRetry})
		if c != nil {
			c.Close()
		}
		if tc.want == "" {
			if err != nil {
				t.Errorf("%+v: %v", tc.props, err)
			}
			continue
		}
		if !errors.Is(err, mqtt.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v; want ErrInvalidConfig saying %q", tc.props, err, tc.want)
		}
	}
}

// Interval gives whole seconds, rounded up so that a message lives at
// least as long as asked, within the property's 32 bits.
func TestInterval(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want uint32
	}{
		{-time.Second, 0},
		{0, 0},
		{1, 1},
		{time.Second, 1},
		{1500 * time.Millisecond, 2},
		{time.Minute, 60},
		{math.MaxUint32 * time.Second, math.MaxUint32},
		{math.MaxUint32*time.Second - 1, math.MaxUint32},
		{math.MaxInt64, math.MaxUint32},
	} {
		if got := *mqtt.Interval(tc.d); got != tc.want {
			t.Errorf("Interval(%v) = %d, want %d", tc.d, got, tc.want)
		}
	}
	if *mqtt.Flag(true) != 1 || *mqtt.Flag(false) != 0 {
		t.Error("Flag is not 1 for true and 0 for false")
	}
}

// A message's properties, written with the package's own names, reach a
// subscriber as they were set.
func TestMessagePropertiesRoundTrip(t *testing.T) {
	// mochi v2.7.9 copies a PUBLISH's User Properties into its PUBACK,
	// whose reason code it then writes as 0x01 (the granted QoS), which
	// PUBACK does not allow: the client would reconnect, again and again.
	b := mqtttest.NewBrokerWith(t, mqtttest.BrokerConfig{Configure: func(o *mochi.Options) {
		o.Capabilities.Compatibilities.NoInheritedPropertiesOnAck = true
	}})
	sub := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "props-sub", Version: 5})
	if err := sub.Subscribe(testCtx(t), mqtt.Subscription{Filter: "props/#", QoS: 1}); err != nil {
		t.Fatal(err)
	}
	pub := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "props-pub", Version: 5})
	sent := &mqtt.Properties{
		PayloadFormat:   mqtt.Flag(true),
		MessageExpiry:   mqtt.Interval(time.Hour),
		ContentType:     "application/json",
		ResponseTopic:   "props/reply",
		CorrelationData: []byte{1, 2, 3},
		User:            []mqtt.UserProperty{{Key: "trace", Value: "abc"}},
	}
	if err := pub.Publish(testCtx(t), mqtt.Message{Topic: "props/x", Payload: []byte(`{}`), QoS: 1, Properties: sent}); err != nil {
		t.Fatal(err)
	}
	got := receive(t, sub).Properties
	if got == nil || *got.PayloadFormat != 1 || got.ContentType != sent.ContentType || got.ResponseTopic != sent.ResponseTopic ||
		string(got.CorrelationData) != string(sent.CorrelationData) || !reflect.DeepEqual(got.User, sent.User) ||
		got.MessageExpiry == nil || *got.MessageExpiry > 3600 || *got.MessageExpiry < 3590 {
		t.Fatalf("received properties %+v, want those sent %+v", got, sent)
	}
}
