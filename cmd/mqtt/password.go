package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strings"
)

// passwordEnv is the environment variable pub and sub take a password
// from when the command line gives none. mosquitto has none; the name is
// this command's own so that an MQTT_PASSWORD set for another program is
// not sent to whichever broker this command is pointed at.
const passwordEnv = "MQTT_CLI_PASSWORD"

// maxPassword is the longest password MQTT can carry: a two-byte length
// ([MQTT-3.1.3.5]).
const maxPassword = math.MaxUint16

// choosePassword decides the password from its four sources, and records
// which in o.passwordSource. -P wins over a password in --url, as -u wins
// over its user name. --pw-file with either of those is a usage error: two
// passwords given on purpose are a mistake, not a precedence. $MQTT_CLI_PASSWORD
// is taken only when none of the three is given and there is a user name
// (username, from -u or --url), so that an exported variable neither turns
// an anonymous connection into a refused one nor is sent to a broker no user
// name was given for.
func (o *connOptions) choosePassword(username string, u brokerURL) (password string, has bool, err error) {
	fromFile := o.set["pw-file"]
	switch {
	case fromFile && o.set["P"]:
		return "", false, usagef("give the password once: -P or --pw-file, not both")
	case fromFile && u.hasPassword:
		return "", false, usagef("give the password once: in --url or with --pw-file, not both")
	case o.set["P"]:
		o.passwordSource = "-P"
		return o.password, true, nil
	case u.hasPassword:
		o.passwordSource = "--url"
		return u.password, true, nil
	case fromFile:
		password, warning, err := readPasswordFile(o.pwFile)
		if err != nil {
			return "", false, err
		}
		if warning != "" {
			o.warnings = append(o.warnings, warning)
		}
		o.passwordSource = "--pw-file"
		return password, true, nil
	}
	if env := os.Getenv(passwordEnv); env != "" && username != "" {
		o.passwordSource = "$" + passwordEnv
		return env, true, nil
	}
	return "", false, nil
}

// readPasswordFile returns the first line of the file name, without its
// line ending (\n or \r\n), and a warning when other users may read the
// file. The warning is not a refusal: a secret mounted by Docker (0444) or
// Kubernetes (0644 by default) in a container of one user is readable by
// "others" who do not exist, and refusing it would push the password back
// onto the command line, where every user can see it.
func readPasswordFile(name string) (password, warning string, err error) {
	f, err := os.Open(name)
	if err != nil {
		return "", "", fmt.Errorf("--pw-file: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o044 != 0 && runtime.GOOS != "windows" {
		warning = fmt.Sprintf("warning: --pw-file %s can be read by other users (mode %04o); chmod go-r %[1]s", name, fi.Mode().Perm())
	}
	// Bounded: --pw-file /dev/zero, or a large file by mistake, must not
	// fill the memory.
	line, err := bufio.NewReader(io.LimitReader(f, int64(maxPassword+len("\r\n")))).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", "", fmt.Errorf("--pw-file %s: %w", name, err)
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	switch {
	case len(line) > maxPassword:
		return "", "", fmt.Errorf("--pw-file %s: the first line is longer than the %d bytes MQTT takes for a password", name, maxPassword)
	case line == "":
		// A file that starts with a blank line is more likely a mistake
		// than an empty password; -P "" sends one.
		return "", "", fmt.Errorf("--pw-file %s: the first line is empty", name)
	}
	return line, warning, nil
}
