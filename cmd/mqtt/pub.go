package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/codec"
)

// pubOptions are the flags of pub beyond the shared ones.
type pubOptions struct {
	topics      stringList
	message     string
	file        string
	lines       bool
	stdin       bool
	null        bool
	retain      bool
	maxInflight int
	repeat      int     // --repeat: publish the one message this many times
	repeatDelay seconds // --repeat-delay: wait this long after each acknowledgement
}

const pubAbout = `Publishes one message (-m, -f, -n, -s) or one per line of stdin (-l, pipelined:
every line is sent without waiting for the previous acknowledgement) to a topic.
With QoS 1 or 2 it exits 0 only once the broker acknowledged every message; a
connection lost meanwhile is re-established and the messages are sent again.
Without -W, a first connection refused (no broker on the port, a CONNACK refusal,
an unknown host) ends it at once, and others are retried for 10s.
Exit status: 0 done; 1 failed; 2 bad flags; 27 -W elapsed.`

func pubCommand(ctx context.Context, args []string, std stdio) int {
	var p pubOptions
	o, cfg, urlTopic, status, done := setup("pub", "mqtt pub {-h host [-p port] | --url URL} -t topic {-m message | -f file | -l | -n | -s} [flags]",
		pubAbout, args, std, func(fs *flag.FlagSet) {
			fs.Var(&p.topics, "t", "`topic` to publish to")
			fs.StringVar(&p.message, "m", "", "`message` payload to send")
			fs.StringVar(&p.file, "f", "", "send the contents of `file` as the message")
			fs.BoolVar(&p.lines, "l", false, "send each line of stdin as a message (without its newline; an empty line is an empty message)")
			fs.BoolVar(&p.stdin, "s", false, "send all of stdin as one message")
			fs.BoolVar(&p.null, "n", false, "send a null (zero length) message")
			fs.BoolVar(&p.retain, "r", false, "retain the message")
			fs.IntVar(&p.repeat, "repeat", 1, "publish the message (-m, -f, -s or -n) `count` times, each once the previous one is acknowledged")
			fs.Var(&p.repeatDelay, "repeat-delay", "with --repeat, wait `seconds` (0.5, or 500ms) after each acknowledgement before the next")
			fs.IntVar(&p.maxInflight, "M", 0, fmt.Sprintf("at most `count` QoS 1 and 2 messages in flight (sent, not yet acknowledged); "+
				"by default the library's: %d for MQTT 3.1.1, %d for MQTT 5, less if the broker says so", mqtt.DefaultMaxInflight, mqtt.DefaultMaxInflightV5))
		})
	if done {
		return status
	}
	msg, err := p.message0(o, urlTopic)
	if err != nil {
		return fail(std, "pub", err)
	}
	cfg.MaxInflight = p.maxInflight // 0 without -M: the library's default for the version
	if !p.lines {
		if msg.Payload, err = p.payload(std.in); err != nil {
			return fail(std, "pub", err)
		}
	}

	if err := publish(ctx, o, cfg, msg, p, std); err != nil {
		return fail(std, "pub", err)
	}
	return exitOK
}

