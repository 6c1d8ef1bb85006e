// Command watchtool holds N leader-watch streams open against one server and reports, per
// leader change, when each stream received the new leader. It is the one stream client the
// benchmarks use for both electd (electd.v1.ElectionService/WatchLeader) and etcd
// (v3electionpb.Election/Observe), so both are measured by the same harness.
//
// Messages are sent and parsed as raw protobuf wire bytes (a pass-through codec), so the tool
// needs no generated code; it only reads the few fields that identify a leader.
//
// Protocol: JSON lines on stdout, commands on stdin.
//
//	start-up        -> {"ready":true,"leader":ID,"streams":N,"open_ms":T}  (all streams have a leader)
//	mark            -> {"marked":true,"leader":ID}  (each stream's current leader is its baseline)
//	wait TIMEOUT_MS -> {"got":K,"n":N,"leader":ID,"first_ns":..,"p50_ns":..,"p99_ns":..,"last_ns":..}
//	                   (receive times, unix ns, of the first message with a different leader)
//	quit            -> exits
//
// With -tls-ca (and, for mutual TLS, -tls-cert and -tls-key) the connections use TLS
// (crypto/tls through grpc-go's credentials.NewTLS); without them, plaintext.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protowire"
)

// rawCodec passes []byte through: requests are pre-encoded, responses are parsed by hand.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	p := v.(*[]byte)
	*p = append((*p)[:0], data...)
	return nil
}
func (rawCodec) Name() string { return "raw" }

// fields returns the top-level fields of a protobuf message: number -> last raw value
// (bytes for length-delimited fields, the varint for varints).
func fields(b []byte) (map[protowire.Number][]byte, map[protowire.Number]uint64) {
	bytesF := map[protowire.Number][]byte{}
	varF := map[protowire.Number]uint64{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return bytesF, varF
		}
		b = b[n:]
		switch typ {
		case protowire.BytesType:
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return bytesF, varF
			}
			bytesF[num] = v
			b = b[m:]
		case protowire.VarintType:
			v, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return bytesF, varF
			}
			varF[num] = v
			b = b[m:]
		default:
			m := protowire.ConsumeFieldValue(num, typ, b)
			if m < 0 {
				return bytesF, varF
			}
			b = b[m:]
		}
	}
	return bytesF, varF
}

// electdLeader: WatchLeaderResponse{state=1, leader=2{node=1{id=1}, epoch=2}} -> "id@epoch",
// or "" when the state is not ELECTED (1).
func electdLeader(msg []byte) string {
	top, topV := fields(msg)
	if topV[1] != 1 {
		return ""
	}
	leader, leaderV := fields(top[2])
	node, _ := fields(leader[1])
	return fmt.Sprintf("%s@%d", node[1], leaderV[2])
}

// etcdLeader: LeaderResponse{header=1, kv=2{key=1, create_revision=2}} -> "key@rev", or "".
func etcdLeader(msg []byte) string {
	top, _ := fields(msg)
	kv, ok := top[2]
	if !ok {
		return ""
	}
	f, v := fields(kv)
	if len(f[1]) == 0 {
		return ""
	}
	return fmt.Sprintf("%s@%d", f[1], v[2])
}

type stream struct {
	mu       sync.Mutex
	current  string // latest leader identity seen ("" = none)
	baseline string
	changed  int64 // unix ns of the first message after mark with a leader != baseline
	err      error
}

// tool counts, with atomics, the streams that have a leader, that saw a change since the last
// mark, and that failed; the command loop polls these counters (cheap even for 10,000 streams).
type tool struct {
	streams []*stream
	ready   atomic.Int64
	changed atomic.Int64
	failed  atomic.Int64
}

