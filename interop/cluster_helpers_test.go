package interop_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// clusterEnv, set to 1, runs the cluster tests where ejabberd is installed
// (they take half a minute or more, so go test ./... skips them by default).
const clusterEnv = "MQTT_CLUSTER"

// clusterRequireEnv, set to 1, runs them too, and turns a cluster that cannot start (ejabberd
// missing) from a skipped test into a failed one, and lets
// scripts/cluster/start.sh install ejabberd when the test runs as root.
const clusterRequireEnv = "MQTT_REQUIRE_CLUSTER"

// clusterInstallHint says how to get the clustered broker.
const clusterInstallHint = "apt-get install --no-install-recommends ejabberd (Debian's 23.01, mod_mqtt), or " +
	clusterRequireEnv + "=1 to let scripts/cluster/start.sh install it as root"

// cluster is a two-node ejabberd cluster started by scripts/cluster/start.sh.
type cluster struct {
	scripts string    // the directory of the scripts
	dir     string    // the cluster's directory: configurations, databases, logs
	urls    [2]string // node 1's and node 2's MQTT address, tcp://127.0.0.1:port
	started time.Duration
}

// ejabberdInstalled reports whether Debian's ejabberd is there: erl, and the
// ejabberd application that start.sh runs with it.
func ejabberdInstalled() bool {
	if _, err := exec.LookPath("erl"); err != nil {
		return false
	}
	for _, pattern := range []string{"/usr/lib/*/ejabberd-*/ebin/ejabberd.app", "/usr/lib/ejabberd-*/ebin/ejabberd.app", "/usr/lib/erlang/lib/ejabberd-*/ebin/ejabberd.app"} {
		if m, _ := filepath.Glob(pattern); len(m) > 0 {
			return true
		}
	}
	return false
}

// startCluster starts a two-node cluster for the test and stops it when the
// test ends. Without ejabberd it skips the test, or fails it when
// clusterRequireEnv is 1.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	required := os.Getenv(clusterRequireEnv) == "1"
	if !required && os.Getenv(clusterEnv) != "1" {
		t.Skipf("cluster: a two-node ejabberd cluster takes half a minute; to run this test: %s=1 (needs %s)", clusterEnv, clusterInstallHint)
	}
	if !required && !ejabberdInstalled() {
		t.Skip("cluster: ejabberd is not installed; to run this test: " + clusterInstallHint)
	}
	scripts, err := filepath.Abs(filepath.Join("..", "scripts", "cluster"))
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{scripts: scripts, dir: t.TempDir()}
	install := "0"
	if required {
		install = "1"
	}
	begin := time.Now()
	out, err := c.run(t, 5*time.Minute, []string{"MQTT_CLUSTER_INSTALL=" + install, "MQTT_CLUSTER_PARENT=" + strconv.Itoa(os.Getpid())}, "start.sh", c.dir)
	c.started = time.Since(begin)
	// Registered before any failure below: a half-started cluster is
	// stopped too. KEEP=1: t.TempDir removes the directory afterwards.
	t.Cleanup(func() {
		if t.Failed() {
			c.logTails(t)
		}
		if _, err := c.run(t, time.Minute, []string{"KEEP=1"}, "stop.sh", c.dir); err != nil {
			t.Errorf("cluster: stop: %v", err)
		}
	})
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 3 && !required {
		t.Skipf("cluster: %v; to run this test: %s", err, clusterInstallHint)
	}
	if err != nil {
		t.Fatalf("cluster: start: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var n int
		var url string
		if _, err := fmt.Sscanf(line, "node%d %s", &n, &url); err == nil && (n == 1 || n == 2) {
			c.urls[n-1] = url
		}
	}
	if c.urls[0] == "" || c.urls[1] == "" {
		t.Fatalf("cluster: start.sh printed no two addresses:\n%s", out)
	}
	t.Logf("cluster: ejabberd nodes at %s and %s, started in %v", c.urls[0], c.urls[1], c.started.Round(100*time.Millisecond))
	return c
}

// node runs node.sh on node n (1 or 2): "kill", "start", "stop".
func (c *cluster) node(t testing.TB, n int, action string) time.Duration {
	t.Helper()
	begin := time.Now()
	if _, err := c.run(t, 2*time.Minute, nil, "node.sh", c.dir, fmt.Sprint(n), action); err != nil {
		t.Fatalf("cluster: node %d %s: %v", n, action, err)
	}
	return time.Since(begin)
}

// run runs one of the scripts with extra environment variables and returns
// its standard output; its error carries the standard error.
func (c *cluster) run(t testing.TB, timeout time.Duration, env []string, script string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join(c.scripts, script)}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%s: %w: %s", script, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), err
}

// logTails logs the end of each node's ejabberd log.
func (c *cluster) logTails(t testing.TB) {
	for n := 1; n <= 2; n++ {
		data, err := os.ReadFile(filepath.Join(c.dir, fmt.Sprintf("node%d", n), "ejabberd.log"))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) > 30 {
			lines = lines[len(lines)-30:]
		}
		t.Logf("cluster: the end of node %d's log:\n%s", n, strings.Join(lines, "\n"))
	}
}
