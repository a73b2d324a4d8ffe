package mqtt_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/backoff"
	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/mqtttest"
)

// The temperature sensor: a reading once a minute, QoS 0, and no retries:
// a lost reading is fine, a radio kept awake retrying is not. When the
// broker goes away the client stops, and the device can sleep until the next
// reading.
func Example_temperature() {
	broker, err := mqtttest.StartBroker()
	if err != nil {
		panic(err)
	}
	defer broker.Close()
	ctx := context.Background()

	c, err := mqtt.Dial(ctx, mqtt.Config{
		Servers:    []string{broker.URL()},
		ClientID:   "thermometer",
		CleanStart: true,
		Backoff:    backoff.Never(), // don't retry: save the battery
	})
	if err != nil {
		panic(err)
	}
	err = c.Publish(ctx, mqtt.Message{Topic: "home/temperature", Payload: []byte("21.5")})
	fmt.Println("reading sent:", err)

	broker.Stop()
	<-c.Done()
	fmt.Println("client gave up:", errors.Is(c.Err(), mqtt.ErrGaveUp))
	// Output:
	// reading sent: <nil>
	// client gave up: true
}

// The button: a press matters for about 15 seconds. Its publish carries a
// context with that deadline; if the broker is away until it passes, the
// press is withdrawn, never sent, and never arrives late.
func Example_button() {
	broker, err := mqtttest.StartBroker()
	if err != nil {
		panic(err)
	}
	defer broker.Close()
	ctx := context.Background()

	c, err := mqtt.Dial(ctx, mqtt.Config{
		Servers:  []string{broker.URL()},
		ClientID: "doorbell",
		Backoff:  backoff.Constant(50 * time.Millisecond),
	})
	if err != nil {
		panic(err)
	}
	defer c.Close()

	broker.Stop()
	for e := range c.Events() {
		if e.Kind == mqtt.ConnectionLost {
			break // the press comes while the client knows the broker is away
		}
	}
	// 15 s in real life; a fraction of a second keeps the example short.
	press, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	err = c.Publish(press, mqtt.Message{Topic: "home/doorbell", Payload: []byte("ring"), QoS: mqtt.AtLeastOnce})
	fmt.Println("press withdrawn:", errors.Is(err, mqtt.ErrWithdrawn))
	fmt.Println("because its window closed:", errors.Is(err, context.DeadlineExceeded))
	// Output:
	// press withdrawn: true
	// because its window closed: true
}

// The window alarm: it must arrive no matter what, without draining the
// battery. QoS 1, a persistent session, exponential backoff with full jitter
// capped at 30 minutes, and no deadline: the publish waits through the
// outage and returns once the broker has the message.
func Example_windowAlarm() {
	broker, err := mqtttest.StartBroker()
	if err != nil {
		panic(err)
	}
	defer broker.Close()
	ctx := context.Background()

	monitor, err := mqtt.Dial(ctx, mqtt.Config{Servers: []string{broker.URL()}, ClientID: "monitor"})
	if err != nil {
		panic(err)
	}
	defer monitor.Close()
	if err := monitor.Subscribe(ctx, mqtt.Subscription{Filter: "home/alarm/#", QoS: mqtt.AtLeastOnce}); err != nil {
		panic(err)
	}

	alarm, err := mqtt.Dial(ctx, mqtt.Config{
		Servers:  []string{broker.URL()},
		ClientID: "window-sensor",
		Backoff: backoff.Exponential{
			Initial: 50 * time.Millisecond, // seconds in real life
			Max:     30 * time.Minute,      // wake rarely during a long outage
			Jitter:  backoff.FullJitter,    // sensors that lost power together must not retry together
		},
	})
	if err != nil {
		panic(err)
	}
	defer alarm.Close()

	broker.Stop()
	result := alarm.PublishAsync(ctx, mqtt.Message{Topic: "home/alarm/window", Payload: []byte("broken"), QoS: mqtt.AtLeastOnce})
	broker.Start() // the outage ends

	fmt.Println("alarm acknowledged:", <-result)
	m := <-monitor.Messages()
	fmt.Printf("monitor got %s: %s\n", m.Topic, m.Payload)
	// Output:
	// alarm acknowledged: <nil>
	// monitor got home/alarm/window: broken
}

