// Command fleet holds thousands of MQTT clients in one process against a
// broker in a child process, measures them idle, and restarts the broker
// under them to measure the reconnect storm. See ../../README.md.
//
//	go run ./fleet/cmd/fleet -clients 10000 -broker mosquitto -client robustmqtt \
//		-storm default,fixed2s,nojitter -down 5s -json fleet/results/x.json -png fleet/storm.png
//	go run ./fleet/cmd/fleet -plot fleet/results/x.json -png fleet/storm.png
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/robustmqtt/mqtt/bench/fleet"
)

func main() {
	if fleet.IsChild() {
		os.Exit(fleet.ServeChild())
	}
	opt := fleet.Options{Log: os.Stderr}
	flag.IntVar(&opt.Clients, "clients", 1000, "how many clients")
	flag.StringVar(&opt.Broker, "broker", fleet.Mochi, "mochi or mosquitto")
	flag.StringVar(&opt.Client, "client", fleet.Robust, strings.Join(fleet.Kinds, ", "))
	flag.IntVar(&opt.Parallel, "parallel", 64, "connects in flight at once")
	flag.DurationVar(&opt.KeepAlive, "keepalive", 5*time.Second, "every client's keepalive")
	flag.DurationVar(&opt.Idle, "idle", 30*time.Second, "how long to watch the idle fleet (0: not at all)")
	storms := flag.String("storm", "", "restart the broker under the fleet, once per strategy: "+strings.Join(fleet.StrategyNames, ","))
	flag.DurationVar(&opt.Down, "down", 5*time.Second, "how long the broker stays down in a storm")
	flag.IntVar(&opt.Rate, "rate", 1000, "QoS 1 publishes per second during a storm")
	flag.DurationVar(&opt.Wait, "wait", 5*time.Minute, "the longest wait for the fleet to come back, for acks and for deliveries")
	flag.StringVar(&opt.Mosquitto, "mosquitto", "/usr/sbin/mosquitto", "the mosquitto binary")
	flag.StringVar(&opt.CPUProfile, "cpuprofile", "", "write a CPU profile of the idle window")
	flag.StringVar(&opt.HeapProfile, "memprofile", "", "write a heap profile of the connected fleet")
	flag.StringVar(&opt.GoroutineProfile, "goroutineprofile", "", "write a goroutine profile of the connected fleet")
	flag.StringVar(&opt.DumpDir, "dumps", "", "write goroutine dumps of this process and of mochi here every 3 s while a storm's clients are missing")
	jsonOut := flag.String("json", "", "save the result here")
	pngOut := flag.String("png", "", "draw the storms here")
	plot := flag.String("plot", "", "draw -png from this saved result instead of running")
	flag.Parse()

	if *plot != "" {
		r, err := fleet.ReadJSON(*plot)
		if err != nil {
			fail(err)
		}
		if err := drawPNG(*pngOut, r); err != nil {
			fail(err)
		}
		fleet.WriteText(os.Stdout, r)
		return
	}
	var err error
	if opt.Storms, err = fleet.ParseStrategies(*storms); err != nil {
		fail(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	r, runErr := fleet.Run(ctx, opt)
	if r != nil {
		fleet.WriteText(os.Stdout, r)
		if *jsonOut != "" {
			if err := fleet.WriteJSON(*jsonOut, r); err != nil {
				fail(err)
			}
		}
		if *pngOut != "" && len(r.Storms) > 0 {
			if err := drawPNG(*pngOut, r); err != nil {
				fail(err)
			}
		}
	}
	if runErr != nil {
		fail(runErr)
	}
}

func drawPNG(path string, r *fleet.Result) error {
	if path == "" {
		return fmt.Errorf("fleet: -plot needs -png")
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := fleet.Plot(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
