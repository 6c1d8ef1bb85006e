package electd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/electd/electd/clients/go/electdpb"
)

// WatchOption configures one WatchLeader call: [AfterEpoch],
// [WithFailoverHook], [InElection].
type WatchOption interface{ applyWatch(*watchOptions) }

// watchOption is a WatchOption made of a function.
type watchOption func(*watchOptions)

func (f watchOption) applyWatch(o *watchOptions) { f(o) }

type watchOptions struct {
	afterEpoch int64
	hook       func(addr, reason string)
	election   string
}

// AfterEpoch starts a watch from a saved epoch: epoch is the highest one the
// caller has already handled, and only leaders with a higher epoch are
// reported. The default, 0, reports from the current leader on.
//
// A typical use is a process that saves the epoch of each leader it acted on
// and, after a restart, resumes with AfterEpoch(saved): the current leader is
// reported again only if it changed meanwhile.
//
// In a named election ([InElection]) the leader of that epoch is not
// reported again either, whatever value it proclaims later in that term.
func AfterEpoch(epoch int64) WatchOption {
	return watchOption(func(o *watchOptions) { o.afterEpoch = epoch })
}

// WithFailoverHook has WatchLeader call hook each time the watch leaves an
// address: with the address and the reason (for example "Unavailable:
// connection error: ...", "no first message within the first-message deadline
// (2s)", "node cannot vouch for a leader: ..." or "stream ended (node shutting
// down)"), for logs and metrics. The hook runs on WatchLeader's goroutine
// before it moves on, so it should return quickly. It is not called when the
// watch ends (ctx cancelled, the callback failed, an error returned).
func WithFailoverHook(hook func(addr, reason string)) WatchOption {
	return watchOption(func(o *watchOptions) { o.hook = hook })
}

// errStreamEnded: the node closed the stream with OK, which it does when it
// shuts down.
var errStreamEnded = errors.New("stream ended (node shutting down)")

// errNoLeader: the node sent LEADER_STATE_UNKNOWN.
var errNoLeader = errors.New("node cannot vouch for a leader")

// errFirstMessage is the cause with which a stream is cancelled when its
// first message did not come within the first-message deadline.
var errFirstMessage = errors.New("no first message within the first-message deadline")

// callbackError carries an error returned by the caller's function, so that
// WatchLeader can tell it apart from node failures and return it unchanged.
type callbackError struct{ err error }

func (e callbackError) Error() string { return e.err.Error() }

