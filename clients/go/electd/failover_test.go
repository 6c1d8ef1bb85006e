package electd

// Tests of the failover contract of clients/README.md against in-process
// nodes, with the contract's default deadlines. Time limits are the
// contract's bound plus a generous margin (the machines are small and
// shared); the tests that wait for a default bound run in parallel.

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

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	"github.com/electd/electd/clients/go/electdpb"
)

// margin is added to every bound of the contract before a test calls it
// broken.
const margin = 3 * time.Second

// silentNode returns the address of a process that accepts TCP connections
// but never reads or writes a byte (a stuck process: the HTTP/2 handshake
// never completes).
func silentNode(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			conn, err := lis.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		lis.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return lis.Addr().String()
}

// freezer is a TCP proxy in front of a node that can freeze it, as SIGSTOP
// does: once frozen, bytes still arrive (the kernel acknowledges them) but
// are never passed on, in either direction, and new connections are accepted
// by the kernel but never served.
type freezer struct {
	addr   string
	frozen atomic.Bool
	done   chan struct{}
}

func startFreezer(t *testing.T, target string) *freezer {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{addr: lis.Addr().String(), done: make(chan struct{})}
	var mu sync.Mutex
	var conns []net.Conn
	track := func(c net.Conn) { mu.Lock(); conns = append(conns, c); mu.Unlock() }
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if f.frozen.Load() {
				<-f.done // hold whatever arrived, forever
				return
			}
			if n > 0 {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				dst.Close()
				return
			}
		}
	}
	go func() {
		for {
			client, err := lis.Accept()
			if err != nil {
				return
			}
			track(client)
			if f.frozen.Load() {
				continue // accepted by the kernel, never served
			}
			server, err := net.Dial("tcp", target)
			if err != nil {
				client.Close()
				continue
			}
			track(server)
			go pipe(server, client)
			go pipe(client, server)
		}
	}()
	t.Cleanup(func() {
		close(f.done)
		lis.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return f
}

func (f *freezer) freeze() { f.frozen.Store(true) }

// leaderFeed serves WatchLeader as an electd node does: the current leader at
// once, then one message per change, holding back leaders whose epoch is
// below the request's min_epoch. The test changes the leader with set.
type leaderFeed struct {
	mu      sync.Mutex
	cur     *electdpb.Leader
	changed chan struct{}
	sent    []int64 // epochs sent, over all streams
	mins    []int64 // min_epoch of each request
}

func newFeed(id string, epoch int64) *leaderFeed {
	return &leaderFeed{cur: leader(id, epoch), changed: make(chan struct{})}
}

func (f *leaderFeed) set(id string, epoch int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cur = leader(id, epoch)
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *leaderFeed) serve(req *electdpb.WatchLeaderRequest, s electdpb.ElectionService_WatchLeaderServer) error {
	f.mu.Lock()
	f.mins = append(f.mins, req.GetMinEpoch())
	f.mu.Unlock()
	var last int64 = -1
	for {
		f.mu.Lock()
		cur, changed := f.cur, f.changed
		send := cur.GetEpoch() != last && cur.GetEpoch() >= req.GetMinEpoch()
		if send {
			f.sent = append(f.sent, cur.GetEpoch())
		}
		last = cur.GetEpoch()
		f.mu.Unlock()
		if send {
			if err := s.Send(&electdpb.WatchLeaderResponse{State: electdpb.LeaderState_LEADER_STATE_ELECTED, Leader: cur}); err != nil {
				return err
			}
		}
		select {
		case <-changed:
		case <-s.Context().Done():
			return nil
		}
	}
}

func (f *leaderFeed) sentEpochs() []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.sent)
}

func (f *leaderFeed) minEpochs() []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.mins)
}

func feedNode(t *testing.T, f *leaderFeed) *fakeNode {
	return startNode(t, &fakeNode{
		watch:     f.serve,
		getLeader: func() (*electdpb.GetLeaderResponse, error) { return leaderResp("n1", 1), nil },
	})
}

