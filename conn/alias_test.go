package conn_test

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/conn"
)

// establishAliases connects a Conn that may use aliases topic aliases to
// a peer whose CONNACK is connack.
func establishAliases(t *testing.T, aliases int, connack *codec.Connack) (*conn.Conn, *peer) {
	t.Helper()
	client, server := net.Pipe()
	t.Cleanup(func() { server.Close() })
	p := &peer{t: t, nc: server, br: bufio.NewReader(server), v: codec.V5}
	go func() {
		p.read()
		p.write(connack)
	}()
	c, err := conn.Establish(t.Context(), client, "pipe", conn.Config{
		Connect:      &codec.Connect{Version: codec.V5, ClientID: "c", CleanStart: true},
		Inbound:      make(chan conn.Inbound),
		TopicAliases: aliases,
	})
	if err != nil {
		t.Fatalf("Establish: %v", err)
	}
	return c, p
}

func aliasMax(n uint16) *codec.Connack {
	return &codec.Connack{Properties: &codec.Properties{TopicAliasMaximum: &n}}
}

// wireForm says how a PUBLISH went: "topic" whole without an alias,
// "topic=n" whole with alias n, "=n" as alias n alone.
func wireForm(p *codec.Publish) string {
	if p.Properties == nil || p.Properties.TopicAlias == nil {
		return p.Topic
	}
	return fmt.Sprintf("%s=%d", p.Topic, *p.Properties.TopicAlias)
}

// The writer gives topics aliases within the smaller of its own limit
// and the broker's Topic Alias Maximum: whole with the alias the first
// time, the alias alone afterwards. When all are taken, a topic that found
// the table full before takes the least recently used topic's alias; one
// seen once goes whole. Short topics get none. The packets queued are not
// changed.
func TestWriterTopicAliases(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, p := establishAliases(t, 10, aliasMax(2))
		errs := run(c)
		topics := []string{"room/a", "room/b", "room/a", "room/c", "room/a", "room/c", "room/c", "room/b", "xyz", "room/c", "room/a"}
		want := []string{"room/a=1", "room/b=2", "=1",
			"room/c", // the table is full; room/c is new to it
			"=1",
			"room/c=2", // seen before: takes room/b's alias, the least recently used
			"=2", "room/b", "xyz", "=2", "=1"}
		sent := make([]*codec.Publish, len(topics))
		for i, topic := range topics {
			sent[i] = &codec.Publish{Topic: topic, Payload: []byte{byte(i)}}
			c.Send(conn.Frame{Packet: sent[i]})
		}
		var got []string
		for range topics {
			pk := p.read().(*codec.Publish)
			got = append(got, wireForm(pk))
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("wire forms\n got %v\nwant %v", got, want)
		}
		for i, pk := range sent {
			if pk.Topic != topics[i] || pk.Properties != nil {
				t.Fatalf("queued packet %d was changed: %q %+v", i, pk.Topic, pk.Properties)
			}
		}
		c.Close()
		<-errs
		<-errs
	})
}

// A frame withdrawn before it was written sets no alias: the next PUBLISH
// to its topic carries the topic again. A PUBLISH's own properties go
// with the alias.
func TestWriterTopicAliasWithdrawn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, p := establishAliases(t, 4, aliasMax(4))
		skip := &tracker{allow: false, written: make(chan error, 1)}
		c.Send(conn.Frame{Packet: &codec.Publish{Topic: "room/a"}, Track: skip})
		c.Send(conn.Frame{Packet: &codec.Publish{Topic: "room/a", Properties: &codec.Properties{ContentType: "text/plain"}}})
		c.Send(conn.Frame{Packet: &codec.Publish{Topic: "room/a"}})
		errs := run(c)
		first, second := p.read().(*codec.Publish), p.read().(*codec.Publish)
		if wireForm(first) != "room/a=1" || first.Properties.ContentType != "text/plain" || wireForm(second) != "=1" {
			t.Fatalf("wrote %s %+v, then %s; want room/a=1 with its content type, then =1", wireForm(first), first.Properties, wireForm(second))
		}
		c.Close()
		<-errs
		<-errs
	})
}

