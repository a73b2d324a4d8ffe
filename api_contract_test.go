package mqtt_test

import (
	"context"
	"crypto/tls"
	"log/slog"
	"time"

	mqtt "github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/backoff"
	"github.com/robustmqtt/mqtt/codec"
)

// The public API that DESIGN.md states as the contract, written out as
// code that only compiles while every name, signature and field it lists
// is there with that type: programs written against the contract keep
// building. Additions do not break it; a change must come with a reason
// and a change here.
var (
	_ func(context.Context, mqtt.Config) (*mqtt.Client, error)        = mqtt.Dial
	_ func(*mqtt.Client, context.Context, mqtt.Message) error         = (*mqtt.Client).Publish
	_ func(*mqtt.Client, context.Context, mqtt.Message) <-chan error  = (*mqtt.Client).PublishAsync
	_ func(*mqtt.Client, context.Context, ...mqtt.Subscription) error = (*mqtt.Client).Subscribe
	_ func(*mqtt.Client, context.Context, ...string) error            = (*mqtt.Client).Unsubscribe
	_ func(*mqtt.Client) <-chan mqtt.Message                          = (*mqtt.Client).Messages
	_ func(*mqtt.Client) <-chan mqtt.Event                            = (*mqtt.Client).Events
	_ func(*mqtt.Client, context.Context) error                       = (*mqtt.Client).Disconnect
	_ func(*mqtt.Client) error                                        = (*mqtt.Client).Close
	_ func(*mqtt.Client) <-chan struct{}                              = (*mqtt.Client).Done
	_ func(*mqtt.Client) error                                        = (*mqtt.Client).Err

	_ = mqtt.Message{Topic: "", Payload: []byte(nil), QoS: mqtt.QoS(0), Retain: false, Duplicate: false,
		Properties: (*codec.Properties)(nil)}
	_ = mqtt.Subscription{Filter: "", QoS: mqtt.AtLeastOnce, NoLocal: false, RetainAsPublished: false}
	_ = mqtt.Config{
		Servers: []string(nil), ClientID: "", Version: byte(4), CleanStart: false,
		SessionExpiry: time.Duration(0), KeepAlive: time.Duration(0), ConnectTimeout: time.Duration(0),
		Username: "", Password: []byte(nil), Will: (*mqtt.Message)(nil), TLS: (*tls.Config)(nil),
		Backoff: backoff.Strategy(nil), MaxInflight: 0, ManualAck: false, Logger: (*slog.Logger)(nil),
	}
	_ = mqtt.Event{Kind: mqtt.EventKind(0), Server: "", SessionPresent: false,
		Attempt: backoff.Attempt{N: 0, Elapsed: time.Duration(0), Err: error(nil)}, Delay: time.Duration(0), Err: error(nil)}
	_ = []mqtt.EventKind{mqtt.Connected, mqtt.ConnectionLost, mqtt.Reconnecting, mqtt.SessionLost, mqtt.GaveUp}
	// Events stay comparable: a program may compare one with ==.
	_ = mqtt.Event{} == mqtt.Event{}

	_ func(backoff.Strategy, backoff.Attempt) (time.Duration, bool) = backoff.Strategy.Next
	_ func(time.Duration) backoff.Strategy                          = backoff.Constant
	_ func() backoff.Strategy                                       = backoff.Never
	_ backoff.Strategy                                              = backoff.Exponential{}
	_ func(backoff.Strategy, int) backoff.Strategy                  = backoff.MaxAttempts
	_ func(backoff.Strategy, time.Duration) backoff.Strategy        = backoff.MaxElapsed
)