// goodNode answers every call: leader id with the given epoch.
func goodNode(t *testing.T, id string, epoch int64) *fakeNode {
	return feedNode(t, newFeed(id, epoch))
}

// hookLog records the failover hook's calls.
type hookLog struct {
	mu    sync.Mutex
	calls []hookCall
	ch    chan hookCall
}

type hookCall struct {
	addr, reason string
	at           time.Time
}

func newHookLog() *hookLog { return &hookLog{ch: make(chan hookCall, 100)} }

func (h *hookLog) hook(addr, reason string) {
	c := hookCall{addr, reason, time.Now()}
	h.mu.Lock()
	h.calls = append(h.calls, c)
	h.mu.Unlock()
	select {
	case h.ch <- c:
	default:
	}
}

func (h *hookLog) get() []hookCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.calls)
}

// watch runs WatchLeader in the background and sends each reported epoch to
// the returned channel. stop cancels it and returns WatchLeader's error.
func watch(t *testing.T, c *ElectionClient, opts ...WatchOption) (epochs chan int64, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	epochs = make(chan int64, 100)
	done := make(chan error, 1)
	go func() {
		done <- c.WatchLeader(ctx, func(l *electdpb.Leader) error { epochs <- l.GetEpoch(); return nil }, opts...)
	}()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(5 * time.Second):
				t.Error("WatchLeader did not return after its ctx was cancelled")
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return epochs, stop
}

// next waits up to limit for the next reported epoch.
func next(t *testing.T, epochs chan int64, limit time.Duration, what string) int64 {
	t.Helper()
	select {
	case e := <-epochs:
		return e
	case <-time.After(limit):
		t.Fatalf("%s: nothing reported within %v", what, limit)
		return 0
	}
}

