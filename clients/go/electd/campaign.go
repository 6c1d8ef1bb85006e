package electd

// The campaign helper (the Campaign RPC): "run this work while leader; it is
// cancelled before the lease deadline passes; on loss it re-campaigns or
// stops, as asked". This file owns the stream, its failover and the work's
// goroutine; the deadline/epoch/ack bookkeeping is campaign_term.go.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/electd/electd/clients/go/electdpb"
)

// DefaultPingInterval is how often a candidate pings (asks for a fresh
// lease) by default; never more than a third of the last lease granted.
const DefaultPingInterval = 500 * time.Millisecond

// Why a term ended ([LostError.Reason], [CampaignEvent.Reason]), the same
// words in every client. The first five are the node's (LossReason without
// its prefix, in lower case), the others the client's own.
const (
	ReasonResigned     = "resigned"     // the candidate resigned (or an operator's Resign, see ReasonDeleted)
	ReasonDeleted      = "deleted"      // the entry was deleted by another client, e.g. Resign
	ReasonPreempted    = "preempted"    // a candidate of higher priority waits
	ReasonZooKeeper    = "zookeeper"    // the node lost (or cannot prove) its ZooKeeper session
	ReasonShutdown     = "shutdown"     // the node is shutting down
	ReasonExpired      = "expired"      // the lease deadline came within the safety margin without a new grant
	ReasonDisconnected = "disconnected" // the stream to the node broke
	ReasonUnknown      = "unknown"      // a LossReason this client does not know, or a message that ended the term (Queued, a newer Leading)
)

// lossReasonName is the Reason... constant for a LossReason.
func lossReasonName(r electdpb.LossReason) string {
	if _, known := electdpb.LossReason_name[int32(r)]; !known || r == electdpb.LossReason_LOSS_REASON_UNSPECIFIED {
		return ReasonUnknown
	}
	return strings.ToLower(strings.TrimPrefix(r.String(), "LOSS_REASON_"))
}

// LostError says that a term ended and why. It is the cause of the work's
// context when the helper cancels it (context.Cause(ctx)), what
// [Term.Proclaim] returns after the term ended, and what Campaign returns
// when [OnLoss]([LossStop]) ends the campaign.
type LostError struct {
	Epoch  int64  // the term that ended
	Reason string // ReasonDeleted, ReasonExpired, ...
	Detail string // for people
}

func (e *LostError) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("electd: term %d lost: %s", e.Epoch, e.Reason)
	}
	return fmt.Sprintf("electd: term %d lost: %s: %s", e.Epoch, e.Reason, e.Detail)
}

// LossPolicy says what a campaign does when a term is lost ([OnLoss]).
type LossPolicy int

const (
	// LossRecampaign (the default): stay a candidate (on the same stream,
	// or a new one) and lead again when elected, with a new epoch.
	LossRecampaign LossPolicy = iota
	// LossStop: end the campaign; Campaign returns the [*LostError].
	LossStop
)

// CampaignOption configures one Campaign call.
type CampaignOption func(*campaignOptions)

type campaignOptions struct {
	value        []byte
	labels       map[string]string
	priority     int32
	neverLead    bool
	onLoss       LossPolicy
	pingInterval time.Duration
	hook         func(CampaignEvent)
}

// WithValue sets what the candidate says about itself (opaque, at most
// 16 KiB), shown to watchers as Node.value; [Term.Proclaim] changes it.
func WithValue(v []byte) CampaignOption {
	return func(o *campaignOptions) { o.value = append([]byte(nil), v...) }
}

// WithLabels sets the candidate's KEY=VALUE labels, shown as Node.labels.
func WithLabels(labels map[string]string) CampaignOption {
	return func(o *campaignOptions) {
		o.labels = make(map[string]string, len(labels))
		for k, v := range labels {
			o.labels[k] = v
		}
	}
}

// WithPriority sets the candidate's priority (default 0): a waiting
// candidate with a higher priority preempts the leader.
func WithPriority(p int32) CampaignOption { return func(o *campaignOptions) { o.priority = p } }

