package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"

	mochi "github.com/mochi-mqtt/server/v2"

	"github.com/robustmqtt/mqtt/mqtttest"
)

// at returns the flags that point the command at addr ("127.0.0.1:port"),
// followed by args.
func at(addr string, args ...string) []string {
	host, port, _ := net.SplitHostPort(addr)
	return append([]string{"-h", host, "-p", port}, args...)
}

// sub starts mqtt sub against addr with -d, and waits until it has
// subscribed to its first -t.
func sub(t *testing.T, addr string, args ...string) *proc {
	t.Helper()
	p := start(t, nil, append([]string{"sub", "-d"}, at(addr, args...)...)...)
	p.waitStderr("mqtt sub: subscribed to ")
	return p
}

// pub runs mqtt pub against addr and fails the test unless it succeeds
// silently.
func pub(t *testing.T, addr string, stdin string, args ...string) {
	t.Helper()
	_, stderr, status := runCmd(t, strings.NewReader(stdin), append([]string{"pub"}, at(addr, args...)...)...)
	if status != 0 || stderr != "" {
		t.Fatalf("mqtt pub %q: exit status %d, stderr:\n%s", args, status, stderr)
	}
}

// finish waits for p to exit and checks its status and stdout.
func finish(t *testing.T, p *proc, wantStatus int, wantStdout string) {
	t.Helper()
	if status := p.wait(); status != wantStatus {
		t.Fatalf("mqtt %q: exit status %d, want %d; stderr:\n%s", p.args, status, wantStatus, p.stderr)
	}
	if got := p.stdout.String(); got != wantStdout {
		t.Fatalf("mqtt %q: stdout\n%q\nwant\n%q", p.args, got, wantStdout)
	}
}

// oneLine checks that stderr is one line that starts with prefix and
// contains want.
func oneLine(t *testing.T, stderr, prefix, want string) {
	t.Helper()
	if strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") || !strings.HasPrefix(stderr, prefix) || !strings.Contains(stderr, want) {
		t.Errorf("stderr %q: want one line that starts with %q and contains %q", stderr, prefix, want)
	}
}

// A message published with pub reaches a sub -C 1, which prints it and
// exits 0, at each QoS and protocol version.
func TestPubSubRoundTrip(t *testing.T) {
	t.Parallel()
	b := mqtttest.NewBroker(t)
	for _, tc := range []struct{ version, qos string }{{"311", "0"}, {"311", "1"}, {"mqttv5", "2"}, {"5", "1"}} {
		t.Run("V"+tc.version+"/q"+tc.qos, func(t *testing.T) {
			topic := "cli/round/" + tc.version + "/" + tc.qos
			s := sub(t, b.Addr(), "-V", tc.version, "-q", tc.qos, "-C", "1", "-t", topic)
			pub(t, b.Addr(), "", "-V", tc.version, "-q", tc.qos, "-t", topic, "-m", "hello "+tc.version)
			finish(t, s, 0, "hello "+tc.version+"\n")
		})
	}
}

// -v prints "topic payload"; -t repeats; -f and -s read the payload from a
// file and from stdin.
func TestSubVerboseManyTopics(t *testing.T) {
	t.Parallel()
	b := mqtttest.NewBroker(t)
	s := sub(t, b.Addr(), "-v", "-q", "1", "-C", "3", "-t", "cli/a/+", "-t", "cli/b")
	pub(t, b.Addr(), "", "-q", "1", "-t", "cli/a/1", "-m", "one two")
	file := t.TempDir() + "/payload"
	if err := os.WriteFile(file, []byte("from a file"), 0o600); err != nil {
		t.Fatal(err)
	}
	pub(t, b.Addr(), "", "-q", "1", "-t", "cli/b", "-f", file)
	pub(t, b.Addr(), "from stdin", "-q", "1", "-t", "cli/a/2", "-s")
	if status := s.wait(); status != 0 {
		t.Fatalf("exit status %d; stderr:\n%s", status, s.stderr)
	}
	got := s.stdout.lines()
	slices.Sort(got) // three publishers: the broker may route them in any order
	want := []string{"cli/a/1 one two", "cli/a/2 from stdin", "cli/b from a file"}
	if !slices.Equal(got, want) {
		t.Fatalf("stdout %q, want %q", got, want)
	}
}

// pub -l publishes every line of stdin, pipelined, and exits once all are
// acknowledged; they arrive in order.
func TestPubLines(t *testing.T) {
	t.Parallel()
	b := mqtttest.NewBroker(t)
	for _, qos := range []string{"0", "1", "2"} {
		t.Run("q"+qos, func(t *testing.T) {
			var in, want strings.Builder
			for i := range 100 {
				fmt.Fprintf(&in, "line %03d\n", i)
				fmt.Fprintf(&want, "line %03d\n", i)
			}
			in.WriteString("no newline at the end")
			want.WriteString("no newline at the end\n")
			topic := "cli/lines/" + qos
			s := sub(t, b.Addr(), "-q", qos, "-C", "101", "-t", topic)
			pub(t, b.Addr(), in.String(), "-q", qos, "-l", "-t", topic)
			finish(t, s, 0, want.String())
		})
	}
}

