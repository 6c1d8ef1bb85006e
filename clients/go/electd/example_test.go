package electd_test

import (
	"context"
	"errors"
	"log"
	"os"
	"os/signal"

	"github.com/electd/electd/clients/go/electd"
	"github.com/electd/electd/clients/go/electdpb"
)

// doLeaderWork stands for the work only the leader may do. It must stop when
// ctx is done and should pass epoch along with every write, so that the
// resources it writes to can reject a deposed leader (one with a lower epoch).
func doLeaderWork(ctx context.Context, epoch int64) { <-ctx.Done() }

// Do some work only while this node (id "n1") is the leader.
func ExampleElectionClient_WatchLeader() {
	const myID = "n1"
	c, err := electd.New([]string{"127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	stopWork := func() {} // ends the current term's work and waits for it
	err = c.WatchLeader(ctx, func(l *electdpb.Leader) error {
		// Every report is a new term (a higher epoch): whatever ran for the
		// previous term must stop before anything else happens.
		stopWork()
		stopWork = func() {}
		if l.GetNode().GetId() != myID {
			return nil
		}
		workCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			doLeaderWork(workCtx, l.GetEpoch())
		}()
		stopWork = func() { cancel(); <-done }
		return nil
	})
	stopWork()
	if err != nil && ctx.Err() == nil {
		log.Fatal(err)
	}
}

// Tell "no node answered" apart from an error a node answered with.
func ExampleError() {
	c, err := electd.New([]string{"127.0.0.1:7001", "127.0.0.1:7002"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	_, err = c.GetLeader(context.Background())
	var e *electd.Error
	switch {
	case err == nil:
	case errors.As(err, &e) && e.NoNodeAnswered():
		log.Printf("cluster unreachable (tried %v): %s", e.Addrs, e.Details())
	case errors.As(err, &e):
		log.Printf("%v answered %v: %s", e.Addrs, e.Code(), e.Details())
	default:
		log.Print(err)
	}
}

// loadEpoch and saveEpoch stand for durable storage of the last epoch acted on.
func loadEpoch() int64       { return 0 }
func saveEpoch(int64)        {}
func apply(*electdpb.Leader) {}

// Resume after a restart from the last epoch handled, and log every failover.
func ExampleAfterEpoch() {
	c, err := electd.New([]string{"127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	err = c.WatchLeader(ctx, func(l *electdpb.Leader) error {
		apply(l) // only leaders with an epoch above the saved one get here
		saveEpoch(l.GetEpoch())
		return nil
	},
		electd.AfterEpoch(loadEpoch()),
		electd.WithFailoverHook(func(addr, reason string) {
			log.Printf("electd: left %s: %s", addr, reason)
		}),
	)
	if err != nil && ctx.Err() == nil {
		log.Fatal(err)
	}
}

// Run work only while this process leads the named election "orders"; on
// Ctrl-C it stops the work and resigns.
func ExampleElectionClient_Campaign() {
	c, err := electd.New([]string{"127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	err = c.Campaign(ctx, "orders", "worker-1", func(ctx context.Context, t electd.Term) error {
		// ctx is cancelled before the lease deadline passes, when the term
		// is lost and on Ctrl-C; return promptly then.
		doLeaderWork(ctx, t.Epoch)
		return ctx.Err()
	},
		electd.WithValue([]byte("10.0.0.5:8080")),
		electd.WithCampaignHook(func(ev electd.CampaignEvent) { log.Printf("%v epoch=%d %s", ev.Kind, ev.Epoch, ev.Reason) }),
	)
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Fatal(err)
	}
}