// One select loop handles inbound messages, connection events and a timer,
// with no callbacks and no locks.
func Example_selectLoop() {
	broker, err := mqtttest.StartBroker()
	if err != nil {
		panic(err)
	}
	defer broker.Close()
	ctx := context.Background()

	c, err := mqtt.Dial(ctx, mqtt.Config{Servers: []string{broker.URL()}, ClientID: "dashboard"})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	if err := c.Subscribe(ctx, mqtt.Subscription{Filter: "home/#", QoS: mqtt.AtLeastOnce}); err != nil {
		panic(err)
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()

	sent, received := 0, 0
	for received < 3 {
		select {
		case <-tick.C:
			if sent < 3 {
				sent++
				c.PublishAsync(ctx, mqtt.Message{Topic: "home/counter", Payload: fmt.Appendf(nil, "%d", sent), QoS: mqtt.AtLeastOnce})
			}
		case m := <-c.Messages():
			received++
			fmt.Printf("%s = %s\n", m.Topic, m.Payload)
		case e := <-c.Events():
			if e.Kind == mqtt.ConnectionLost {
				fmt.Println("lost:", e.Err)
			}
		case <-c.Done():
			fmt.Println("stopped:", c.Err())
			return
		}
	}
	// Output:
	// home/counter = 1
	// home/counter = 2
	// home/counter = 3
}

// A device that boots while the broker is away starts working at once:
// Start returns without waiting, the alarm waits in the queue, and the
// client connects in the background when the broker is back. WaitConnected
// is there for a program that wants to know.
func ExampleStart() {
	broker, err := mqtttest.StartBroker()
	if err != nil {
		panic(err)
	}
	defer broker.Close()
	broker.Stop() // the device boots during an outage
	ctx := context.Background()

	c, err := mqtt.Start(mqtt.Config{
		Servers:  []string{broker.URL()},
		ClientID: "window-sensor",
		Backoff:  backoff.Constant(50 * time.Millisecond),
	})
	if err != nil {
		panic(err) // a bad Config: nothing was started
	}
	defer c.Close()
	alarm := c.PublishAsync(ctx, mqtt.Message{Topic: "home/alarm/window", Payload: []byte("broken"), QoS: mqtt.AtLeastOnce})

	broker.Start() // the outage ends
	wait, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	fmt.Println("connected:", c.WaitConnected(wait))
	fmt.Println("alarm acknowledged:", <-alarm)
	// Output:
	// connected: <nil>
	// alarm acknowledged: <nil>
}

// A broker may grant a subscription a lower QoS than asked (one without
// QoS 2 grants 1), and then delivers with that one. SubscribeGranted says
// what it granted.
func ExampleClient_SubscribeGranted() {
	broker, err := mqtttest.StartBroker()
	if err != nil {
		panic(err)
	}
	defer broker.Close()
	ctx := context.Background()
	c, err := mqtt.Dial(ctx, mqtt.Config{Servers: []string{broker.URL()}, ClientID: "alarm-panel"})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	granted, err := c.SubscribeGranted(ctx, mqtt.Subscription{Filter: "home/alarm/#", QoS: mqtt.ExactlyOnce})
	if err != nil {
		panic(err)
	}
	if granted[0] < codec.GrantedQoS2 {
		fmt.Println("alarms may arrive twice")
	}
	fmt.Printf("granted: %d\n", granted[0])
	// Output:
	// granted: 2
}

// MQTT 5 properties, with the package's own names: user properties and a
// request for response information in the CONNECT, the broker's CONNACK
// properties in the Connected event, and a message's content type, expiry
// and request/response properties.
func ExampleProperties() {
	broker, err := mqtttest.StartBroker()
	if err != nil {
		panic(err)
	}
	defer broker.Close()
	ctx := context.Background()

	c, err := mqtt.Dial(ctx, mqtt.Config{
		Servers:  []string{broker.URL()},
		ClientID: "thermostat",
		Version:  5,
		ConnectProperties: &mqtt.Properties{
			User:                []mqtt.UserProperty{{Key: "firmware", Value: "1.4.2"}},
			RequestResponseInfo: mqtt.Flag(true),
		},
	})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	e := <-c.Events()
	fmt.Printf("%s; the broker takes at most %d publishes in flight\n", e.Kind, *e.Connack.ReceiveMaximum)

	if err := c.Subscribe(ctx, mqtt.Subscription{Filter: "home/thermostat/#", QoS: mqtt.AtLeastOnce}); err != nil {
		panic(err)
	}
	err = c.Publish(ctx, mqtt.Message{
		Topic:   "home/thermostat/setpoint",
		Payload: []byte(`{"celsius": 21}`),
		QoS:     mqtt.AtLeastOnce,
		Properties: &mqtt.Properties{
			PayloadFormat:   mqtt.Flag(true), // UTF-8 text
			ContentType:     "application/json",
			MessageExpiry:   mqtt.Interval(time.Minute), // stale after a minute, also at the broker
			ResponseTopic:   "home/thermostat/ack",
			CorrelationData: []byte("req-1"),
		},
	})
	if err != nil {
		panic(err)
	}
	m := <-c.Messages()
	fmt.Printf("%s %s (%s), answer to %s with %s\n", m.Topic, m.Payload, m.Properties.ContentType,
		m.Properties.ResponseTopic, m.Properties.CorrelationData)
	// Output:
	// connected; the broker takes at most 1024 publishes in flight
	// home/thermostat/setpoint {"celsius": 21} (application/json), answer to home/thermostat/ack with req-1
}

// Credentials that expire, such as a token from a cloud's identity
// service, are asked for before every connection attempt: each CONNECT
// carries a fresh one. The function's error fails that attempt, and the
// client retries under its Backoff.
func ExampleConfig_credentials() {
	broker, err := mqtttest.StartBroker()
	if err != nil {
		panic(err)
	}
	defer broker.Close()

	var fetched atomic.Int32
	c, err := mqtt.Dial(context.Background(), mqtt.Config{
		Servers:  []string{broker.URL()},
		ClientID: "meter-17",
		Credentials: func(ctx context.Context, server string) (string, []byte, error) {
			// In real life: a token for this server, from a service that
			// honours ctx.
			n := fetched.Add(1)
			return "meter-17", fmt.Appendf(nil, "token-%d", n), nil
		},
		Backoff: backoff.Constant(50 * time.Millisecond),
	})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	fmt.Println("tokens fetched:", fetched.Load())

	broker.Restart() // the connection is lost; the next attempt asks again
	for e := range c.Events() {
		if e.Kind == mqtt.Connected && e.SessionPresent {
			break
		}
	}
	fmt.Println("a fresh token for the new connection:", fetched.Load() > 1)
	// Output:
	// tokens fetched: 1
	// a fresh token for the new connection: true
}

// Config.Dial opens the connection itself: through a proxy, over a Unix
// socket, or with socket options of its own. It gets each server URL of
// Config.Servers (or of a redirect) and returns the stream, on which TLS, if
// wanted, is its job.
func ExampleConfig_dial() {
	broker, err := mqtttest.StartBroker()
	if err != nil {
		panic(err)
	}
	defer broker.Close()

	var dialer net.Dialer
	c, err := mqtt.Dial(context.Background(), mqtt.Config{
		Servers:  []string{broker.URL()},
		ClientID: "gateway",
		Dial: func(ctx context.Context, server string) (net.Conn, error) {
			u, err := url.Parse(server)
			if err != nil {
				return nil, err
			}
			fmt.Println("dialing", u.Scheme, "through our own dialer")
			return dialer.DialContext(ctx, "tcp", u.Host)
		},
	})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	fmt.Println(c.Publish(context.Background(), mqtt.Message{Topic: "gateway/up", QoS: mqtt.AtLeastOnce}))
	// Output:
	// dialing tcp through our own dialer
	// <nil>
}

// Routes: each part of a program reads the messages of its own filters
// from a channel of its own, and Messages gets the rest. A message goes
// to the first route that takes it, in the order they were made.
func Example_route() {
	broker, err := mqtttest.StartBroker()
	if err != nil {
		panic(err)
	}
	defer broker.Close()
	ctx := context.Background()

	c, err := mqtt.Dial(ctx, mqtt.Config{Servers: []string{broker.URL()}, ClientID: "home-hub"})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	lights, err := c.SubscribeRoute(ctx, mqtt.Subscription{Filter: "home/+/light", QoS: mqtt.AtLeastOnce})
	if err != nil {
		panic(err)
	}
	defer lights.Close()
	alarms, err := c.SubscribeRoute(ctx, mqtt.Subscription{Filter: "home/alarm/#", QoS: mqtt.AtLeastOnce})
	if err != nil {
		panic(err)
	}
	defer alarms.Close()
	if err := c.Subscribe(ctx, mqtt.Subscription{Filter: "home/#", QoS: mqtt.AtLeastOnce}); err != nil {
		panic(err)
	}

	for _, m := range []mqtt.Message{
		{Topic: "home/alarm/window", Payload: []byte("broken")},
		{Topic: "home/kitchen/temperature", Payload: []byte("21.5")},
		{Topic: "home/kitchen/light", Payload: []byte("on")},
	} {
		m.QoS = mqtt.AtLeastOnce
		if err := c.Publish(ctx, m); err != nil {
			panic(err)
		}
	}
	// The lights' reader does not wait for the alarm's, nor for Messages.
	m := <-lights.Messages()
	fmt.Printf("lights: %s = %s\n", m.Topic, m.Payload)
	m = <-alarms.Messages()
	fmt.Printf("alarms: %s = %s\n", m.Topic, m.Payload)
	m = <-c.Messages()
	fmt.Printf("the rest: %s = %s\n", m.Topic, m.Payload)
	// Output:
	// lights: home/kitchen/light = on
	// alarms: home/alarm/window = broken
	// the rest: home/kitchen/temperature = 21.5
}

// Request and response (MQTT 5): the requester publishes and waits for the
// reply, bounded by its ctx; the service answers with Respond.
func Example_request() {
	broker, err := mqtttest.StartBroker()
	if err != nil {
		panic(err)
	}
	defer broker.Close()
	ctx := context.Background()

	// The service: answers every request on "svc/clock".
	svc, err := mqtt.Dial(ctx, mqtt.Config{Servers: []string{broker.URL()}, ClientID: "clock", Version: 5})
	if err != nil {
		panic(err)
	}
	defer svc.Close()
	if err := svc.Subscribe(ctx, mqtt.Subscription{Filter: "svc/clock", QoS: mqtt.AtLeastOnce}); err != nil {
		panic(err)
	}
	go func() {
		for req := range svc.Messages() {
			svc.Respond(ctx, req, mqtt.Message{Payload: []byte("12:00"), QoS: mqtt.AtLeastOnce})
		}
	}()

	c, err := mqtt.Dial(ctx, mqtt.Config{Servers: []string{broker.URL()}, ClientID: "kiosk", Version: 5})
	if err != nil {
		panic(err)
	}
	defer c.Close()

	// The requester.
	reqCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	reply, err := c.Request(reqCtx, mqtt.Message{Topic: "svc/clock", Payload: []byte("time?"), QoS: mqtt.AtLeastOnce})
	fmt.Printf("reply %s, error %v\n", reply.Payload, err)
	// Output:
	// reply 12:00, error <nil>
}

func ExampleMatch() {
	fmt.Println(mqtt.Match("home/+/temperature", "home/kitchen/temperature"))
	fmt.Println(mqtt.Match("home/#", "home"))
	fmt.Println(mqtt.Match("$share/workers/jobs/#", "jobs/42"))
	fmt.Println(mqtt.Match("#", "$SYS/uptime")) // [MQTT-4.7.2-1]
	// Output:
	// true
	// true
	// true
	// false
}

// deviceKeyAuth is a challenge and response with a key the device and the
// broker share (HMAC-SHA256): the device answers the broker's nonce, and
// the broker proves in CONNACK that it knows the key too. Its state is that
// of one exchange: the client never runs two at once.
type deviceKeyAuth struct {
	id, key string
	nonce   []byte
	calls   []string
}

func (a *deviceKeyAuth) Method() string { return "HMAC-SHA256-CHALLENGE" }

func (a *deviceKeyAuth) Start(ctx context.Context, server string) ([]byte, error) {
	a.calls, a.nonce = append(a.calls, "start"), nil
	return []byte(a.id), nil // who we are; the broker answers with a challenge
}

func (a *deviceKeyAuth) Next(ctx context.Context, challenge []byte) ([]byte, error) {
	a.calls, a.nonce = append(a.calls, "next"), challenge
	return sign(a.key, "device", challenge), nil
}

func (a *deviceKeyAuth) Done(ctx context.Context, final []byte) error {
	a.calls = append(a.calls, "done")
	if a.nonce == nil || !hmac.Equal(final, sign(a.key, "broker", a.nonce)) {
		return errors.New("the broker does not know our key")
	}
	return nil
}

func sign(key, who string, nonce []byte) []byte {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(who))
	m.Write(nonce)
	return m.Sum(nil)
}

