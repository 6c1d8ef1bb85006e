// Package electd is a small client for the electd leader-election service
// (package electd.v1, service ElectionService).
//
// An [ElectionClient] is given the addresses of one or more electd nodes. Any
// node answers for the whole cluster, so the client sticks to one node and
// moves to the next address (round-robin) when that node is unreachable, does
// not complete a connection within the connect deadline, answers UNAVAILABLE,
// DEADLINE_EXCEEDED or RESOURCE_EXHAUSTED, times out, or (while watching)
// sends no first message in time, cannot vouch for a leader, freezes (found by
// HTTP/2 keepalive) or ends its stream. This follows the failover contract of
// clients/README.md, with its defaults:
//
//	connect deadline per address     2 s    [WithConnectTimeout]
//	deadline per unary call attempt  2 s    [WithCallTimeout]
//	first-message deadline (watch)   2 s    [WithFirstMessageTimeout]
//	HTTP/2 keepalive ping / timeout  3 s / 3 s, also without calls  [WithKeepalive]
//	backoff between full rounds      50 ms doubling to 2 s, full jitter  [WithBackoff]
//
//	c, err := electd.New([]string{"127.0.0.1:7001", "127.0.0.1:7002"})
//	if err != nil { ... }
//	defer c.Close()
//	resp, err := c.GetLeader(ctx)
//	err = c.WatchLeader(ctx, func(l *electdpb.Leader) error { ...; return nil })
//
// With [WithTLSCA], [WithTLSCert] + [WithTLSKey] or [WithTLSServerName] the
// client speaks TLS, mutual TLS with a client certificate (clients/README.md,
// "TLS"); the files are read by New and again for a new connection whenever
// one of them changed. A failed handshake is a failed connection
// (UNAVAILABLE, next address).
//
// Every failure of a call, other than the caller's ctx ending, is an
// [*Error]: it carries the gRPC status
// ([Error.Code], [Error.Details]), says whether no node answered at all
// ([Error.NoNodeAnswered]) and which addresses were tried ([Error.Addrs]).
package electd

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/electd/electd/clients/go/electdpb"
)

// Defaults from the client contract (clients/README.md).
const (
	DefaultCallTimeout         = 2 * time.Second       // per unary call attempt
	DefaultConnectTimeout      = 2 * time.Second       // per address: TCP and HTTP/2 handshake
	DefaultFirstMessageTimeout = 2 * time.Second       // a watch's first message
	DefaultBackoffBase         = 50 * time.Millisecond // first pause after a failed round
	DefaultBackoffMax          = 2 * time.Second       // longest pause between rounds
	DefaultKeepaliveTime       = 3 * time.Second       // HTTP/2 ping after this long without reads
	DefaultKeepaliveTimeout    = 3 * time.Second       // no ping ack within this: connection closed
	MinKeepaliveTime           = minKeepaliveTime      // shorter keepalive intervals are raised to this
)

// Error is the one error type of the package. GetLeader, ListNodes and
// WatchLeader return it when a call fails, and New and ValidateAddress when an
// argument is bad. (Calls return ctx.Err() instead when the caller's ctx
// ends, and WatchLeader returns ErrClosed and the error of its callback
// unchanged.) Use [errors.As] to get at it:
//
//	var e *electd.Error
//	if errors.As(err, &e) && e.NoNodeAnswered() { ... }
//
// There are three kinds:
//
//   - no node answered ([Error.NoNodeAnswered] is true): every address was
//     tried and each one was unreachable, did not connect within the connect
//     deadline, answered UNAVAILABLE, DEADLINE_EXCEEDED or RESOURCE_EXHAUSTED,
//     or timed out.
//     Addrs holds every address in client order; Err is the failure of the
//     last address tried.
//   - a node answered with an error that another node would give too (for
//     example INVALID_ARGUMENT), returned at once. Addrs holds that node's
//     address; Err is the gRPC error it answered.
//   - a bad argument to New or ValidateAddress. Addrs is empty; Err says what
//     is wrong and carries no gRPC status.
type Error struct {
	// Addrs are the addresses the error comes from: every address of the
	// client in client order when no node answered (all were tried), the one
	// node that answered with the error otherwise, none for a bad argument.
	Addrs []string
	// Err is the last underlying error: for a failed call the gRPC error
	// (status.FromError works on it), for a bad argument a plain error.
	Err error

	addr   string // the address Err came from, if any
	noNode bool
}