// publish connects, publishes msg, or every line of stdin as msg with -l,
// and disconnects once everything is acknowledged (QoS 1, 2) or written
// (QoS 0), the DISCONNECT following it on the same connection.
func publish(ctx context.Context, o connOptions, cfg mqtt.Config, msg mqtt.Message, p pubOptions, std stdio) error {
	runCtx, cancel := o.deadline(ctx)
	defer cancel()
	c, err := o.connect(runCtx, cfg)
	if err != nil {
		return err
	}
	// The connection's changes, said on stderr while this goroutine
	// publishes; over before publish returns.
	// Two goroutines say things on stderr: this one with -d, and the
	// reporter.
	errOut := &lockedWriter{w: std.errOut}
	rep := &reporter{command: "pub", w: errOut, o: o}
	// The first Connected now: the goroutine below might not read it
	// before disconnecting is set, and -d would not say it.
	reportConnected(c, rep)
	reported := make(chan struct{})
	var disconnecting atomic.Bool
	go func() {
		defer close(reported)
		for e := range c.Events() {
			// The broker closing the connection after our DISCONNECT
			// may be reported as a loss: it is none.
			if !disconnecting.Load() {
				rep.report(e)
			}
		}
	}()
	defer func() {
		c.Close()
		<-reported
	}()

	done := func(n int) {} // -d: says that line n is acknowledged (0: the one message)
	if o.debug {
		verb := "acknowledged"
		if msg.QoS == mqtt.AtMostOnce {
			verb = "sent"
		}
		done = func(n int) {
			switch {
			case n == 0:
				fmt.Fprintf(errOut, "mqtt pub: %s\n", verb)
			case p.lines:
				fmt.Fprintf(errOut, "mqtt pub: line %d %s\n", n, verb)
			default:
				fmt.Fprintf(errOut, "mqtt pub: message %d of %d %s\n", n, p.repeat, verb)
			}
		}
	}
	if p.lines {
		err = publishLines(runCtx, c, std.in, msg, done)
	} else {
		err = publishRepeated(runCtx, c, msg, p.repeat, time.Duration(p.repeatDelay), done)
	}
	if err != nil {
		return explain(runCtx, o, err)
	}
	graceCtx, cancelGrace := context.WithTimeout(context.WithoutCancel(ctx), disconnectGrace)
	defer cancelGrace()
	disconnecting.Store(true)
	c.Disconnect(graceCtx)
	return nil
}

// message0 checks the flags that describe the message and returns it
// without its payload.
func (p *pubOptions) message0(o connOptions, urlTopic string) (mqtt.Message, error) {
	var m mqtt.Message
	topics := p.topics
	if urlTopic != "" {
		topics = append([]string{urlTopic}, topics...)
	}
	switch len(topics) {
	case 0:
		return m, usagef("give the topic to publish to: -t topic")
	case 1:
	default:
		return m, usagef("give one topic, not %d (-t and the path of --url each give one)", len(topics))
	}
	if err := codec.ValidateTopicName(topics[0]); err != nil {
		return m, usagef("-t %q: %v", topics[0], err)
	}
	sources := 0
	for _, given := range []bool{o.set["m"], p.file != "", p.lines, p.stdin, p.null} {
		if given {
			sources++
		}
	}
	if sources != 1 {
		return m, usagef("give exactly one of -m message, -f file, -l, -n and -s")
	}
	if o.set["M"] && (p.maxInflight < 1 || p.maxInflight > math.MaxUint16) {
		return m, usagef("-M %d: the window is 1 to 65535 messages", p.maxInflight)
	}
	switch {
	case p.repeat < 1:
		return m, usagef("--repeat %d: at least 1", p.repeat)
	case p.lines && o.set["repeat"]:
		return m, usagef("--repeat repeats one message (-m, -f, -s or -n), not the lines of -l")
	case o.set["repeat-delay"] && !o.set["repeat"]:
		return m, usagef("--repeat-delay needs --repeat")
	}
	return mqtt.Message{Topic: topics[0], QoS: mqtt.QoS(o.qos), Retain: p.retain, Properties: o.props.publish}, nil
}

// payload returns the one message's payload, from -m, -f, -s or -n.
func (p *pubOptions) payload(stdin io.Reader) ([]byte, error) {
	switch {
	case p.file != "":
		data, err := os.ReadFile(p.file)
		if err != nil {
			return nil, fmt.Errorf("-f: %w", err)
		}
		return data, nil
	case p.stdin:
		data, err := io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("-s: read stdin: %w", err)
		}
		return data, nil
	case p.null:
		return nil, nil
	}
	return []byte(p.message), nil
}

