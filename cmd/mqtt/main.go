package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"syscall"
)

// stdio is a command's standard streams.
type stdio struct {
	in          io.Reader
	out, errOut io.Writer
}

// command is one subcommand: its name, a line of help, and what it runs.
// run returns the process's exit status.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, std stdio) int
}

// commands are the subcommands, in the order usage lists them.
var commands = []command{
	{name: "pub", summary: "publish a message, a file or every line of stdin (flags of mosquitto_pub)", run: pubCommand},
	{name: "sub", summary: "subscribe and print what arrives, through broker restarts (flags of mosquitto_sub)", run: subCommand},
	{name: "rr", summary: "publish a request, print the response: MQTT 5 request/response (flags of mosquitto_rr)", run: rrCommand},
	{name: "demo", summary: "an embedded broker, three devices and injected faults: watch nothing get lost", run: demoCommand},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// The first signal ends ctx and the command winds down; a second
		// one kills the process, as it would have without us.
		<-ctx.Done()
		stop()
	}()
	os.Exit(run(ctx, os.Args[1:], stdio{in: os.Stdin, out: os.Stdout, errOut: os.Stderr}))
}

// run dispatches to the subcommand args[0] and returns the exit status: 2
// for a usage error.
func run(ctx context.Context, args []string, std stdio) int {
	if len(args) == 0 {
		usage(std.errOut)
		return 2
	}
	if args[0] == "help" || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		usage(std.out)
		return 0
	}
	i := slices.IndexFunc(commands, func(c command) bool { return c.name == args[0] })
	if i < 0 {
		fmt.Fprintf(std.errOut, "mqtt: unknown command %q\n\n", args[0])
		usage(std.errOut)
		return 2
	}
	return commands[i].run(ctx, args[1:], std)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: mqtt <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-6s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, `"mqtt <command> -help" describes a command's flags.`)
}