// Enhanced authentication (MQTT 5): Config.Auth answers the broker's
// challenges during the connect, and checks the broker's proof in
// CONNACK. Here a scripted broker plays the broker's side of the exchange;
// a real one runs it in a plugin (Mosquitto, EMQX, HiveMQ).
func ExampleConfig_auth() {
	broker, err := mqtttest.StartScriptedBroker()
	if err != nil {
		panic(err)
	}
	defer broker.Close()
	broker.SetConnack([]byte{}) // the broker's side below answers
	go func() {
		const key, method = "k3y-of-meter-17", "HMAC-SHA256-CHALLENGE"
		sc, err := broker.Accept(context.Background())
		if err != nil {
			return
		}
		nonce := []byte("nonce-5f2a")
		auth, _ := (&codec.Auth{ReasonCode: codec.ContinueAuthentication,
			Properties: &codec.Properties{AuthenticationMethod: method, AuthenticationData: nonce}}).AppendTo(nil, codec.V5)
		sc.Write(auth)
		frame, err := sc.ReadFrame(context.Background())
		if err != nil {
			return
		}
		p, _, err := codec.Decode(frame, codec.V5, 0)
		if a, ok := p.(*codec.Auth); err != nil || !ok || !hmac.Equal(a.Properties.AuthenticationData, sign(key, "device", nonce)) {
			ack, _ := (&codec.Connack{ReasonCode: codec.NotAuthorized}).AppendTo(nil, codec.V5)
			sc.Write(ack)
			return
		}
		ack, _ := (&codec.Connack{Properties: &codec.Properties{AuthenticationMethod: method,
			AuthenticationData: sign(key, "broker", nonce)}}).AppendTo(nil, codec.V5)
		sc.Write(ack)
	}()

	auth := &deviceKeyAuth{id: "meter-17", key: "k3y-of-meter-17"}
	c, err := mqtt.Dial(context.Background(), mqtt.Config{
		Servers:  []string{broker.URL()},
		ClientID: "meter-17",
		Version:  5,
		Auth:     auth,
	})
	fmt.Println("connected:", err)
	if err == nil {
		c.Close()
	}
	fmt.Println(strings.Join(auth.calls, ", "))
	// Output:
	// connected: <nil>
	// start, next, done
}

