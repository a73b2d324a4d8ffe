package interop_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/backoff"
)

// The consumers of TestSharedSubscriptions are processes: this test binary
// run again with -test.run=^TestSharedConsumerProcess$ and consumerEnv set,
// so that one can be killed (SIGKILL) like a crashed worker. A consumer
// reports on standard output, one line per event, each starting with
// "shared ":
//
//	shared ready                 subscribed
//	shared got SEQ DUP           a job arrived (DUP 1 if flagged as sent before)
//	shared done SEQ              the job is processed (with ManualAck: before its Ack)
//	shared stopped ERR           Disconnect returned ERR ("<nil>": clean)
//
// It reads commands on standard input, one a line: "hold" (from now on,
// take jobs but neither process nor acknowledge them: the jobs a worker
// is busy with when it dies), "stop" (Disconnect gracefully and exit).
// End of input is "stop" too.
const consumerEnv = "MQTT_SHARED_CONSUMER"

// sharedMode is how a consumer takes its jobs.
type sharedMode struct {
	name string
	// persistent: CleanStart false (and a session expiry of an hour under
	// MQTT 5), so the broker keeps the session while the consumer is away.
	persistent bool
	// manualAck: Config.ManualAck, and Ack only once the job is processed.
	// Without it the client acknowledges a job as soon as the
	// application takes it from Messages, before processing.
	manualAck bool
	// drain: a graceful stop unsubscribes first, finishes the jobs it
	// holds and those still arriving (until none came for 300 ms), then
	// disconnects. Otherwise it just disconnects.
	drain bool
}

var sharedModes = map[string]sharedMode{
	"naive":   {name: "naive"},                                                 // clean session, acknowledged on receipt
	"manual":  {name: "manual", manualAck: true},                               // clean session, acknowledged after processing
	"durable": {name: "durable", persistent: true, manualAck: true},            // persistent session, acknowledged after processing
	"drain":   {name: "drain", persistent: true, manualAck: true, drain: true}, // durable, and a graceful stop drains first
}

// TestSharedConsumerProcess is the consumer process of
// TestSharedSubscriptions; run directly, it skips.
func TestSharedConsumerProcess(t *testing.T) {
	if os.Getenv(consumerEnv) != "1" {
		t.Skip("the consumer process of TestSharedSubscriptions (runs only as its child)")
	}
	if err := runConsumer(os.Stdin, os.Stdout); err != nil {
		t.Fatal(err)
	}
}

