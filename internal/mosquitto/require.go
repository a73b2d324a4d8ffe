package mosquitto

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// RequireEnv is the environment variable that turns a missing mosquitto
// program from a skipped test into a failed one when it is "1". CI sets it.
const RequireEnv = "MQTT_REQUIRE_MOSQUITTO"

// installHint says how to get the programs on Debian and Ubuntu.
const installHint = "apt-get install mosquitto mosquitto-clients"

// Require returns the path of program ("mosquitto", "mosquitto_pub",
// "mosquitto_sub"), found on PATH or in /usr/sbin, where Debian puts the
// broker. If it is missing, Require skips the test with a message saying how
// to install it, or fails it when RequireEnv is "1".
func Require(t testing.TB, program string) string {
	t.Helper()
	path, err := exec.LookPath(program)
	if err != nil {
		// /usr/sbin is not on every user's PATH, and the broker lives there.
		if p := "/usr/sbin/" + program; isExecutable(p) {
			return p
		}
		missing(t, program)
	}
	return path
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// DynamicSecurity returns the lines of mosquitto.conf that load Mosquitto's
// dynamic security plugin (shipped with Debian's mosquitto 2.x) with the
// given JSON configuration, written into a temporary directory. Unlike an
// acl_file, which Mosquitto checks only when it delivers a message, the
// plugin refuses a SUBSCRIBE the ACL does not allow, with a reason code.
// Without the plugin the test skips (or fails, as Require does).
func DynamicSecurity(t testing.TB, config string) string {
	t.Helper()
	const name = "mosquitto_dynamic_security.so"
	candidates, _ := filepath.Glob("/usr/lib/*/" + name)
	candidates = append(candidates, "/usr/lib/"+name, "/usr/local/lib/"+name)
	plugin := ""
	for _, c := range candidates {
		if _, err := os.Stat(c); err == nil {
			plugin = c
			break
		}
	}
	if plugin == "" {
		missing(t, name)
	}
	file := filepath.Join(t.TempDir(), "dynamic-security.json")
	if err := os.WriteFile(file, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("plugin %s\nplugin_opt_config_file %s\n", plugin, file)
}

// missing skips the test for want of what, or fails it when RequireEnv is 1.
func missing(t testing.TB, what string) {
	t.Helper()
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("mosquitto: %s not found, and %s=1 requires it: %s", what, RequireEnv, installHint)
	}
	t.Skipf("mosquitto: %s not found; to run this test: %s", what, installHint)
}