// NeverLead makes the candidate a member only: listed, never leading, never
// holding anyone back. Its work never runs; Campaign returns when ctx ends.
func NeverLead() CampaignOption { return func(o *campaignOptions) { o.neverLead = true } }

// OnLoss says what happens when a term is lost (the node's Lost, a lease
// deadline that ran out, a broken stream while leading): [LossRecampaign]
// (default) or [LossStop].
func OnLoss(p LossPolicy) CampaignOption { return func(o *campaignOptions) { o.onLoss = p } }

// WithPingInterval sets how often the candidate pings (default 500 ms). The
// helper pings more often when a third of the last lease granted is
// shorter.
func WithPingInterval(d time.Duration) CampaignOption {
	return func(o *campaignOptions) { o.pingInterval = d }
}

// WithCampaignHook has Campaign call hook with each [CampaignEvent], for
// logs and metrics. It runs on Campaign's goroutine, so it must return
// quickly.
func WithCampaignHook(hook func(CampaignEvent)) CampaignOption {
	return func(o *campaignOptions) { o.hook = hook }
}

// CampaignEventKind is the kind of a [CampaignEvent].
type CampaignEventKind int

const (
	// EventQueued: the candidate waits; Position entries are ahead of it
	// (WaitingFor is the one just ahead). Emitted when the position or the
	// candidate ahead changes.
	EventQueued CampaignEventKind = iota + 1
	// EventLeading: the work of term Epoch started.
	EventLeading
	// EventLost: term Epoch ended (Reason, Detail); its work was told to stop.
	EventLost
	// EventFailover: the campaign left Addr (Detail says why) for the next
	// address.
	EventFailover
	// EventRefused: the node refused a request without ending the stream
	// (Reason names the request, Detail says why).
	EventRefused
	// EventStopped: the campaign ended (Detail says why); the last event.
	EventStopped
)

func (k CampaignEventKind) String() string {
	switch k {
	case EventQueued:
		return "queued"
	case EventLeading:
		return "leading"
	case EventLost:
		return "lost"
	case EventFailover:
		return "failover"
	case EventRefused:
		return "refused"
	case EventStopped:
		return "stopped"
	}
	return fmt.Sprintf("CampaignEventKind(%d)", int(k))
}

// CampaignEvent is one thing that happened to a campaign.
type CampaignEvent struct {
	Kind       CampaignEventKind
	Addr       string // the node concerned
	Epoch      int64  // EventLeading, EventLost
	Position   int32  // EventQueued
	WaitingFor string // EventQueued
	NeverLead  bool   // EventQueued: the candidate is a member only
	Reason     string // EventLost: Reason...; EventRefused: the request
	Detail     string // for people
}

// WorkFunc is the work a candidate does while it leads term. Its ctx is
// cancelled (with a [*LostError] as context.Cause) before the lease deadline
// passes, when the node says the term is lost, when the stream breaks, and
// when Campaign's ctx ends; it must then stop acting as leader and return
// promptly: the helper acknowledges the loss, and the next candidate leads,
// only after it returned. Returning on its own means "resign".
type WorkFunc func(ctx context.Context, term Term) error

// Term is one term of leadership, given to the work.
type Term struct {
	// Epoch is the term's fencing token: pass it to every resource the
	// leader writes to, and have them reject lower epochs.
	Epoch int64
	// Znode is the candidate's entry under the election path.
	Znode string
	// Addr is the node that holds the candidacy.
	Addr string

	t *termShared
}

// termShared is what a Term's methods share with the campaign's goroutine.
type termShared struct {
	run  *campaignRun
	done <-chan struct{} // the work's ctx.Done
	ctx  context.Context // the work's ctx, for its cause

	mu       sync.Mutex
	deadline time.Time
}

func (s *termShared) setDeadline(d time.Time) {
	s.mu.Lock()
	s.deadline = d
	s.mu.Unlock()
}

// Deadline is the term's current lease deadline (on this process's
// monotonic clock): the candidate may act as leader until then and not a
// moment longer. It moves forward with every grant; the work's ctx is
// cancelled a safety margin before it (10 % of the lease, at least 50 ms).
func (t Term) Deadline() time.Time {
	if t.t == nil {
		return time.Time{}
	}
	t.t.mu.Lock()
	defer t.t.mu.Unlock()
	return t.t.deadline
}

