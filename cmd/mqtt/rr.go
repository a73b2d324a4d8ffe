package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/codec"
)

const rrAbout = `Request and response, as mosquitto_rr: subscribes to the response topic (-e), publishes
one request (-m, -f, -s or -n) to -t with MQTT 5's Response Topic (-e) and Correlation
Data (random, or -D publish correlation-data), prints the first response and exits 0.
A response is a message on the response topic with the same correlation data, or
none; a retained message, or one with other correlation data (a response to
somebody else's request), is skipped. MQTT 5 only. Without -W it waits for ever.
Exit status: 0 a response; 1 failed (or interrupted); 2 bad flags; 27 -W elapsed.`

// rrOptions are the flags of rr beyond the shared ones.
type rrOptions struct {
	topics        stringList
	responseTopic string
	message       string
	file          string
	stdin         bool
	null          bool
	noRetained    bool
	output        outputOptions
}

func rrCommand(ctx context.Context, args []string, std stdio) int {
	var ro rrOptions
	o, cfg, urlTopic, status, done := setup("rr", "mqtt rr {-h host [-p port] | --url URL} -t topic -e response-topic {-m message | -f file | -n | -s} [flags]",
		rrAbout, args, std, func(fs *flag.FlagSet) {
			fs.Var(&ro.topics, "t", "`topic` to send the request to")
			fs.StringVar(&ro.responseTopic, "e", "", "response `topic`: subscribed to, and the request's Response Topic")
			fs.StringVar(&ro.message, "m", "", "`message`: the request's payload")
			fs.StringVar(&ro.file, "f", "", "send the contents of `file` as the request")
			fs.BoolVar(&ro.stdin, "s", false, "send all of stdin as the request")
			fs.BoolVar(&ro.null, "n", false, "send a null (zero length) request")
			fs.BoolVar(&ro.noRetained, "R", false, "accepted for mosquitto_rr's scripts: a retained message is never taken for the response")
			ro.output.register(fs)
		})
	if done {
		return status
	}
	req, pr, err := ro.check(o, cfg, urlTopic, std)
	if err != nil {
		return fail(std, "rr", err)
	}
	if req.Payload, err = (&pubOptions{message: ro.message, file: ro.file, stdin: ro.stdin, null: ro.null}).payload(std.in); err != nil {
		return fail(std, "rr", err)
	}
	cfg.ManualAck = true // acknowledge the response once it is on stdout

	runCtx, cancel := o.deadline(ctx)
	defer cancel()
	c, err := o.connect(runCtx, cfg)
	if err != nil {
		return fail(std, "rr", err)
	}
	defer c.Close()
	r := &requester{c: c, o: o, std: std, printer: pr, rep: &reporter{command: "rr", w: std.errOut, o: o}}
	err = r.run(runCtx, req)
	graceCtx, cancelGrace := context.WithTimeout(context.WithoutCancel(ctx), disconnectGrace)
	defer cancelGrace()
	c.Disconnect(graceCtx)
	if err != nil {
		return fail(std, "rr", err)
	}
	return exitOK
}

// check checks the flags of rr and returns the request without its
// payload, and the printer of the response.
func (ro *rrOptions) check(o connOptions, cfg mqtt.Config, urlTopic string, std stdio) (mqtt.Message, *printer, error) {
	var m mqtt.Message
	if cfg.Version != codec.V5 {
		return m, nil, usagef("mqtt rr needs MQTT 5: Response Topic and Correlation Data are MQTT 5 properties (leave -V out, or give -V 5)")
	}
	topics := ro.topics
	if urlTopic != "" {
		topics = append(stringList{urlTopic}, topics...)
	}
	switch len(topics) {
	case 0:
		return m, nil, usagef("give the topic to send the request to: -t topic")
	case 1:
	default:
		return m, nil, usagef("give one topic, not %d (-t and the path of --url each give one)", len(topics))
	}
	if err := codec.ValidateTopicName(topics[0]); err != nil {
		return m, nil, usagef("-t %q: %v", topics[0], err)
	}
	if ro.responseTopic == "" {
		return m, nil, usagef("give the response topic: -e topic")
	}
	if err := codec.ValidateTopicName(ro.responseTopic); err != nil {
		return m, nil, usagef("-e %q: %v (it is the request's Response Topic: no wildcards)", ro.responseTopic, err)
	}
	sources := 0
	for _, given := range []bool{o.set["m"], ro.file != "", ro.stdin, ro.null} {
		if given {
			sources++
		}
	}
	if sources != 1 {
		return m, nil, usagef("give exactly one of -m message, -f file, -n and -s")
	}
	if o.props.given["publish/response-topic"] {
		return m, nil, usagef("-D publish response-topic: give the response topic with -e")
	}
	props := cloneOrNew(o.props.publish)
	props.ResponseTopic = ro.responseTopic
	if props.CorrelationData == nil {
		id := make([]byte, 16)
		rand.Read(id)
		props.CorrelationData = []byte(hex.EncodeToString(id))
	}
	pr, err := ro.output.printer(o.set, func(format string, args ...any) {
		fmt.Fprintf(std.errOut, "mqtt rr: "+format+"\n", args...)
	})
	if err != nil {
		return m, nil, err
	}
	return mqtt.Message{Topic: topics[0], QoS: mqtt.QoS(o.qos), Properties: props}, pr, nil
}

