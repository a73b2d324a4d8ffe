package main

import (
	"context"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt/internal/mosquitto"
)

// The flags mosquitto_sub and mosquitto_pub have, side by side with
// theirs, through Mosquitto: the same messages printed the same way, the
// same sessions kept. Skipped when Mosquitto is not installed, unless
// MQTT_REQUIRE_MOSQUITTO=1.
func TestMosquittoParity(t *testing.T) {
	t.Parallel()
	m := mosquitto.New(t, "")
	mosquittoPub := mosquitto.Require(t, "mosquitto_pub")
	mosquittoSub := mosquitto.Require(t, "mosquitto_sub")
	ctx, cancel := context.WithTimeout(t.Context(), 2*patience)
	defer cancel()

	// theirs starts mosquitto_sub and returns once it has subscribed.
	theirs := func(t *testing.T, id string, args ...string) *proc {
		t.Helper()
		p := startProgram(t, mosquittoSub, nil, append(at(m.Addr(), "-i", id), args...)...)
		err := m.WaitLog(ctx, func(log string) bool { return strings.Contains(log, "Sending SUBACK to "+id) })
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	mosquittoPublish := func(t *testing.T, args ...string) {
		t.Helper()
		if _, stderr, status := runProgram(t, mosquittoPub, nil, at(m.Addr(), args...)...); status != 0 {
			t.Fatalf("mosquitto_pub %q: exit status %d; stderr:\n%s", args, status, stderr)
		}
	}
	// same waits for both and checks that they printed want.
	same := func(t *testing.T, ours, theirs *proc, want string) {
		t.Helper()
		finish(t, theirs, 0, want)
		finish(t, ours, 0, want)
	}

	t.Run("-F -v -N -T -C", func(t *testing.T) {
		mosquittoPublish(t, "-r", "-q", "1", "-t", "cli/par/f/r", "-m", "retained")
		format := `%t|%p|%q|%r|%l|%x|%X|%C|%D|%F|%P|%R|%10t|%-6t|%.2t|%05l|%-5l|\t|%%|@@`
		type pair struct{ ours, theirs *proc }
		var pairs []pair
		for i, flags := range [][]string{{"-F", format}, {"-v"}, {"-N"}, {"-v", "-N"}} {
			args := append([]string{"-V", "5", "-q", "1", "-C", "4", "-t", "cli/par/f/#", "-T", "cli/par/f/skip"}, flags...)
			pairs = append(pairs, pair{ours: sub(t, m.Addr(), args...), theirs: theirs(t, "mosquitto-sub-f-"+string(rune('a'+i)), args...)})
		}
		mosquittoPublish(t, "-q", "1", "-t", "cli/par/f/skip", "-m", "left out")
		mosquittoPublish(t, "-V", "5", "-q", "1", "-t", "cli/par/f/a", "-m", "from mosquitto_pub",
			"-D", "publish", "content-type", "text/plain", "-D", "publish", "user-property", "k", "v",
			"-D", "publish", "correlation-data", "c1", "-D", "publish", "response-topic", "r/1", "-D", "publish", "payload-format-indicator", "1")
		pub(t, m.Addr(), "", "-q", "1", "-t", "cli/par/f/b", "-m", "from mqtt pub",
			"-D", "publish", "content-type", "a/b", "-D", "publish", "user-property", "x", "y", "-D", "publish", "user-property", "x", "z",
			"-D", "publish", "correlation-data", "c2", "-D", "publish", "response-topic", "r/2")
		pub(t, m.Addr(), "", "-q", "1", "-t", "cli/par/f/c", "-m", "plain")
		wants := []string{
			"cli/par/f/r|retained|1|1|8|72657461696e6564|72657461696E6564||||||" + "cli/par/f/r|cli/par/f/r|cl|00008|8    |\t|%|@\n" +
				"cli/par/f/a|from mosquitto_pub|1|0|18|66726f6d206d6f7371756974746f5f707562|66726F6D206D6F7371756974746F5F707562|text/plain|c1|1|k:v|r/1|cli/par/f/a|cli/par/f/a|cl|00018|18   |\t|%|@\n" +
				"cli/par/f/b|from mqtt pub|1|0|13|66726f6d206d71747420707562|66726F6D206D71747420707562|a/b|c2||x:y x:z|r/2|cli/par/f/b|cli/par/f/b|cl|00013|13   |\t|%|@\n" +
				"cli/par/f/c|plain|1|0|5|706c61696e|706C61696E||||||cli/par/f/c|cli/par/f/c|cl|00005|5    |\t|%|@\n",
			"cli/par/f/r retained\ncli/par/f/a from mosquitto_pub\ncli/par/f/b from mqtt pub\ncli/par/f/c plain\n",
			"retainedfrom mosquitto_pubfrom mqtt pubplain",
			"cli/par/f/r retainedcli/par/f/a from mosquitto_pubcli/par/f/b from mqtt pubcli/par/f/c plain",
		}
		for i, p := range pairs {
			same(t, p.ours, p.theirs, wants[i])
		}
	})

	t.Run("-R --retained-only", func(t *testing.T) {
		mosquittoPublish(t, "-r", "-q", "1", "-t", "cli/par/r/a", "-m", "old a")
		mosquittoPublish(t, "-r", "-q", "1", "-t", "cli/par/r/b", "-m", "old b")
		args := []string{"-q", "1", "-v", "-t", "cli/par/r/#"}
		freshOurs := sub(t, m.Addr(), append(args, "-R", "-C", "1")...)
		freshTheirs := theirs(t, "mosquitto-sub-fresh", append(args, "-R", "-C", "1")...)
		staleOurs := sub(t, m.Addr(), append(args, "--retained-only")...)
		staleTheirs := theirs(t, "mosquitto-sub-stale", append(args, "--retained-only")...)
		for _, p := range []*proc{staleOurs, staleTheirs} {
			p.waitStdout("cli/par/r/b old b")
		}
		mosquittoPublish(t, "-q", "1", "-t", "cli/par/r/a", "-m", "new")
		same(t, freshOurs, freshTheirs, "cli/par/r/a new\n")
		same(t, staleOurs, staleTheirs, "cli/par/r/a old a\ncli/par/r/b old b\n")
	})

	// mosquitto_sub's idiom for clearing a tree of retained messages.
	t.Run("--remove-retained --retained-only", func(t *testing.T) {
		for _, tree := range []string{"cli/par/clear/ours", "cli/par/clear/theirs"} {
			mosquittoPublish(t, "-r", "-q", "1", "-t", tree+"/a", "-m", "a")
			mosquittoPublish(t, "-r", "-q", "1", "-t", tree+"/b", "-m", "b")
		}
		args := []string{"-q", "1", "-F", "%p %r", "--remove-retained", "--retained-only"}
		stdout, stderr, status := runCmd(t, nil, append([]string{"sub"}, at(m.Addr(), append(args, "-t", "cli/par/clear/ours/#")...)...)...)
		if status != 0 || stdout != "a 1\nb 1\n" {
			t.Fatalf("exit status %d, stdout %q, stderr %q", status, stdout, stderr)
		}
		// mosquitto_sub 2.0.11 stops once the first of its own clearing
		// messages comes back, as it should, but then neither sends its
		// DISCONNECT nor exits: it is done once Mosquitto has its second
		// clearing message.
		p := startProgram(t, mosquittoSub, nil, at(m.Addr(), append(args, "-i", "mosquitto-sub-clear", "-t", "cli/par/clear/theirs/#")...)...)
		cleared := regexp.MustCompile(`Received PUBLISH from mosquitto-sub-clear \(d0, q1, r1, m\d+, 'cli/par/clear/theirs/b', \.\.\. \(0 bytes\)\)`)
		err := m.WaitLog(ctx, cleared.MatchString)
		if err != nil {
			t.Fatal(err)
		}
		p.signal(os.Kill)
		p.wait()
		if got := p.stdout.String(); got != stdout {
			t.Fatalf("mosquitto_sub's stdout %q, ours %q", got, stdout)
		}
		// Nothing retained is left for a new subscriber.
		stdout, _, status = runCmd(t, nil, append([]string{"sub"}, at(m.Addr(), "-W", "0.5", "-t", "cli/par/clear/#")...)...)
		if status != 27 || stdout != "" {
			t.Fatalf("after clearing: exit status %d, stdout %q; want 27 and nothing", status, stdout)
		}
	})

	// Mosquitto keeps every will property (mochi, the embedded broker,
	// keeps only the user properties and the delay).
	t.Run("will properties", func(t *testing.T) {
		watcher := theirs(t, "mosquitto-sub-will", "-V", "5", "-C", "1", "-t", "cli/par/will", "-F", "%C|%P|%D|%R|%p")
		p := sub(t, m.Addr(), "-t", "cli/par/nothing", "--will-topic", "cli/par/will", "--will-payload", "gone",
			"-D", "will", "content-type", "text/plain", "-D", "will", "user-property", "why", "killed",
			"-D", "will", "correlation-data", "w1", "-D", "will", "response-topic", "r/w")
		p.signal(os.Kill)
		p.wait()
		finish(t, watcher, 0, "text/plain|why:killed|w1|r/w|gone\n")
	})

	// -x without -c: a clean start, whose session Mosquitto keeps for -x
	// seconds; -E sets it up.
	t.Run("-x -E", func(t *testing.T) {
		for _, id := range []string{"cli-par-x", "mosquitto-par-x"} {
			args := at(m.Addr(), "-V", "5", "-x", "300", "-i", id, "-q", "1", "-t", "cli/par/x/"+id, "-E")
			var status int
			var stderr string
			if strings.HasPrefix(id, "cli") {
				_, stderr, status = runCmd(t, nil, append([]string{"sub"}, args...)...)
			} else {
				_, stderr, status = runProgram(t, mosquittoSub, nil, args...)
			}
			if status != 0 {
				t.Fatalf("%s: exit status %d; stderr:\n%s", id, status, stderr)
			}
			err := m.WaitLog(ctx, func(log string) bool { return strings.Contains(log, "Client "+id+" disconnected.") })
			if err != nil {
				t.Fatal(err)
			}
			mosquittoPublish(t, "-q", "1", "-t", "cli/par/x/"+id, "-m", "kept")
		}
		again := []string{"-V", "5", "-c", "-x", "300", "-q", "1", "-C", "1", "-W", "5"}
		stdout, stderr, status := runCmd(t, nil, append([]string{"sub"}, at(m.Addr(), append(again, "-i", "cli-par-x", "-t", "cli/par/x/cli-par-x")...)...)...)
		theirStdout, theirStderr, theirStatus := runProgram(t, mosquittoSub, nil, at(m.Addr(), append(again, "-i", "mosquitto-par-x", "-t", "cli/par/x/mosquitto-par-x")...)...)
		if status != 0 || theirStatus != 0 || stdout != "kept\n" || theirStdout != stdout {
			t.Fatalf("ours: exit status %d, stdout %q, stderr %q; mosquitto_sub's: %d, %q, %q", status, stdout, stderr, theirStatus, theirStdout, theirStderr)
		}
	})

	t.Run("--repeat", func(t *testing.T) {
		s := theirs(t, "mosquitto-sub-repeat", "-q", "1", "-C", "3", "-t", "cli/par/repeat")
		pub(t, m.Addr(), "", "-q", "1", "-t", "cli/par/repeat", "-m", "again", "--repeat", "3", "--repeat-delay", "0.01")
		finish(t, s, 0, "again\nagain\nagain\n")
	})

	// mqtt rr's request reaches a responder through Mosquitto, which
	// forwards its Response Topic and Correlation Data.
	t.Run("rr", func(t *testing.T) {
		r := startResponder(t, m.URL(), "cli/par/req", false)
		stdout, stderr, status := runCmd(t, nil, append([]string{"rr"}, at(m.Addr(), "-q", "1", "-t", "cli/par/req", "-e", "cli/par/resp", "-m", "hi", "-F", "%p %D")...)...)
		id := <-r.seen
		if status != 0 || stdout != "re: hi "+string(id)+"\n" {
			t.Fatalf("exit status %d, stdout %q; stderr:\n%s", status, stdout, stderr)
		}
	})

	// Both fail at once on a port where nothing listens.
	t.Run("refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closed := ln.Addr().String()
		ln.Close()
		for _, program := range []string{binary, mosquittoPub} {
			args := at(closed, "-t", "x", "-m", "y")
			if program == binary {
				args = append([]string{"pub"}, args...)
			}
			start := time.Now()
			_, stderr, status := runProgram(t, program, nil, args...)
			if took := time.Since(start); status == 0 || took > connectWait/2 {
				t.Errorf("%s: exit status %d after %s; stderr %q", program, status, took, stderr)
			}
		}
	})
}