// explain turns a publish or subscribe error that ctx caused into what the
// user did: -W elapsed, or an interrupt.
func explain(ctx context.Context, o connOptions, err error) error {
	switch {
	case ctx.Err() == nil:
		return err
	case isInterrupt(ctx):
		return fmt.Errorf("interrupted: %w", err)
	}
	return fmt.Errorf("%w after %s (-W): %w", errTimeout, fmtSeconds(time.Duration(o.timeout)), err)
}

// publishRepeated publishes m n times (--repeat), each once the previous
// one is acknowledged (QoS 1, 2) or written (QoS 0), waiting delay in
// between; done(i) once message i is, or done(0) for a single message.
func publishRepeated(ctx context.Context, c *mqtt.Client, m mqtt.Message, n int, delay time.Duration, done func(n int)) error {
	for i := 1; i <= n; i++ {
		if i > 1 && delay > 0 && !sleep(ctx, delay) {
			if isInterrupt(ctx) {
				return nil
			}
			return fmt.Errorf("%d of %d messages published", i-1, n)
		}
		if err := c.Publish(ctx, m); err != nil {
			if n > 1 {
				return fmt.Errorf("message %d of %d: %w", i, n, err)
			}
			return err
		}
		if n == 1 {
			done(0)
		} else {
			done(i)
		}
	}
	return nil
}

// line is one line of stdin, or why reading failed.
type line struct {
	payload []byte
	err     error
}

// publishLines publishes every line of in as a copy of m, pipelined: a line
// is handed to the client as soon as it is read, and results are collected
// in order as they come: done(n) once line n is. It returns once every line
// is acknowledged, at the first failure, or when ctx ends (nil for an
// interrupt with nothing left unacknowledged).
func publishLines(ctx context.Context, c *mqtt.Client, in io.Reader, m mqtt.Message, done func(n int)) error {
	lines := make(chan line)
	stop := make(chan struct{})
	defer close(stop)
	go readLines(in, lines, stop)

	type result struct {
		n   int // line number
		err <-chan error
	}
	var pending []result                // in line order
	finished := func(err error) error { // the result of pending[0]
		if err != nil {
			return fmt.Errorf("line %d: %w", pending[0].n, err)
		}
		done(pending[0].n)
		pending = pending[1:]
		return nil
	}
	read := 0
	for lines != nil || len(pending) > 0 {
		var front <-chan error
		if len(pending) > 0 {
			front = pending[0].err
		}
		// Results first, so that a failure stops the input promptly and
		// pending stays short.
		select {
		case err := <-front:
			if err := finished(err); err != nil {
				return err
			}
			continue
		default:
		}
		select {
		case err := <-front:
			if err := finished(err); err != nil {
				return err
			}
		case l, ok := <-lines:
			if !ok {
				lines = nil
				continue
			}
			if l.err != nil {
				return fmt.Errorf("-l: read stdin: %w", l.err)
			}
			read++
			msg := m
			msg.Payload = l.payload
			pending = append(pending, result{n: read, err: c.PublishAsync(ctx, msg)})
		case <-ctx.Done():
			if isInterrupt(ctx) && len(pending) == 0 {
				return nil
			}
			return fmt.Errorf("%d of %d lines not acknowledged", len(pending), read)
		}
	}
	return nil
}

// readLines sends each line of in, without its newline, until the end of
// in (then it closes lines), an error, or stop.
func readLines(in io.Reader, lines chan<- line, stop <-chan struct{}) {
	r := bufio.NewReader(in)
	for {
		b, err := r.ReadBytes('\n')
		if len(b) > 0 && b[len(b)-1] == '\n' {
			b = b[:len(b)-1]
		} else if errors.Is(err, io.EOF) && len(b) == 0 {
			close(lines)
			return
		}
		l := line{payload: b}
		if err != nil && !errors.Is(err, io.EOF) {
			l = line{err: err}
		}
		select {
		case lines <- l:
		case <-stop:
			return
		}
		if err != nil {
			if l.err == nil {
				close(lines) // the last line had no newline
			}
			return
		}
	}
}

// lockedWriter serialises the writes of several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}
