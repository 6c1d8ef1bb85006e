package main

// The campaign, resign and elections commands: their arguments, and
// campaign run as a program against an in-process node (its lines, its log
// file, its resignation and exit 0 on SIGTERM).

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/electd/electd/clients/go/electdpb"
)

func TestCampaignArgs(t *testing.T) {
	a, err := parseArgs([]string{"campaign", "orders", "w1", "127.0.0.1:1", "127.0.0.1:2",
		"--value", "v", "--priority=-3", "--label", "zone=a", "--stop-on-loss", "--never-lead"})
	if err != nil || a.cmd != "campaign" || a.election != "orders" || a.id != "w1" || len(a.addrs) != 2 ||
		a.value != "v" || a.priority != -3 || a.labels["zone"] != "a" || !a.stopOnLoss || !a.neverLead {
		t.Fatalf("%+v %v", a, err)
	}
	a, err = parseArgs([]string{"resign", "orders", "4294967302", "127.0.0.1:1"})
	if err != nil || a.election != "orders" || a.epoch != 4294967302 || len(a.addrs) != 1 {
		t.Fatalf("%+v %v", a, err)
	}
	a, err = parseArgs([]string{"--json", "leader", "--election", "orders", "127.0.0.1:1"})
	if err != nil || a.election != "orders" || len(a.addrs) != 1 {
		t.Fatalf("%+v %v", a, err)
	}
	for _, args := range [][]string{
		{"campaign", "orders", "127.0.0.1:1"}, // 127.0.0.1:1 is taken for the ID: no address
		{"campaign", "orders", "w1", "127.0.0.1:1", "--priority", "x"},
		{"campaign", "orders", "w1", "127.0.0.1:1", "--label", "novalue"},
		{"resign", "orders", "0", "127.0.0.1:1"},
		{"resign", "orders", "127.0.0.1:1"},
		{"leader", "127.0.0.1:1", "--stop-on-loss"},
		{"elections", "--election", "x", "127.0.0.1:1"},
	} {
		var out, errOut strings.Builder
		if code := run(args, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "usage:") {
			t.Errorf("%q: exit %d, stderr %q", args, code, errOut.String())
		}
	}
}

func TestLeaderLogWritesUntilCancelled(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- leaderLog(ctx, path, "7 w1\n") }()
	for {
		b, _ := os.ReadFile(path)
		if strings.Count(string(b), "\n") >= 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("leaderLog: %v", err)
	}
	b, _ := os.ReadFile(path)
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if l != "7 w1" {
			t.Fatalf("line %q", l)
		}
	}
}

// leadingNode answers Campaign: Queued at once, then Leading (epoch 42) for
// every ping; on resign Lost (RESIGNED) and the end of the stream.
type leadingNode struct {
	electdpb.UnimplementedElectionServiceServer
	resigned chan struct{}
}

func (n *leadingNode) Campaign(s electdpb.ElectionService_CampaignServer) error {
	if _, err := s.Recv(); err != nil {
		return err
	}
	if err := s.Send(&electdpb.CampaignResponse{Response: &electdpb.CampaignResponse_Queued{Queued: &electdpb.CampaignQueued{}}}); err != nil {
		return err
	}
	for {
		req, err := s.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		switch {
		case req.GetPing() != nil:
			err = s.Send(&electdpb.CampaignResponse{Response: &electdpb.CampaignResponse_Leading{
				Leading: &electdpb.CampaignLeading{Epoch: 42, Nonce: req.GetPing().GetNonce(), LeaseMs: 60000}}})
		case req.GetResign() != nil:
			close(n.resigned)
			return s.Send(&electdpb.CampaignResponse{Response: &electdpb.CampaignResponse_Lost{
				Lost: &electdpb.CampaignLost{Epoch: 42, Reason: electdpb.LossReason_LOSS_REASON_RESIGNED}}})
		}
		if err != nil {
			return err
		}
	}
}

func TestCampaignProgramLeadsLogsAndResignsOnSignal(t *testing.T) {
	node := &leadingNode{resigned: make(chan struct{})}
	lis := serveAny(t, node)
	logPath := filepath.Join(t.TempDir(), "campaign.log")
	cmd := exec.Command(os.Args[0], "campaign", "orders", "w1", lis, "--value", "v")
	cmd.Env = append(os.Environ(), "ELECTD_GO_TEST_MAIN=1", "ELECTD_CAMPAIGN_LOG="+logPath)
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
	lines := make(chan string, 10)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	expect := func(want string) {
		t.Helper()
		select {
		case l := <-lines:
			if l != want {
				t.Fatalf("line %q, want %q; stderr %q", l, want, stderr.String())
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no line %q; stderr %q", want, stderr.String())
		}
	}
	expect("queued position=0")
	expect("leading epoch=42")
	for {
		b, _ := os.ReadFile(logPath)
		if strings.Count(string(b), "\n") >= 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	expect("lost epoch=42 reason=resigned")
	expect("stopped")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v; stderr %q", err, stderr.String())
	}
	select {
	case <-node.resigned:
	default:
		t.Fatal("the node got no resign")
	}
	b, _ := os.ReadFile(logPath)
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if l != "42 w1" {
			t.Fatalf("log line %q", l)
		}
	}
}

// serveAny serves srv on 127.0.0.1 (with electd's keepalive policy) and
// returns its address.
func serveAny(t *testing.T, srv electdpb.ElectionServiceServer) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: time.Second, PermitWithoutStream: true}))
	electdpb.RegisterElectionServiceServer(s, srv)
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	return lis.Addr().String()
}