// No aliases when either side allows none, and none over MQTT 3.1.1.
func TestWriterTopicAliasesOff(t *testing.T) {
	for _, tc := range []struct {
		name    string
		aliases int
		connack *codec.Connack
	}{
		{"client allows none", 0, aliasMax(10)},
		{"broker allows none", 10, aliasMax(0)},
		{"broker says nothing", 10, &codec.Connack{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c, p := establishAliases(t, tc.aliases, tc.connack)
				errs := run(c)
				for range 2 {
					c.Send(conn.Frame{Packet: &codec.Publish{Topic: "room/a"}})
				}
				for range 2 {
					if got := wireForm(p.read().(*codec.Publish)); got != "room/a" {
						t.Fatalf("wrote %s, want room/a without alias", got)
					}
				}
				c.Close()
				<-errs
				<-errs
			})
		})
	}
}

// A PUBLISH that fits the broker's Maximum Packet Size whole, but not
// with an alias as well, goes whole; a smaller one to the same topic then
// sets the alias.
func TestWriterTopicAliasMaximumPacketSize(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		big := &codec.Publish{Topic: "room/a", Payload: make([]byte, 100)}
		size, err := codec.Size(big, codec.V5)
		if err != nil {
			t.Fatal(err)
		}
		limit := uint32(size)
		ack := aliasMax(4)
		ack.Properties.MaximumPacketSize = &limit
		c, p := establishAliases(t, 4, ack)
		errs := run(c)
		c.Send(conn.Frame{Packet: big})
		c.Send(conn.Frame{Packet: &codec.Publish{Topic: "room/a", Payload: []byte("small")}})
		c.Send(conn.Frame{Packet: big})
		var got []string
		for range 3 {
			got = append(got, wireForm(p.read().(*codec.Publish)))
		}
		if strings.Join(got, " ") != "room/a room/a=1 =1" {
			t.Fatalf("wrote %v, want room/a room/a=1 =1", got)
		}
		c.Close()
		<-errs
		<-errs
	})
}

// Whatever the order of topics, and whichever frames are withdrawn,
// every PUBLISH the broker receives resolves to the topic it was queued
// with, through aliases set earlier on the connection, within 1..max.
func TestWriterTopicAliasesResolve(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const max = 3
		c, p := establishAliases(t, 100, aliasMax(max))
		errs := run(c)
		topics := []string{"room/a", "room/b", "room/c", "room/d", "room/e", "ab"}
		var kept []string
		seed := uint32(7)
		for i := range 2000 {
			seed = seed*1664525 + 1013904223
			topic := topics[int(seed>>16)%len(topics)]
			if i%50 < 25 {
				topic = topics[int(seed>>16)%2] // runs of two hot topics
			}
			allow := seed>>8%5 != 0
			c.Send(conn.Frame{Packet: &codec.Publish{Topic: topic, Payload: []byte{byte(i)}},
				Track: &tracker{allow: allow, written: make(chan error, 1)}})
			if allow {
				kept = append(kept, topic)
			}
		}
		broker := map[uint16]string{}
		short := 0
		for i, want := range kept {
			pk := p.read().(*codec.Publish)
			got := pk.Topic
			if pk.Properties != nil && pk.Properties.TopicAlias != nil {
				a := *pk.Properties.TopicAlias
				if a == 0 || a > max {
					t.Fatalf("frame %d: alias %d outside 1..%d", i, a, max)
				}
				if got != "" {
					broker[a] = got
				} else {
					got = broker[a]
					short++
				}
			}
			if got != want {
				t.Fatalf("frame %d resolves to %q, want %q", i, got, want)
			}
		}
		if short < len(kept)/2 {
			t.Fatalf("only %d of %d frames went as an alias alone", short, len(kept))
		}
		c.Close()
		<-errs
		<-errs
	})
}