// Topic aliases (MQTT 5) for a device that pays for every byte it sends:
// 1000 readings of 20 bytes to a 40-byte topic, without and with
// Config.TopicAliases, to a broker that allows 10 aliases (as Mosquitto
// does; here a scripted one). With an alias the topic goes once per
// connection; every later PUBLISH carries two bytes of alias instead.
func ExampleConfig_topicAliases() {
	broker, err := mqtttest.StartScriptedBroker()
	if err != nil {
		panic(err)
	}
	defer broker.Close()
	ten := uint16(10)
	connack, _ := (&codec.Connack{Properties: &codec.Properties{TopicAliasMaximum: &ten}}).AppendTo(nil, codec.V5)
	broker.SetConnack(connack)

	ctx := context.Background()
	topic := "site-0042/building-7/floor-3/temperature"
	reading := []byte(`{"celsius":21.50000}`)
	for _, aliases := range []int{0, 10} {
		c, err := mqtt.Dial(ctx, mqtt.Config{
			Servers:      []string{broker.URL()},
			ClientID:     "thermometer",
			CleanStart:   true,
			Version:      5,
			TopicAliases: aliases,
		})
		if err != nil {
			panic(err)
		}
		before := c.Stats().BytesWritten
		for range 1000 {
			if err := c.Publish(ctx, mqtt.Message{Topic: topic, Payload: reading}); err != nil {
				panic(err)
			}
		}
		fmt.Printf("TopicAliases %2d: %d bytes for 1000 readings\n", aliases, c.Stats().BytesWritten-before)
		c.Close()
	}
	// Output:
	// TopicAliases  0: 65000 bytes for 1000 readings
	// TopicAliases 10: 28040 bytes for 1000 readings
}

