package electd

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
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

// fakeNode is an in-process ElectionService on 127.0.0.1 whose answers each
// test scripts.
type fakeNode struct {
	electdpb.UnimplementedElectionServiceServer
	addr      string
	calls     atomic.Int32
	getLeader func() (*electdpb.GetLeaderResponse, error)
	watch     func(*electdpb.WatchLeaderRequest, electdpb.ElectionService_WatchLeaderServer) error
}

func (f *fakeNode) GetLeader(context.Context, *electdpb.GetLeaderRequest) (*electdpb.GetLeaderResponse, error) {
	f.calls.Add(1)
	return f.getLeader()
}

func (f *fakeNode) ListNodes(context.Context, *electdpb.ListNodesRequest) (*electdpb.ListNodesResponse, error) {
	f.calls.Add(1)
	resp, err := f.getLeader()
	if err != nil {
		return nil, err
	}
	return &electdpb.ListNodesResponse{Nodes: []*electdpb.Node{resp.GetLeader().GetNode()}, Epoch: resp.GetLeader().GetEpoch()}, nil
}

func (f *fakeNode) WatchLeader(req *electdpb.WatchLeaderRequest, s electdpb.ElectionService_WatchLeaderServer) error {
	f.calls.Add(1)
	return f.watch(req, s)
}

func startNode(t *testing.T, f *fakeNode) *fakeNode {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Like electd's own server: pings are welcome every second, with or
	// without calls (grpc-go's default would answer the client's 3 s
	// keepalive with GOAWAY "too many pings").
	srv := grpc.NewServer(grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
		MinTime: time.Second, PermitWithoutStream: true,
	}))
	electdpb.RegisterElectionServiceServer(srv, f)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	f.addr = lis.Addr().String()
	return f
}

// deadAddr is an address where nothing listens.
func deadAddr(t *testing.T) string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

func leaderResp(id string, epoch int64) *electdpb.GetLeaderResponse {
	return &electdpb.GetLeaderResponse{Leader: leader(id, epoch), ResponderId: id}
}

func leader(id string, epoch int64) *electdpb.Leader {
	return &electdpb.Leader{Node: &electdpb.Node{Id: id, Address: id + ":1"}, Epoch: epoch}
}

func elected(id string, epoch int64) *electdpb.WatchLeaderResponse {
	return &electdpb.WatchLeaderResponse{State: electdpb.LeaderState_LEADER_STATE_ELECTED, Leader: leader(id, epoch)}
}

