package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/codec"
)

const subAbout = `Subscribes to one or more topic filters and prints every message that arrives:
its payload, or "topic payload" with -v, one per line. It keeps going through
lost connections and broker restarts, reconnecting with exponential backoff
(100ms to 5s, jittered), and says so on stderr. With -c -i id the session is
persistent: what is published while it is away is delivered when it is back,
if the broker kept the session. A QoS 1 or 2 message is acknowledged only once
it is written to stdout. Ctrl-C disconnects cleanly and exits 0.
Without -W the first connection must come within 10s.
Exit status: 0 done (-C reached, or interrupted); 1 failed; 2 bad flags;
27 -W elapsed.`

// subBatch is how many messages are written to stdout before it is flushed
// and they are acknowledged, when they arrive faster than that.
const subBatch = 64

func subCommand(ctx context.Context, args []string, std stdio) int {
	var (
		topics  stringList
		verbose bool
		count   int
	)
	o, cfg, urlTopic, status, done := setup("sub", "mqtt sub {-h host [-p port] | --url URL} -t filter [-t filter ...] [flags]",
		subAbout, args, std, func(fs *flag.FlagSet) {
			fs.Var(&topics, "t", "topic `filter` to subscribe to; repeat it for more")
			fs.BoolVar(&verbose, "v", false, `print "topic payload" instead of the payload alone`)
			fs.IntVar(&count, "C", 0, "exit after `count` messages")
		})
	if done {
		return status
	}
	if urlTopic != "" {
		topics = append(stringList{urlTopic}, topics...)
	}
	if len(topics) == 0 {
		return fail(std, "sub", usagef("give a topic filter to subscribe to: -t filter"))
	}
	subs := make([]mqtt.Subscription, len(topics))
	for i, t := range topics {
		if err := codec.ValidateTopicFilter(t); err != nil {
			return fail(std, "sub", usagef("-t %q: %v", t, err))
		}
		subs[i] = mqtt.Subscription{Filter: t, QoS: mqtt.QoS(o.qos)}
	}
	if count < 0 {
		return fail(std, "sub", usagef("-C %d: the count cannot be negative", count))
	}
	cfg.ManualAck = true // acknowledge what is on stdout, not what was received

	runCtx, cancel := o.deadline(ctx)
	defer cancel()
	c, err := o.connect(runCtx, cfg)
	if err != nil {
		if isInterrupt(runCtx) {
			return exitOK
		}
		return fail(std, "sub", err)
	}
	defer c.Close()
	s := &subscriber{c: c, o: o, std: std, out: bufio.NewWriter(std.out), verbose: verbose, count: count,
		rep: &reporter{command: "sub", w: std.errOut, o: o}}
	err = s.run(runCtx, subs)
	graceCtx, cancelGrace := context.WithTimeout(context.WithoutCancel(ctx), disconnectGrace)
	defer cancelGrace()
	c.Disconnect(graceCtx)
	if err != nil {
		return fail(std, "sub", err)
	}
	return exitOK
}

// subscriber prints what one subscription brings, and reports the
// connection's changes.
type subscriber struct {
	c       *mqtt.Client
	o       connOptions
	std     stdio
	out     *bufio.Writer
	verbose bool
	count   int // 0: no limit

	rep *reporter

	received int
	unacked  []mqtt.Message // written, not yet flushed and acknowledged
}

// run subscribes, then prints messages until -C is reached (nil), ctx ends
// (nil for an interrupt) or the client stops.
func (s *subscriber) run(ctx context.Context, subs []mqtt.Subscription) error {
	s.drainEvents() // the first Connected, so that -d says it first
	if err := s.subscribe(ctx, subs); err != nil {
		return err
	}
	events := s.c.Events()
	for {
		select {
		case m, ok := <-s.c.Messages():
			if !ok {
				return s.stopped()
			}
			if done, err := s.print(m); done || err != nil {
				s.drainEvents() // a reconnection that came with the last message
				return err
			}
		case e, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			s.rep.report(e)
		case <-ctx.Done():
			if isInterrupt(ctx) {
				return nil
			}
			if s.count > 0 {
				return fmt.Errorf("%w after %s (-W): %d of %d messages received", errTimeout, fmtSeconds(time.Duration(s.o.timeout)), s.received, s.count)
			}
			return fmt.Errorf("%w after %s (-W): %d messages received", errTimeout, fmtSeconds(time.Duration(s.o.timeout)), s.received)
		}
	}
}

// drainEvents reports the events that are waiting.
func (s *subscriber) drainEvents() {
	for {
		select {
		case e, ok := <-s.c.Events():
			if !ok {
				return
			}
			s.rep.report(e)
		default:
			return
		}
	}
}

// subscribe sends the SUBSCRIBE. A filter the broker refuses is a warning
// while another one was granted, and an error when none was.
func (s *subscriber) subscribe(ctx context.Context, subs []mqtt.Subscription) error {
	err := s.c.Subscribe(ctx, subs...)
	var refused *mqtt.SubscribeError
	switch {
	case err == nil:
	case errors.As(err, &refused) && len(refused.Refused) < len(subs):
		fmt.Fprintf(s.std.errOut, "mqtt sub: warning: %v\n", err)
	case isInterrupt(ctx):
		return nil
	default:
		return explain(ctx, s.o, fmt.Errorf("subscribe: %w", err))
	}
	if s.o.debug {
		for _, sub := range subs {
			if _, no := refusedFilters(refused)[sub.Filter]; !no {
				fmt.Fprintf(s.std.errOut, "mqtt sub: subscribed to %s (QoS %d)\n", sub.Filter, sub.QoS)
			}
		}
	}
	return nil
}

// print writes m and every message that is ready after it, up to subBatch,
// then flushes stdout and acknowledges them. done: -C is reached.
func (s *subscriber) print(m mqtt.Message) (done bool, err error) {
	for {
		s.write(m)
		if s.count > 0 && s.received == s.count {
			return true, s.flush()
		}
		if len(s.unacked) >= subBatch {
			break
		}
		var ok bool
		select {
		case m, ok = <-s.c.Messages():
		default:
		}
		if !ok {
			break // nothing ready, or the client stopped: the caller sees it next
		}
	}
	return false, s.flush()
}

func (s *subscriber) write(m mqtt.Message) {
	if s.verbose {
		s.out.WriteString(m.Topic)
		s.out.WriteByte(' ')
	}
	s.out.Write(m.Payload)
	s.out.WriteByte('\n')
	s.received++
	s.unacked = append(s.unacked, m)
}

// flush writes out what print buffered, then acknowledges it: a QoS 1 or 2
// message the broker considers delivered is on stdout.
func (s *subscriber) flush() error {
	if err := s.out.Flush(); err != nil {
		return fmt.Errorf("write stdout: %w", err)
	}
	for _, m := range s.unacked {
		m.Ack() // ErrClosed only: the broker sends it again to the session
	}
	s.unacked = s.unacked[:0]
	return nil
}

// stopped is the error for a client that stopped on its own.
func (s *subscriber) stopped() error {
	if err := s.c.Err(); err != nil {
		return gaveUp(err, "reconnecting")
	}
	return errors.New("the client stopped")
}

// refusedFilters is the filters e refused; nil for a nil e.
func refusedFilters(e *mqtt.SubscribeError) map[string]codec.ReasonCode {
	if e == nil {
		return nil
	}
	return e.Refused
}