// etcdWatchEvent: WatchResponse{header=1{revision=3}, created=3, events=11{type=1}}: the
// created response is the baseline ("watching"); a DELETE (type 1) event is a change, named by
// the revision of the response.
func etcdWatchEvent(msg []byte) string {
	top, topV := fields(msg)
	if topV[3] == 1 {
		return "watching"
	}
	ev, ok := top[11]
	if !ok {
		return ""
	}
	_, evV := fields(ev)
	if evV[1] != 1 {
		return ""
	}
	_, hdrV := fields(top[1])
	return fmt.Sprintf("deleted@%d", hdrV[3])
}

func run(ctx context.Context, conn *grpc.ClientConn, method string, req []byte, bidi bool,
	parse func([]byte) string, s *stream, t *tool) {
	desc := &grpc.StreamDesc{ServerStreams: true, ClientStreams: bidi}
	cs, err := conn.NewStream(ctx, desc, method, grpc.ForceCodec(rawCodec{}))
	if err == nil {
		err = cs.SendMsg(&req)
	}
	if err == nil && !bidi {
		err = cs.CloseSend()
	}
	for err == nil {
		var msg []byte
		if err = cs.RecvMsg(&msg); err != nil {
			break
		}
		now := time.Now().UnixNano()
		id := parse(msg)
		s.mu.Lock()
		if id != "" {
			if s.current == "" {
				t.ready.Add(1)
			}
			s.current = id
			if s.changed == 0 && s.baseline != "" && id != s.baseline {
				s.changed = now
				t.changed.Add(1)
			}
		}
		s.mu.Unlock()
	}
	if ctx.Err() == nil {
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
		t.failed.Add(1)
	}
}

func (s *stream) leader() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current
}

func firstErr(t *tool) string {
	for _, s := range t.streams {
		s.mu.Lock()
		err := s.err
		s.mu.Unlock()
		if err != nil {
			return err.Error()
		}
	}
	return ""
}

func emit(v any) {
	b, _ := json.Marshal(v)
	fmt.Println(string(b))
}

func pct(sorted []int64, p float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(float64(len(sorted))*p/100.0 + 0.999999)
	if rank < 1 {
		rank = 1
	}
	if rank > len(sorted) {
		rank = len(sorted)
	}
	return sorted[rank-1]
}

// transport returns the connections' credentials: plaintext when no TLS flag is given, else
// TLS verifying the server against the CA file (the system roots without one), presenting the
// client certificate when one is given (mutual TLS), checking serverName if set.
func transport(ca, cert, key, serverName string) (credentials.TransportCredentials, error) {
	if ca == "" && cert == "" && key == "" && serverName == "" {
		return insecure.NewCredentials(), nil
	}
	cfg := &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-tls-ca %s: no PEM certificate in it", ca)
		}
	}
	if (cert == "") != (key == "") {
		return nil, errors.New("-tls-cert and -tls-key go together")
	}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return credentials.NewTLS(cfg), nil
}

