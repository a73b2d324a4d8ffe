package mqtt_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/backoff"
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
