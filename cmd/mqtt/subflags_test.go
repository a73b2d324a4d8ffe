package main

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/mqtttest"
)

// pub -D publish ... sends MQTT 5 properties (and chooses MQTT 5 by
// itself); sub -F prints them.
func TestPubProperties(t *testing.T) {
	t.Parallel()
	b := newBrokerV5(t)
	s := sub(t, b.Addr(), "-V", "5", "-q", "1", "-C", "1", "-t", "cli/props", "-F", "%C|%D|%F|%P|%R|%p|%E")
	pub(t, b.Addr(), "", "-q", "1", "-t", "cli/props", "-m", "hello",
		"-D", "publish", "content-type", "text/plain",
		"-D", "PUBLISH", "correlation-data", "c-1",
		"-D", "publish", "payload-format-indicator", "1",
		"-D", "publish", "user-property", "k", "v",
		"-D", "publish", "user-property", "k2", "v 2",
		"-D", "publish", "response-topic", "r/t",
		"-D", "publish", "message-expiry-interval", "60")
	if status := s.wait(); status != 0 {
		t.Fatalf("exit status %d; stderr:\n%s", status, s.stderr)
	}
	got := s.stdout.String()
	want := "text/plain|c-1|1|k:v k2:v 2|r/t|hello|"
	expiry, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(got, want), "\n"))
	if !strings.HasPrefix(got, want) || err != nil || expiry < 1 || expiry > 60 {
		t.Fatalf("stdout %q, want %q and the expiry left, 1 to 60", got, want+"60\n")
	}
}

// -D will ... gives the will MQTT 5 properties.
func TestWillProperties(t *testing.T) {
	t.Parallel()
	b := mqtttest.NewBroker(t)
	watcher := sub(t, b.Addr(), "-V", "5", "-C", "1", "-t", "cli/will/props", "-F", "%t %C %P %p")
	// mochi keeps a will's user properties and delay only, not its content
	// type (TestMosquittoParity has Mosquitto, which keeps all).
	p := sub(t, b.Addr(), "-t", "cli/nothing", "--will-topic", "cli/will/props", "--will-payload", "gone",
		"-D", "will", "content-type", "text/plain", "-D", "will", "user-property", "why", "killed")
	p.signal(os.Kill)
	p.wait()
	finish(t, watcher, 0, "cli/will/props  why:killed gone\n")
}

// --repeat publishes the message again once it is acknowledged,
// --repeat-delay apart; -d says which.
func TestPubRepeat(t *testing.T) {
	t.Parallel()
	b := mqtttest.NewBroker(t)
	s := sub(t, b.Addr(), "-q", "1", "-C", "3", "-t", "cli/repeat")
	_, stderr, status := runCmd(t, nil, append([]string{"pub"}, at(b.Addr(), "-d", "-q", "1", "-t", "cli/repeat", "-m", "again",
		"--repeat", "3", "--repeat-delay", "0.05")...)...)
	if status != 0 || !strings.Contains(stderr, "mqtt pub: message 3 of 3 acknowledged\n") {
		t.Fatalf("exit status %d, stderr:\n%s", status, stderr)
	}
	finish(t, s, 0, "again\nagain\nagain\n")
}

// -F formats, -N leaves the newline out, -T leaves topics out, and -C
// counts what is printed.
func TestSubOutputFlags(t *testing.T) {
	t.Parallel()
	b := mqtttest.NewBroker(t)
	formatted := sub(t, b.Addr(), "-q", "1", "-C", "2", "-t", "cli/out/#", "-T", "cli/out/skip", "-T", "cli/out/x/#",
		"-F", `%t=%p (%l bytes, QoS %q, retained %r, %x)\t|`)
	joined := sub(t, b.Addr(), "-q", "1", "-C", "2", "-N", "-t", "cli/out/#", "-T", "cli/out/skip", "-T", "cli/out/x/#")
	for _, m := range [][]string{{"cli/out/skip", "no"}, {"cli/out/x/y", "no"}, {"cli/out/a", "one"}, {"cli/out/b", "two"}} {
		pub(t, b.Addr(), "", "-q", "1", "-t", m[0], "-m", m[1])
	}
	finish(t, formatted, 0, "cli/out/a=one (3 bytes, QoS 1, retained 0, 6f6e65)\t|\ncli/out/b=two (3 bytes, QoS 1, retained 0, 74776f)\t|\n")
	finish(t, joined, 0, "onetwo")
}