func main() {
	target := flag.String("target", "127.0.0.1:7000", "server address")
	kind := flag.String("kind", "electd", "electd, etcd (election Observe) or etcd-watch (Watch on the election prefix)")
	n := flag.Int("streams", 1, "number of streams")
	conns := flag.Int("conns", 1, "number of TCP connections to spread the streams over")
	name := flag.String("name", "bench-election", "etcd election name")
	readyTimeout := flag.Duration("ready-timeout", 120*time.Second, "time to open all streams")
	batch := flag.Int("batch", 500, "open streams in batches of this many, each batch answered "+
		"before the next (a burst of thousands of new calls exceeds a gRPC server's pending-call "+
		"limit); 0 opens them all at once")
	tlsCA := flag.String("tls-ca", "", "PEM CA file to verify the server with (turns TLS on)")
	tlsCert := flag.String("tls-cert", "", "PEM client certificate for mutual TLS (with -tls-key)")
	tlsKey := flag.String("tls-key", "", "PEM private key of -tls-cert")
	tlsName := flag.String("tls-server-name", "", "name to verify the server's certificate for "+
		"(default: the host of -target)")
	flag.Parse()

	var method string
	var req []byte
	var parse func([]byte) string
	bidi := false
	switch *kind {
	case "electd":
		method, parse = "/electd.v1.ElectionService/WatchLeader", electdLeader
		req = []byte{}
	case "etcd":
		method, parse = "/v3electionpb.Election/Observe", etcdLeader
		req = protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), []byte(*name))
	case "etcd-watch":
		method, parse, bidi = "/etcdserverpb.Watch/Watch", etcdWatchEvent, true
		prefix := []byte(*name + "/")
		end := append([]byte(*name), '0') // '/'+1: the end of the prefix range
		create := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), prefix)
		create = protowire.AppendBytes(protowire.AppendTag(create, 2, protowire.BytesType), end)
		req = protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), create)
	default:
		fmt.Fprintln(os.Stderr, "unknown -kind", *kind)
		os.Exit(2)
	}
	if *conns < 1 {
		*conns = 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	creds, err := transport(*tlsCA, *tlsCert, *tlsKey, *tlsName)
	if err != nil {
		emit(map[string]any{"error": err.Error()})
		os.Exit(1)
	}
	clients := make([]*grpc.ClientConn, *conns)
	for i := range clients {
		c, err := grpc.NewClient(*target,
			grpc.WithTransportCredentials(creds),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)))
		if err != nil {
			emit(map[string]any{"error": err.Error()})
			os.Exit(1)
		}
		clients[i] = c
	}
	t := &tool{}
	start := time.Now()
	deadline := time.Now().Add(*readyTimeout)
	for i := 0; i < *n; i++ {
		s := &stream{}
		t.streams = append(t.streams, s)
		go run(ctx, clients[i%len(clients)], method, req, bidi, parse, s, t)
		if *batch > 0 && (i+1)%*batch == 0 {
			for int(t.ready.Load()) < i+1 && t.failed.Load() == 0 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
		}
	}

	// Wait until every stream has a leader (or one failed).
	for {
		if t.failed.Load() > 0 {
			emit(map[string]any{"error": firstErr(t), "ready": t.ready.Load()})
			os.Exit(1)
		}
		if int(t.ready.Load()) == len(t.streams) {
			emit(map[string]any{"ready": true, "leader": t.streams[0].leader(),
				"streams": len(t.streams),
				"open_ms": float64(time.Since(start).Microseconds()) / 1000})
			break
		}
		if time.Now().After(deadline) {
			emit(map[string]any{"error": "streams not ready in time", "ready": t.ready.Load()})
			os.Exit(1)
		}
		time.Sleep(time.Millisecond)
	}

	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cmd := strings.Fields(in.Text())
		if len(cmd) == 0 {
			continue
		}
		switch cmd[0] {
		case "mark":
			for _, s := range t.streams {
				s.mu.Lock()
				s.baseline, s.changed = s.current, 0
				s.mu.Unlock()
			}
			t.changed.Store(0)
			emit(map[string]any{"marked": true, "leader": t.streams[0].leader()})
		case "wait":
			ms, _ := strconv.Atoi(cmd[1])
			until := time.Now().Add(time.Duration(ms) * time.Millisecond)
			for int(t.changed.Load()) < len(t.streams) && t.failed.Load() == 0 &&
				time.Now().Before(until) {
				time.Sleep(time.Millisecond)
			}
			var times []int64
			for _, s := range t.streams {
				s.mu.Lock()
				if s.changed != 0 {
					times = append(times, s.changed)
				}
				s.mu.Unlock()
			}
			sort.Slice(times, func(a, b int) bool { return times[a] < times[b] })
			out := map[string]any{"got": len(times), "n": len(t.streams),
				"leader": t.streams[0].leader()}
			if t.failed.Load() > 0 {
				out["error"] = firstErr(t)
			}
			if len(times) > 0 {
				out["first_ns"] = times[0]
				out["p50_ns"] = pct(times, 50)
				out["p99_ns"] = pct(times, 99)
				out["last_ns"] = times[len(times)-1]
			}
			emit(out)
		case "quit":
			cancel()
			for _, c := range clients {
				c.Close()
			}
			return
		}
	}
}