// cloneOrNew returns a copy of p to change, or new properties if p is nil.
// The copy shares p's slices, which are not changed.
func cloneOrNew(p *codec.Properties) *codec.Properties {
	if p == nil {
		return &codec.Properties{}
	}
	c := *p
	return &c
}

// requester sends one request and prints its response.
type requester struct {
	c       *mqtt.Client
	o       connOptions
	std     stdio
	printer *printer
	rep     *reporter
}

// run subscribes to the response topic, publishes req, and prints the
// first response. It returns nil once it is printed, and an error if ctx
// ends first (-W, an interrupt) or the client stops.
func (r *requester) run(ctx context.Context, req mqtt.Message) error {
	reportConnected(r.c, r.rep)
	responseTopic := req.Properties.ResponseTopic
	// NoLocal: with -e the same as -t, the request itself is no response.
	err := r.c.Subscribe(ctx, mqtt.Subscription{Filter: responseTopic, QoS: req.QoS, NoLocal: true})
	if err != nil {
		return explain(ctx, r.o, fmt.Errorf("subscribe to the response topic: %w", err))
	}
	r.debug("subscribed to %s (QoS %d)", responseTopic, req.QoS)
	sent := r.c.PublishAsync(ctx, req)
	events := r.c.Events()
	for {
		select {
		case err := <-sent:
			if err != nil {
				return explain(ctx, r.o, fmt.Errorf("request: %w", err))
			}
			sent = nil
			if req.QoS == mqtt.AtMostOnce {
				r.debug("request sent to %s", req.Topic)
			} else {
				r.debug("request to %s acknowledged", req.Topic)
			}
		case m, ok := <-r.c.Messages():
			if !ok {
				if err := r.c.Err(); err != nil {
					return gaveUp(err, "reconnecting")
				}
				return errors.New("the client stopped")
			}
			if why := notResponse(m, req.Properties.CorrelationData); why != "" {
				m.Ack()
				r.debug("skipped a message on %s: %s", m.Topic, why)
				continue
			}
			out := bufio.NewWriter(r.std.out)
			out.Write(r.printer.appendMessage(nil, m, time.Now()))
			if err := out.Flush(); err != nil {
				return fmt.Errorf("write stdout: %w", err)
			}
			m.Ack()
			return nil
		case e, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			r.rep.report(e)
		case <-ctx.Done():
			return explain(ctx, r.o, fmt.Errorf("no response on %s", responseTopic))
		}
	}
}

// notResponse says why m, received on the response topic, is not the
// response to the request with correlation data id; "" if it is.
func notResponse(m mqtt.Message, id []byte) string {
	switch {
	case m.Retain:
		return "retained, so published before the request"
	case m.Properties != nil && m.Properties.CorrelationData != nil && !bytes.Equal(m.Properties.CorrelationData, id):
		return "other correlation data: a response to another request"
	}
	return ""
}

func (r *requester) debug(format string, args ...any) {
	if r.o.debug {
		fmt.Fprintf(r.std.errOut, "mqtt rr: "+format+"\n", args...)
	}
}