// A retained message reaches a later subscriber; pub -r -n clears it, and
// then a sub -W times out with status 27 and says so.
func TestRetainedAndTimeout(t *testing.T) {
	t.Parallel()
	b := mqtttest.NewBroker(t)
	pub(t, b.Addr(), "", "-r", "-q", "1", "-t", "cli/retained", "-m", "kept")
	stdout, stderr, status := runCmd(t, nil, append([]string{"sub"}, at(b.Addr(), "-v", "-C", "1", "-t", "cli/#")...)...)
	if status != 0 || stdout != "cli/retained kept\n" || stderr != "" {
		t.Fatalf("sub: exit status %d, stdout %q, stderr %q", status, stdout, stderr)
	}

	pub(t, b.Addr(), "", "-r", "-q", "1", "-t", "cli/retained", "-n")
	stdout, stderr, status = runCmd(t, nil, append([]string{"sub"}, at(b.Addr(), "-W", "1", "-C", "1", "-t", "cli/#")...)...)
	if status != 27 || stdout != "" {
		t.Fatalf("sub -W after the retained message was cleared: exit status %d, stdout %q; want 27 and nothing", status, stdout)
	}
	oneLine(t, stderr, "mqtt sub: ", "timed out after 1s (-W): 0 of 1 messages received")
}

// pub -W against a port where no broker listens gives up with status 27 and
// one line that says why.
func TestPubConnectTimeout(t *testing.T) {
	t.Parallel()
	b := mqtttest.NewBroker(t)
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	_, stderr, status := runCmd(t, nil, append([]string{"pub"}, at(b.Addr(), "-W", "1", "-q", "1", "-t", "cli/x", "-m", "lost")...)...)
	if status != 27 {
		t.Errorf("exit status %d, want 27", status)
	}
	oneLine(t, stderr, "mqtt pub: timed out: no connection to tcp://"+b.Addr()+" within 1s: last attempt: ", "connection refused")
}

// sub keeps its session through broker restarts: it says so on stderr,
// and prints what was published before, during and after the outage.
func TestSubSurvivesRestart(t *testing.T) {
	t.Parallel()
	b := mqtttest.NewBroker(t)
	ctx, cancel := context.WithTimeout(t.Context(), patience)
	defer cancel()
	s := sub(t, b.Addr(), "-c", "-i", "cli-survivor", "-q", "1", "-C", "3", "-t", "cli/alarm")
	pub(t, b.Addr(), "", "-q", "1", "-t", "cli/alarm", "-m", "before")
	s.waitStdout("before")
	// Acknowledged, or QoS 1 may deliver it again after the restart.
	acked := func() bool { return b.Inflight("cli-survivor") == 0 }
	if err := b.Wait(ctx, acked); err != nil {
		t.Fatal(err)
	}

	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	s.waitStderr("mqtt sub: connection lost: ")
	// Queued in the session while its client is away.
	if err := b.Publish("cli/alarm", []byte("during"), 1, false); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	s.waitStderr("mqtt sub: reconnected to tcp://" + b.Addr() + " (session present: true)")
	s.waitStdout("during")
	if err := b.Wait(ctx, acked); err != nil {
		t.Fatal(err)
	}

	if err := b.Restart(); err != nil {
		t.Fatal(err)
	}
	pub(t, b.Addr(), "", "-q", "1", "-t", "cli/alarm", "-m", "after")
	finish(t, s, 0, "before\nduring\nafter\n")
	if lost := strings.Count(s.stderr.String(), "connection lost"); lost != 2 {
		t.Errorf("%d lines say the connection was lost, want 2; stderr:\n%s", lost, s.stderr)
	}
}

// A clean session subscribes again after a restart.
func TestSubCleanSessionResubscribes(t *testing.T) {
	t.Parallel()
	b := mqtttest.NewBroker(t)
	s := sub(t, b.Addr(), "-C", "1", "-t", "cli/clean")
	b.Kick()
	s.waitStderr("mqtt sub: reconnected to tcp://" + b.Addr() + "; subscribed again")
	ctx, cancel := context.WithTimeout(t.Context(), patience)
	defer cancel()
	// The resubscription is on its way: the broker has it when it routes.
	err := b.Wait(ctx, func() bool { return len(b.Server().Topics.Subscribers("cli/clean").Subscriptions) > 0 })
	if err != nil {
		t.Fatal(err)
	}
	pub(t, b.Addr(), "", "-t", "cli/clean", "-m", "again")
	finish(t, s, 0, "again\n")
}

