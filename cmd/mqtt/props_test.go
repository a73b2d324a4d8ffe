package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"reflect"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/codec"
)

// -D takes its three or four words out of the arguments; a flag's value
// that happens to be -D stays that flag's.
func TestExtractProperties(t *testing.T) {
	fs := flag.NewFlagSet("pub", flag.ContinueOnError)
	var o connOptions
	o.register(fs, "pub")
	fs.String("m", "", "")
	fs.Bool("r", false, "")
	fs.String("t", "", "")
	cases := []struct {
		args  []string
		rest  []string
		props []propertyArg
	}{
		{[]string{"-t", "a", "-D", "PUBLISH", "Content-Type", "text/plain", "-m", "x"},
			[]string{"-t", "a", "-m", "x"},
			[]propertyArg{{"publish", "content-type", []string{"text/plain"}}}},
		{[]string{"-D", "publish", "user-property", "k", "-v", "-r", "--property", "will", "user-property", "a", "b"},
			[]string{"-r"},
			[]propertyArg{{"publish", "user-property", []string{"k", "-v"}}, {"will", "user-property", []string{"a", "b"}}}},
		{[]string{"-m", "-D", "-r", "-D", "connect", "session-expiry-interval", "60"},
			[]string{"-m", "-D", "-r"},
			[]propertyArg{{"connect", "session-expiry-interval", []string{"60"}}}},
		{[]string{"-m=-D", "-q", "1"}, []string{"-m=-D", "-q", "1"}, nil},
		{[]string{"-r", "word", "-D", "publish", "content-type", "x"}, []string{"-r", "word", "-D", "publish", "content-type", "x"}, nil},
		{[]string{"--", "-D", "publish", "content-type", "x"}, []string{"--", "-D", "publish", "content-type", "x"}, nil},
	}
	for _, tc := range cases {
		rest, props, err := extractProperties(tc.args, fs)
		if err != nil || !slices.Equal(rest, tc.rest) || !reflect.DeepEqual(props, tc.props) {
			t.Errorf("extractProperties(%q) = %q, %v, %v; want %q, %v", tc.args, rest, props, err, tc.rest, tc.props)
		}
	}
}

// What -D sets: the publish's and the will's properties, and the Config
// fields that the CONNECT's properties come from.
func TestProperties(t *testing.T) {
	cfg, o := configOfArgs(t, "pub", "-i", "me", "--will-topic", "w",
		"-D", "publish", "message-expiry-interval", "60",
		"-D", "publish", "content-type", "text/plain",
		"-D", "publish", "response-topic", "r/t",
		"-D", "publish", "correlation-data", "c-1",
		"-D", "publish", "payload-format-indicator", "1",
		"-D", "publish", "user-property", "k", "v",
		"-D", "publish", "user-property", "k", "w",
		"-D", "will", "will-delay-interval", "5",
		"-D", "will", "user-property", "a", "b",
		"-D", "connect", "session-expiry-interval", "3600",
		"-D", "connect", "receive-maximum", "10",
		"-D", "connect", "maximum-packet-size", "4294967295",
		"-D", "connect", "topic-alias-maximum", "8",
	)
	u32 := func(v uint32) *uint32 { return &v }
	one := byte(1)
	wantPublish := &codec.Properties{MessageExpiry: u32(60), ContentType: "text/plain", ResponseTopic: "r/t",
		CorrelationData: []byte("c-1"), PayloadFormat: &one, User: []codec.UserProperty{{Key: "k", Value: "v"}, {Key: "k", Value: "w"}}}
	if !reflect.DeepEqual(o.props.publish, wantPublish) {
		t.Errorf("publish properties %+v, want %+v", o.props.publish, wantPublish)
	}
	wantWill := &codec.Properties{WillDelayInterval: u32(5), User: []codec.UserProperty{{Key: "a", Value: "b"}}}
	if cfg.Will == nil || !reflect.DeepEqual(cfg.Will.Properties, wantWill) {
		t.Errorf("will %+v, want properties %+v", cfg.Will, wantWill)
	}
	if cfg.Version != codec.V5 || cfg.SessionExpiry != time.Hour || cfg.MaxPending != 10 || cfg.MaxPacketSize != 268435460 || cfg.TopicAliasMaximum != 8 {
		t.Errorf("config: version %d, session expiry %s, max pending %d, max packet size %d, topic alias maximum %d",
			cfg.Version, cfg.SessionExpiry, cfg.MaxPending, cfg.MaxPacketSize, cfg.TopicAliasMaximum)
	}
}

// -x and -c as mosquitto's: -c alone, a session that never expires; -x
// alone, a clean start that the broker keeps for so long after; -x 0, none.
func TestSessionExpiryFlags(t *testing.T) {
	cases := []struct {
		args   []string
		clean  bool
		expiry time.Duration
	}{
		{[]string{"-V", "5", "-i", "me"}, true, 0}, // the library's default for a clean start: 0
		{[]string{"-V", "5", "-i", "me", "-c"}, false, math.MaxInt64},
		{[]string{"-i", "me", "-x", "60"}, true, time.Minute},
		{[]string{"-i", "me", "-x", "60", "-c"}, false, time.Minute},
		{[]string{"-i", "me", "-x", "0", "-c"}, false, -1},
		{[]string{"-i", "me", "-x", "-1"}, true, math.MaxInt64},
		{[]string{"-i", "me", "-x", "4294967295", "-c"}, false, math.MaxInt64},
		{[]string{"-i", "me", "-x", "∞"}, true, math.MaxInt64},
	}
	for _, tc := range cases {
		cfg, _ := configOfArgs(t, "sub", tc.args...)
		if cfg.CleanStart != tc.clean || cfg.SessionExpiry != tc.expiry || cfg.Version != codec.V5 {
			t.Errorf("%q: clean start %t, session expiry %v, version %d; want %t, %v, 5", tc.args, cfg.CleanStart, cfg.SessionExpiry, cfg.Version, tc.clean, tc.expiry)
		}
	}
	cfg, _ := configOfArgs(t, "sub", "-I", "sensor-")
	if want := fmt.Sprintf("sensor-%d", os.Getpid()); cfg.ClientID != want {
		t.Errorf("-I sensor-: client id %q, want %q", cfg.ClientID, want)
	}
}

// configOfArgs parses a command line of command as setup does and
// returns the configuration and options.
func configOfArgs(t *testing.T, command string, args ...string) (mqtt.Config, connOptions) {
	t.Helper()
	o, cfg, _, status, done := setup(command, "", "", args, stdio{out: io.Discard, errOut: io.Discard}, func(fs *flag.FlagSet) {})
	if done {
		t.Fatalf("%q: setup stopped with status %d", args, status)
	}
	return cfg, o
}

// The failures that end a first connection at once without -W.
func TestRefusal(t *testing.T) {
	op := func(err error) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", err)}
	}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("conn: dial: %w", op(syscall.ECONNREFUSED)), true},
		{op(syscall.ECONNRESET), true},
		{op(syscall.EHOSTUNREACH), true},
		{op(syscall.ENETUNREACH), true},
		{&net.DNSError{Err: "no such host", Name: "nowhere.invalid", IsNotFound: true}, true},
		{&net.DNSError{Err: "i/o timeout", Name: "slow.example", IsTimeout: true}, false},
		{&mqtt.ConnectError{ReasonCode: codec.ServerUnavailable}, true},
		{op(syscall.ETIMEDOUT), false},
		{errors.New("EOF"), false},
	} {
		if got := refusal(tc.err); got != tc.want {
			t.Errorf("refusal(%v) = %t, want %t", tc.err, got, tc.want)
		}
	}
}
