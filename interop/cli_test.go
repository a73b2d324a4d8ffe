package interop_test

import (
	"bytes"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/internal/mosquitto"
)

// cliVersion is the -V argument of mosquitto_pub and mosquitto_sub.
var cliVersion = map[byte]string{4: "mqttv311", 5: "mqttv5"}

// cliArgs are the arguments every mosquitto_pub and mosquitto_sub gets.
func cliArgs(b *mosquitto.Broker, version byte) []string {
	host, port, _ := strings.Cut(b.Addr(), ":")
	return []string{"-h", host, "-p", port, "-V", cliVersion[version]}
}

// mosquitto_sub is the subscriber: it gets what the client publishes, with
// the QoS and payload it was published with, live and (persistent session)
// while it was away.
func TestMosquittoSubReceives(t *testing.T) {
	mosquittoSub := mosquitto.Require(t, "mosquitto_sub")
	eachVersion(t, "", func(t *testing.T, b *mosquitto.Broker, v version) {
		prefix := "cli/sub/" + v.name + "/"
		pub := dial(t, config(b, "cli-pub-"+v.name, v.version))
		subID := "cli-sub-" + v.name
		args := append(cliArgs(b, v.version), "-i", subID, "-c", "-q", "2", "-t", prefix+"#", "-F", "%t %q %p")

		// Live: start it, wait until mosquitto acknowledged its
		// subscription, publish a message of each QoS.
		var out bytes.Buffer
		live := exec.Command(mosquittoSub, append(args, "-C", "3", "-W", "20")...)
		live.Stdout, live.Stderr = &out, &out
		if err := live.Start(); err != nil {
			t.Fatal(err)
		}
		if err := b.WaitLog(testCtx(t), func(log string) bool { return strings.Contains(log, "Sending SUBACK to "+subID) }); err != nil {
			live.Process.Kill()
			live.Wait()
			t.Fatalf("mosquitto_sub did not subscribe: %v\n%s", err, out.String())
		}
		var want []string
		for qos := mqtt.AtMostOnce; qos <= mqtt.ExactlyOnce; qos++ {
			topic := fmt.Sprintf("%slive%d", prefix, qos)
			publish(t, pub, mqtt.Message{Topic: topic, Payload: []byte("live " + topic), QoS: qos})
			want = append(want, fmt.Sprintf("%s %d live %s", topic, qos, topic))
		}
		if err := live.Wait(); err != nil {
			t.Fatalf("mosquitto_sub: %v\n%s", err, out.String())
		}
		if got := lines(out.String()); !slices.Equal(got, want) {
			t.Fatalf("mosquitto_sub printed\n%q\nwant\n%q", got, want)
		}

		// Away: its session queues QoS 1 and 2, which the next run gets.
		want = nil
		for qos := mqtt.AtLeastOnce; qos <= mqtt.ExactlyOnce; qos++ {
			topic := fmt.Sprintf("%saway%d", prefix, qos)
			publish(t, pub, mqtt.Message{Topic: topic, Payload: []byte("away " + topic), QoS: qos})
			want = append(want, fmt.Sprintf("%s %d away %s", topic, qos, topic))
		}
		got, err := exec.Command(mosquittoSub, append(args, "-C", "2", "-W", "20")...).CombinedOutput()
		if err != nil {
			t.Fatalf("mosquitto_sub: %v\n%s", err, got)
		}
		if got := lines(string(got)); !slices.Equal(got, want) {
			t.Fatalf("mosquitto_sub printed\n%q\nwant\n%q", got, want)
		}
	})
}

// mosquitto_pub is the publisher: the client gets its messages with their
// QoS, retain flag and (MQTT 5) properties.
func TestMosquittoPubPublishes(t *testing.T) {
	mosquittoPub := mosquitto.Require(t, "mosquitto_pub")
	eachVersion(t, "", func(t *testing.T, b *mosquitto.Broker, v version) {
		prefix := "cli/pub/" + v.name + "/"
		sub := dial(t, config(b, "cli-sub-"+v.name, v.version))
		subscribe(t, sub, mqtt.Subscription{Filter: prefix + "#", QoS: mqtt.ExactlyOnce})
		run := func(extra ...string) {
			t.Helper()
			out, err := exec.Command(mosquittoPub, append(cliArgs(b, v.version), extra...)...).CombinedOutput()
			if err != nil {
				t.Fatalf("mosquitto_pub %q: %v\n%s", extra, err, out)
			}
		}
		for qos := mqtt.AtMostOnce; qos <= mqtt.ExactlyOnce; qos++ {
			topic := prefix + "qos" + strconv.Itoa(int(qos))
			run("-q", strconv.Itoa(int(qos)), "-t", topic, "-m", "from mosquitto_pub")
			if m := receiveWant(t, sub, topic, "from mosquitto_pub"); m.QoS != qos || m.Retain {
				t.Fatalf("got QoS %d retain %v, want QoS %d, not retained", m.QoS, m.Retain, qos)
			}
		}

		// Retained: a later subscriber gets it with Retain set.
		run("-q", "1", "-r", "-t", prefix+"retained", "-m", "kept")
		receiveWant(t, sub, prefix+"retained", "kept")
		late := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "cli-late-" + v.name, Version: v.version, CleanStart: true})
		subscribe(t, late, mqtt.Subscription{Filter: prefix + "retained", QoS: mqtt.AtLeastOnce})
		if m := receiveWant(t, late, prefix+"retained", "kept"); !m.Retain {
			t.Fatal("the retained message arrived without Retain")
		}

		if v.version != 5 {
			return
		}
		run("-q", "1", "-t", prefix+"props", "-m", "{}",
			"-D", "publish", "content-type", "application/json",
			"-D", "publish", "user-property", "device", "window-1",
			"-D", "publish", "user-property", "room", "kitchen")
		m := receiveWant(t, sub, prefix+"props", "{}")
		wantUser := []codec.UserProperty{{Key: "device", Value: "window-1"}, {Key: "room", Value: "kitchen"}}
		if m.Properties == nil || m.Properties.ContentType != "application/json" || !slices.Equal(m.Properties.User, wantUser) {
			t.Fatalf("properties %+v, want content type application/json and user properties %v", m.Properties, wantUser)
		}
	})
}

// lines splits output into its non-empty lines.
func lines(s string) []string {
	var out []string
	for l := range strings.Lines(s) {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}
