package interop_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/backoff"
	"github.com/robustmqtt/mqtt/mqtttest"
)

// TestClusterFailover runs a client against a two-node ejabberd 23.01
// cluster (scripts/cluster/start.sh; opt-in, see startCluster) and checks
// what becomes of its acknowledged messages when the node it is on dies,
// for MQTT 3.1.1 and 5.0.
//
// A subscriber with a persistent session sits on node 2. A publisher with a
// persistent session and both nodes in Config.Servers (each behind a
// mqtttest.Proxy, whose monitor checks the client's side of the protocol)
// publishes a QoS 1 message every 2 ms, up to 20 awaiting PUBACK, and
// records every result in a ledger, while:
//
//  1. it is on node 1, which is killed (SIGKILL): the client moves to node 2.
//     ejabberd keeps a session's state (subscriptions, queue, in-flight
//     messages) in an Erlang process on the node the client is connected
//     to, and only its name in the cluster's Mnesia: when that node dies,
//     the session dies with it, and node 2 answers Session Present 0. The
//     client reports SessionLost and sends what it still owes again, as
//     new messages.
//  2. node 1 is started again (same database: it rejoins the cluster); the
//     client stays on node 2. Meanwhile ejabberd crashes the publisher's
//     session on every PUBLISH (see below): the client reconnects to node 2
//     each time, Session Present 0, and sends again what it owes.
//  3. it is on node 2, whose proxy cuts the connection and refuses new
//     ones: the client moves to node 1 while node 2 is alive. Node 1 asks
//     the session's process on node 2 for its state and takes it over:
//     Session Present 1, and the client sends its unacknowledged messages
//     again with DUP. (If that new connection drops within a minute,
//     ejabberd refuses the client with CONNACK 0x80 until the old
//     session's process on node 2 has gone, a minute after the move; the
//     client retries, and gets a new session.)
//
// Then every acknowledged message must reach the subscriber, with one
// exception that is ejabberd's: node 1 acknowledges a PUBLISH once it has
// handed the message to the subscriber's session process on node 2, an
// asynchronous Erlang message that the SIGKILL can catch in node 1's
// outgoing buffer. Such a message (acknowledged by node 1 in the last
// moments before the kill, and delivered to no subscriber on node 2, a
// packet capture shows it never left node 1) is counted and logged as the
// broker's loss; any other loss fails the test. Duplicates are allowed
// (QoS 1) and counted.
//
// MQTT_CLUSTER_MESSAGES (default 300) is how many acknowledgements each
// phase waits for, MQTT_CLUSTER_INTERVAL (default 2ms; 0: as fast as the
// window allows) the pace of the publisher. Unpaced, the publisher outruns
// the subscriber, to which ejabberd sends one QoS 1 message at a time
// (each waits for the PUBACK of the one before), and the backlog can take
// longer than a phase to drain.
func TestClusterFailover(t *testing.T) {
	c := startCluster(t)
	perPhase := 300
	if s := os.Getenv("MQTT_CLUSTER_MESSAGES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("MQTT_CLUSTER_MESSAGES=%q: want a positive number", s)
		}
		perPhase = n
	}
	interval := 2 * time.Millisecond
	if s := os.Getenv("MQTT_CLUSTER_INTERVAL"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			t.Fatalf("MQTT_CLUSTER_INTERVAL=%q: want a duration such as 2ms, or 0", s)
		}
		interval = d
	}
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) { clusterFailover(t, c, v, perPhase, interval) })
	}
}

// killLossWindow is how long before the kill a message acknowledged by the
// killed node may be lost by ejabberd (see TestClusterFailover): far more
// than the milliseconds it takes, far less than a phase.
const killLossWindow = time.Second

