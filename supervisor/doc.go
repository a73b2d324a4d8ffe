// Package supervisor runs a group of goroutines one for all, and restarts the
// group after a failure with the delay an injected [backoff.Strategy]
// chooses, until the strategy gives up or the caller's ctx ends. It knows
// nothing about MQTT: for the client, one run is one network connection, and
// the group is that connection's reader, writer and keepalive goroutines.
//
// # A run
//
// [Run] calls [Config.Start] for every run, with the run's ctx and [Group].
// Start does the run's set-up (dial, handshake), starts the run's goroutines
// with [Group.Go], and calls [Group.Up] once the run is established. When any
// member returns, the run's ctx is cancelled and Run waits until every member
// has returned; only then does it consult the strategy and, after the delay,
// start the next run. So two runs never overlap, and nothing of a run
// outlives it.
//
//	err := supervisor.Run(ctx, supervisor.Config{
//		Start: func(ctx context.Context, g *supervisor.Group) error {
//			conn, err := dial(ctx)
//			if err != nil {
//				return err // the run fails; Run retries per the strategy
//			}
//			g.Go(func(ctx context.Context) error { return read(ctx, conn) })
//			g.Go(func(ctx context.Context) error { return write(ctx, conn) })
//			g.Go(func(ctx context.Context) error {
//				<-ctx.Done()
//				return conn.Close() // unblocks read and write
//			})
//			g.Up()
//			return nil
//		},
//		Backoff: backoff.Default(),
//	})
//
// # Streaks
//
// The failures since the last stable run form a streak: the strategy sees the
// streak's retry number and the time since its first failure (the loss) in a
// [backoff.Attempt]. A run that stays up for [Config.StableAfter] ends the
// streak, so a connection that drops once a day starts from the first delay
// again; a run that is kicked right after it came up does not, so a broker
// that refuses a client after accepting it sees ever longer delays instead of
// a reconnect storm.
//
// # Observing
//
// [Config.OnEvent] receives an [Event] for every run that comes up ([Up]),
// every failure ([Down]), every wait before a restart ([Retrying]) and the
// give-up ([GaveUp]). It is called on Run's goroutine and must not block.
//
// # Stopping
//
// Cancel Run's ctx: the current run's members are cancelled and awaited, a
// pending delay is abandoned at once, and Run returns an error wrapping
// ctx.Err(). Run never returns while a goroutine it started is still running.
package supervisor