// SIGINT and SIGTERM disconnect cleanly (the will stays unpublished) and
// exit 0; a client that vanishes has its will published.
func TestInterruptAndWill(t *testing.T) {
	t.Parallel()
	b := mqtttest.NewBroker(t)
	watcher := sub(t, b.Addr(), "-v", "-C", "1", "-t", "cli/will/#")
	will := func(id string) []string {
		return []string{"-i", id, "--will-topic", "cli/will/" + id, "--will-payload", id + " vanished", "--will-qos", "1", "-t", "cli/nothing"}
	}
	ctx, cancel := context.WithTimeout(t.Context(), patience)
	defer cancel()
	for _, sig := range []os.Signal{os.Interrupt, syscall.SIGTERM} {
		id := "cli-" + strings.ToLower(strings.ReplaceAll(sig.String(), " ", "-"))
		p := sub(t, b.Addr(), will(id)...)
		p.signal(sig)
		if status := p.wait(); status != 0 {
			t.Fatalf("%v: exit status %d, want 0; stderr:\n%s", sig, status, p.stderr)
		}
		if err := b.WaitDisconnected(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	p := sub(t, b.Addr(), will("cli-killed")...)
	p.signal(os.Kill)
	p.wait()
	// Had a clean exit published its will, it would be the first line.
	finish(t, watcher, 0, "cli/will/cli-killed cli-killed vanished\n")
}

// --url takes mosquitto's form: credentials, host, port and topic.
func TestURL(t *testing.T) {
	t.Parallel()
	b := mqtttest.NewBroker(t)
	p := start(t, nil, "sub", "-d", "-C", "1", "--url", "tcp://"+b.Addr()+"/cli/url/#")
	p.waitStderr("subscribed to cli/url/#")
	_, stderr, status := runCmd(t, nil, "pub", "-q", "1", "-m", "via url", "-L", "mqtt://someone:secret@"+b.Addr()+"/cli/url/1")
	if status != 0 {
		t.Fatalf("pub: exit status %d; stderr:\n%s", status, stderr)
	}
	finish(t, p, 0, "via url\n")
}

// pub -l publishes each line as it comes; Ctrl-C once everything typed is
// acknowledged ends it with status 0.
func TestPubLinesInterrupt(t *testing.T) {
	t.Parallel()
	b := mqtttest.NewBroker(t)
	s := sub(t, b.Addr(), "-q", "1", "-C", "2", "-t", "cli/typed")
	stdin, typing, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	defer typing.Close()
	p := start(t, stdin, append([]string{"pub", "-d", "-l", "-q", "1"}, at(b.Addr(), "-t", "cli/typed")...)...)
	p.waitStderr("mqtt pub: connected to ")
	for _, line := range []string{"first", "second"} {
		if _, err := typing.WriteString(line + "\n"); err != nil {
			t.Fatal(err)
		}
		s.waitStdout(line)
	}
	p.waitStderr("mqtt pub: line 2 acknowledged")
	p.signal(os.Interrupt)
	if status := p.wait(); status != 0 {
		t.Fatalf("exit status %d after Ctrl-C; stderr:\n%s", status, p.stderr)
	}
	finish(t, s, 0, "first\nsecond\n")
}

// pub -W bounds the wait for acknowledgements too: a line typed while the
// broker is down times out with status 27.
func TestPubTimeoutWhileDisconnected(t *testing.T) {
	t.Parallel()
	b := mqtttest.NewBroker(t)
	stdin, typing, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	defer typing.Close()
	p := start(t, stdin, append([]string{"pub", "-d", "-l", "-q", "1", "-W", "1"}, at(b.Addr(), "-t", "cli/late")...)...)
	p.waitStderr("mqtt pub: connected to ")
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	p.waitStderr("mqtt pub: connection lost: ")
	if _, err := typing.WriteString("too late\n"); err != nil {
		t.Fatal(err)
	}
	if status := p.wait(); status != 27 {
		t.Fatalf("exit status %d, want 27; stderr:\n%s", status, p.stderr)
	}
	lines := p.stderr.lines()
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "mqtt pub: timed out after 1s (-W): ") {
		t.Fatalf("the last line of stderr is %q, want the timeout", last)
	}
}

// sub -d says which QoS the broker granted, and that it is less than asked
// when the broker caps it (mochi with a Maximum QoS of 1).
func TestSubDebugSaysTheGrantedQoS(t *testing.T) {
	t.Parallel()
	b := mqtttest.NewBrokerWith(t, mqtttest.BrokerConfig{Configure: func(o *mochi.Options) { o.Capabilities.MaximumQos = 1 }})
	p := start(t, nil, append([]string{"sub", "-d"}, at(b.Addr(), "-C", "1", "-q", "2", "-t", "cli/granted/#")...)...)
	p.waitStderr("mqtt sub: subscribed to cli/granted/# (QoS 1: the broker granted less than the 2 asked)")
	pub(t, b.Addr(), "", "-q", "1", "-m", "capped", "-t", "cli/granted/1")
	finish(t, p, 0, "capped\n")
}
