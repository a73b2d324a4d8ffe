package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/paho"
	pahomqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/robustmqtt/mqtt"
)

// The clients under test, by the name that appears in the benchmark names
// (client=...).
const (
	robust   = "robustmqtt"       // MQTT 3.1.1, like paho.mqtt.golang
	robust5  = "robustmqtt-v5"    // MQTT 5, like paho.golang
	pahoV3   = "paho.mqtt.golang" // github.com/eclipse/paho.mqtt.golang
	pahoV5   = "paho.golang"      // github.com/eclipse/paho.golang/paho
	pahoAuto = "paho.golang-auto" // github.com/eclipse/paho.golang/autopaho
	raw      = "raw"              // pre-encoded frames on a bare socket
	raw5     = "raw-v5"           // the same in MQTT 5: the broker's own MQTT 5 cost
	window   = 100                // publishes in flight when pipelined
	timeout  = 30 * time.Second   // any single wait longer than this is a failure
	barrierT = "bench/barrier"    // the topic of the QoS 1 publish that ends a QoS 0 run
)

// payload is every benchmark's 64-byte message body.
var payload = bytes.Repeat([]byte{'x'}, 64)

// ids makes client identifiers unique within the run, so that no client
// takes over another's session at the broker.
var ids atomic.Int64

func clientID(kind string) string {
	return fmt.Sprintf("bench-%s-%d", kind, ids.Add(1))
}

// publisher is a client under test that publishes the 64-byte payload to
// one topic at one QoS, in one of two styles, chosen by its window:
//
//   - sync (window 1): the synchronous call a user writes in a loop, which
//     returns once the message is written (QoS 0) or acknowledged (QoS 1:
//     PUBACK, QoS 2: PUBCOMP): robustmqtt Publish, paho.mqtt.golang
//     Publish(...).Wait(), paho.golang Publish; raw writes the frame and
//     reads its acknowledgement in the same goroutine.
//   - pipelined (window n > 1): at most n publishes unfinished, each
//     client's own way (robustmqtt PublishAsync, paho.mqtt.golang tokens,
//     paho.golang n goroutines calling Publish, raw batches). At QoS 0
//     nothing is tracked: PublishAsync and tokens are ignored, paho.golang
//     (which has no asynchronous call) calls Publish, raw writes 100 frames
//     at a time.
type publisher interface {
	// publish publishes one message: in the sync style it returns with the
	// result; pipelined, it first waits for the oldest unfinished publish
	// when n are unfinished.
	publish() error
	// finish waits for every unfinished publish; after QoS 0 it publishes
	// one QoS 1 message and waits for its PUBACK, which the broker sends
	// after it has read every earlier frame of the connection.
	finish() error
	// push writes what publish took but has not sent yet (the raw client
	// batches); the others send at once and do nothing.
	push() error
	close()
}

// newPublisher dials a publisher of the given kind.
func newPublisher(ctx context.Context, kind, addr, topic string, qos byte, win int) (publisher, error) {
	switch kind {
	case robust, robust5:
		c, err := dialOurs(ctx, kind, addr, nil)
		if err != nil {
			return nil, err
		}
		return newOursPub(c, topic, qos, win), nil
	case pahoV3:
		c, err := dialPahoV3(addr, clientID(kind), nil)
		if err != nil {
			return nil, err
		}
		return newPahoV3Pub(c, topic, qos, win), nil
	case pahoV5:
		c, err := dialPahoV5(ctx, addr, nil)
		if err != nil {
			return nil, err
		}
		return newPahoV5Pub(c, topic, qos, win), nil
	case raw, raw5:
		if win <= 1 {
			return dialRawSyncPub(ctx, addr, topic, qos, rawVersion(kind))
		}
		return dialRawPub(ctx, addr, topic, qos, win, rawVersion(kind))
	}
	return nil, fmt.Errorf("bench: no publisher %q", kind)
}

// subscriber is a client under test that receives every message on one
// topic at QoS 1, calling got for each.
type subscriber interface{ close() }

