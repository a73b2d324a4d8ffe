package main

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/mqtttest"
)

// newBrokerV5 is an embedded broker for QoS 1 and 2 publishes with MQTT 5
// properties: without NoInheritedPropertiesOnAck, mochi v2.7.9 copies a
// PUBLISH's properties into its PUBACK, with the granted QoS (0x01) as the
// reason code, which no PUBACK may carry; the client then drops the
// connection and sends the message again, for ever.
func newBrokerV5(t *testing.T) *mqtttest.Broker {
	return mqtttest.NewBrokerWith(t, mqtttest.BrokerConfig{Configure: func(o *mochi.Options) {
		o.Capabilities.Compatibilities.NoInheritedPropertiesOnAck = true
	}})
}

// responder answers requests as a service would, with this module's
// client: to each request on its filter, it publishes "re: <payload>" to
// the request's Response Topic, with its Correlation Data (unless bare).
// Before each answer it publishes a decoy there, a response to somebody
// else's request (other correlation data), which mqtt rr must skip.
type responder struct {
	c    *mqtt.Client
	seen chan []byte // the correlation data of each request
	done chan struct{}
}

var responders atomic.Int64

func startResponder(t *testing.T, server, filter string, bare bool) *responder {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), patience)
	defer cancel()
	c, err := mqtt.Dial(ctx, mqtt.Config{Servers: []string{server}, ClientID: fmt.Sprintf("responder-%d", responders.Add(1)),
		CleanStart: true, Version: codec.V5})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribe(ctx, mqtt.Subscription{Filter: filter, QoS: mqtt.AtLeastOnce}); err != nil {
		c.Close()
		t.Fatal(err)
	}
	r := &responder{c: c, seen: make(chan []byte, 16), done: make(chan struct{})}
	go r.serve(bare)
	t.Cleanup(func() {
		c.Close()
		<-r.done
	})
	return r
}

func (r *responder) serve(bare bool) {
	defer close(r.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-r.c.Done()
		cancel()
	}()
	for m := range r.c.Messages() {
		p := m.Properties
		if p == nil || p.ResponseTopic == "" {
			continue
		}
		r.seen <- p.CorrelationData
		decoy := mqtt.Message{Topic: p.ResponseTopic, Payload: []byte("decoy"), QoS: mqtt.AtLeastOnce,
			Properties: &codec.Properties{CorrelationData: []byte("somebody else's")}}
		if r.c.Publish(ctx, decoy) != nil {
			return
		}
		resp := mqtt.Message{Topic: p.ResponseTopic, Payload: append([]byte("re: "), m.Payload...), QoS: mqtt.AtLeastOnce}
		if !bare {
			resp.Properties = &codec.Properties{CorrelationData: p.CorrelationData}
		}
		if r.c.Publish(ctx, resp) != nil {
			return
		}
	}
}

// mqtt rr publishes a request with a Response Topic and Correlation Data,
// and prints the response: not a retained message, not a response to
// another request.
func TestRR(t *testing.T) {
	t.Parallel()
	b := newBrokerV5(t)
	r := startResponder(t, b.URL(), "svc/req/+", false)
	if err := b.Publish("svc/resp/1", []byte("stale"), 1, true); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, status := runCmd(t, nil, append([]string{"rr"}, at(b.Addr(), "-d", "-q", "1", "-t", "svc/req/1", "-e", "svc/resp/1",
		"-m", "hello", "-F", "%t %p %D")...)...)
	if status != 0 {
		t.Fatalf("exit status %d; stderr:\n%s", status, stderr)
	}
	id := <-r.seen
	if len(id) == 0 {
		t.Fatal("the request had no correlation data")
	}
	if want := "svc/resp/1 re: hello " + string(id) + "\n"; stdout != want {
		t.Errorf("stdout %q, want %q", stdout, want)
	}
	for _, want := range []string{
		"mqtt rr: subscribed to svc/resp/1 (QoS 1)\n",
		"mqtt rr: skipped a message on svc/resp/1: retained, so published before the request\n",
		"mqtt rr: skipped a message on svc/resp/1: other correlation data: a response to another request\n",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}

	// -D publish sets the correlation data and other properties; QoS 0.
	stdout, stderr, status = runCmd(t, nil, append([]string{"rr"}, at(b.Addr(), "-t", "svc/req/2", "-e", "svc/resp/2", "-m", "hi", "-v",
		"-D", "publish", "correlation-data", "mine", "-D", "publish", "user-property", "k", "v")...)...)
	if status != 0 || stdout != "svc/resp/2 re: hi\n" {
		t.Fatalf("exit status %d, stdout %q; stderr:\n%s", status, stdout, stderr)
	}
	if id := <-r.seen; string(id) != "mine" {
		t.Errorf("correlation data %q, want mine", id)
	}
}

// A responder that does not send the correlation data back is answered
// too; a request with nobody to answer it times out as -W says.
func TestRRBareAndTimeout(t *testing.T) {
	t.Parallel()
	b := newBrokerV5(t)
	startResponder(t, b.URL(), "svc/bare", true)
	stdout, stderr, status := runCmd(t, strings.NewReader("from stdin"), append([]string{"rr"}, at(b.Addr(), "-t", "svc/bare", "-e", "svc/resp/bare", "-s", "-N")...)...)
	if status != 0 || stdout != "re: from stdin" {
		t.Fatalf("exit status %d, stdout %q; stderr:\n%s", status, stdout, stderr)
	}

	_, stderr, status = runCmd(t, nil, append([]string{"rr"}, at(b.Addr(), "-t", "svc/nobody", "-e", "svc/resp/none", "-n", "-W", "0.5")...)...)
	if status != 27 {
		t.Errorf("nobody answers: exit status %d, want 27", status)
	}
	oneLine(t, stderr, "mqtt rr: ", "timed out after 0.5s (-W): no response on svc/resp/none")

	// The request itself, on the response topic, is not its response.
	_, stderr, status = runCmd(t, nil, append([]string{"rr"}, at(b.Addr(), "-t", "svc/loop", "-e", "svc/loop", "-m", "x", "-q", "1", "-W", "0.5")...)...)
	if status != 27 {
		t.Errorf("-t and -e the same: exit status %d, want 27; stderr:\n%s", status, stderr)
	}
}
