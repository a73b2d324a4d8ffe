package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
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
Without -W, a first connection refused (no broker on the port, a CONNACK refusal,
an unknown host) ends it at once, and others are retried for 10s.
Exit status: 0 done (-C reached, or interrupted); 1 failed; 2 bad flags;
27 -W elapsed.`

// subBatch is how many messages are written to stdout before it is flushed
// and they are acknowledged, when they arrive faster than that.
const subBatch = 64

// outputOptions are the flags that say how sub and rr print a message.
type outputOptions struct {
	verbose bool
	noEOL   bool
	format  string
	pretty  bool
}

func (o *outputOptions) register(fs *flag.FlagSet) {
	fs.BoolVar(&o.verbose, "v", false, `print "topic payload" instead of the payload alone`)
	fs.BoolVar(&o.noEOL, "N", false, "print no newline after each message")
	fs.StringVar(&o.format, "F", "", "print each message as `format` says (overrides -v; a newline follows unless -N):\n\t"+
		strings.ReplaceAll(formatVerbs, "\n", "\n\t"))
	fs.BoolVar(&o.pretty, "pretty", false, "indent the JSON of -F %j and %J")
}

// printer returns the printer the flags describe; warn says on stderr what
// it cannot print as asked.
func (o *outputOptions) printer(set map[string]bool, warn func(string, ...any)) (*printer, error) {
	p := &printer{verbose: o.verbose, noEOL: o.noEOL, pretty: o.pretty, warn: warn}
	if set["F"] {
		f, err := parseFormat(o.format)
		if err != nil {
			return nil, err
		}
		p.format = f
	}
	return p, nil
}

// subOptions are the flags of sub beyond the shared ones.
type subOptions struct {
	output         outputOptions
	topics         stringList // -t
	filterOut      stringList // -T
	unsubscribe    stringList // -U
	count          int        // -C
	noRetained     bool       // -R
	retainedOnly   bool       // --retained-only
	removeRetained bool       // --remove-retained
	exitSubscribed bool       // -E
}

func subCommand(ctx context.Context, args []string, std stdio) int {
	var so subOptions
	o, cfg, urlTopic, status, done := setup("sub", "mqtt sub {-h host [-p port] | --url URL} -t filter [-t filter ...] [flags]",
		subAbout, args, std, func(fs *flag.FlagSet) {
			fs.Var(&so.topics, "t", "topic `filter` to subscribe to; repeat it for more")
			fs.IntVar(&so.count, "C", 0, "exit after `count` messages printed")
			fs.Var(&so.filterOut, "T", "do not print messages whose topic matches `filter`; repeat it for more")
			fs.Var(&so.unsubscribe, "U", "unsubscribe from `filter` once subscribed (for a persistent session, -c); repeat it for more")
			fs.BoolVar(&so.noRetained, "R", false, "do not print retained messages (stale: sent because of the subscription)")
			fs.BoolVar(&so.retainedOnly, "retained-only", false, "print retained messages only, and exit at the first message that is not retained")
			fs.BoolVar(&so.removeRetained, "remove-retained", false, "clear every retained message received (publish an empty retained message to its topic)")
			fs.BoolVar(&so.exitSubscribed, "E", false, "exit once subscribed (and unsubscribed, with -U): with -c, sets up or changes a persistent session")
			so.output.register(fs)
		})
	if done {
		return status
	}
	if urlTopic != "" {
		so.topics = append(stringList{urlTopic}, so.topics...)
	}
	s := &subscriber{o: o, std: std, out: bufio.NewWriter(std.out), count: so.count,
		noRetained: so.noRetained, retainedOnly: so.retainedOnly, removeRetained: so.removeRetained,
		rep: &reporter{command: "sub", w: std.errOut, o: o}}
	subs, err := so.check(o, s)
	if err != nil {
		return fail(std, "sub", err)
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
	s.c = c
	err = s.run(runCtx, subs, so.unsubscribe, so.exitSubscribed)
	graceCtx, cancelGrace := context.WithTimeout(context.WithoutCancel(ctx), disconnectGrace)
	defer cancelGrace()
	c.Disconnect(graceCtx) // lets the removals of retained messages finish
	s.removalResults()
	if err != nil {
		return fail(std, "sub", err)
	}
	return exitOK
}

// check checks the flags of sub, sets what they say in s, and returns the
// subscriptions to make.
func (so *subOptions) check(o connOptions, s *subscriber) ([]mqtt.Subscription, error) {
	if len(so.topics) == 0 && len(so.unsubscribe) == 0 {
		return nil, usagef("give a topic filter to subscribe to: -t filter")
	}
	subs := make([]mqtt.Subscription, len(so.topics))
	for i, t := range so.topics {
		if err := codec.ValidateTopicFilter(t); err != nil {
			return nil, usagef("-t %q: %v", t, err)
		}
		subs[i] = mqtt.Subscription{Filter: t, QoS: mqtt.QoS(o.qos)}
	}
	for _, list := range []struct {
		flag    string
		filters stringList
	}{{"-T", so.filterOut}, {"-U", so.unsubscribe}} {
		for _, f := range list.filters {
			if err := codec.ValidateTopicFilter(f); err != nil {
				return nil, usagef("%s %q: %v", list.flag, f, err)
			}
		}
	}
	if so.count < 0 {
		return nil, usagef("-C %d: the count cannot be negative", so.count)
	}
	if so.noRetained && so.retainedOnly {
		return nil, usagef("give -R (no retained messages) or --retained-only, not both")
	}
	pr, err := so.output.printer(o.set, func(format string, args ...any) {
		fmt.Fprintf(s.std.errOut, "mqtt sub: "+format+"\n", args...)
	})
	if err != nil {
		return nil, err
	}
	s.printer, s.filterOut = pr, so.filterOut
	return subs, nil
}

// subscriber prints what one subscription brings, and reports the
// connection's changes.
type subscriber struct {
	c       *mqtt.Client
	o       connOptions
	std     stdio
	out     *bufio.Writer
	printer *printer
	count   int // 0: no limit

	filterOut      []string // -T
	noRetained     bool     // -R
	retainedOnly   bool     // --retained-only
	removeRetained bool     // --remove-retained

	rep *reporter

	received int            // messages printed
	unacked  []mqtt.Message // handled (printed or skipped), not yet flushed and acknowledged
	buf      []byte         // one message, printed

	// --remove-retained: the results of the empty retained messages sent,
	// and by topic how many of them may come back as an empty message
	// that is not retained, not to be printed.
	removals []<-chan error
	echoes   map[string]int
}

// run subscribes, unsubscribes from unsub, then prints messages until -C is
// reached (nil), ctx ends (nil for an interrupt) or the client stops. With
// exitSubscribed (-E) it returns once subscribed and unsubscribed.
func (s *subscriber) run(ctx context.Context, subs []mqtt.Subscription, unsub []string, exitSubscribed bool) error {
	reportConnected(s.c, s.rep)
	if len(subs) > 0 {
		if err := s.subscribe(ctx, subs); err != nil {
			return err
		}
	}
	if len(unsub) > 0 {
		if err := s.c.Unsubscribe(ctx, unsub...); err != nil {
			if isInterrupt(ctx) {
				return nil
			}
			return explain(ctx, s.o, fmt.Errorf("unsubscribe: %w", err))
		}
		if s.o.debug {
			for _, f := range unsub {
				fmt.Fprintf(s.std.errOut, "mqtt sub: unsubscribed from %s\n", f)
			}
		}
	}
	if exitSubscribed {
		return nil
	}
	events := s.c.Events()
	for {
		select {
		case m, ok := <-s.c.Messages():
			if !ok {
				return s.stopped()
			}
			if done, err := s.print(ctx, m); done || err != nil {
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
func (s *subscriber) drainEvents() { reportWaiting(s.c, s.rep) }

// subscribe sends the SUBSCRIBE. A filter the broker refuses is a warning
// while another one was granted, and an error when none was.
func (s *subscriber) subscribe(ctx context.Context, subs []mqtt.Subscription) error {
	granted, err := s.c.SubscribeGranted(ctx, subs...)
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
		for i, sub := range subs {
			if _, no := refusedFilters(refused)[sub.Filter]; no {
				continue
			}
			if got := mqtt.QoS(granted[i]); got < sub.QoS {
				fmt.Fprintf(s.std.errOut, "mqtt sub: subscribed to %s (QoS %d: the broker granted less than the %d asked)\n", sub.Filter, got, sub.QoS)
			} else {
				fmt.Fprintf(s.std.errOut, "mqtt sub: subscribed to %s (QoS %d)\n", sub.Filter, got)
			}
		}
	}
	return nil
}

// print handles m and every message that is ready after it, up to
// subBatch, then flushes stdout and acknowledges them. done: -C is
// reached, or --retained-only met a fresh message.
func (s *subscriber) print(ctx context.Context, m mqtt.Message) (done bool, err error) {
	for {
		if s.handle(ctx, m) {
			return true, s.flush()
		}
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

// handle prints m unless a flag leaves it out, and keeps it to be
// acknowledged. stop: --retained-only met a message that is not retained,
// which is neither printed nor acknowledged, as mosquitto_sub does.
func (s *subscriber) handle(ctx context.Context, m mqtt.Message) (stop bool) {
	if s.retainedOnly && !m.Retain {
		// With --remove-retained too, the first of these is usually our
		// own clearing of a retained message, back from the broker: the
		// end of mosquitto_sub's idiom for clearing a tree.
		return true
	}
	s.unacked = append(s.unacked, m)
	if s.echoes[m.Topic] > 0 && !m.Retain && len(m.Payload) == 0 {
		// Our own clearing of a retained message, back from the broker
		// (no NoLocal: the idiom above needs it back).
		s.echoes[m.Topic]--
		return false
	}
	if slices.ContainsFunc(s.filterOut, func(f string) bool { return topicMatches(f, m.Topic) }) {
		return false
	}
	if s.removeRetained && m.Retain {
		s.remove(ctx, m.Topic)
	}
	if s.noRetained && m.Retain {
		return false
	}
	s.buf = s.printer.appendMessage(s.buf[:0], m, time.Now())
	s.out.Write(s.buf)
	s.received++
	return false
}

// remove clears the retained message of topic (--remove-retained): an
// empty retained message, at QoS 1 so that its result says whether the
// broker took it.
func (s *subscriber) remove(ctx context.Context, topic string) {
	s.removals = append(s.removals, s.c.PublishAsync(ctx, mqtt.Message{Topic: topic, Retain: true, QoS: mqtt.AtLeastOnce}))
	if s.o.debug {
		fmt.Fprintf(s.std.errOut, "mqtt sub: clearing the retained message of %s\n", topic)
	}
	if s.echoes == nil {
		s.echoes = map[string]int{}
	}
	s.echoes[topic]++
}

// removalResults says on stderr which retained messages could not be
// cleared. Call it after Disconnect, which waits for them.
func (s *subscriber) removalResults() {
	for _, r := range s.removals {
		select {
		case err := <-r:
			if err != nil {
				fmt.Fprintf(s.std.errOut, "mqtt sub: warning: --remove-retained: %v\n", err)
			}
		default:
			fmt.Fprintf(s.std.errOut, "mqtt sub: warning: --remove-retained: not acknowledged before exit\n")
		}
	}
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

// topicMatches reports whether topic matches filter: '+' is one level,
// '#' the rest, and a wildcard first does not match a topic that starts
// with '$' [MQTT-4.7.2-1].
func topicMatches(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	fs, ts := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, f := range fs {
		switch {
		case f == "#":
			return true
		case i >= len(ts):
			return false
		case f != "+" && f != ts[i]:
			return false
		}
	}
	return len(fs) == len(ts)
}

// refusedFilters is the filters e refused; nil for a nil e.
func refusedFilters(e *mqtt.SubscribeError) map[string]codec.ReasonCode {
	if e == nil {
		return nil
	}
	return e.Refused
}