// newSubscriber dials a subscriber of the given kind. got is called once
// per message (raw: once per batch, with the count) on the client's
// delivery path.
func newSubscriber(ctx context.Context, kind, addr, topic string, got func(n int)) (subscriber, error) {
	switch kind {
	case robust, robust5:
		c, err := dialOurs(ctx, kind, addr, nil)
		if err != nil {
			return nil, err
		}
		return subscribeOurs(ctx, c, topic, got)
	case pahoV3:
		c, err := dialPahoV3(addr, clientID(kind), nil)
		if err != nil {
			return nil, err
		}
		return subscribePahoV3(c, topic, got)
	case pahoV5:
		c, err := dialPahoV5(ctx, addr, func(cfg *paho.ClientConfig) {
			cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){
				func(paho.PublishReceived) (bool, error) { got(1); return true, nil },
			}
		})
		if err != nil {
			return nil, err
		}
		return subscribePahoV5(ctx, c, topic)
	case raw, raw5:
		return dialRawSub(ctx, addr, topic, got, rawVersion(kind))
	}
	return nil, fmt.Errorf("bench: no subscriber %q", kind)
}

// ring holds the results of the unfinished publishes of a pipelined
// publisher, oldest first.
type ring[T any] struct {
	items   []T
	head, n int
	wait    func(T) error
}

func newRing[T any](size int, wait func(T) error) *ring[T] {
	return &ring[T]{items: make([]T, size), wait: wait}
}

// room waits for the oldest result when the ring is full.
func (r *ring[T]) room() error {
	if r.n < len(r.items) {
		return nil
	}
	return r.pop()
}

func (r *ring[T]) push(x T) {
	r.items[(r.head+r.n)%len(r.items)] = x
	r.n++
}

// pop waits for the oldest result and forgets it.
func (r *ring[T]) pop() error {
	var zero T
	x := r.items[r.head]
	r.items[r.head] = zero
	r.head = (r.head + 1) % len(r.items)
	r.n--
	return r.wait(x)
}