// -R leaves retained messages out; --retained-only prints only them and
// exits at the first fresh one; with --remove-retained it clears them.
func TestSubRetainedFlags(t *testing.T) {
	t.Parallel()
	b := mqtttest.NewBroker(t)
	pub(t, b.Addr(), "", "-r", "-q", "1", "-t", "cli/ret/a", "-m", "old a")
	pub(t, b.Addr(), "", "-r", "-q", "1", "-t", "cli/ret/b", "-m", "old b")

	fresh := sub(t, b.Addr(), "-R", "-v", "-C", "1", "-t", "cli/ret/#")
	stale := sub(t, b.Addr(), "--retained-only", "-v", "-q", "1", "-t", "cli/ret/#")
	stale.waitStdout("cli/ret/a old a")
	stale.waitStdout("cli/ret/b old b")
	pub(t, b.Addr(), "", "-q", "1", "-t", "cli/ret/a", "-m", "new")
	finish(t, fresh, 0, "cli/ret/a new\n")
	// mochi sends retained messages in no particular order.
	retained := []string{"cli/ret/a old a", "cli/ret/b old b"}
	if status := stale.wait(); status != 0 || !sameLines(stale.stdout.String(), retained) {
		t.Fatalf("--retained-only: exit status %d, stdout %q, want the lines %q", status, stale.stdout, retained)
	}

	// mosquitto_sub's way of clearing a tree.
	stdout, stderr, status := runCmd(t, nil, append([]string{"sub"}, at(b.Addr(), "--remove-retained", "--retained-only", "-v", "-q", "1", "-t", "cli/ret/#")...)...)
	if status != 0 || !sameLines(stdout, retained) || stderr != "" {
		t.Fatalf("--remove-retained --retained-only: exit status %d, stdout %q, stderr %q", status, stdout, stderr)
	}
	stdout, _, status = runCmd(t, nil, append([]string{"sub"}, at(b.Addr(), "-W", "0.5", "-t", "cli/ret/#")...)...)
	if status != 27 || stdout != "" {
		t.Fatalf("after --remove-retained: exit status %d, stdout %q; want 27 and nothing retained", status, stdout)
	}
}

// -E exits once subscribed, which sets up a persistent session; -U takes a
// subscription out of it.
func TestSubUnsubscribeAndExit(t *testing.T) {
	t.Parallel()
	b := mqtttest.NewBroker(t)
	ctx, cancel := context.WithTimeout(t.Context(), patience)
	defer cancel()
	run := func(args ...string) string {
		t.Helper()
		stdout, stderr, status := runCmd(t, nil, append([]string{"sub"}, at(b.Addr(), args...)...)...)
		if status != 0 || stdout != "" {
			t.Fatalf("sub %q: exit status %d, stdout %q, stderr:\n%s", args, status, stdout, stderr)
		}
		if err := b.WaitDisconnected(ctx, "cli-unsub"); err != nil {
			t.Fatal(err)
		}
		return stderr
	}
	subscribed := func(topic string) bool {
		_, ok := b.Server().Topics.Subscribers(topic).Subscriptions["cli-unsub"]
		return ok
	}
	run("-c", "-i", "cli-unsub", "-q", "1", "-t", "cli/unsub/a", "-t", "cli/unsub/b", "-E")
	if !subscribed("cli/unsub/a") || !subscribed("cli/unsub/b") {
		t.Fatal("-c -E: the session has not kept both subscriptions")
	}
	if stderr := run("-c", "-i", "cli-unsub", "-q", "1", "-U", "cli/unsub/a", "-E", "-d"); !strings.Contains(stderr, "mqtt sub: unsubscribed from cli/unsub/a\n") {
		t.Fatalf("-U -d: stderr\n%s", stderr)
	}
	if subscribed("cli/unsub/a") || !subscribed("cli/unsub/b") {
		t.Fatal("-U cli/unsub/a: want the session subscribed to cli/unsub/b only")
	}
	// With -t, the subscriptions come first, as with mosquitto_sub.
	run("-c", "-i", "cli-unsub", "-q", "1", "-t", "cli/unsub/c", "-U", "cli/unsub/b", "-E")
	if subscribed("cli/unsub/b") || !subscribed("cli/unsub/c") {
		t.Fatal("-t cli/unsub/c -U cli/unsub/b: want the session subscribed to cli/unsub/c only")
	}
}