func (e *Error) Error() string {
	switch {
	case e.noNode:
		return fmt.Sprintf("no electd node answered (tried %s): last error: %s: %v",
			strings.Join(e.Addrs, ", "), e.addr, e.Err)
	case e.addr != "":
		return fmt.Sprintf("electd: %s: %v", e.addr, e.Err)
	default:
		return fmt.Sprintf("electd: %v", e.Err)
	}
}

// Unwrap returns Err, the last underlying error, so that errors.Is,
// errors.As and status.FromError see it.
func (e *Error) Unwrap() error { return e.Err }

// NoNodeAnswered reports whether the call failed because no address answered
// (each was unreachable, answered UNAVAILABLE, DEADLINE_EXCEEDED or
// RESOURCE_EXHAUSTED, or timed out) rather than because a node answered with
// an error that another node would give too.
func (e *Error) NoNodeAnswered() bool { return e.noNode }

// grpcStatus returns the gRPC status carried by Err, or nil if it has none.
func (e *Error) grpcStatus() *status.Status {
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(e.Err, &se) {
		return se.GRPCStatus()
	}
	return nil
}

// Code returns the gRPC status code of Err: the code the node answered, or
// when no node answered the code of the last address's failure (typically
// UNAVAILABLE, DEADLINE_EXCEEDED or RESOURCE_EXHAUSTED). It is codes.Unknown when Err carries no
// gRPC status (a bad argument, or a watch stream that ended without one).
func (e *Error) Code() codes.Code {
	if s := e.grpcStatus(); s != nil {
		return s.Code()
	}
	return codes.Unknown
}

// Details returns the message of Err's gRPC status (the status
// description, without the code), or Err's text when it carries no status.
func (e *Error) Details() string {
	if s := e.grpcStatus(); s != nil {
		return s.Message()
	}
	if e.Err != nil {
		return e.Err.Error()
	}
	return ""
}

// Option configures an ElectionClient (see [New]).
type Option func(*options)

type options struct {
	callTimeout         time.Duration
	connectTimeout      time.Duration
	firstMessageTimeout time.Duration
	backoffBase         time.Duration
	backoffMax          time.Duration
	keepalive           keepalive.ClientParameters
	tls                 tlsOptions
	extraDialOps        []grpc.DialOption

	// jitter picks the actual pause for a backoff of d; nil means
	// fullJitter. Tests replace it.
	jitter func(d time.Duration) time.Duration
}

// WithCallTimeout sets the deadline of each unary call attempt on one address
// (default 2 s). The time spent connecting is bounded separately, by the
// connect deadline.
func WithCallTimeout(d time.Duration) Option { return func(o *options) { o.callTimeout = d } }

// WithConnectTimeout sets the connect deadline: how long the client waits for
// a connection to one address to become ready, the TCP handshake and the
// HTTP/2 handshake together, before it gives up on that address and tries the
// next one (default 2 s). It covers a black-holed address (packets dropped)
// and a process that accepts TCP connections but never speaks HTTP/2.
func WithConnectTimeout(d time.Duration) Option { return func(o *options) { o.connectTimeout = d } }

// WithFirstMessageTimeout sets how long WatchLeader waits for the first
// message of a stream, which a healthy node sends at once (default 2 s). A
// node that sends nothing in that time is left for the next address.
func WithFirstMessageTimeout(d time.Duration) Option {
	return func(o *options) { o.firstMessageTimeout = d }
}

// WithBackoff sets the pause after each full round of addresses that all
// failed: it starts at base, doubles each round and is capped at max
// (defaults 50 ms and 2 s). Each pause is drawn uniformly between zero and
// that value ("full jitter"), so that many clients that lost the same node do
// not come back in lockstep.
func WithBackoff(base, max time.Duration) Option {
	return func(o *options) { o.backoffBase, o.backoffMax = base, max }
}

