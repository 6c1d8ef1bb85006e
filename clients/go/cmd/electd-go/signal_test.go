package main

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/electd/electd/clients/go/electdpb"
)

// TestMain lets the tests run the program itself: the test binary started
// with ELECTD_GO_TEST_MAIN=1 is electd-go.
func TestMain(m *testing.M) {
	if os.Getenv("ELECTD_GO_TEST_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

type watchNode struct {
	electdpb.UnimplementedElectionServiceServer
	msg *electdpb.WatchLeaderResponse
	end bool // end the stream after msg
}

func (n *watchNode) WatchLeader(_ *electdpb.WatchLeaderRequest, s electdpb.ElectionService_WatchLeaderServer) error {
	if err := s.Send(n.msg); err != nil || n.end {
		return err
	}
	<-s.Context().Done()
	return nil
}

func serve(t *testing.T, n *watchNode) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: time.Second, PermitWithoutStream: true}))
	electdpb.RegisterElectionServiceServer(srv, n)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// silent accepts TCP connections and never speaks; accepted receives one
// value per connection.
func silent(t *testing.T) (addr string, accepted chan struct{}) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted = make(chan struct{}, 10)
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			accepted <- struct{}{}
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
	return lis.Addr().String(), accepted
}

// syncBuffer is a bytes.Buffer safe for the writer goroutine of exec.Cmd.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestWatchExitsZeroAtOnceOnSignal(t *testing.T) {
	elected := &electdpb.WatchLeaderResponse{State: electdpb.LeaderState_LEADER_STATE_ELECTED,
		Leader: &electdpb.Leader{Node: &electdpb.Node{Id: "n1", Address: "127.0.0.1:7001"}, Epoch: 4294967302}}
	unknown := &electdpb.WatchLeaderResponse{State: electdpb.LeaderState_LEADER_STATE_UNKNOWN, Reason: "no session"}
	refused := func() string {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer lis.Close()
		return lis.Addr().String()
	}()

	for _, tc := range []struct {
		name   string
		sig    syscall.Signal
		setup  func(t *testing.T) (addrs []string, ready func(stderr *syncBuffer))
		stdout string
		stderr []string // substrings
	}{
		{
			name: "streaming", sig: syscall.SIGTERM,
			setup: func(t *testing.T) ([]string, func(*syncBuffer)) {
				return []string{refused, serve(t, &watchNode{msg: elected})}, nil
			},
			stdout: `{"id":"n1","address":"127.0.0.1:7001","epoch":4294967302}` + "\n",
			stderr: []string{"electd-go: watch: left " + refused + ": Unavailable: "},
		},
		{
			name: "pending connection", sig: syscall.SIGINT,
			setup: func(t *testing.T) ([]string, func(*syncBuffer)) {
				addr, accepted := silent(t)
				return []string{addr}, func(*syncBuffer) {
					select {
					case <-accepted:
					case <-time.After(10 * time.Second):
						t.Fatal("the program never connected")
					}
				}
			},
		},
		{
			name: "backoff pause", sig: syscall.SIGTERM,
			setup: func(t *testing.T) ([]string, func(*syncBuffer)) {
				addr := serve(t, &watchNode{msg: unknown, end: true})
				// By the 7th failed round the pause is drawn from up to 2 s.
				return []string{addr}, func(stderr *syncBuffer) {
					deadline := time.Now().Add(20 * time.Second)
					for strings.Count(stderr.String(), "left") < 7 {
						if time.Now().After(deadline) {
							t.Fatalf("no failovers logged: %q", stderr.String())
						}
						time.Sleep(time.Millisecond)
					}
				}
			},
			stderr: []string{"node cannot vouch for a leader: LEADER_STATE_UNKNOWN: no session"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addrs, ready := tc.setup(t)
			cmd := exec.Command(os.Args[0], append([]string{"--json", "watch"}, addrs...)...)
			cmd.Env = append(os.Environ(), "ELECTD_GO_TEST_MAIN=1")
			pipe, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr syncBuffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			var stdout strings.Builder
			scanner := bufio.NewScanner(pipe)
			lines := make(chan string, 10)
			go func() {
				for scanner.Scan() {
					lines <- scanner.Text()
				}
				close(lines)
			}()
			if tc.stdout != "" {
				select {
				case l := <-lines:
					stdout.WriteString(l + "\n")
				case <-time.After(10 * time.Second):
					t.Fatalf("no output; stderr %q", stderr.String())
				}
			}
			if ready != nil {
				ready(&stderr)
			}
			start := time.Now()
			if err := cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() {
				for l := range lines {
					stdout.WriteString(l + "\n")
				}
				exited <- cmd.Wait()
			}()
			// The contract: exit 0 within a second (here with a margin
			// for a loaded machine).
			select {
			case err := <-exited:
				took := time.Since(start)
				if err != nil {
					t.Fatalf("exit: %v; stderr %q", err, stderr.String())
				}
				if took > 2*time.Second {
					t.Fatalf("exited %v after %v, want within a second", tc.sig, took)
				}
				t.Logf("exited 0 %v after %v", took, tc.sig)
			case <-time.After(5 * time.Second):
				t.Fatalf("still running 5 s after %v", tc.sig)
			}
			if stdout.String() != tc.stdout {
				t.Errorf("stdout %q, want %q", stdout.String(), tc.stdout)
			}
			for _, want := range tc.stderr {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr %q does not contain %q", stderr.String(), want)
				}
			}
		})
	}
}
