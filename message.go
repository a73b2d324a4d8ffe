package mqtt

import (
	"fmt"
	"unicode/utf8"

	"github.com/robustmqtt/mqtt/codec"
)

// QoS is the delivery guarantee of a message: AtMostOnce (0),
// AtLeastOnce (1) or ExactlyOnce (2).
type QoS = codec.QoS

// The three qualities of service.
const (
	AtMostOnce  QoS = codec.QoS0
	AtLeastOnce QoS = codec.QoS1
	ExactlyOnce QoS = codec.QoS2
)

// Message is an application message, published or received.
type Message struct {
	Topic     string
	Payload   []byte
	QoS       QoS
	Retain    bool
	Duplicate bool // inbound only: the broker may have sent it before
	// Properties are the MQTT 5 properties (message expiry, content type,
	// response topic, correlation data, user properties, ...); see
	// Properties for what each means on a message. Nil: none. Inbound, a
	// topic alias has already been resolved into Topic.
	Properties *Properties

	// QueuePolicy (outbound only) overrides Config.QueuePolicy for this
	// publish: what it does when the queue is full, and whether a newer
	// message may drop or supersede it. Zero: the client's policy.
	QueuePolicy QueuePolicy

	ack *inboundAck // set on inbound QoS 1/2 messages when Config.ManualAck is on
}

// Ack acknowledges an inbound QoS 1 or 2 message when Config.ManualAck is
// on: the broker gets PUBACK (QoS 1) or PUBREC (QoS 2). Without ManualAck,
// for QoS 0 messages, and for messages this client did not receive, it
// does nothing and returns nil. Calling it twice is harmless. It returns
// ErrClosed once the client has stopped (the broker then re-delivers the
// message to the session's next connection). The PUBACK or PUBREC goes out
// once every message that arrived before this one is acknowledged too
// (see Config.ManualAck).
func (m Message) Ack() error {
	if m.ack == nil {
		return nil
	}
	return m.ack.client.ack(m.ack)
}

// Subscription is one topic filter to subscribe to.
type Subscription struct {
	Filter string // topic filter; + and # wildcards, $share/group/filter
	QoS    QoS    // the highest QoS the broker may deliver with

	// MQTT 5 options.
	NoLocal           bool // do not receive this client's own publishes
	RetainAsPublished bool // keep the Retain flag as the publisher set it
	RetainHandling    byte // 0: send retained on subscribe, 1: only if new, 2: never
}

// validateMessage checks an outgoing message before anything is queued:
// what checkMessage checks, and everything the encoder would refuse.
func validateMessage(m *Message, version byte) error {
	if err := checkMessage(m, version); err != nil {
		return err
	}
	if m.Properties != nil && len(m.Properties.SubscriptionIdentifier) > 0 {
		// Only a server sets it [MQTT-3.3.4-6].
		return fmt.Errorf("set no SubscriptionIdentifier: a client may not send one in PUBLISH")
	}
	if m.Properties == nil && len(m.Payload) <= 1<<27 {
		// checkMessage checked the topic and the QoS, and the frame is far
		// below the protocol's 256 MiB: the encoder refuses nothing else.
		return nil
	}
	// Whatever the encoder would refuse (a property PUBLISH may not carry,
	// a Response Topic with a wildcard, a packet over 256 MiB) is refused
	// here, by the encoder's own check, so that nothing accepted can fail
	// to be written later.
	p := codec.Publish{Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, Retain: m.Retain, Properties: m.Properties}
	if m.QoS > AtMostOnce {
		p.PacketID = 1 // any: it only takes its two bytes
	}
	_, err := p.Size(version)
	return err
}

// checkMessage checks what a published message and a will have in common.
// A will's properties are checked with the CONNECT that carries them.
func checkMessage(m *Message, version byte) error {
	if err := codec.ValidateTopicName(m.Topic); err != nil {
		return err
	}
	if !m.QoS.Valid() {
		return fmt.Errorf("QoS %d is not 0, 1 or 2", byte(m.QoS))
	}
	if m.QueuePolicy > LatestPerTopic {
		return fmt.Errorf("QueuePolicy %d is not one of Block, FailNewest, DropOldest, LatestPerTopic", m.QueuePolicy)
	}
	if m.Properties != nil {
		if version != codec.V5 {
			return fmt.Errorf("message properties need MQTT 5 (Config.Version 5)")
		}
		if m.Properties.TopicAlias != nil {
			return fmt.Errorf("set no TopicAlias: the client chooses topic aliases itself (Config.TopicAliases)")
		}
		if m.Properties.PayloadFormat != nil && *m.Properties.PayloadFormat == 1 && !utf8.Valid(m.Payload) {
			return fmt.Errorf("payload format is UTF-8 but the payload is not valid UTF-8")
		}
	}
	return nil
}

// validateSubscription checks one subscription before anything is sent.
func validateSubscription(s Subscription, version byte) error {
	if err := codec.ValidateTopicFilter(s.Filter); err != nil {
		return err
	}
	if !s.QoS.Valid() {
		return fmt.Errorf("filter %q: QoS %d is not 0, 1 or 2", s.Filter, byte(s.QoS))
	}
	if version != codec.V5 && (s.NoLocal || s.RetainAsPublished || s.RetainHandling != 0) {
		return fmt.Errorf("filter %q: NoLocal, RetainAsPublished and RetainHandling need MQTT 5", s.Filter)
	}
	if s.RetainHandling > 2 {
		return fmt.Errorf("filter %q: RetainHandling %d is not 0, 1 or 2", s.Filter, s.RetainHandling)
	}
	return nil
}