// WithKeepalive sets the HTTP/2 keepalive of every connection (defaults 3 s
// and 3 s): after interval without reading anything the client sends a ping,
// and if no ack arrives within timeout it closes the connection, so the calls
// and watches on it fail over. Pings are sent also while no call is open, so
// an idle connection to a frozen node is found dead before a call needs it.
// A frozen node is thus left within interval + timeout. Intervals below
// [MinKeepaliveTime] (1 s, the ping rate electd nodes accept) are raised to it.
func WithKeepalive(interval, timeout time.Duration) Option {
	return func(o *options) { o.keepalive.Time, o.keepalive.Timeout = interval, timeout }
}

// WithDialOptions adds grpc dial options. They come after the client's own,
// so transport credentials given here replace the client's (plaintext, or
// TLS with the WithTLS... options).
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.extraDialOps = append(o.extraDialOps, opts...) }
}

// check returns what is wrong with the options, if anything.
func (o *options) check() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"call timeout", o.callTimeout},
		{"connect timeout", o.connectTimeout},
		{"first-message timeout", o.firstMessageTimeout},
		{"keepalive interval", o.keepalive.Time},
		{"keepalive timeout", o.keepalive.Timeout},
	} {
		if d.v <= 0 {
			return fmt.Errorf("%s must be positive, got %v", d.name, d.v)
		}
	}
	if o.backoffBase < 0 || o.backoffMax < o.backoffBase {
		return fmt.Errorf("backoff: want 0 <= base <= max, got base %v, max %v", o.backoffBase, o.backoffMax)
	}
	return o.tls.check()
}

// ElectionClient talks to a cluster of electd nodes. It is safe for
// concurrent use.
type ElectionClient struct {
	addrs []string
	conns []*grpc.ClientConn
	opts  options

	mu      sync.Mutex
	current int // index of the address in use; advanced on failure

	closeOnce sync.Once
	closed    chan struct{} // closed by Close, so that WatchLeader stops retrying
}

// New returns a client for the given HOST:PORT addresses. It does not
// connect: connections are made lazily by the first call. A bad address (see
// ValidateAddress), an empty list or a bad option value (a non-positive
// timeout; WithTLSCert without WithTLSKey or the other way round; a TLS file
// that cannot be read or used, named with its option and path) is an
// [*Error].
//
// With any of [WithTLSCA], [WithTLSCert], [WithTLSKey] or
// [WithTLSServerName] the client speaks TLS (mutual TLS with a client
// certificate); else plaintext. The TLS files are read here, and read again
// for a new connection whenever one of them changed.
func New(addrs []string, opts ...Option) (*ElectionClient, error) {
	if len(addrs) == 0 {
		return nil, &Error{Err: errors.New("no addresses given")}
	}
	o := options{
		callTimeout:         DefaultCallTimeout,
		connectTimeout:      DefaultConnectTimeout,
		firstMessageTimeout: DefaultFirstMessageTimeout,
		backoffBase:         DefaultBackoffBase,
		backoffMax:          DefaultBackoffMax,
		keepalive:           keepalive.ClientParameters{Time: DefaultKeepaliveTime, Timeout: DefaultKeepaliveTimeout},
	}
	for _, opt := range opts {
		opt(&o)
	}
	if err := o.check(); err != nil {
		return nil, &Error{Err: err}
	}
	o.keepalive.Time = max(o.keepalive.Time, MinKeepaliveTime)
	o.keepalive.PermitWithoutStream = true // find a frozen node before a call needs it
	for _, a := range addrs {
		if err := ValidateAddress(a); err != nil {
			return nil, err
		}
	}
	creds := insecure.NewCredentials()
	if o.tls.on() {
		r, err := newReloadingTLS(o.tls)
		if err != nil {
			return nil, &Error{Err: err}
		}
		creds = r
	}
	c := &ElectionClient{addrs: append([]string(nil), addrs...), opts: o, closed: make(chan struct{})}
	for _, a := range addrs {
		dialOpts := []grpc.DialOption{
			grpc.WithTransportCredentials(creds),
			grpc.WithKeepaliveParams(o.keepalive),
			grpc.WithConnectParams(grpc.ConnectParams{
				// grpc-go's own reconnect backoff grows to 120 s by default;
				// a restarted node would then look dead for minutes. Keep it
				// in line with the contract's 2 s cap.
				Backoff: backoff.Config{BaseDelay: o.backoffBase, Multiplier: 2, Jitter: 0.2, MaxDelay: o.backoffMax},
				// The deadline of each connection attempt (TCP, then the
				// HTTP/2 preface); grpc-go's default is 20 s. The client
				// waits no longer than connectTimeout for it (see
				// connect); the attempt may go on a little longer in the
				// background, so that the client's deadline, not a race
				// between two equal timers, decides and names the failure.
				MinConnectTimeout: o.connectTimeout + time.Second,
			}),
		}
		conn, err := grpc.NewClient(a, append(dialOpts, o.extraDialOps...)...)
		if err != nil {
			c.Close()
			return nil, &Error{Err: fmt.Errorf("address %q: %w", a, err)}
		}
		c.conns = append(c.conns, conn)
	}
	return c, nil
}