// drain waits for every result, returning the first error.
func (r *ring[T]) drain() error {
	var first error
	for r.n > 0 {
		if err := r.pop(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// --- robustmqtt -------------------------------------------------------------

// dialOurs connects our client: MQTT 3.1.1, or 5 for robust5, clean start.
func dialOurs(ctx context.Context, kind, addr string, edit func(*mqtt.Config)) (*mqtt.Client, error) {
	// MaxInflight: window, like the peers, which pipeline window publishes:
	// the 3.1.1 default (20) fits stock Mosquitto, and the broker here
	// (mochi) takes 1024.
	cfg := mqtt.Config{Servers: []string{"tcp://" + addr}, ClientID: clientID(kind), CleanStart: true, MaxInflight: window}
	if kind == robust5 {
		cfg.Version = 5
	}
	if edit != nil {
		edit(&cfg)
	}
	return mqtt.Dial(ctx, cfg)
}

type oursPub struct {
	c       *mqtt.Client
	msg     mqtt.Message
	sync    bool // Publish; otherwise PublishAsync
	win     *ring[<-chan error]
	callCtx context.Context // the synchronous call's ctx; see withCallCtx
}

func newOursPub(c *mqtt.Client, topic string, qos byte, win int) *oursPub {
	p := &oursPub{c: c, msg: mqtt.Message{Topic: topic, Payload: payload, QoS: mqtt.QoS(qos)}, sync: win <= 1, callCtx: context.Background()}
	if qos > 0 && !p.sync {
		p.win = newRing(win, func(ch <-chan error) error { return <-ch })
	}
	return p
}

func (p *oursPub) publish() error {
	// context.Background unless withCallCtx says otherwise: a ctx that
	// can end costs a context.AfterFunc per publish (see the README).
	if p.sync {
		return p.c.Publish(p.callCtx, p.msg)
	}
	if p.win == nil {
		p.c.PublishAsync(context.Background(), p.msg)
		return nil
	}
	if err := p.win.room(); err != nil {
		return err
	}
	p.win.push(p.c.PublishAsync(context.Background(), p.msg))
	return nil
}

func (p *oursPub) finish() error {
	if p.msg.QoS == 0 {
		return p.c.Publish(context.Background(), mqtt.Message{Topic: barrierT, Payload: payload, QoS: mqtt.AtLeastOnce})
	}
	if p.win == nil {
		return nil // each Publish returned with its result
	}
	return p.win.drain()
}

func (p *oursPub) push() error { return nil }

func (p *oursPub) close() { p.c.Close() }

type oursSub struct {
	c    *mqtt.Client
	done chan struct{}
}

func subscribeOurs(ctx context.Context, c *mqtt.Client, topic string, got func(int)) (*oursSub, error) {
	s := &oursSub{c: c, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for range c.Messages() {
			got(1)
		}
	}()
	if err := c.Subscribe(ctx, mqtt.Subscription{Filter: topic, QoS: mqtt.AtLeastOnce}); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *oursSub) close() {
	s.c.Close()
	<-s.done
}

// --- paho.mqtt.golang -------------------------------------------------------

// dialPahoV3 connects a paho.mqtt.golang client with its defaults (clean
// session, automatic reconnect, in-memory store, ordered delivery).
func dialPahoV3(addr, id string, edit func(*pahomqtt.ClientOptions)) (pahomqtt.Client, error) {
	opts := pahomqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id)
	if edit != nil {
		edit(opts)
	}
	c := pahomqtt.NewClient(opts)
	if err := waitToken(c.Connect()); err != nil {
		return nil, fmt.Errorf("paho.mqtt.golang: connect: %w", err)
	}
	return c, nil
}

func waitToken(t pahomqtt.Token) error {
	if !t.WaitTimeout(timeout) {
		return errors.New("paho.mqtt.golang: no result in time")
	}
	return t.Error()
}

type pahoV3Pub struct {
	c     pahomqtt.Client
	topic string
	qos   byte
	sync  bool // Publish(...).Wait(); otherwise tokens in a ring
	win   *ring[pahomqtt.Token]
}

func newPahoV3Pub(c pahomqtt.Client, topic string, qos byte, win int) *pahoV3Pub {
	p := &pahoV3Pub{c: c, topic: topic, qos: qos, sync: win <= 1}
	if qos > 0 && !p.sync {
		p.win = newRing(win, waitToken)
	}
	return p
}

func (p *pahoV3Pub) publish() error {
	if p.sync {
		// The call a user writes; its token completes once the message is
		// written (QoS 0) or acknowledged (QoS 1: PUBACK, QoS 2: PUBCOMP).
		t := p.c.Publish(p.topic, p.qos, false, payload)
		t.Wait()
		return t.Error()
	}
	if p.win == nil {
		p.c.Publish(p.topic, 0, false, payload)
		return nil
	}
	if err := p.win.room(); err != nil {
		return err
	}
	p.win.push(p.c.Publish(p.topic, p.qos, false, payload))
	return nil
}

func (p *pahoV3Pub) finish() error {
	if p.qos == 0 {
		return waitToken(p.c.Publish(barrierT, 1, false, payload))
	}
	if p.win == nil {
		return nil // each publish waited for its own result
	}
	return p.win.drain()
}

func (p *pahoV3Pub) push() error { return nil }

func (p *pahoV3Pub) close() { p.c.Disconnect(100) }

type pahoV3Sub struct{ c pahomqtt.Client }

func subscribePahoV3(c pahomqtt.Client, topic string, got func(int)) (*pahoV3Sub, error) {
	err := waitToken(c.Subscribe(topic, 1, func(pahomqtt.Client, pahomqtt.Message) { got(1) }))
	if err != nil {
		c.Disconnect(100)
		return nil, err
	}
	return &pahoV3Sub{c}, nil
}

func (s *pahoV3Sub) close() { s.c.Disconnect(100) }

// --- paho.golang ------------------------------------------------------------

// dialPahoV5 connects a paho.golang client (MQTT 5, clean start) on a
// plain TCP connection.
func dialPahoV5(ctx context.Context, addr string, edit func(*paho.ClientConfig)) (*paho.Client, error) {
	nc, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	cfg := paho.ClientConfig{Conn: nc}
	if edit != nil {
		edit(&cfg)
	}
	c := paho.NewClient(cfg)
	ack, err := c.Connect(ctx, &paho.Connect{ClientID: clientID(pahoV5), CleanStart: true, KeepAlive: 30})
	if err == nil && ack.ReasonCode != 0 {
		err = fmt.Errorf("CONNACK reason code %d", ack.ReasonCode)
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("paho.golang: connect: %w", err)
	}
	return c, nil
}

func closePahoV5(c *paho.Client) {
	c.Disconnect(&paho.Disconnect{})
	<-c.Done()
}

// pahoV5Pub publishes with paho.golang, whose Publish blocks until the
// publish is complete (QoS 0: written): the sync style calls it in the
// loop; pipelining takes one goroutine per publish in flight, here a pool
// of win workers fed by an unbuffered channel. At QoS 0 both call Publish
// in the loop: paho.golang has no asynchronous call, and its QoS 0
// Publish writes at once.
type pahoV5Pub struct {
	callCtx context.Context // Publish's ctx; see withCallCtx
	c       *paho.Client
	pub     paho.Publish
	jobs    chan struct{}
	wg      sync.WaitGroup // unfinished publishes
	ws      sync.WaitGroup // workers
	err     atomic.Pointer[error]
}

func newPahoV5Pub(c *paho.Client, topic string, qos byte, win int) *pahoV5Pub {
	p := &pahoV5Pub{c: c, pub: paho.Publish{Topic: topic, QoS: qos, Payload: payload}, callCtx: context.Background()}
	if qos == 0 || win <= 1 {
		return p
	}
	p.jobs = make(chan struct{})
	for range win {
		p.ws.Go(func() {
			pub := p.pub // each worker has its own packet
			for range p.jobs {
				p.record(p.send(&pub))
				p.wg.Done()
			}
		})
	}
	return p
}

func (p *pahoV5Pub) send(pub *paho.Publish) error {
	// context.Background, as for robustmqtt, unless withCallCtx says
	// otherwise; Publish bounds its wait for an acknowledgement with the
	// client's PacketTimeout itself.
	_, err := p.c.Publish(p.callCtx, pub)
	return err
}

func (p *pahoV5Pub) record(err error) {
	if err != nil {
		p.err.CompareAndSwap(nil, &err)
	}
}

func (p *pahoV5Pub) publish() error {
	if p.jobs == nil {
		return p.send(&p.pub)
	}
	p.wg.Add(1)
	p.jobs <- struct{}{}
	if e := p.err.Load(); e != nil {
		return *e
	}
	return nil
}

func (p *pahoV5Pub) finish() error {
	if p.jobs == nil {
		if p.pub.QoS > 0 {
			return nil // each publish waited for its own result
		}
		return p.send(&paho.Publish{Topic: barrierT, QoS: 1, Payload: payload})
	}
	p.wg.Wait()
	if e := p.err.Load(); e != nil {
		return *e
	}
	return nil
}

func (p *pahoV5Pub) push() error { return nil }

func (p *pahoV5Pub) close() {
	if p.jobs != nil {
		close(p.jobs)
		p.ws.Wait()
	}
	closePahoV5(p.c)
}

type pahoV5Sub struct{ c *paho.Client }

func subscribePahoV5(ctx context.Context, c *paho.Client, topic string) (*pahoV5Sub, error) {
	_, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 1}}})
	if err != nil {
		closePahoV5(c)
		return nil, fmt.Errorf("paho.golang: subscribe: %w", err)
	}
	return &pahoV5Sub{c}, nil
}

func (s *pahoV5Sub) close() { closePahoV5(s.c) }

// withCallCtx makes a publisher's synchronous calls take ctx instead of
// context.Background (BenchmarkPublishCancelable), for the clients whose
// call takes one; it reports whether p's does.
func withCallCtx(p publisher, ctx context.Context) bool {
	switch p := p.(type) {
	case *oursPub:
		p.callCtx = ctx
	case *pahoV5Pub:
		p.callCtx = ctx
	default:
		return false
	}
	return true
}