func newClient(t *testing.T, addrs ...string) *ElectionClient {
	t.Helper()
	c, err := New(addrs, WithCallTimeout(time.Second), WithBackoff(time.Millisecond, 10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestGetLeaderFailsOverAndSticks(t *testing.T) {
	unavailable := startNode(t, &fakeNode{getLeader: func() (*electdpb.GetLeaderResponse, error) {
		return nil, status.Error(codes.Unavailable, "no ZooKeeper session")
	}})
	good := startNode(t, &fakeNode{getLeader: func() (*electdpb.GetLeaderResponse, error) {
		return leaderResp("n3", 1<<40+3), nil
	}})
	c := newClient(t, deadAddr(t), unavailable.addr, good.addr)
	for range 2 {
		resp, err := c.GetLeader(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetLeader().GetEpoch() != 1<<40+3 {
			t.Fatalf("epoch %d", resp.GetLeader().GetEpoch())
		}
	}
	// The second call went straight to the node that answered.
	if n := unavailable.calls.Load(); n != 1 {
		t.Fatalf("unavailable node called %d times, want 1", n)
	}
}

func TestGetLeaderReturnsOtherErrorsAtOnce(t *testing.T) {
	bad := startNode(t, &fakeNode{getLeader: func() (*electdpb.GetLeaderResponse, error) {
		return nil, status.Error(codes.InvalidArgument, "nope")
	}})
	good := startNode(t, &fakeNode{getLeader: func() (*electdpb.GetLeaderResponse, error) {
		return leaderResp("n2", 2), nil
	}})
	c := newClient(t, bad.addr, good.addr)
	_, err := c.GetLeader(context.Background())
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("got %v, want INVALID_ARGUMENT", err)
	}
	if good.calls.Load() != 0 {
		t.Fatal("an INVALID_ARGUMENT answer must not be retried on another node")
	}
}

func TestNoNodeAnsweredNamesAddresses(t *testing.T) {
	a, b := deadAddr(t), deadAddr(t)
	c := newClient(t, a, b)
	_, err := c.GetLeader(context.Background())
	var e *Error
	if !errors.As(err, &e) || !e.NoNodeAnswered() {
		t.Fatalf("got %v, want *Error with NoNodeAnswered", err)
	}
	if msg := err.Error(); !strings.Contains(msg, a) || !strings.Contains(msg, b) || status.Code(e.Err) != codes.Unavailable {
		t.Fatalf("bad error: %v", err)
	}
	if !slices.Equal(e.Addrs, []string{a, b}) {
		t.Fatalf("Addrs %v, want %v", e.Addrs, []string{a, b})
	}
	if e.Code() != codes.Unavailable || status.Code(err) != codes.Unavailable {
		t.Fatalf("Code %v, status.Code %v, want Unavailable", e.Code(), status.Code(err))
	}
	if e.Details() == "" || !strings.Contains(err.Error(), e.Details()) {
		t.Fatalf("Details %q not in %q", e.Details(), err)
	}
}

func TestErrorFromNodeCarriesItsStatus(t *testing.T) {
	bad := startNode(t, &fakeNode{getLeader: func() (*electdpb.GetLeaderResponse, error) {
		return nil, status.Error(codes.InvalidArgument, "bad selector")
	}})
	c := newClient(t, bad.addr, deadAddr(t))
	_, err := c.GetLeader(context.Background())
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got %T %v, want *Error", err, err)
	}
	if e.NoNodeAnswered() {
		t.Fatal("a node answered, but NoNodeAnswered is true")
	}
	if e.Code() != codes.InvalidArgument || e.Details() != "bad selector" {
		t.Fatalf("Code %v Details %q, want InvalidArgument \"bad selector\"", e.Code(), e.Details())
	}
	if !slices.Equal(e.Addrs, []string{bad.addr}) {
		t.Fatalf("Addrs %v, want [%s]", e.Addrs, bad.addr)
	}
	if s, ok := status.FromError(errors.Unwrap(err)); !ok || s.Code() != codes.InvalidArgument {
		t.Fatalf("Unwrap gave %v, want the node's status error", errors.Unwrap(err))
	}
	if want := "electd: " + bad.addr + ": rpc error: code = InvalidArgument desc = bad selector"; err.Error() != want {
		t.Fatalf("message %q, want %q", err.Error(), want)
	}
}

func TestErrorWithoutStatus(t *testing.T) {
	for _, err := range []error{ValidateAddress("no-port"), func() error { _, err := New(nil); return err }()} {
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("got %T %v, want *Error", err, err)
		}
		if e.NoNodeAnswered() || e.Code() != codes.Unknown || len(e.Addrs) != 0 || e.Details() != e.Err.Error() {
			t.Fatalf("%v: NoNodeAnswered %v Code %v Addrs %v Details %q", err, e.NoNodeAnswered(), e.Code(), e.Addrs, e.Details())
		}
		if !strings.HasPrefix(err.Error(), "electd: ") {
			t.Fatalf("message %q", err)
		}
	}
}

func TestWatchResumesWithMinEpochAndNeverRepeats(t *testing.T) {
	var mu sync.Mutex
	var minEpochs []int64
	record := func(req *electdpb.WatchLeaderRequest) {
		mu.Lock()
		defer mu.Unlock()
		minEpochs = append(minEpochs, req.GetMinEpoch())
	}
	// First node: two leaders, then it shuts down (stream ends with OK).
	a := startNode(t, &fakeNode{watch: func(req *electdpb.WatchLeaderRequest, s electdpb.ElectionService_WatchLeaderServer) error {
		record(req)
		s.Send(elected("n1", 5))
		s.Send(elected("n2", 7))
		return nil
	}})
	// Second node is behind at first, then catches up, then reports a new leader.
	b := startNode(t, &fakeNode{watch: func(req *electdpb.WatchLeaderRequest, s electdpb.ElectionService_WatchLeaderServer) error {
		record(req)
		s.Send(elected("n1", 5))
		s.Send(elected("n2", 7))
		s.Send(elected("n3", 9))
		<-s.Context().Done()
		return nil
	}})
	c := newClient(t, a.addr, b.addr)
	var got []int64
	err := c.WatchLeader(context.Background(), func(l *electdpb.Leader) error {
		got = append(got, l.GetEpoch())
		if l.GetEpoch() == 9 {
			return errors.New("done")
		}
		return nil
	})
	if err == nil || err.Error() != "done" {
		t.Fatalf("WatchLeader returned %v", err)
	}
	if want := []int64{5, 7, 9}; !slices.Equal(got, want) {
		t.Fatalf("reported %v, want %v", got, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []int64{0, 7}; !slices.Equal(minEpochs, want) {
		t.Fatalf("min_epoch sent %v, want %v", minEpochs, want)
	}
}

func TestWatchMovesOnFromUnknownState(t *testing.T) {
	unknown := startNode(t, &fakeNode{watch: func(_ *electdpb.WatchLeaderRequest, s electdpb.ElectionService_WatchLeaderServer) error {
		s.Send(&electdpb.WatchLeaderResponse{State: electdpb.LeaderState_LEADER_STATE_UNKNOWN, Reason: "disconnected"})
		<-s.Context().Done() // the client, not the node, must end this stream
		return nil
	}})
	good := startNode(t, &fakeNode{watch: func(_ *electdpb.WatchLeaderRequest, s electdpb.ElectionService_WatchLeaderServer) error {
		s.Send(elected("n2", 4))
		<-s.Context().Done()
		return nil
	}})
	c := newClient(t, unknown.addr, good.addr)
	err := c.WatchLeader(context.Background(), func(l *electdpb.Leader) error { return errors.New("got one") })
	if err == nil || err.Error() != "got one" {
		t.Fatalf("WatchLeader returned %v", err)
	}
}

func TestWatchCancelEndsStreamAtOnce(t *testing.T) {
	ended := make(chan struct{})
	n := startNode(t, &fakeNode{watch: func(_ *electdpb.WatchLeaderRequest, s electdpb.ElectionService_WatchLeaderServer) error {
		s.Send(elected("n1", 1))
		<-s.Context().Done()
		close(ended)
		return nil
	}})
	c := newClient(t, n.addr)
	ctx, cancel := context.WithCancel(context.Background())
	err := c.WatchLeader(ctx, func(*electdpb.Leader) error { cancel(); return nil })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("WatchLeader returned %v, want context.Canceled", err)
	}
	select {
	case <-ended:
	case <-time.After(2 * time.Second):
		t.Fatal("the server did not see the stream end")
	}
}

func TestWatchGivesUpWhenNoNodeEverAnswered(t *testing.T) {
	a, b := deadAddr(t), deadAddr(t)
	c := newClient(t, a, b)
	err := c.WatchLeader(context.Background(), func(*electdpb.Leader) error { return nil })
	var e *Error
	if !errors.As(err, &e) || !e.NoNodeAnswered() {
		t.Fatalf("got %v, want *Error with NoNodeAnswered", err)
	}
	if !slices.Equal(e.Addrs, []string{a, b}) || e.Code() != codes.Unavailable {
		t.Fatalf("Addrs %v Code %v, want %v Unavailable", e.Addrs, e.Code(), []string{a, b})
	}
}

func TestWatchReturnsOtherErrorsAtOnce(t *testing.T) {
	bad := startNode(t, &fakeNode{watch: func(*electdpb.WatchLeaderRequest, electdpb.ElectionService_WatchLeaderServer) error {
		return status.Error(codes.PermissionDenied, "not you")
	}})
	good := startNode(t, &fakeNode{watch: func(_ *electdpb.WatchLeaderRequest, s electdpb.ElectionService_WatchLeaderServer) error {
		s.Send(elected("n1", 1))
		<-s.Context().Done()
		return nil
	}})
	c := newClient(t, bad.addr, good.addr)
	err := c.WatchLeader(context.Background(), func(*electdpb.Leader) error { return nil })
	var e *Error
	if !errors.As(err, &e) || e.NoNodeAnswered() || e.Code() != codes.PermissionDenied || e.Details() != "not you" ||
		!slices.Equal(e.Addrs, []string{bad.addr}) {
		t.Fatalf("got %v, want *Error PermissionDenied from %s", err, bad.addr)
	}
	if good.calls.Load() != 0 {
		t.Fatal("a PERMISSION_DENIED answer must not be retried on another node")
	}
}

func TestBackoffDelay(t *testing.T) {
	// The pause before round r+1 is drawn from [0, 50 ms * 2^(r-1)], capped at 2 s.
	full := map[int]time.Duration{1: 50 * time.Millisecond, 2: 100 * time.Millisecond, 3: 200 * time.Millisecond,
		6: 1600 * time.Millisecond, 7: 2 * time.Second, 40: 2 * time.Second}
	o := options{backoffBase: DefaultBackoffBase, backoffMax: DefaultBackoffMax}
	for rounds, want := range full {
		var sum time.Duration
		for range 200 {
			d := o.backoffDelay(rounds)
			if d < 0 || d > want {
				t.Fatalf("round %d: delay %v outside [0, %v]", rounds, d, want)
			}
			sum += d
		}
		// Full jitter: the mean is half the full delay; equal jitter
		// (between half and all of it) would give 3/4 of it.
		if mean := sum / 200; mean < want/4 || mean > want*5/8 {
			t.Errorf("round %d: mean delay %v, want about %v (full jitter)", rounds, mean, want/2)
		}
	}
	o.jitter = func(d time.Duration) time.Duration { return d }
	for rounds, want := range full {
		if d := o.backoffDelay(rounds); d != want {
			t.Errorf("round %d: full delay %v, want %v", rounds, d, want)
		}
	}
}

func TestBadOptions(t *testing.T) {
	for name, opt := range map[string]Option{
		"call":     WithCallTimeout(0),
		"connect":  WithConnectTimeout(-time.Second),
		"first":    WithFirstMessageTimeout(0),
		"ping":     WithKeepalive(0, time.Second),
		"backoff":  WithBackoff(time.Second, time.Millisecond),
		"negative": WithBackoff(-time.Second, time.Second),
	} {
		var e *Error
		if _, err := New([]string{"127.0.0.1:1"}, opt); !errors.As(err, &e) || e.NoNodeAnswered() {
			t.Errorf("%s: New returned %v, want a bad-argument *Error", name, err)
		}
	}
}

func TestValidateAddress(t *testing.T) {
	for _, ok := range []string{"127.0.0.1:7001", "localhost:1", "[::1]:65535"} {
		if err := ValidateAddress(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "foo", ":7001", "host:0", "host:70000", "host:http", "::1:7001"} {
		if ValidateAddress(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
