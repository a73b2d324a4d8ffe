package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/backoff"
	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/supervisor"
)

// Exit statuses of pub and sub.
const (
	exitOK      = 0
	exitFailed  = 1  // the broker, the network or the input failed
	exitUsage   = 2  // a mistake on the command line
	exitTimeout = 27 // -W elapsed: mosquitto_sub's status for it
)

// connectWait bounds the wait for the first connection when -W is not given:
// a mistyped host should not hang the command.
const connectWait = 10 * time.Second

// disconnectGrace bounds the clean DISCONNECT at the end of a command.
const disconnectGrace = 2 * time.Second

// usageError is a mistake on the command line: exit status 2.
type usageError string

func (e usageError) Error() string { return string(e) }

func usagef(format string, args ...any) error { return usageError(fmt.Sprintf(format, args...)) }

// errTimeout means -W elapsed.
var errTimeout = errors.New("timed out")

// setup parses the command line of command: the shared flags, the ones
// define adds, then the client configuration they describe (with the topic
// of --url, if any). It returns done when the command must stop there,
// with its exit status: -help prints the usage on stdout (0); a bad flag or
// a stray argument is one line on stderr (2).
func setup(command, synopsis, about string, args []string, std stdio, define func(*flag.FlagSet)) (o connOptions, cfg mqtt.Config, urlTopic string, status int, done bool) {
	fs := flag.NewFlagSet(command, flag.ContinueOnError)
	o.register(fs, command)
	define(fs)
	fs.SetOutput(io.Discard) // the flag package's own message is a line plus the whole usage
	fs.Usage = func() {}
	var err error
	args, o.propArgs, err = extractProperties(args, fs)
	if err == nil {
		err = fs.Parse(args)
	}
	var usage usageError
	switch {
	case errors.As(err, &usage):
		return o, cfg, "", fail(std, command, err), true
	case errors.Is(err, flag.ErrHelp):
		printUsage(std.out, fs, synopsis, about)
		return o, cfg, "", exitOK, true
	case err != nil:
		fmt.Fprintf(std.errOut, "mqtt %s: %v (mqtt %[1]s -help lists the flags)\n", command, err)
		return o, cfg, "", exitUsage, true
	case fs.NArg() > 0 && afterPassword(args[:len(args)-fs.NArg()]):
		// Most likely the rest of a password with a space in it.
		fmt.Fprintf(std.errOut, "mqtt %s: unexpected argument after the password of -P: quote a password that has spaces in it\n", command)
		return o, cfg, "", exitUsage, true
	case fs.NArg() > 0:
		fmt.Fprintf(std.errOut, "mqtt %s: unexpected argument %q: every value goes after its flag, as in -m message (mqtt %[1]s -help lists the flags)\n", command, redactURL(fs.Arg(0)))
		return o, cfg, "", exitUsage, true
	}
	o.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	if cfg, urlTopic, err = o.config(command); err != nil {
		return o, cfg, "", fail(std, command, err), true
	}
	for _, w := range o.warnings {
		fmt.Fprintf(std.errOut, "mqtt %s: %s\n", command, w)
	}
	if o.debug && o.passwordSource != "" {
		// $MQTT_CLI_PASSWORD is taken unasked: say so, for whoever wonders
		// why the broker refused a login.
		fmt.Fprintf(std.errOut, "mqtt %s: the password comes from %s\n", command, o.passwordSource)
	}
	return o, cfg, urlTopic, 0, false
}

// afterPassword reports whether parsed, the arguments the flag package
// took, ends with the value of -P.
func afterPassword(parsed []string) bool {
	n := len(parsed)
	if n == 0 {
		return false
	}
	last := parsed[n-1]
	if strings.HasPrefix(last, "-P=") || strings.HasPrefix(last, "--P=") {
		return true
	}
	return n >= 2 && (parsed[n-2] == "-P" || parsed[n-2] == "--P")
}

// fail reports err on one line of stderr as "mqtt <command>: <reason>" and
// returns the exit status it calls for.
func fail(std stdio, command string, err error) int {
	msg := strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
	fmt.Fprintf(std.errOut, "mqtt %s: %s\n", command, msg)
	var usage usageError
	switch {
	case errors.As(err, &usage), errors.Is(err, mqtt.ErrInvalidConfig):
		return exitUsage
	case errors.Is(err, errTimeout):
		return exitTimeout
	}
	return exitFailed
}

// printUsage writes a command's help: a synopsis, what it does, and every
// flag, spelled as mosquitto spells it (-t, --will-topic).
func printUsage(w io.Writer, fs *flag.FlagSet, synopsis, about string) {
	fmt.Fprintf(w, "usage: %s\n\n%s\n\nflags:\n", synopsis, about)
	var flags []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) { flags = append(flags, f) })
	slices.SortStableFunc(flags, func(a, b *flag.Flag) int {
		return strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name))
	})
	for _, f := range flags {
		name := "-" + f.Name
		if len(f.Name) > 1 {
			name = "--" + f.Name
		}
		arg, text := flag.UnquoteUsage(f)
		if arg != "" {
			name += " " + arg
			// A usage that starts with its argument's name ("`command
			// identifier value`: ...") need not say it twice.
			text = strings.TrimPrefix(text, arg+": ")
		}
		switch f.DefValue {
		case "", "0", "false":
		default:
			text += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		if len(name) > 24 {
			name += "\n" + strings.Repeat(" ", 26)
		}
		fmt.Fprintf(w, "  %-24s %s\n", name, strings.ReplaceAll(text, "\n\t", "\n"+strings.Repeat(" ", 27)))
	}
}

