package electd

// Tests of Campaign against an in-process node that scripts the Campaign
// stream: the work runs on a grant, is cancelled on Lost, the ack comes only
// after the work returned, the caller's cancel resigns, the work's return
// resigns, statuses fail over or are returned. They wait for events, never
// for a time.

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/electd/electd/clients/go/electdpb"
)

// campaignNode answers Campaign like a node: Queued until the test makes the
// candidate lead, then Leading for every ping (lease 60 s, so that no
// deadline runs out during a test), Lost when the test says so, Lost
// (RESIGNED) and the end of the stream on resign.
type campaignNode struct {
	electdpb.UnimplementedElectionServiceServer
	refuse error // Campaign fails at once with this

	mu     sync.Mutex
	epoch  int64 // the candidate leads this term (0: queued)
	stream chan electdpb.ElectionService_CampaignServer

	reqs   chan *electdpb.CampaignRequest // every request but pings
	starts chan *electdpb.CampaignStart
}

func newCampaignNode() *campaignNode {
	return &campaignNode{reqs: make(chan *electdpb.CampaignRequest, 100), starts: make(chan *electdpb.CampaignStart, 10),
		stream: make(chan electdpb.ElectionService_CampaignServer, 10)}
}

// serveCampaign serves n on 127.0.0.1 (with the keepalive policy of
// startNode) and returns its address.
func serveCampaign(t *testing.T, n electdpb.ElectionServiceServer) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
		MinTime: time.Second, PermitWithoutStream: true,
	}))
	electdpb.RegisterElectionServiceServer(srv, n)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

func (n *campaignNode) Campaign(s electdpb.ElectionService_CampaignServer) error {
	if n.refuse != nil {
		return n.refuse
	}
	first, err := s.Recv()
	if err != nil {
		return err
	}
	n.starts <- first.GetStart()
	send := func(r *electdpb.CampaignResponse) error { n.mu.Lock(); defer n.mu.Unlock(); return s.Send(r) }
	if err := send(&electdpb.CampaignResponse{Response: &electdpb.CampaignResponse_Queued{Queued: &electdpb.CampaignQueued{Position: 1}}}); err != nil {
		return err
	}
	n.stream <- s
	for {
		req, err := s.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if p := req.GetPing(); p != nil {
			n.mu.Lock()
			e := n.epoch
			n.mu.Unlock()
			var r *electdpb.CampaignResponse
			if e != 0 {
				r = &electdpb.CampaignResponse{Response: &electdpb.CampaignResponse_Leading{Leading: &electdpb.CampaignLeading{Epoch: e, Nonce: p.GetNonce(), LeaseMs: 60000}}}
			} else {
				r = &electdpb.CampaignResponse{Response: &electdpb.CampaignResponse_Queued{Queued: &electdpb.CampaignQueued{Position: 1, Nonce: p.GetNonce()}}}
			}
			if err := send(r); err != nil {
				return err
			}
			continue
		}
		n.reqs <- req
		if pr := req.GetProclaim(); pr != nil {
			if err := send(&electdpb.CampaignResponse{Response: &electdpb.CampaignResponse_Proclaimed{Proclaimed: &electdpb.CampaignProclaimed{Epoch: pr.GetEpoch(), ValueRevision: 1}}}); err != nil {
				return err
			}
		}
		if req.GetResign() != nil {
			n.mu.Lock()
			e := n.epoch
			n.mu.Unlock()
			if e != 0 {
				if err := send(&electdpb.CampaignResponse{Response: &electdpb.CampaignResponse_Lost{Lost: &electdpb.CampaignLost{Epoch: e, Reason: electdpb.LossReason_LOSS_REASON_RESIGNED}}}); err != nil {
					return err
				}
			}
			return nil
		}
	}
}

// lead makes the candidate leader of term epoch (from its next ping on).
func (n *campaignNode) lead(epoch int64) {
	n.mu.Lock()
	n.epoch = epoch
	n.mu.Unlock()
}