// -x: a clean start whose session the broker keeps that long after the
// connection; -x 0 with -c: a session that ends with it.
func TestSessionExpiry(t *testing.T) {
	t.Parallel()
	b := mqtttest.NewBroker(t)
	ctx, cancel := context.WithTimeout(t.Context(), patience)
	defer cancel()
	for _, tc := range []struct {
		id   string
		args []string
		kept bool
	}{
		{"cli-x-hour", []string{"-x", "3600"}, true},
		{"cli-x-props", []string{"-D", "connect", "session-expiry-interval", "3600"}, true},
		{"cli-x-zero", []string{"-x", "0", "-c"}, false},
		{"cli-x-default", []string{"-V", "5"}, false},
	} {
		topic := "cli/expiry/" + tc.id
		args := append([]string{"sub"}, at(b.Addr(), append([]string{"-i", tc.id, "-q", "1", "-t", topic, "-E"}, tc.args...)...)...)
		if _, stderr, status := runCmd(t, nil, args...); status != 0 {
			t.Fatalf("%q: exit status %d; stderr:\n%s", args, status, stderr)
		}
		if err := b.WaitDisconnected(ctx, tc.id); err != nil {
			t.Fatal(err)
		}
		if err := b.Publish(topic, []byte("while away"), 1, false); err != nil {
			t.Fatal(err)
		}
		// The library, not sub, comes back: a SUBSCRIBE now would be
		// refused by mochi v2.7.9, which takes the packet identifier of
		// the message it queued for the session to be in use for the
		// client's packets too.
		present, got := resume(ctx, t, b.URL(), tc.id)
		if present != tc.kept || (tc.kept && got != "while away") {
			t.Errorf("%s %q: session present %t, message %q; want %t", tc.id, tc.args, present, got, tc.kept)
		}
	}
}

// resume connects to server as clientID with a persistent MQTT 5 session,
// and returns whether the broker had kept one and the payload of the first
// message it delivers, if it had.
func resume(ctx context.Context, t *testing.T, server, clientID string) (present bool, payload string) {
	t.Helper()
	c, err := mqtt.Dial(ctx, mqtt.Config{Servers: []string{server}, ClientID: clientID, Version: 5, SessionExpiry: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case e := <-c.Events():
		if e.Kind != mqtt.Connected {
			t.Fatalf("first event %v, want Connected", e)
		}
		present = e.SessionPresent
	case <-ctx.Done():
		t.Fatal("no Connected event")
	}
	if !present {
		return false, ""
	}
	select {
	case m := <-c.Messages():
		return true, string(m.Payload)
	case <-ctx.Done():
		t.Fatal("the session delivered nothing")
	}
	return true, ""
}

// Messages that arrive together are printed in order, whatever the flags
// leave out: a -C count is reached exactly.
func TestSubCountsPrinted(t *testing.T) {
	t.Parallel()
	b := mqtttest.NewBroker(t)
	s := sub(t, b.Addr(), "-q", "1", "-C", "50", "-T", "cli/many/odd", "-F", "%p", "-t", "cli/many/#")
	var in strings.Builder
	var want []string
	for i := range 200 {
		in.WriteString(strconv.Itoa(i) + "\n")
	}
	pub(t, b.Addr(), in.String(), "-q", "1", "-l", "-t", "cli/many/odd")
	for i := range 50 {
		want = append(want, strconv.Itoa(i))
	}
	pub(t, b.Addr(), in.String(), "-q", "1", "-l", "-t", "cli/many/even")
	if status := s.wait(); status != 0 {
		t.Fatalf("exit status %d; stderr:\n%s", status, s.stderr)
	}
	if got := s.stdout.lines(); !slices.Equal(got, want) {
		t.Fatalf("stdout %q, want %q", got, want)
	}
}

// sameLines reports whether out is the lines of want, each ended by a
// newline, in any order.
func sameLines(out string, want []string) bool {
	got := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	slices.Sort(got)
	return strings.HasSuffix(out, "\n") && slices.Equal(got, slices.Sorted(slices.Values(want)))
}
