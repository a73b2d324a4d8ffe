package crash_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/backoff"
	"github.com/robustmqtt/mqtt/store"
)

// The child is this test binary run again by the parent with
// -test.run=^TestCrashChild$ and this environment.
const (
	childEnv   = "ROBUSTMQTT_CRASH_CHILD"   // the mode (see below); set only in the child
	storeEnv   = "ROBUSTMQTT_CRASH_STORE"   // the store file
	brokerEnv  = "ROBUSTMQTT_CRASH_BROKER"  // the broker's URL
	runEnv     = "ROBUSTMQTT_CRASH_RUN"     // the run number, part of every payload
	versionEnv = "ROBUSTMQTT_CRASH_VERSION" // the MQTT protocol level, 4 or 5
)

// The child's modes.
const (
	// modePublish: publish QoS 1 and 2 as fast as possible until killed.
	modePublish = "publish"
	// modeOffline: once connected, wait until the parent has stopped the
	// broker (the connection is lost), then publish until killed: the
	// messages are only queued, never sent.
	modeOffline = "offline"
	// modeFinish: send what the store holds, wait until all of it is
	// acknowledged (Flush), publish the barrier, Disconnect and exit 0.
	modeFinish = "finish"
)

const (
	publisherID  = "crash-pub" // the child's ClientID, the same in every run
	subscriberID = "crash-sub" // the parent's subscriber
	topic        = "crash/msgs"

	// The child publishes from publishers goroutines, each with at most
	// perPublisher results outstanding: 200 in all.
	publishers   = 4
	perPublisher = 50

	// maxQueued is the child's Config.MaxQueued: room for what every
	// earlier run left in the store, and more.
	maxQueued = 1 << 20

	// retryDelay is the child's reconnect delay: short, so that a broker
	// restart costs little of the run.
	retryDelay = 20 * time.Millisecond
)

// The child reports on stdout, one line per event, each written with one
// write(2) (a line is far shorter than PIPE_BUF, so lines from several
// goroutines never mix, and a kill leaves no half line):
//
//	restored <n>       the store held n records when it was opened
//	connected          Dial returned
//	stored <payload>   PublishAsync returned: the message is durable
//	failed <payload> <error>
//	finished           modeFinish: everything acknowledged, store closed
func say(format string, args ...any) {
	fmt.Fprintf(os.Stdout, format+"\n", args...)
}

// payloadOf is a message's payload: unique across runs, and it names its
// QoS.
func payloadOf(run int, seq int64, qos mqtt.QoS) string {
	return fmt.Sprintf("r%d-s%d-q%d", run, seq, qos)
}

// barrierOf is the payload of the QoS 1 message that the finish run
// publishes last.
func barrierOf(run int) string { return fmt.Sprintf("barrier-r%d", run) }

// TestCrashChild is the child process of the crash tests; it is skipped
// unless the parent started it.
func TestCrashChild(t *testing.T) {
	mode := os.Getenv(childEnv)
	if mode == "" {
		t.Skip("the crash tests run this in a child process")
	}
	run, err := strconv.Atoi(os.Getenv(runEnv))
	if err != nil {
		t.Fatalf("%s: %v", runEnv, err)
	}
	version, err := strconv.Atoi(os.Getenv(versionEnv))
	if err != nil {
		t.Fatalf("%s: %v", versionEnv, err)
	}
	// The parent holds our stdin open; if it dies, nobody kills us.
	go func() {
		io.Copy(io.Discard, os.Stdin)
		os.Exit(3)
	}()

	st, err := store.Open(os.Getenv(storeEnv), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	say("restored %d", st.Len())
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	c, err := mqtt.Dial(ctx, mqtt.Config{
		Servers:  []string{os.Getenv(brokerEnv)},
		ClientID: publisherID, // CleanStart false: a persistent session
		Version:  byte(version),
		Store:    st,
		Backoff:  backoff.Constant(retryDelay),
		// What earlier runs left is restored beyond MaxQueued; the
		// default (1000) would then hold new publishes back while the
		// broker is down, after a few kills without it.
		MaxQueued: maxQueued,
	})
	if err != nil {
		t.Fatal(err)
	}
	say("connected")

	switch mode {
	case modeFinish:
		finish(ctx, t, c, st, run)
		return
	case modeOffline:
		waitLost(ctx, t, c)
	}
	var seq atomic.Int64
	for range publishers {
		go publishUntilKilled(c, run, &seq)
	}
	<-c.Done()
	t.Fatalf("the client stopped before the kill: %v", c.Err())
}

// finish is modeFinish.
func finish(ctx context.Context, t *testing.T, c *mqtt.Client, st *store.File, run int) {
	if err := c.Flush(ctx); err != nil {
		t.Fatalf("flush what the store held: %v", err)
	}
	if err := c.Publish(ctx, mqtt.Message{Topic: topic, Payload: []byte(barrierOf(run)), QoS: mqtt.AtLeastOnce}); err != nil {
		t.Fatalf("publish the barrier: %v", err)
	}
	if err := c.Disconnect(ctx); err != nil {
		t.Fatalf("disconnect: %v", err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	say("finished")
}

// waitLost waits for the end of the connection Dial made.
func waitLost(ctx context.Context, t *testing.T, c *mqtt.Client) {
	for {
		select {
		case e := <-c.Events():
			if e.Kind == mqtt.ConnectionLost {
				return
			}
		case <-ctx.Done():
			t.Fatal("the broker was not stopped")
		}
	}
}

// publishUntilKilled publishes QoS 1 and 2 messages with PublishAsync, with
// at most perPublisher results outstanding, and says "stored" for each
// once PublishAsync has returned: with a Store, it returns once the message
// is durably in it (or once the publish has its result).
func publishUntilKilled(c *mqtt.Client, run int, seq *atomic.Int64) {
	type pending struct {
		payload string
		result  <-chan error
	}
	window := make(chan pending, perPublisher) // a FIFO of outstanding results
	check := func(payload string, err error) {
		if err != nil {
			say("failed %s %v", payload, err)
		}
	}
	for {
		if len(window) == cap(window) {
			p := <-window
			check(p.payload, <-p.result)
		}
		n := seq.Add(1)
		qos := mqtt.QoS(1 + n%2)
		payload := payloadOf(run, n, qos)
		result := c.PublishAsync(context.Background(), mqtt.Message{Topic: topic, Payload: []byte(payload), QoS: qos})
		select {
		case err := <-result:
			// It has its result already. nil: acknowledged, so it was
			// stored first (its PUBLISH waits for the sync); ErrInStore:
			// stored. Anything else: it never was.
			if err == nil || errors.Is(err, mqtt.ErrInStore) {
				say("stored %s", payload)
			}
			check(payload, err)
			if errors.Is(err, mqtt.ErrClosed) {
				return
			}
		default:
			say("stored %s", payload)
			window <- pending{payload, result}
		}
	}
}