// ValidateAddress checks that addr has the form HOST:PORT. If not, it
// returns an [*Error] (with codes.Unknown and no Addrs: nothing was tried).
func ValidateAddress(addr string) error {
	bad := func() error { return &Error{Err: fmt.Errorf("bad address %q: want HOST:PORT", addr)} }
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return bad()
	}
	if p, err := strconv.Atoi(port); host == "" || err != nil || p < 1 || p > 65535 {
		return bad()
	}
	return nil
}

// Addrs returns the addresses the client was created with.
func (c *ElectionClient) Addrs() []string { return append([]string(nil), c.addrs...) }

// ErrClosed is returned by WatchLeader when the client is closed while it
// watches.
var ErrClosed = errors.New("electd: client closed")

// Close closes every connection, at once (a pending connection attempt is
// abandoned). Calls in progress fail with CANCELED and a WatchLeader in
// progress returns ErrClosed.
func (c *ElectionClient) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	var errs []error
	for _, conn := range c.conns {
		errs = append(errs, conn.Close())
	}
	return errors.Join(errs...)
}

// start returns the index of the address in use.
func (c *ElectionClient) start() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.current
}

// failed moves the client off address i, unless another goroutine already did.
func (c *ElectionClient) failed(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.current == i {
		c.current = (i + 1) % len(c.addrs)
	}
}

// retryable reports whether err means "this node can't answer now, ask
// another one": it is unreachable or not ready (UNAVAILABLE), too slow
// (DEADLINE_EXCEEDED) or full (RESOURCE_EXHAUSTED, a node at --max-streams).
// Anything else (INVALID_ARGUMENT, ...) is the caller's problem and is
// returned at once.
func retryable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted:
		return true
	}
	return false
}

// connect makes sure there is a connection to address i, waiting at most the
// connect deadline for it to become ready. It returns nil as soon as the
// connection is ready, or has failed (TRANSIENT_FAILURE: an RPC then fails at
// once with UNAVAILABLE and grpc's reason, for example "connection refused"),
// or is shut down (the client was closed: an RPC fails with CANCELED). It
// returns an UNAVAILABLE error if the connection is still not ready at the
// deadline (a black-holed address, or a process that accepts TCP but never
// completes the HTTP/2 handshake), and ctx.Err() at once when ctx ends.
//
// Without it, an RPC on a connection that is still connecting would wait for
// the connection attempt (grpc-go's fail-fast RPCs wait while CONNECTING), and
// a watch, which has no deadline, could wait for a black-holed address for as
// long as grpc-go keeps trying.
func (c *ElectionClient) connect(ctx context.Context, i int) error {
	conn := c.conns[i]
	s := conn.GetState()
	switch s {
	case connectivity.Ready, connectivity.Shutdown:
		return nil
	case connectivity.TransientFailure:
		// The last attempt failed and grpc-go is waiting out its reconnect
		// backoff. Fail now (next address at once), but start the next
		// attempt right away so that a node that is back is found by the
		// next round rather than after grpc-go's backoff.
		conn.ResetConnectBackoff()
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, c.opts.connectTimeout)
	defer cancel()
	for {
		switch s {
		case connectivity.Ready, connectivity.TransientFailure, connectivity.Shutdown:
			return nil
		case connectivity.Idle:
			conn.Connect()
		}
		if !conn.WaitForStateChange(cctx, s) {
			if err := ctx.Err(); err != nil {
				return err
			}
			return status.Errorf(codes.Unavailable, "no connection within the connect deadline (%v, state %v)",
				c.opts.connectTimeout, s)
		}
		s = conn.GetState()
	}
}