// Two clients started by mistake with one ClientID take the session from
// each other. Both hear of it (ErrClientIDConflict, in the ConnectionLost
// error, the ClientIDConflict event and the strategy's Attempt.Err), and
// this strategy makes a client step aside after three retries of the
// conflict, leaving the session to the other.
func ExampleErrClientIDConflict() {
	broker, err := mqtttest.StartBroker()
	if err != nil {
		panic(err)
	}
	defer broker.Close()

	stepAside := backoff.Func(func(a backoff.Attempt) (time.Duration, bool) {
		if errors.Is(a.Err, mqtt.ErrClientIDConflict) && a.N > 3 {
			return 0, false
		}
		return backoff.Exponential{Initial: 10 * time.Millisecond, Max: time.Second}.Next(a)
	})
	cfg := mqtt.Config{Servers: []string{broker.URL()}, ClientID: "door-3", Version: 5, Backoff: stepAside}
	first, err := mqtt.Dial(context.Background(), cfg)
	if err != nil {
		panic(err)
	}
	defer first.Close()
	second, err := mqtt.Dial(context.Background(), cfg) // the mistake
	if err != nil {
		panic(err)
	}
	defer second.Close()

	for e := range first.Events() {
		if e.Kind == mqtt.ClientIDConflict {
			fmt.Println(e.Kind, "on", e.ClientID)
			break
		}
	}
	select {
	case <-first.Done():
		fmt.Println("one stepped aside:", errors.Is(first.Err(), mqtt.ErrClientIDConflict))
	case <-second.Done():
		fmt.Println("one stepped aside:", errors.Is(second.Err(), mqtt.ErrClientIDConflict))
	}
	// Output:
	// client ID conflict on door-3
	// one stepped aside: true
}