// Proclaim replaces the candidate's value (at most 16 KiB) without changing
// the epoch, and returns its new value revision, which watchers see as
// Node.value_revision. A refusal by the node is an [*Error] with
// FAILED_PRECONDITION (or INVALID_ARGUMENT); after the term ended it returns
// the [*LostError]; a broken stream is an [*Error] with UNAVAILABLE.
func (t Term) Proclaim(ctx context.Context, value []byte) (int64, error) {
	if t.t == nil {
		return 0, &Error{Err: errors.New("Proclaim: not a term given by Campaign")}
	}
	req := proclaimReq{epoch: t.Epoch, value: append([]byte(nil), value...), reply: make(chan proclaimResult, 1)}
	select {
	case t.t.run.proclaims <- req:
	case <-t.t.done:
		return 0, t.lost()
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	select {
	case res := <-req.reply:
		return res.revision, res.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// lost is why the term ended.
func (t Term) lost() error {
	var le *LostError
	if errors.As(context.Cause(t.t.ctx), &le) {
		return le
	}
	return &LostError{Epoch: t.Epoch, Reason: ReasonResigned, Detail: "the campaign ended"}
}

type proclaimReq struct {
	epoch int64
	value []byte
	reply chan proclaimResult
}

type proclaimResult struct {
	revision int64
	err      error
}

// Campaign makes the caller a candidate called candidateID in the named
// election and runs work while it leads, until the campaign ends. It blocks:
//
//	err := c.Campaign(ctx, "orders", "worker-1", func(ctx context.Context, t electd.Term) error {
//		return serveOrders(ctx, t.Epoch) // until ctx is done
//	}, electd.WithValue([]byte("10.0.0.5:8080")))
//
// It opens the Campaign stream to the first address that works (the
// failover rules of WatchLeader: UNAVAILABLE, DEADLINE_EXCEEDED,
// RESOURCE_EXHAUSTED, a connect or first-message deadline missed, the stream
// ending: next address, with backoff after each full round), and pings
// every [WithPingInterval]. Each grant (CampaignLeading answering ping N)
// sets the deadline to the send time of ping N plus lease_ms on the
// monotonic clock; the work of a term starts when the node says it leads
// with a deadline far enough ahead, and its ctx is cancelled when the
// deadline comes within the safety margin (10 % of the lease, at least
// 50 ms), on the node's Lost, on a broken stream and when ctx ends. After
// the work returned the helper acknowledges the Lost, so that the next
// candidate may lead. A term never starts twice, and never with an epoch
// lower than one already run, also across nodes.
//
// The campaign ends, and Campaign returns:
//   - ctx.Err() when ctx ends: that is how the caller resigns (the work is
//     cancelled and waited for, then the resignation is sent);
//   - nil when the work returns nil on its own (the candidate resigns);
//   - the work's error when it fails (after resigning);
//   - a [*LostError] when a term is lost and [OnLoss]([LossStop]) was given;
//   - [ErrClosed] when the client is closed;
//   - an [*Error] for a status that is the caller's problem
//     (INVALID_ARGUMENT, PERMISSION_DENIED, ALREADY_EXISTS on the first
//     registration), or with [Error.NoNodeAnswered] if no node answered in
//     the first round. After a node answered once it keeps trying.
//
// A lease deadline that ran out without a Lost (a node that stopped
// answering in time) ends the term on the client's side; the candidate then
// resigns on that stream and (with LossRecampaign) campaigns again on a new
// one, since it must never run that epoch again. ALREADY_EXISTS after a
// registration (the node still holds the candidacy of a broken stream until
// its lease ran out) is retried like UNAVAILABLE.
func (c *ElectionClient) Campaign(ctx context.Context, election, candidateID string, work WorkFunc, opts ...CampaignOption) error {
	o := campaignOptions{pingInterval: DefaultPingInterval}
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case election == "":
		return &Error{Err: errors.New("Campaign: election must not be empty")}
	case candidateID == "":
		return &Error{Err: errors.New("Campaign: candidate id must not be empty")}
	case work == nil:
		return &Error{Err: errors.New("Campaign: work must not be nil")}
	case o.pingInterval <= 0:
		return &Error{Err: fmt.Errorf("WithPingInterval: must be positive, got %v", o.pingInterval)}
	case o.onLoss != LossRecampaign && o.onLoss != LossStop:
		return &Error{Err: fmt.Errorf("OnLoss: unknown policy %d", o.onLoss)}
	}
	r := &campaignRun{c: c, ctx: ctx, election: election, id: candidateID, work: work, o: o,
		m: newTermMachine(o.pingInterval), proclaims: make(chan proclaimReq)}
	err := r.run()
	detail := "resigned"
	if err != nil {
		detail = err.Error()
	}
	r.emit(CampaignEvent{Kind: EventStopped, Detail: detail})
	return err
}

// campaignRun is one Campaign call; its fields belong to Campaign's goroutine.
type campaignRun struct {
	c            *ElectionClient
	ctx          context.Context
	election, id string
	work         WorkFunc
	o            campaignOptions
	m            *termMachine
	proclaims    chan proclaimReq

	w          *workRun // the running work, nil when none
	registered bool     // some node accepted the start (answered it)

	ack func(epoch int64) error // sends an ack on the current stream
}

// workRun is the goroutine running the work of one term.
type workRun struct {
	epoch  int64
	cancel context.CancelCauseFunc
	done   chan error
	shared *termShared
	cause  *LostError // set when the helper cancelled it
}

func (r *campaignRun) emit(ev CampaignEvent) {
	if r.o.hook != nil {
		r.o.hook(ev)
	}
}

// outcome is how one stream ended.
type outcome int

const (
	outFailover outcome = iota // next address (err says why)
	outReopen                  // we resigned an expired term: a new stream on the same node
	outDone                    // the campaign is over; err is Campaign's result
)

func (r *campaignRun) run() error {
	c := r.c
	n := len(c.addrs)
	i := c.start()
	var (
		answered bool // some node answered during this Campaign
		failed   int  // consecutive attempts without an answer
		rounds   int
		lastErr  error
		lastAddr string
	)
	for {
		out, gotAnswer, err := r.stream(i)
		switch out {
		case outDone:
			return err
		case outReopen:
			failed, rounds = 0, 0
			continue
		}
		if r.ctx.Err() != nil {
			return r.ctx.Err()
		}
		select {
		case <-c.closed:
			return ErrClosed
		default:
		}
		r.emit(CampaignEvent{Kind: EventFailover, Addr: c.addrs[i], Detail: failoverReason(err)})
		answered = answered || gotAnswer
		lastErr, lastAddr = err, c.addrs[i]
		c.failed(i)
		i = (i + 1) % n
		if gotAnswer {
			failed, rounds = 0, 0
			continue
		}
		failed++
		if failed%n != 0 {
			continue
		}
		if !answered && !r.registered {
			return &Error{Addrs: c.Addrs(), Err: lastErr, addr: lastAddr, noNode: true}
		}
		rounds++
		if err := c.sleep(r.ctx, c.opts.backoffDelay(rounds)); err != nil {
			return err
		}
	}
}

type recvResult struct {
	msg *electdpb.CampaignResponse
	err error
}

// errResignUnconfirmed: the node did not end the stream after our resign.
var errResignUnconfirmed = errors.New("the node did not end the stream after the resignation")

// stream runs one Campaign stream on address i until it ends.
func (r *campaignRun) stream(i int) (out outcome, gotAnswer bool, err error) {
	c, addr := r.c, r.c.addrs[i]
	if err := c.connect(r.ctx, i); err != nil {
		if r.ctx.Err() != nil {
			return outDone, false, r.ctx.Err()
		}
		return outFailover, false, err
	}
	// The stream outlives the caller's ctx: a resignation is sent on it
	// after ctx ended. It is cancelled on every return.
	sctx, cancel := context.WithCancel(context.WithoutCancel(r.ctx))
	defer cancel()
	st, err := electdpb.NewElectionServiceClient(c.conns[i]).Campaign(sctx)
	if err != nil {
		return outFailover, false, err
	}
	r.m.newStream()
	recv := make(chan recvResult)
	go func() {
		for {
			msg, err := st.Recv()
			select {
			case recv <- recvResult{msg, err}:
			case <-sctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()

	var (
		pending    []proclaimReq // proclaims sent, oldest first
		resigning  bool          // this stream ends with our resignation ...
		resignSent bool
		final      outcome // ... and then returns this
		finalErr   error
	)
	failProclaims := func(err error) {
		for _, p := range pending {
			p.reply <- proclaimResult{err: err}
		}
		pending = nil
	}
	defer func() {
		failProclaims(&Error{Addrs: []string{addr}, addr: addr, Err: status.Error(codes.Unavailable, "the campaign stream ended")})
	}()
	send := func(req *electdpb.CampaignRequest) error {
		err := st.Send(req)
		if err == io.EOF {
			return nil // the stream ended; Recv reports how
		}
		return err
	}
	ping := func() error {
		return send(&electdpb.CampaignRequest{Request: &electdpb.CampaignRequest_Ping{
			Ping: &electdpb.CampaignPing{Nonce: r.m.ping(time.Now())}}})
	}
	r.ack = func(epoch int64) error {
		if resignSent {
			return nil // the resignation acknowledged everything
		}
		return send(&electdpb.CampaignRequest{Request: &electdpb.CampaignRequest_Ack{Ack: &electdpb.CampaignAck{Epoch: epoch}}})
	}

	firstMessage := time.NewTimer(c.opts.firstMessageTimeout)
	defer firstMessage.Stop()
	pingTimer := time.NewTimer(r.m.pingEvery())
	defer pingTimer.Stop()
	expiry := time.NewTimer(time.Hour)
	expiry.Stop()
	defer expiry.Stop()
	var resignWait <-chan time.Time

	// brokenStream ends this stream after a failure: the term ends (the work
	// is cancelled and waited for) and the campaign fails over, or ends.
	brokenStream := func(err error) (outcome, bool, error) {
		cancel()
		if err == nil {
			err = errStreamEnded
		}
		r.apply(r.m.onStreamEnd(failoverReason(err)), addr, nil)
		werr, lost := r.waitWork()
		switch {
		case werr != nil:
			return outDone, gotAnswer, werr
		case resigning && final == outDone:
			return outDone, gotAnswer, finalErr
		case lost != nil && r.o.onLoss == LossStop:
			return outDone, gotAnswer, lost
		}
		if s, ok := status.FromError(err); ok && !watchFailover(err) &&
			!(s.Code() == codes.AlreadyExists && r.registered) {
			return outDone, gotAnswer, &Error{Addrs: []string{addr}, Err: err, addr: addr}
		}
		return outFailover, gotAnswer, err
	}
	// resign ends this stream with a resignation (once no work runs), then
	// returns out, err.
	resign := func(out outcome, err error) {
		if !resigning {
			resigning, final, finalErr = true, out, err
			r.apply(r.m.onResign("the candidate resigned"), addr, nil)
		}
	}
	sendResign := func() error {
		if !resigning || resignSent || r.w != nil {
			return nil
		}
		resignSent = true
		resignWait = time.After(c.opts.callTimeout)
		return send(&electdpb.CampaignRequest{Request: &electdpb.CampaignRequest_Resign{Resign: &electdpb.CampaignResign{}}})
	}
	resetExpiry := func() {
		if x := r.m.expiry(); !x.IsZero() {
			expiry.Reset(time.Until(x))
		} else {
			expiry.Stop()
		}
	}

	err = send(&electdpb.CampaignRequest{Request: &electdpb.CampaignRequest_Start{Start: &electdpb.CampaignStart{
		Election: r.election, CandidateId: r.id, Value: r.o.value, Labels: r.o.labels,
		Priority: r.o.priority, NeverLead: r.o.neverLead,
	}}})
	if err == nil {
		err = ping()
	}
	if err != nil {
		return brokenStream(err)
	}
	ctxDone := r.ctx.Done()
	for {
		var workDone chan error
		if r.w != nil {
			workDone = r.w.done
		}
		var err error
		select {
		case <-ctxDone:
			ctxDone = nil
			resign(outDone, r.ctx.Err())
		case <-c.closed:
			cancel()
			r.apply(r.m.onStreamEnd("client closed"), addr, nil)
			if werr, _ := r.waitWork(); werr != nil {
				return outDone, gotAnswer, werr
			}
			return outDone, gotAnswer, ErrClosed
		case <-firstMessage.C:
			return brokenStream(fmt.Errorf("%w (%v)", errFirstMessage, c.opts.firstMessageTimeout))
		case <-resignWait:
			if final == outDone {
				return outDone, gotAnswer, finalErr
			}
			return brokenStream(errResignUnconfirmed)
		case <-pingTimer.C:
			err = ping()
			pingTimer.Reset(r.m.pingEvery())
		case <-expiry.C:
			r.apply(r.m.onTick(time.Now()), addr, nil)
		case werr := <-workDone:
			w := r.w
			r.w = nil
			w.cancel(nil)
			r.lostOnItsOwn(w, werr, addr)
			if e := r.m.workReturned(); e != 0 {
				err = r.ack(e)
			}
			switch {
			case w.cause == nil || !stoppedAsAsked(werr, w):
				// Returned on its own: resign (nil), or failed.
				resign(outDone, werr)
			case w.cause.Reason == ReasonResigned, w.cause.Reason == ReasonDisconnected:
			case r.o.onLoss == LossStop:
				resign(outDone, w.cause)
			case w.cause.Reason == ReasonExpired:
				resign(outReopen, nil) // that epoch must not run again: a new entry
			}
		case req := <-r.proclaims:
			if e, ok := r.m.leading(); !ok || e != req.epoch || resigning {
				req.reply <- proclaimResult{err: &LostError{Epoch: req.epoch, Reason: ReasonResigned, Detail: "the term is no longer current"}}
				break
			}
			pending = append(pending, req)
			err = send(&electdpb.CampaignRequest{Request: &electdpb.CampaignRequest_Proclaim{
				Proclaim: &electdpb.CampaignProclaim{Epoch: req.epoch, Value: req.value}}})
		case rr := <-recv:
			if rr.err != nil {
				if rr.err == io.EOF && resignSent {
					return final, gotAnswer, finalErr
				}
				if rr.err == io.EOF {
					return brokenStream(errStreamEnded)
				}
				return brokenStream(rr.err)
			}
			if !gotAnswer {
				gotAnswer, r.registered = true, true
				firstMessage.Stop()
			}
			err = r.handle(rr.msg, addr, resigning, &pending, ping)
		}
		if err == nil {
			err = sendResign()
		}
		if err != nil {
			return brokenStream(err)
		}
		resetExpiry()
	}
}

// stoppedAsAsked reports whether the work, which the helper cancelled,
// returned as asked (nil, or its context's error) rather than with an error
// of its own.
func stoppedAsAsked(err error, w *workRun) bool {
	return err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, w.cause)
}

// handle applies one response of the node.
func (r *campaignRun) handle(msg *electdpb.CampaignResponse, addr string, resigning bool, pending *[]proclaimReq, ping func() error) error {
	switch m := msg.GetResponse().(type) {
	case *electdpb.CampaignResponse_Queued:
		if resigning {
			return nil
		}
		st := r.m.onQueued(m.Queued)
		if err := r.apply(st, addr, nil); err != nil {
			return err
		}
		if st.queued {
			r.emit(CampaignEvent{Kind: EventQueued, Addr: addr, Position: m.Queued.GetPosition(),
				WaitingFor: m.Queued.GetWaitingFor(), NeverLead: m.Queued.GetNeverLead()})
		}
	case *electdpb.CampaignResponse_Leading:
		if resigning {
			return nil
		}
		st := r.m.onLeading(m.Leading, time.Now())
		if err := r.apply(st, addr, m.Leading); err != nil {
			return err
		}
		if r.w != nil && r.w.epoch == r.m.epoch {
			r.w.shared.setDeadline(r.m.deadline)
		}
		if st.pingNow {
			return ping()
		}
	case *electdpb.CampaignResponse_Lost:
		return r.apply(r.m.onLost(m.Lost), addr, nil)
	case *electdpb.CampaignResponse_Proclaimed:
		if len(*pending) == 0 {
			r.emit(CampaignEvent{Kind: EventRefused, Addr: addr, Reason: "proclaimed",
				Detail: "a Proclaimed without a pending proclaim (ignored)"})
			return nil
		}
		p := (*pending)[0]
		*pending = (*pending)[1:]
		p.reply <- proclaimResult{revision: m.Proclaimed.GetValueRevision()}
	case *electdpb.CampaignResponse_Refused:
		req, reason := m.Refused.GetRequest(), m.Refused.GetReason()
		if req == "proclaim" && len(*pending) > 0 {
			p := (*pending)[0]
			*pending = (*pending)[1:]
			p.reply <- proclaimResult{err: &Error{Addrs: []string{addr}, addr: addr,
				Err: status.Error(codes.FailedPrecondition, "proclaim refused: "+reason)}}
			return nil
		}
		r.emit(CampaignEvent{Kind: EventRefused, Addr: addr, Reason: req, Detail: reason})
	}
	return nil
}

// lostOnItsOwn emits the Lost event of a term whose work returned before the
// helper told it to stop (it resigned, failed, or saw the caller's ctx end):
// every term that started gets one Lost event.
func (r *campaignRun) lostOnItsOwn(w *workRun, werr error, addr string) {
	if w.cause != nil {
		return
	}
	detail := "the work returned"
	if werr != nil {
		detail = "the work returned: " + werr.Error()
	}
	r.emit(CampaignEvent{Kind: EventLost, Addr: addr, Epoch: w.epoch, Reason: ReasonResigned, Detail: detail})
}

// apply carries out a step of the term machine: end a term, ack, start a
// term (lead is the Leading that started it).
func (r *campaignRun) apply(st step, addr string, lead *electdpb.CampaignLeading) error {
	if st.endEpoch != 0 && r.w != nil && r.w.cause == nil {
		r.w.cause = st.endCause
		r.w.cancel(st.endCause)
		r.emit(CampaignEvent{Kind: EventLost, Addr: addr, Epoch: st.endEpoch,
			Reason: st.endCause.Reason, Detail: st.endCause.Detail})
	}
	if st.ack != 0 && r.ack != nil {
		if err := r.ack(st.ack); err != nil {
			return err
		}
	}
	if st.start != 0 && lead != nil {
		r.startWork(st.start, lead.GetZnode(), addr)
		r.emit(CampaignEvent{Kind: EventLeading, Addr: addr, Epoch: st.start})
	}
	return nil
}

// startWork runs the work of term epoch on its own goroutine.
func (r *campaignRun) startWork(epoch int64, znode, addr string) {
	wctx, cancel := context.WithCancelCause(r.ctx)
	shared := &termShared{run: r, done: wctx.Done(), ctx: wctx}
	shared.setDeadline(r.m.deadline)
	w := &workRun{epoch: epoch, cancel: cancel, done: make(chan error, 1), shared: shared}
	r.w = w
	term := Term{Epoch: epoch, Znode: znode, Addr: addr, t: shared}
	go func() { w.done <- r.work(wctx, term) }()
}

// waitWork waits for the running work (already told to stop) to return. err
// is its own error if it failed rather than stopping as asked (or resigned on
// its own); lost is why its term ended.
func (r *campaignRun) waitWork() (err error, lost *LostError) {
	w := r.w
	if w == nil {
		return nil, nil
	}
	werr := <-w.done
	r.w = nil
	r.m.workReturned()
	w.cancel(nil)
	r.lostOnItsOwn(w, werr, "")
	if w.cause == nil || !stoppedAsAsked(werr, w) {
		return werr, w.cause
	}
	if w.cause.Reason == ReasonResigned {
		return nil, nil
	}
	return nil, w.cause
}
