package electd

// Named elections on the read side: the election field is sent, VACANT is no
// reason to fail over, a proclamation (same epoch, higher value revision) is
// reported once; Resign and ListElections reach the node.

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/electd/electd/clients/go/electdpb"
)

type namedNode struct {
	electdpb.UnimplementedElectionServiceServer
	requests chan string // the election of each read
}

func (n *namedNode) GetLeader(_ context.Context, r *electdpb.GetLeaderRequest) (*electdpb.GetLeaderResponse, error) {
	n.requests <- r.GetElection()
	return leaderResp("c1", 5), nil
}

func (n *namedNode) ListNodes(_ context.Context, r *electdpb.ListNodesRequest) (*electdpb.ListNodesResponse, error) {
	n.requests <- r.GetElection()
	return &electdpb.ListNodesResponse{}, nil
}

func (n *namedNode) Resign(_ context.Context, r *electdpb.ResignRequest) (*electdpb.ResignResponse, error) {
	n.requests <- r.GetElection()
	return &electdpb.ResignResponse{Leader: leader("c1", r.GetEpoch())}, nil
}

func (n *namedNode) ListElections(context.Context, *electdpb.ListElectionsRequest) (*electdpb.ListElectionsResponse, error) {
	return &electdpb.ListElectionsResponse{Elections: []*electdpb.ElectionSummary{{Name: "orders", Candidates: 2}}}, nil
}

func withRevision(m *electdpb.WatchLeaderResponse, rev int64) *electdpb.WatchLeaderResponse {
	m.Leader.Node.ValueRevision = rev
	return m
}

func (n *namedNode) WatchLeader(r *electdpb.WatchLeaderRequest, s electdpb.ElectionService_WatchLeaderServer) error {
	n.requests <- r.GetElection()
	vacant := &electdpb.WatchLeaderResponse{State: electdpb.LeaderState_LEADER_STATE_VACANT}
	for _, m := range []*electdpb.WatchLeaderResponse{
		vacant, elected("c1", 5), withRevision(elected("c1", 5), 1), withRevision(elected("c1", 5), 1),
		vacant, withRevision(elected("c1", 5), 0), elected("c2", 8),
	} {
		if err := s.Send(m); err != nil {
			return err
		}
	}
	<-s.Context().Done()
	return nil
}

func TestNamedElectionReads(t *testing.T) {
	n := &namedNode{requests: make(chan string, 10)}
	c := newClient(t, serveCampaign(t, n))
	ctx := context.Background()
	if _, err := c.GetLeader(ctx, InElection("orders")); err != nil || <-n.requests != "orders" {
		t.Fatal(err)
	}
	if _, err := c.GetLeader(ctx); err != nil || <-n.requests != "" {
		t.Fatal(err)
	}
	if _, err := c.ListNodes(ctx, nil, InElection("orders")); err != nil || <-n.requests != "orders" {
		t.Fatal(err)
	}
	if r, err := c.Resign(ctx, "orders", 5); err != nil || <-n.requests != "orders" || r.GetLeader().GetEpoch() != 5 {
		t.Fatal(r, err)
	}
	var e *Error
	if _, err := c.Resign(ctx, "orders", 0); !errors.As(err, &e) {
		t.Fatalf("Resign epoch 0: %v", err)
	}
	if r, err := c.ListElections(ctx); err != nil || r.GetElections()[0].GetName() != "orders" {
		t.Fatal(r, err)
	}

	type seen struct{ epoch, rev int64 }
	got := make(chan seen, 10)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	failovers := make(chan string, 10)
	go c.WatchLeader(wctx, func(l *electdpb.Leader) error {
		got <- seen{l.GetEpoch(), l.GetNode().GetValueRevision()}
		return nil
	}, InElection("orders"), WithFailoverHook(func(addr, reason string) { failovers <- reason }))
	if el := <-n.requests; el != "orders" {
		t.Fatalf("watch election %q", el)
	}
	for _, want := range []seen{{5, 0}, {5, 1}, {8, 0}} {
		select {
		case s := <-got:
			if s != want {
				t.Fatalf("reported %+v, want %+v", s, want)
			}
		case f := <-failovers:
			t.Fatalf("failed over: %s", f)
		case <-time.After(10 * time.Second):
			t.Fatalf("nothing reported, want %+v", want)
		}
	}
}