func TestConnectDeadline(t *testing.T) {
	for _, bad := range []struct {
		name string
		addr func(*testing.T) string
	}{
		{"black-holed", blackHole},
		{"accepts TCP, never speaks HTTP/2", silentNode},
	} {
		t.Run(bad.name+"/unary", func(t *testing.T) {
			t.Parallel()
			good := goodNode(t, "n2", 2)
			// A long call deadline: only the connect deadline (2 s) can
			// move the call on in time.
			c, err := New([]string{bad.addr(t), good.addr}, WithCallTimeout(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			start := time.Now()
			resp, err := c.GetLeader(context.Background())
			took := time.Since(start)
			if err != nil || resp.GetLeader().GetEpoch() != 1 {
				t.Fatalf("GetLeader: %v %v", resp, err)
			}
			if limit := DefaultConnectTimeout + margin; took > limit {
				t.Fatalf("took %v to leave the first address, want < %v", took, limit)
			}
			t.Logf("left the first address after %v", took)
		})
		t.Run(bad.name+"/no node answered", func(t *testing.T) {
			t.Parallel()
			addr := bad.addr(t)
			c, err := New([]string{addr}, WithCallTimeout(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, err = c.ListNodes(context.Background(), nil)
			var e *Error
			if !errors.As(err, &e) || !e.NoNodeAnswered() || e.Code() != codes.Unavailable ||
				!strings.Contains(err.Error(), addr) || !strings.Contains(e.Details(), "connect deadline") {
				t.Fatalf("got %v, want *Error NoNodeAnswered UNAVAILABLE naming %s and the connect deadline", err, addr)
			}
		})
		t.Run(bad.name+"/watch", func(t *testing.T) {
			t.Parallel()
			addr := bad.addr(t)
			good := goodNode(t, "n2", 2)
			c, err := New([]string{addr, good.addr})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			h := newHookLog()
			start := time.Now()
			epochs, _ := watch(t, c, WithFailoverHook(h.hook))
			if e := next(t, epochs, DefaultConnectTimeout+margin, "watch"); e != 2 {
				t.Fatalf("reported epoch %d, want 2", e)
			}
			t.Logf("reported the second node's leader after %v", time.Since(start))
			calls := h.get()
			if len(calls) != 1 || calls[0].addr != addr || !strings.Contains(calls[0].reason, "connect deadline") {
				t.Fatalf("hook calls %+v, want one for %s naming the connect deadline", calls, addr)
			}
		})
	}
}

func TestWatchFirstMessageDeadline(t *testing.T) {
	t.Parallel()
	mute := startNode(t, &fakeNode{watch: func(_ *electdpb.WatchLeaderRequest, s electdpb.ElectionService_WatchLeaderServer) error {
		<-s.Context().Done() // a stuck handler: never sends
		return nil
	}})
	good := goodNode(t, "n2", 2)
	c := newClient(t, mute.addr, good.addr)
	h := newHookLog()
	start := time.Now()
	epochs, _ := watch(t, c, WithFailoverHook(h.hook))
	if e := next(t, epochs, DefaultFirstMessageTimeout+margin, "watch"); e != 2 {
		t.Fatalf("reported epoch %d, want 2", e)
	}
	t.Logf("left the mute node after %v", time.Since(start))
	if mute.calls.Load() != 1 {
		t.Fatalf("the mute node got %d streams, want 1", mute.calls.Load())
	}
	calls := h.get()
	if len(calls) != 1 || calls[0].addr != mute.addr || !strings.Contains(calls[0].reason, "first-message deadline (2s)") {
		t.Fatalf("hook calls %+v, want one for %s naming the first-message deadline", calls, mute.addr)
	}
}

func TestKeepaliveLeavesFrozenWatchNode(t *testing.T) {
	t.Parallel()
	a := goodNode(t, "n1", 1)
	b := goodNode(t, "n2", 2)
	frozen := startFreezer(t, a.addr)
	c, err := New([]string{frozen.addr, b.addr}) // the contract's defaults: keepalive 3 s / 3 s
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h := newHookLog()
	epochs, _ := watch(t, c, WithFailoverHook(h.hook))
	if e := next(t, epochs, 5*time.Second, "watch through the proxy"); e != 1 {
		t.Fatalf("reported epoch %d, want 1", e)
	}
	start := time.Now()
	frozen.freeze()
	bound := DefaultKeepaliveTime + DefaultKeepaliveTimeout // 6 s
	if e := next(t, epochs, bound+margin, "watch after the freeze"); e != 2 {
		t.Fatalf("reported epoch %d, want 2", e)
	}
	t.Logf("left the frozen node and reported the next one's leader %v after the freeze", time.Since(start))
	calls := h.get()
	if len(calls) != 1 || calls[0].addr != frozen.addr {
		t.Fatalf("hook calls %+v, want one for %s", calls, frozen.addr)
	}
	t.Logf("reason: %s", calls[0].reason)
}

func TestKeepaliveProbesIdleConnection(t *testing.T) {
	t.Parallel()
	a := goodNode(t, "n1", 1)
	frozen := startFreezer(t, a.addr)
	c := newClient(t, frozen.addr)
	if _, err := c.GetLeader(context.Background()); err != nil {
		t.Fatal(err)
	}
	conn := c.conns[0]
	if s := conn.GetState(); s != connectivity.Ready {
		t.Fatalf("state %v after a call, want READY", s)
	}
	start := time.Now()
	frozen.freeze()
	// No call is open: only keepalive pings sent without calls can tell.
	ctx, cancel := context.WithTimeout(context.Background(), DefaultKeepaliveTime+DefaultKeepaliveTimeout+margin)
	defer cancel()
	if !conn.WaitForStateChange(ctx, connectivity.Ready) {
		t.Fatal("the idle connection to the frozen node still looks READY")
	}
	t.Logf("idle connection to the frozen node closed %v after the freeze (now %v)", time.Since(start), conn.GetState())
}

func TestResourceExhaustedFailsOver(t *testing.T) {
	exhausted := func() error {
		return status.Error(codes.ResourceExhausted, "node n1 already serves 2 WatchLeader streams (--max-streams); try another node")
	}
	full := startNode(t, &fakeNode{
		getLeader: func() (*electdpb.GetLeaderResponse, error) { return nil, exhausted() },
		watch: func(*electdpb.WatchLeaderRequest, electdpb.ElectionService_WatchLeaderServer) error {
			return exhausted()
		},
	})
	good := goodNode(t, "n2", 2)

	c := newClient(t, full.addr, good.addr)
	if _, err := c.GetLeader(context.Background()); err != nil {
		t.Fatalf("GetLeader: %v", err)
	}

	c = newClient(t, full.addr, good.addr)
	h := newHookLog()
	epochs, _ := watch(t, c, WithFailoverHook(h.hook))
	if e := next(t, epochs, 5*time.Second, "watch"); e != 2 {
		t.Fatalf("reported epoch %d, want 2", e)
	}
	if n := full.calls.Load(); n != 2 {
		t.Fatalf("the full node got %d calls, want 2 (one unary, one watch)", n)
	}
	calls := h.get()
	if len(calls) != 1 || calls[0].addr != full.addr || !strings.HasPrefix(calls[0].reason, "ResourceExhausted: ") {
		t.Fatalf("hook calls %+v, want one for %s with ResourceExhausted", calls, full.addr)
	}

	// When every node is full, nobody answered.
	c = newClient(t, full.addr)
	_, err := c.GetLeader(context.Background())
	var e *Error
	if !errors.As(err, &e) || !e.NoNodeAnswered() || e.Code() != codes.ResourceExhausted {
		t.Fatalf("got %v, want *Error NoNodeAnswered RESOURCE_EXHAUSTED", err)
	}
}

func TestFailoverHookNamesAddressAndReason(t *testing.T) {
	refused := deadAddr(t)
	unknown := startNode(t, &fakeNode{watch: func(_ *electdpb.WatchLeaderRequest, s electdpb.ElectionService_WatchLeaderServer) error {
		s.Send(&electdpb.WatchLeaderResponse{State: electdpb.LeaderState_LEADER_STATE_UNKNOWN, Reason: "ZooKeeper session expired"})
		<-s.Context().Done()
		return nil
	}})
	ended := startNode(t, &fakeNode{watch: func(*electdpb.WatchLeaderRequest, electdpb.ElectionService_WatchLeaderServer) error {
		return nil // shutting down
	}})
	good := goodNode(t, "n4", 4)
	c := newClient(t, refused, unknown.addr, ended.addr, good.addr)
	h := newHookLog()
	epochs, stop := watch(t, c, WithFailoverHook(h.hook))
	if e := next(t, epochs, 5*time.Second, "watch"); e != 4 {
		t.Fatalf("reported epoch %d, want 4", e)
	}
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("WatchLeader returned %v, want context.Canceled", err)
	}
	want := []struct{ addr, reason string }{
		{refused, "Unavailable: "},
		{unknown.addr, "node cannot vouch for a leader: LEADER_STATE_UNKNOWN: ZooKeeper session expired"},
		{ended.addr, "stream ended (node shutting down)"},
	}
	calls := h.get()
	if len(calls) != len(want) {
		t.Fatalf("hook calls %+v, want %d (cancelling must not call it)", calls, len(want))
	}
	for i, w := range want {
		if calls[i].addr != w.addr || !strings.HasPrefix(calls[i].reason, w.reason) {
			t.Errorf("hook call %d: (%s, %q), want (%s, %q...)", i, calls[i].addr, calls[i].reason, w.addr, w.reason)
		}
	}
}

func TestAfterEpochReportsOnlyHigher(t *testing.T) {
	feed := newFeed("n1", 7)
	n := feedNode(t, feed)
	c := newClient(t, n.addr)
	epochs, _ := watch(t, c, AfterEpoch(7))
	// Wait until the node has sent its current leader (epoch 7) ...
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Contains(feed.sentEpochs(), 7) {
		if time.Now().After(deadline) {
			t.Fatalf("the node never sent epoch 7 (sent %v, min_epoch %v)", feed.sentEpochs(), feed.minEpochs())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// ... which was handled already, so the first report is the next change.
	feed.set("n2", 9)
	if e := next(t, epochs, 5*time.Second, "watch"); e != 9 {
		t.Fatalf("first report has epoch %d, want 9 (7 was handled already)", e)
	}
	// The request holds back anything below 7 on the node; 7 itself is sent
	// (and skipped) so that the node answers at once (see watchOne).
	if mins := feed.minEpochs(); !slices.Equal(mins, []int64{7}) {
		t.Fatalf("min_epoch sent %v, want [7]", mins)
	}
}

func TestAfterEpochSkipsOlderAndDefaultsToCurrent(t *testing.T) {
	feed := newFeed("n1", 5)
	n := feedNode(t, feed)
	c := newClient(t, n.addr)

	epochs, _ := watch(t, c) // default: from the current leader on
	if e := next(t, epochs, 5*time.Second, "watch"); e != 5 {
		t.Fatalf("reported %d, want the current leader's 5", e)
	}

	epochs, stop := watch(t, c, AfterEpoch(6)) // the node is behind
	time.Sleep(300 * time.Millisecond)
	feed.set("n2", 6) // still not above 6
	feed.set("n3", 8)
	if e := next(t, epochs, 5*time.Second, "watch"); e != 8 {
		t.Fatalf("reported %d, want 8", e)
	}
	stop()

	err := c.WatchLeader(context.Background(), func(*electdpb.Leader) error { return nil }, AfterEpoch(-1))
	var e *Error
	if !errors.As(err, &e) || e.NoNodeAnswered() || len(e.Addrs) != 0 {
		t.Fatalf("AfterEpoch(-1): got %v, want a bad-argument *Error", err)
	}
}

// After failing over, a watch resumes on a node whose leader has not changed
// since the last report. That node must be kept: it is healthy, it just has
// nothing new. (Asking it for min_epoch = last + 1 would make it hold back
// its current leader and send nothing, and the first-message deadline would
// then leave it, and every other such node, over and over.)
func TestResumeOnUnchangedNodeStaysPut(t *testing.T) {
	ending := startNode(t, &fakeNode{watch: func(_ *electdpb.WatchLeaderRequest, s electdpb.ElectionService_WatchLeaderServer) error {
		s.Send(elected("n1", 5))
		return nil // shuts down
	}})
	feed := newFeed("n1", 5)
	steady := feedNode(t, feed)
	c, err := New([]string{ending.addr, steady.addr}, WithFirstMessageTimeout(300*time.Millisecond),
		WithBackoff(time.Millisecond, 10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h := newHookLog()
	epochs, _ := watch(t, c, WithFailoverHook(h.hook))
	if e := next(t, epochs, 5*time.Second, "watch"); e != 5 {
		t.Fatalf("reported %d, want 5", e)
	}
	time.Sleep(2 * time.Second) // several first-message deadlines
	calls := h.get()
	if len(calls) != 1 || calls[0].addr != ending.addr {
		t.Fatalf("hook calls %+v, want only one, for the node that shut down (%s)", calls, ending.addr)
	}
	feed.set("n2", 6)
	if e := next(t, epochs, 5*time.Second, "watch"); e != 6 {
		t.Fatalf("reported %d, want 6", e)
	}
	select {
	case e := <-epochs:
		t.Fatalf("also reported %d", e)
	default:
	}
}

func TestWatchBacksOffBetweenRounds(t *testing.T) {
	unknown := func(_ *electdpb.WatchLeaderRequest, s electdpb.ElectionService_WatchLeaderServer) error {
		s.Send(&electdpb.WatchLeaderResponse{State: electdpb.LeaderState_LEADER_STATE_UNKNOWN, Reason: "no session"})
		return nil
	}
	a := startNode(t, &fakeNode{watch: unknown})
	b := startNode(t, &fakeNode{watch: unknown})
	const pause = 400 * time.Millisecond
	c, err := New([]string{a.addr, b.addr}, WithBackoff(pause, 4*pause))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.opts.jitter = func(d time.Duration) time.Duration { return d } // no jitter: exact pauses
	h := newHookLog()
	_, stop := watch(t, c, WithFailoverHook(h.hook))
	for range 5 {
		select {
		case <-h.ch:
		case <-time.After(10 * time.Second):
			t.Fatal("the watch stopped trying")
		}
	}
	stop()
	calls := h.get()
	// Rounds are (a, b): within a round the next address is tried at once,
	// between rounds the watch pauses 400 ms, then 800 ms.
	for i, want := range map[int]time.Duration{2: pause, 4: 2 * pause} {
		if gap := calls[i].at.Sub(calls[i-1].at); gap < want {
			t.Errorf("gap before attempt %d: %v, want at least %v", i+1, gap, want)
		}
	}
	if gap := calls[1].at.Sub(calls[0].at); gap >= pause {
		t.Errorf("gap between the addresses of one round: %v, want no pause", gap)
	}
}

func TestCancelEndsAtOnce(t *testing.T) {
	// Each case gives WatchLeader (or GetLeader) something that would take a
	// minute or an hour, then cancels it, or closes the client.
	unknown := startNode(t, &fakeNode{watch: func(_ *electdpb.WatchLeaderRequest, s electdpb.ElectionService_WatchLeaderServer) error {
		s.Send(&electdpb.WatchLeaderResponse{State: electdpb.LeaderState_LEADER_STATE_UNKNOWN, Reason: "no session"})
		return nil
	}})
	mute := startNode(t, &fakeNode{watch: func(_ *electdpb.WatchLeaderRequest, s electdpb.ElectionService_WatchLeaderServer) error {
		<-s.Context().Done()
		return nil
	}})
	for _, tc := range []struct {
		name  string
		addrs func(t *testing.T) []string
		close bool // close the client instead of cancelling
		unary bool
	}{
		{name: "backoff pause", addrs: func(*testing.T) []string { return []string{unknown.addr} }},
		{name: "backoff pause, Close", addrs: func(*testing.T) []string { return []string{unknown.addr} }, close: true},
		{name: "pending connect", addrs: func(t *testing.T) []string { return []string{blackHole(t)} }},
		{name: "pending connect, Close", addrs: func(t *testing.T) []string { return []string{blackHole(t)} }, close: true},
		{name: "pending HTTP/2 handshake", addrs: func(t *testing.T) []string { return []string{silentNode(t)} }},
		{name: "waiting for a first message", addrs: func(*testing.T) []string { return []string{mute.addr} }},
		{name: "unary, pending connect", addrs: func(t *testing.T) []string { return []string{blackHole(t)} }, unary: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(tc.addrs(t), WithConnectTimeout(time.Minute), WithFirstMessageTimeout(time.Minute),
				WithCallTimeout(time.Minute), WithBackoff(time.Hour, time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.opts.jitter = func(d time.Duration) time.Duration { return d }
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() {
				if tc.unary {
					_, err := c.GetLeader(ctx)
					done <- err
					return
				}
				done <- c.WatchLeader(ctx, func(*electdpb.Leader) error { return nil })
			}()
			time.Sleep(500 * time.Millisecond) // well into the wait
			start := time.Now()
			want := context.Canceled
			if tc.close {
				c.Close()
				want = ErrClosed
			} else {
				cancel()
			}
			select {
			case err := <-done:
				if !errors.Is(err, want) {
					t.Fatalf("returned %v, want %v", err, want)
				}
				t.Logf("returned %v after %v", err, time.Since(start))
			case <-time.After(time.Second):
				t.Fatal("did not return within a second")
			}
		})
	}
}
