package supervisor_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/robustmqtt/mqtt/backoff"
	"github.com/robustmqtt/mqtt/supervisor"
)

// A connection that is refused twice, then comes up. The program stops the
// supervisor once it is up, by cancelling Run's ctx.
func ExampleRun() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	dials := 0
	err := supervisor.Run(ctx, supervisor.Config{
		Start: func(ctx context.Context, g *supervisor.Group) error {
			dials++
			if dials < 3 {
				return errors.New("dial: connection refused")
			}
			g.Go(func(ctx context.Context) error { // the connection's reader, say
				<-ctx.Done()
				return nil
			})
			g.Up()
			return nil
		},
		Backoff: backoff.Constant(10 * time.Millisecond),
		OnEvent: func(e supervisor.Event) {
			switch e.Kind {
			case supervisor.Up:
				fmt.Printf("up after %d retries\n", e.Attempt.N)
				cancel()
			case supervisor.Down:
				fmt.Println("down:", e.Err)
			case supervisor.Retrying:
				fmt.Printf("retry %d in %v\n", e.Attempt.N, e.Delay)
			}
		},
	})
	fmt.Println(err)
	// Output:
	// down: dial: connection refused
	// retry 1 in 10ms
	// down: dial: connection refused
	// retry 2 in 10ms
	// up after 2 retries
	// supervisor: stopped: context canceled
}