// unary runs call against each address at most once, starting with the one in
// use, until one answers. Each attempt gets the connect deadline to connect
// and then the call deadline to answer.
func (c *ElectionClient) unary(ctx context.Context, call func(context.Context, electdpb.ElectionServiceClient) error) error {
	first := c.start()
	var (
		last     error
		lastAddr string
	)
	for n := range len(c.addrs) {
		i := (first + n) % len(c.addrs)
		err := c.connect(ctx, i)
		if err == nil {
			cctx, cancel := context.WithTimeout(ctx, c.opts.callTimeout)
			err = call(cctx, electdpb.NewElectionServiceClient(c.conns[i]))
			cancel()
		}
		if err == nil {
			return nil
		}
		if ctx.Err() != nil { // the caller gave up, not the node
			return ctx.Err()
		}
		if !retryable(err) {
			return &Error{Addrs: []string{c.addrs[i]}, Err: err, addr: c.addrs[i]}
		}
		last, lastAddr = err, c.addrs[i]
		c.failed(i)
	}
	return &Error{Addrs: c.Addrs(), Err: last, addr: lastAddr, noNode: true}
}

// GetLeader returns the current leader, asking each address at most once. It
// fails with an [*Error]. With [InElection] it asks for the leader of that
// named election (NOT_FOUND when it has none).
func (c *ElectionClient) GetLeader(ctx context.Context, opts ...ReadOption) (*electdpb.GetLeaderResponse, error) {
	o := readOpts(opts)
	var resp *electdpb.GetLeaderResponse
	err := c.unary(ctx, func(ctx context.Context, s electdpb.ElectionServiceClient) (err error) {
		resp, err = s.GetLeader(ctx, &electdpb.GetLeaderRequest{Election: o.election})
		return err
	})
	return resp, err
}

// ListNodes returns the live members in election order (leader first). A nil
// or empty selector returns every node; otherwise only nodes carrying every
// KEY=VALUE label of the selector. It fails with an [*Error]. With
// [InElection] it lists the candidates of that named election (never-lead
// members included).
func (c *ElectionClient) ListNodes(ctx context.Context, selector map[string]string, opts ...ReadOption) (*electdpb.ListNodesResponse, error) {
	o := readOpts(opts)
	var resp *electdpb.ListNodesResponse
	err := c.unary(ctx, func(ctx context.Context, s electdpb.ElectionServiceClient) (err error) {
		resp, err = s.ListNodes(ctx, &electdpb.ListNodesRequest{LabelSelector: selector, Election: o.election})
		return err
	})
	return resp, err
}

// backoffDelay is the pause after the given number of consecutive failed
// rounds (1, 2, ...): base * 2^(rounds-1), capped at max, with "full jitter"
// (a random value between zero and all of it) so that many clients that lost
// the same node do not come back in lockstep.
func (o *options) backoffDelay(rounds int) time.Duration {
	d := o.backoffBase
	for r := 1; r < rounds && d < o.backoffMax; r++ {
		d *= 2
	}
	d = min(d, o.backoffMax)
	if d <= 0 {
		return 0
	}
	if o.jitter != nil {
		return o.jitter(d)
	}
	return fullJitter(d)
}

// fullJitter returns a random duration in [0, d].
func fullJitter(d time.Duration) time.Duration { return rand.N(d + 1) }

// sleep waits for d, or until ctx is done or the client is closed.
func (c *ElectionClient) sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-c.closed:
		return ErrClosed
	case <-t.C:
		return nil
	}
}