// lose ends term epoch with reason; the candidate is queued again.
func (n *campaignNode) lose(t *testing.T, s electdpb.ElectionService_CampaignServer, epoch int64, r electdpb.LossReason) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.epoch = 0
	if err := s.Send(&electdpb.CampaignResponse{Response: &electdpb.CampaignResponse_Lost{Lost: &electdpb.CampaignLost{Epoch: epoch, Reason: r}}}); err != nil {
		t.Error(err)
	}
}

// events collects a campaign's events.
type events struct {
	mu  sync.Mutex
	all []CampaignEvent
	ch  chan CampaignEvent
}

func newEvents() *events { return &events{ch: make(chan CampaignEvent, 100)} }

func (e *events) hook(ev CampaignEvent) {
	e.mu.Lock()
	e.all = append(e.all, ev)
	e.mu.Unlock()
	e.ch <- ev
}

// next waits for the next event of kind k, skipping failovers, refusals
// and (unless k is EventQueued) queue positions.
func (e *events) next(t *testing.T, k CampaignEventKind) CampaignEvent {
	t.Helper()
	for ev := range e.ch {
		if ev.Kind == EventFailover || ev.Kind == EventRefused || (ev.Kind == EventQueued && k != EventQueued) {
			continue
		}
		if ev.Kind != k {
			t.Fatalf("event %v (%+v), want %v", ev.Kind, ev, k)
		}
		return ev
	}
	t.Fatal("no more events")
	return CampaignEvent{}
}

func TestCampaignRunsWorkAcksAfterItReturnedAndResignsOnCancel(t *testing.T) {
	node := newCampaignNode()
	addr := serveCampaign(t, node)
	c := newClient(t, addr)
	ev := newEvents()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var returned atomic.Int64 // epoch whose work returned last
	terms := make(chan Term, 10)
	done := make(chan error, 1)
	go func() {
		done <- c.Campaign(ctx, "orders", "w1", func(wctx context.Context, term Term) error {
			terms <- term
			<-wctx.Done()
			returned.Store(term.Epoch)
			return wctx.Err()
		}, WithValue([]byte("v")), WithPriority(3), WithCampaignHook(ev.hook), WithPingInterval(20*time.Millisecond))
	}()
	start := <-node.starts
	if start.GetElection() != "orders" || start.GetCandidateId() != "w1" || string(start.GetValue()) != "v" || start.GetPriority() != 3 {
		t.Fatalf("start %v", start)
	}
	s := <-node.stream
	if q := ev.next(t, EventQueued); q.Position != 1 {
		t.Fatalf("%+v", q)
	}
	node.lead(7)
	term := <-terms
	if term.Epoch != 7 || term.Deadline().IsZero() {
		t.Fatalf("term %+v deadline %v", term, term.Deadline())
	}
	ev.next(t, EventLeading)
	if rev, err := term.Proclaim(context.Background(), []byte("v2")); err != nil || rev != 1 {
		t.Fatalf("Proclaim: %d %v", rev, err)
	}
	if req := <-node.reqs; req.GetProclaim().GetEpoch() != 7 {
		t.Fatalf("proclaim %v", req)
	}

	node.lose(t, s, 7, electdpb.LossReason_LOSS_REASON_PREEMPTED)
	if l := ev.next(t, EventLost); l.Epoch != 7 || l.Reason != ReasonPreempted {
		t.Fatalf("%+v", l)
	}
	req := <-node.reqs
	if req.GetAck().GetEpoch() != 7 {
		t.Fatalf("request after Lost: %v, want ack 7", req)
	}
	if returned.Load() != 7 {
		t.Fatal("ack sent before the work returned")
	}
	var le *LostError
	if _, err := term.Proclaim(context.Background(), []byte("v3")); !errors.As(err, &le) || le.Epoch != 7 {
		t.Fatalf("Proclaim after the loss: %v", err)
	}

	// Re-campaign (the default): the same epoch is never run again, the
	// next one is.
	node.lead(9)
	if term := <-terms; term.Epoch != 9 {
		t.Fatalf("term %d, want 9", term.Epoch)
	}
	ev.next(t, EventLeading)
	cancel()
	if req := <-node.reqs; req.GetResign() == nil {
		t.Fatalf("request after cancel: %v, want resign", req)
	}
	if returned.Load() != 9 {
		t.Fatal("resign sent before the work returned")
	}
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Campaign: %v", err)
	}
	if l := ev.next(t, EventLost); l.Epoch != 9 || l.Reason != ReasonResigned {
		t.Fatalf("%+v", l)
	}
	ev.next(t, EventStopped)
}