// cliBackoff is the reconnect policy of pub and sub: the client's
// exponential backoff with full jitter, capped low enough that someone at a
// terminal is not kept waiting, and giving up at once on what retrying
// cannot fix: a refused login, an unverifiable certificate.
func cliBackoff() backoff.Strategy {
	exp := backoff.Exponential{Initial: 100 * time.Millisecond, Max: 5 * time.Second}
	return backoff.Func(func(a backoff.Attempt) (time.Duration, bool) {
		if permanent(a.Err) {
			return 0, false
		}
		return exp.Next(a)
	})
}

// permanent reports whether a connection failure will happen again however
// often the client retries.
func permanent(err error) bool {
	var refused *mqtt.ConnectError
	if errors.As(err, &refused) {
		switch refused.ReasonCode {
		case codec.UnsupportedProtocolVersion, codec.ClientIdentifierNotValid, codec.BadUserNameOrPassword,
			codec.NotAuthorized, codec.Banned, codec.BadAuthenticationMethod:
			return true
		}
		return false
	}
	var (
		verify    *tls.CertificateVerificationError
		authority x509.UnknownAuthorityError
		invalid   x509.CertificateInvalidError
		hostname  x509.HostnameError
		op        *net.OpError
	)
	// A TLS alert from the broker ("remote error: tls: certificate
	// required", "bad certificate") refuses this client's TLS settings.
	remoteAlert := errors.As(err, &op) && op.Op == "remote error"
	return remoteAlert || errors.As(err, &verify) || errors.As(err, &authority) || errors.As(err, &invalid) ||
		errors.As(err, &hostname)
}

// gaveUp rewords the error of a client whose reconnect strategy gave up:
// what failed, without the supervisor's account of when.
func gaveUp(err error, doing string) error {
	var g *supervisor.GaveUpError
	if errors.As(err, &g) && g.Attempt.Err != nil {
		return fmt.Errorf("gave up %s: %w", doing, g.Attempt.Err)
	}
	return err
}

// refusal reports whether err, a failed connection attempt, was refused
// outright: nothing listens on the port or the peer reset the connection,
// there is no route to the host, its name does not resolve, or the
// broker's CONNACK said no. mosquitto's clients give up on such an error
// at once; so do pub, sub and rr on their first connection without -W
// (see failFast).
func refusal(err error) bool {
	var (
		refused *mqtt.ConnectError
		dns     *net.DNSError
	)
	switch {
	case errors.As(err, &refused):
		return true
	case errors.As(err, &dns):
		return !dns.IsTimeout
	}
	for _, errno := range []syscall.Errno{syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.EHOSTUNREACH, syscall.ENETUNREACH} {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
}

// failFast wraps s so that, until up is set, a refusal ends the retrying:
// a command run without -W tries once when the broker refuses, as
// mosquitto's do, instead of for connectWait. Once up (the first
// connection came), s decides alone, so that sub reconnects through a
// broker restart.
func failFast(s backoff.Strategy, up *atomic.Bool) backoff.Strategy {
	return backoff.Func(func(a backoff.Attempt) (time.Duration, bool) {
		if !up.Load() && refusal(a.Err) {
			return 0, false
		}
		return s.Next(a)
	})
}

// deadline applies -W to ctx.
func (o *connOptions) deadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if o.timeout > 0 {
		return context.WithTimeoutCause(ctx, time.Duration(o.timeout), errTimeout)
	}
	return context.WithCancel(ctx)
}

// connect dials cfg's broker and waits for the first connection, for at
// most -W (ctx's deadline) or connectWait. Without -W, a refusal (see
// refusal) ends the wait at once.
func (o *connOptions) connect(ctx context.Context, cfg mqtt.Config) (*mqtt.Client, error) {
	wait := connectWait
	if o.timeout > 0 {
		wait = time.Duration(o.timeout)
	}
	dialCtx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var up atomic.Bool
	if o.timeout == 0 {
		cfg.Backoff = failFast(cfg.Backoff, &up)
	}
	c, err := mqtt.Dial(dialCtx, cfg)
	if err == nil {
		up.Store(true)
		return c, nil
	}
	if ctx.Err() == nil && dialCtx.Err() == nil {
		err = gaveUp(err, "connecting") // or a bad config
		if o.timeout == 0 && refusal(err) && !permanent(err) {
			err = fmt.Errorf("%w (give -W seconds to keep trying)", err)
		}
		return nil, err
	}
	// Dial's own words are "no connection before the dial context
	// ended: <ctx error> (last attempt: <why>)"; keep the why.
	msg := err.Error()
	if _, last, ok := strings.Cut(msg, "(last attempt: "); ok {
		msg = "last attempt: " + strings.TrimSuffix(last, ")")
	} else {
		msg = "no attempt finished"
	}
	if isInterrupt(ctx) {
		return nil, fmt.Errorf("interrupted before connecting to %s (%s)", cfg.Servers[0], msg)
	}
	err = fmt.Errorf("no connection to %s within %s: %s", cfg.Servers[0], fmtSeconds(wait), msg)
	if o.timeout > 0 {
		err = fmt.Errorf("%w: %w", errTimeout, err)
	}
	return nil, err
}

// isInterrupt reports whether ctx ended because of SIGINT or SIGTERM (and
// not -W).
func isInterrupt(ctx context.Context) bool {
	return ctx.Err() != nil && !errors.Is(context.Cause(ctx), errTimeout)
}

// fmtSeconds writes a duration as a user gave it: "10s", "0.5s".
func fmtSeconds(d time.Duration) string {
	return fmt.Sprintf("%gs", d.Seconds())
}