// runConsumer is a consumer's life, configured by its environment.
func runConsumer(in io.Reader, out io.Writer) error {
	mode, ok := sharedModes[os.Getenv("MQTT_SHARED_MODE")]
	if !ok {
		return fmt.Errorf("MQTT_SHARED_MODE=%q", os.Getenv("MQTT_SHARED_MODE"))
	}
	ver, err := strconv.Atoi(os.Getenv("MQTT_SHARED_VERSION"))
	if err != nil {
		return err
	}
	cfg := mqtt.Config{
		Servers:    []string{os.Getenv("MQTT_SHARED_URL")},
		ClientID:   os.Getenv("MQTT_SHARED_ID"),
		Version:    byte(ver),
		CleanStart: !mode.persistent,
		ManualAck:  mode.manualAck,
		Backoff:    backoff.Constant(50 * time.Millisecond),
	}
	if mode.persistent {
		cfg.SessionExpiry = time.Hour
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := mqtt.Dial(ctx, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	filter := os.Getenv("MQTT_SHARED_FILTER")
	// A session the broker kept has its subscription: subscribing again
	// is not needed, and against mochi 2.7.9 it can fail (it refuses a
	// SUBSCRIBE whose packet identifier equals one of its own messages in
	// flight to the client: 0x91 under MQTT 5, no usable SUBACK under
	// 3.1.1).
	present := false
	select {
	case e := <-c.Events():
		present = e.Kind == mqtt.Connected && e.SessionPresent
	case <-ctx.Done():
		return ctx.Err()
	}
	if !present {
		if err := c.Subscribe(ctx, mqtt.Subscription{Filter: filter, QoS: mqtt.AtLeastOnce}); err != nil {
			return err
		}
	}
	w := bufio.NewWriter(out)
	say := func(format string, args ...any) {
		fmt.Fprintf(w, "shared "+format+"\n", args...)
		w.Flush()
	}
	say("ready")

	commands := make(chan string)
	go func() {
		defer close(commands)
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			commands <- strings.TrimSpace(sc.Text())
		}
	}()
	process := func(m mqtt.Message) error {
		say("done %s", m.Payload)
		return m.Ack()
	}
	var held []mqtt.Message
	hold := false
	for {
		select {
		case cmd, ok := <-commands:
			if ok && cmd == "hold" {
				hold = true
				continue
			}
			// "stop", or the end of input.
			if mode.drain {
				if err := drain(c, filter, held, process); err != nil {
					return err
				}
			}
			dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := c.Disconnect(dctx)
			dcancel()
			say("stopped %v", err)
			// The reader of stdin ends with it: the parent closes it.
			for range commands {
			}
			return nil
		case m, ok := <-c.Messages():
			if !ok {
				return fmt.Errorf("messages closed: %v", c.Err())
			}
			dup := 0
			if m.Duplicate {
				dup = 1
			}
			say("got %s %d", m.Payload, dup)
			if hold {
				held = append(held, m)
				continue
			}
			if err := process(m); err != nil {
				return err
			}
		}
	}
}

// drain is a durable consumer's graceful stop: leave the group, so that
// the broker sends this session nothing new, then finish the jobs held and
// those already on their way, until none came for 300 ms.
func drain(c *mqtt.Client, filter string, held []mqtt.Message, process func(mqtt.Message) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := c.Unsubscribe(ctx, filter); err != nil {
		return err
	}
	for _, m := range held {
		if err := process(m); err != nil {
			return err
		}
	}
	quiet := time.NewTimer(300 * time.Millisecond)
	defer quiet.Stop()
	for {
		select {
		case m, ok := <-c.Messages():
			if !ok {
				return fmt.Errorf("messages closed: %v", c.Err())
			}
			if err := process(m); err != nil {
				return err
			}
			quiet.Reset(300 * time.Millisecond)
		case <-quiet.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// consumer is a consumer process, seen from the test.
type consumer struct {
	name   string
	label  string // "'" for a consumer that came back under a name used before
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	ready  chan struct{} // closed at "shared ready"
	exited chan struct{} // closed once its output ended and it was waited for

	mu      sync.Mutex
	got     map[int]int  // seq: how many times it arrived
	done    map[int]int  // seq: how many times processed
	dupGot  map[int]bool // seqs that arrived flagged DUP
	order   []int        // seqs processed, in order
	stopped string       // the "stopped" line's error, once it came
	err     error        // cmd.Wait's
	changed chan struct{}
}

// startConsumer starts a consumer process.
func startConsumer(t testing.TB, name string, env []string, changed chan struct{}) *consumer {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSharedConsumerProcess$", "-test.count=1", "-test.timeout=10m")
	cmd.Env = append(append(os.Environ(), consumerEnv+"=1", "MQTT_SHARED_ID="+name), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &consumer{
		name: name, cmd: cmd, stdin: stdin,
		ready: make(chan struct{}), exited: make(chan struct{}),
		got: map[int]int{}, done: map[int]int{}, dupGot: map[int]bool{}, changed: changed,
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(c.exited)
		sc := bufio.NewScanner(stdout)
		readyOnce := sync.Once{}
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) < 2 || f[0] != "shared" {
				continue // the test framework's own lines
			}
			c.mu.Lock()
			switch f[1] {
			case "ready":
				readyOnce.Do(func() { close(c.ready) })
			case "got":
				seq, _ := strconv.Atoi(f[2])
				c.got[seq]++
				if len(f) > 3 && f[3] == "1" {
					c.dupGot[seq] = true
				}
			case "done":
				seq, _ := strconv.Atoi(f[2])
				c.done[seq]++
				c.order = append(c.order, seq)
			case "stopped":
				c.stopped = strings.Join(f[2:], " ")
			}
			c.mu.Unlock()
			select {
			case changed <- struct{}{}:
			default:
			}
		}
		io.Copy(io.Discard, stdout)
		err := cmd.Wait()
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
		select {
		case changed <- struct{}{}:
		default:
		}
	}()
	t.Cleanup(func() {
		c.kill()
		<-c.exited
	})
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-c.ready:
	case <-c.exited:
		t.Fatalf("consumer %s exited before it was ready: %v", name, c.err)
	case <-timer.C:
		t.Fatalf("consumer %s not ready within %v", name, wait)
	}
	return c
}

// send writes a command to the consumer.
func (c *consumer) send(cmd string) {
	io.WriteString(c.stdin, cmd+"\n")
}

// kill sends SIGKILL, if it still runs.
func (c *consumer) kill() {
	select {
	case <-c.exited:
	default:
		c.cmd.Process.Kill()
	}
}

// stop asks for a graceful stop and waits until the process has exited.
func (c *consumer) stop(t testing.TB) {
	t.Helper()
	c.send("stop")
	c.stdin.Close()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-c.exited:
	case <-timer.C:
		t.Fatalf("consumer %s did not stop within %v", c.name, wait)
	}
}

// inFlight returns the jobs that arrived and were not processed (held).
func (c *consumer) inFlight() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var seqs []int
	for seq := range c.got {
		if c.done[seq] == 0 {
			seqs = append(seqs, seq)
		}
	}
	return sortedInts(seqs)
}

// processed returns how many jobs it processed (duplicates counted).
func (c *consumer) processed() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.order)
}