func TestCampaignStopOnLossReturnsLostError(t *testing.T) {
	node := newCampaignNode()
	c := newClient(t, serveCampaign(t, node))
	node.lead(5)
	done := make(chan error, 1)
	go func() {
		done <- c.Campaign(context.Background(), "e", "w", func(ctx context.Context, term Term) error {
			<-ctx.Done()
			var le *LostError
			if !errors.As(context.Cause(ctx), &le) || le.Reason != ReasonDeleted {
				t.Errorf("cause %v", context.Cause(ctx))
			}
			return ctx.Err()
		}, OnLoss(LossStop))
	}()
	s := <-node.stream
	node.lose(t, s, 5, electdpb.LossReason_LOSS_REASON_DELETED)
	if req := <-node.reqs; req.GetAck().GetEpoch() != 5 {
		t.Fatalf("%v, want ack 5", req)
	}
	if req := <-node.reqs; req.GetResign() == nil {
		t.Fatalf("%v, want resign", req)
	}
	var le *LostError
	if err := <-done; !errors.As(err, &le) || le.Epoch != 5 || le.Reason != ReasonDeleted {
		t.Fatalf("Campaign: %v", err)
	}
}

func TestCampaignWorkErrorResignsAndIsReturned(t *testing.T) {
	node := newCampaignNode()
	c := newClient(t, serveCampaign(t, node))
	node.lead(5)
	boom := errors.New("boom")
	err := c.Campaign(context.Background(), "e", "w", func(context.Context, Term) error { return boom })
	if err != boom {
		t.Fatalf("Campaign: %v, want the work's error", err)
	}
	if req := <-node.reqs; req.GetResign() == nil {
		t.Fatalf("%v, want resign", req)
	}
	// Returning nil on its own is a resignation too, and Campaign returns nil.
	if err := c.Campaign(context.Background(), "e", "w", func(context.Context, Term) error { return nil }); err != nil {
		t.Fatalf("Campaign: %v", err)
	}
}

func TestCampaignFailsOverAndReturnsCallerErrors(t *testing.T) {
	down := &campaignNode{refuse: status.Error(codes.Unavailable, "shutting down")}
	node := newCampaignNode()
	c := newClient(t, serveCampaign(t, down), serveCampaign(t, node))
	node.lead(3)
	ev := newEvents()
	err := c.Campaign(context.Background(), "e", "w", func(context.Context, Term) error { return nil }, WithCampaignHook(ev.hook))
	if err != nil {
		t.Fatalf("Campaign: %v", err)
	}
	first := <-ev.ch
	if first.Kind != EventFailover || first.Addr != c.Addrs()[0] {
		t.Fatalf("first event %+v, want failover from %s", first, c.Addrs()[0])
	}

	bad := &campaignNode{refuse: status.Error(codes.InvalidArgument, "bad election name")}
	c2 := newClient(t, serveCampaign(t, bad))
	err = c2.Campaign(context.Background(), "e", "w", func(context.Context, Term) error { return nil })
	var e *Error
	if !errors.As(err, &e) || e.Code() != codes.InvalidArgument || e.NoNodeAnswered() {
		t.Fatalf("Campaign: %v, want INVALID_ARGUMENT", err)
	}
	if err := c2.Campaign(context.Background(), "", "w", func(context.Context, Term) error { return nil }); !errors.As(err, &e) {
		t.Fatalf("empty election: %v", err)
	}
}