func clusterFailover(t *testing.T, c *cluster, v version, perPhase int, interval time.Duration) {
	const phaseWait = time.Minute
	topic := "cluster/" + v.name + "/ledger"
	// ejabberd's mod_mqtt wants a username and a non-empty password; the
	// cluster's configuration lets anyone in anonymously.
	sub := dial(t, mqtt.Config{
		Servers: []string{c.urls[1]}, ClientID: "cluster-sub-" + v.name, Version: v.version,
		Username: "sub", Password: []byte("x"),
	})
	subscribe(t, sub, mqtt.Subscription{Filter: topic, QoS: mqtt.AtLeastOnce})
	subEvents := logEvents(sub)
	got := newReceipts()
	subDone := collect(sub, got)
	defer func() {
		sub.Close()
		<-subDone
		<-subEvents.done
	}()

	proxies := []*mqtttest.Proxy{
		mqtttest.NewProxy(t, strings.TrimPrefix(c.urls[0], "tcp://")),
		mqtttest.NewProxy(t, strings.TrimPrefix(c.urls[1], "tcp://")),
	}
	node := map[string]int{proxies[0].URL(): 1, proxies[1].URL(): 2}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	pub, err := mqtt.Start(mqtt.Config{
		Servers:  []string{proxies[0].URL(), proxies[1].URL()},
		ClientID: "cluster-pub-" + v.name, Version: v.version,
		Username: "pub", Password: []byte("x"),
		Backoff: backoff.Constant(100 * time.Millisecond),
	})
	if err != nil {
		t.Fatal(err)
	}
	events := logEvents(pub)
	defer func() {
		pub.Close()
		<-events.done
	}()
	first, _ := events.connected(t, 0, wait)
	if node[first.Server] != 1 {
		t.Fatalf("the first connection went to %s, want node 1", first.Server)
	}

	l := newLedger()
	stop := make(chan struct{})
	pubDone := publishLoop(ctx, pub, topic, 20, 0, interval, l, stop)
	stopped := false
	defer func() {
		if !stopped {
			close(stop)
			<-pubDone
		}
	}()
	waitAcked := func(n int, what string) {
		t.Helper()
		waitUntil(t, phaseWait, l.changed, what, func() bool { return l.ackedCount() >= n })
	}
	waitAcked(perPhase, "the first acknowledgements from node 1")

	// 1. Kill node 1 under the publisher.
	_, mark := events.since(0)
	killedAt, before := time.Now(), l.ackedCount()
	killTook := c.node(t, 1, "kill")
	moved, _ := events.connected(t, mark, phaseWait)
	movedAt := time.Now()
	if node[moved.Server] != 2 {
		t.Fatalf("after node 1 was killed the client connected to %s, want node 2", moved.Server)
	}
	waitAcked(l.ackedCount()+perPhase, "acknowledgements from node 2 after the kill")
	// SessionLost comes right after Connected: look once the phase is done.
	evs, mark := events.since(mark)
	checkSessionEvents(t, "node 1 killed", evs)
	t.Logf("%s 1. node 1 SIGKILLed (%v) under the publisher at %d acknowledged: on node 2 %v after the kill, Session Present %v; events %s",
		v.name, killTook.Round(time.Millisecond), before, movedAt.Sub(killedAt).Round(time.Millisecond), moved.SessionPresent, kinds(evs))

	// 2. Node 1 again: it rejoins the cluster with its database.
	restartTook := c.node(t, 1, "start")
	waitAcked(l.ackedCount()+perPhase, "acknowledgements after node 1 restarted")
	evs, mark = events.since(mark)
	checkSessionEvents(t, "node 1 restarted", evs)
	t.Logf("%s 2. node 1 restarted and rejoined in %v; meanwhile the publisher on node 2 saw %s",
		v.name, restartTook.Round(time.Millisecond), kinds(evs))
	if n := count(evs, mqtt.ClientIDConflict); n > 0 {
		t.Logf("%s    (%d of those connection losses the client took for a client ID conflict: ejabberd crashed the session; no other client had the ID)", v.name, n)
	}

	// 3. Move the publisher from node 2, alive, to node 1.
	before = l.ackedCount()
	proxies[1].Refuse(true)
	proxies[1].Cut()
	movedBack, _ := events.connected(t, mark, phaseWait)
	proxies[1].Refuse(false)
	if node[movedBack.Server] != 1 {
		t.Fatalf("after node 2's connection was cut the client connected to %s, want node 1", movedBack.Server)
	}
	// ejabberd keeps the old session's process on node 2 for a minute
	// after the move, answering any further take-over with an error: if
	// the new connection drops in that minute, node 1 refuses the client
	// (CONNACK 0x80, also to a 3.1.1 client) until it is gone.
	waitUntil(t, 2*phaseWait+30*time.Second, l.changed, "acknowledgements from node 1 after the move",
		func() bool { return l.ackedCount() >= before+perPhase })
	evs, _ = events.since(mark)
	checkSessionEvents(t, "moved from node 2 alive", evs)
	t.Logf("%s 3. connection to node 2 cut at %d acknowledged (node 2 alive): on node 1, Session Present %v; events %s",
		v.name, before, movedBack.SessionPresent, kinds(evs))

	close(stop)
	stopped = true
	select {
	case <-pubDone:
	case <-time.After(phaseWait):
		t.Fatal("the publishes in flight did not end")
	}
	acked, errs, issued := l.snapshot()
	waitFor(phaseWait, got.changed, func() bool { return len(got.missing(acked)) == 0 })
	// What is missing: the broker's loss at the kill, or a failure.
	var brokerLost, lost []int
	for _, seq := range got.missing(acked) {
		at, _ := l.ackedAt(seq)
		if at.Before(movedAt) && at.After(killedAt.Add(-killLossWindow)) {
			brokerLost = append(brokerLost, seq)
		} else {
			lost = append(lost, seq)
		}
	}
	if len(lost) > 0 {
		t.Errorf("%s: %d acknowledged messages never reached the subscriber: %s", v.name, len(lost), ranges(lost))
	}
	if len(brokerLost) > 20 {
		t.Errorf("%s: %d messages acknowledged by node 1 just before the kill never reached the subscriber (more than the 20 in flight): %s", v.name, len(brokerLost), ranges(brokerLost))
	}
	extra, dupSeqs := got.duplicates()
	got.mu.Lock()
	total := got.total
	got.mu.Unlock()
	var unknown, other int
	for _, err := range errs {
		if errors.Is(err, mqtt.ErrOutcomeUnknown) {
			unknown++
		} else {
			other++
			if other <= 3 {
				t.Errorf("publish failed: %v", err)
			}
		}
	}
	if len(dupSeqs) > 10 {
		dupSeqs = dupSeqs[:10]
	}
	subEvs, _ := subEvents.since(0)
	t.Logf("%s: %d published, %d acknowledged, %d outcome unknown, %d other errors; subscriber (events %s) received %d: %d duplicates (e.g. %v), %d lost by ejabberd at the kill (%s), %d lost otherwise",
		v.name, issued, len(acked), unknown, other, kinds(subEvs), total, extra, dupSeqs, len(brokerLost), ranges(brokerLost), len(lost))

	if err := pub.Disconnect(testCtx(t)); err != nil {
		t.Errorf("Disconnect: %v", err)
	}
	if err := sub.Disconnect(testCtx(t)); err != nil {
		t.Errorf("subscriber Disconnect: %v", err)
	}
}

// checkSessionEvents checks that every Connected event without Session
// Present is followed by a SessionLost event, and one with it is not.
func checkSessionEvents(t testing.TB, when string, evs []mqtt.Event) {
	t.Helper()
	for i, e := range evs {
		if e.Kind != mqtt.Connected {
			continue
		}
		lost := i+1 < len(evs) && evs[i+1].Kind == mqtt.SessionLost
		if lost == e.SessionPresent {
			t.Errorf("%s: Connected with Session Present %v, followed by SessionLost: %v (events %s)", when, e.SessionPresent, lost, kinds(evs))
		}
	}
}

// count returns how many of evs are of kind k.
func count(evs []mqtt.Event, k mqtt.EventKind) int {
	n := 0
	for _, e := range evs {
		if e.Kind == k {
			n++
		}
	}
	return n
}