// WatchLeader reports every new leader to fn, in strictly increasing epoch
// order, until ctx is done or fn returns an error.
//
// It streams the WatchLeader RPC from one node at a time and moves to the
// next address when that node
//
//   - refuses or does not complete a connection within the connect deadline,
//   - sends no first message within the first-message deadline,
//   - fails with UNAVAILABLE, DEADLINE_EXCEEDED or RESOURCE_EXHAUSTED (which
//     includes a connection closed because the node stopped answering
//     keepalive pings: a frozen node is left within 6 s by default),
//   - cannot vouch for a leader (LEADER_STATE_UNKNOWN), or ends its stream,
//
// calling the [WithFailoverHook] hook each time. A leader is reported only
// when its epoch is greater than the last one reported (or than the
// [AfterEpoch] epoch), so fn never sees an older leader nor the same change
// twice, even across failover. After each full round of addresses without an
// elected leader it backs off (50 ms doubling up to 2 s, full jitter).
//
// With [InElection] it watches a named election instead of the electd nodes'
// own: a leader is then reported also when it proclaims a new value (same
// epoch, higher Node.value_revision; still never twice, never going back),
// and LEADER_STATE_VACANT (the node vouches that the election has no leader)
// is a healthy answer: the watch stays on that node and reports nothing until
// a leader is elected.
//
// WatchLeader returns ctx.Err() as soon as ctx is cancelled (the open stream
// is cancelled on the server at once; a backoff pause or a pending connection
// attempt is not waited out), ErrClosed when the client is closed, and fn's
// error unchanged if fn fails. It returns an [*Error] for which
// [Error.NoNodeAnswered] is true if during the first round no node answered
// at all, and at once an [*Error] with any other gRPC error (for example
// INVALID_ARGUMENT). Once some node has answered, WatchLeader keeps trying
// forever: a watcher is expected to outlive a cluster restart.
func (c *ElectionClient) WatchLeader(ctx context.Context, fn func(*electdpb.Leader) error, opts ...WatchOption) error {
	var o watchOptions
	for _, opt := range opts {
		opt.applyWatch(&o)
	}
	if o.afterEpoch < 0 {
		return &Error{Err: fmt.Errorf("AfterEpoch: must not be negative, got %d", o.afterEpoch)}
	}
	last := reported{epoch: o.afterEpoch} // the last leader reported to fn (or handled before)
	if o.afterEpoch > 0 {
		last.revision = math.MaxInt64 // that term is handled, whatever it proclaims
	}
	var (
		answered bool // some node has sent at least one message
		failed   int  // consecutive attempts that gave no elected leader
		rounds   int  // consecutive full rounds of such attempts
		lastErr  error
		lastAddr string
	)
	n := len(c.addrs)
	i := c.start()
	for {
		gotAnswer, gotLeader, err := c.watchOne(ctx, i, o.election, &last, fn)
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
		if o.hook != nil {
			o.hook(c.addrs[i], failoverReason(err))
		}
		answered = answered || gotAnswer
		lastErr, lastAddr = err, c.addrs[i]
		c.failed(i)
		i = (i + 1) % n

		if gotLeader {
			// That node was healthy: try the next one at once.
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
	if errors.Is(err, errStreamEnded) || errors.Is(err, errNoLeader) || errors.Is(err, errFirstMessage) {
		return true
	}
	// CANCELED while our own context is alive means the server cancelled the
	// stream, which a node does when it is stopped: also "ends its stream".
	return retryable(err) || status.Code(err) == codes.Canceled
}

// failoverReason describes err for the failover hook.
func failoverReason(err error) string {
	if s, ok := status.FromError(err); ok {
		return fmt.Sprintf("%v: %s", s.Code(), s.Message())
	}
	return err.Error()
}

// reported is the last leader a watch reported: its epoch and, in a named
// election, its value revision (a proclamation is a change of the same term).
type reported struct{ epoch, revision int64 }

// newer reports whether leader l is a change after r.
func (r reported) newer(l *electdpb.Leader) bool {
	e, v := l.GetEpoch(), l.GetNode().GetValueRevision()
	return e > r.epoch || (e == r.epoch && v > r.revision)
}

// watchOne streams from address i until the stream fails or the node cannot
// vouch for a leader. gotAnswer says whether any message arrived, gotLeader
// whether an elected leader (or, in a named election, a vouched vacancy) did.
func (c *ElectionClient) watchOne(ctx context.Context, i int, election string, last *reported, fn func(*electdpb.Leader) error) (gotAnswer, gotLeader bool, err error) {
	if err := c.connect(ctx, i); err != nil {
		return false, false, err
	}
	// Cancelling sctx (on every return) cancels the RPC, which ends the
	// stream on the server at once. The first-message deadline cancels it
	// with errFirstMessage as the cause.
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	timeout := c.opts.firstMessageTimeout
	firstMessage := time.AfterFunc(timeout, func() { cancel(errFirstMessage) })
	defer firstMessage.Stop()
	noFirstMessage := func(err error) error {
		if !gotAnswer && context.Cause(sctx) == errFirstMessage {
			return fmt.Errorf("%w (%v)", errFirstMessage, timeout)
		}
		return err
	}

	// min_epoch is the highest epoch already reported, not one more: the
	// node holds back leaders with a lower epoch but sends the current
	// leader at once even when it is the one already reported (which is then
	// skipped below). With last+1, a node whose leader has not changed since
	// would send nothing, and the first-message deadline would take that
	// healthy node for a stuck one.
	stream, err := electdpb.NewElectionServiceClient(c.conns[i]).
		WatchLeader(sctx, &electdpb.WatchLeaderRequest{MinEpoch: last.epoch, Election: election})
	if err != nil {
		return false, false, noFirstMessage(err)
	}
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			return gotAnswer, gotLeader, errStreamEnded
		}
		if err != nil {
			return gotAnswer, gotLeader, noFirstMessage(err)
		}
		if !gotAnswer {
			gotAnswer = true
			firstMessage.Stop()
		}
		leader := msg.GetLeader()
		if msg.GetState() == electdpb.LeaderState_LEADER_STATE_VACANT && election != "" {
			// The node vouches that the election has no leader: a healthy
			// answer, not a reason to fail over. Nothing to report.
			gotLeader = true
			continue
		}
		if msg.GetState() != electdpb.LeaderState_LEADER_STATE_ELECTED || leader == nil {
			reason := msg.GetReason()
			if reason == "" {
				reason = msg.GetState().String()
			}
			return gotAnswer, gotLeader, fmt.Errorf("%w: %s: %s", errNoLeader, msg.GetState(), reason)
		}
		gotLeader = true
		if !last.newer(leader) {
			continue // already reported (or older): never report it again
		}
		*last = reported{epoch: leader.GetEpoch(), revision: leader.GetNode().GetValueRevision()}
		if err := fn(leader); err != nil {
			return gotAnswer, gotLeader, callbackError{err}
		}
	}
}
