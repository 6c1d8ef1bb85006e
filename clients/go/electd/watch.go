package electd

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/electd/electd/clients/go/electdpb"
)

// errStreamEnded: the node closed the stream with OK, which it does when it
// shuts down.
var errStreamEnded = errors.New("stream ended (node shutting down)")

// callbackError carries an error returned by the caller's function, so that
// WatchLeader can tell it apart from node failures and return it unchanged.
type callbackError struct{ err error }

func (e callbackError) Error() string { return e.err.Error() }

// WatchLeader reports every new leader to fn, in strictly increasing epoch
// order, until ctx is done or fn returns an error.
//
// It streams the WatchLeader RPC from one node at a time. When that node is
// unreachable, fails with UNAVAILABLE or DEADLINE_EXCEEDED, cannot vouch for a
// leader (LEADER_STATE_UNKNOWN) or ends its stream, it moves to the next
// address, passing the highest epoch reported so far as min_epoch. A leader is
// reported only when its epoch is greater than the last one reported, so fn
// never sees an older leader nor the same change twice, even across failover.
// After each full round of addresses without a usable stream it backs off
// (50 ms doubling up to 2 s, jittered).
//
// WatchLeader returns ctx.Err() when ctx is cancelled (the open stream is
// cancelled at once), ErrClosed when the client is closed, and fn's error
// unchanged if fn fails. It returns an [*Error] for which
// [Error.NoNodeAnswered] is true if during the first round no node answered
// at all, and at once an [*Error] with any other gRPC error (for example
// INVALID_ARGUMENT). Once some node has answered, WatchLeader keeps trying
// forever: a watcher is expected to outlive a cluster restart.
func (c *ElectionClient) WatchLeader(ctx context.Context, fn func(*electdpb.Leader) error) error {
	var (
		last     int64 // highest epoch reported to fn; 0 before the first
		answered bool  // some node has sent at least one message
		failed   int   // consecutive attempts that gave no elected leader
		rounds   int   // consecutive full rounds of such attempts
		lastErr  error
		lastAddr string
	)
	n := len(c.addrs)
	i := c.start()
	for {
		gotAnswer, gotLeader, err := c.watchOne(ctx, i, &last, fn)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		select {
		case <-c.closed:
			return ErrClosed
		default:
		}
		if cbErr, ok := err.(callbackError); ok {
			return cbErr.err
		}
		if !watchFailover(err) {
			return &Error{Addrs: []string{c.addrs[i]}, Err: err, addr: c.addrs[i]}
		}
		answered = answered || gotAnswer
		lastErr, lastAddr = err, c.addrs[i]
		c.failed(i)
		i = (i + 1) % n

		if gotLeader {
			// That node was healthy for a while: try the next one at once.
			failed, rounds = 0, 0
			continue
		}
		failed++
		if failed%n != 0 {
			continue
		}
		if !answered {
			return &Error{Addrs: c.Addrs(), Err: lastErr, addr: lastAddr, noNode: true}
		}
		rounds++
		if err := c.sleep(ctx, c.opts.backoffDelay(rounds)); err != nil {
			return err
		}
	}
}

// watchFailover reports whether a watch that ended with err should move on to
// the next address.
func watchFailover(err error) bool {
	if errors.Is(err, errStreamEnded) || errors.Is(err, errNoLeader) {
		return true
	}
	// CANCELED while our own context is alive means the server cancelled the
	// stream, which a node does when it is stopped: also "ends its stream".
	return retryable(err) || status.Code(err) == codes.Canceled
}

var errNoLeader = errors.New("node cannot vouch for a leader")

// watchOne streams from address i until the stream fails or the node cannot
// vouch for a leader. gotAnswer says whether any message arrived, gotLeader
// whether an elected leader did.
func (c *ElectionClient) watchOne(ctx context.Context, i int, last *int64, fn func(*electdpb.Leader) error) (gotAnswer, gotLeader bool, err error) {
	// Cancelling sctx (on every return) cancels the RPC, which ends the
	// stream on the server at once.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := electdpb.NewElectionServiceClient(c.conns[i]).
		WatchLeader(sctx, &electdpb.WatchLeaderRequest{MinEpoch: *last})
	if err != nil {
		return false, false, err
	}
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			return gotAnswer, gotLeader, errStreamEnded
		}
		if err != nil {
			return gotAnswer, gotLeader, err
		}
		gotAnswer = true
		leader := msg.GetLeader()
		if msg.GetState() != electdpb.LeaderState_LEADER_STATE_ELECTED || leader == nil {
			reason := msg.GetReason()
			if reason == "" {
				reason = msg.GetState().String()
			}
			return gotAnswer, gotLeader, fmt.Errorf("%w: %s", errNoLeader, reason)
		}
		gotLeader = true
		if leader.GetEpoch() <= *last {
			continue // already reported (or older): never report it again
		}
		*last = leader.GetEpoch()
		if err := fn(leader); err != nil {
			return gotAnswer, gotLeader, callbackError{err}
		}
	}
}
