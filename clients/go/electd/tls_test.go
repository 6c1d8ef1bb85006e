package electd

// Tests of the TLS options (clients/README.md, "TLS") against in-process TLS
// nodes with a throwaway CA made by each test.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/electd/electd/clients/go/electdpb"
)

// testCA is a throwaway CA that writes PEM files into dir.
type testCA struct {
	dir    string
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	pem    string // path of the CA certificate
	serial int64
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{dir: t.TempDir(), cert: cert, key: key, serial: 1}
	ca.pem = filepath.Join(ca.dir, "ca.pem")
	writePEM(t, ca.pem, "CERTIFICATE", der)
	return ca
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// issue signs a certificate for cn (a server certificate for localhost and
// 127.0.0.1 if server) and returns the paths of its PEM files.
func (ca *testCA) issue(t *testing.T, cn string, server bool) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca.serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(ca.serial),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath = filepath.Join(ca.dir, cn+".pem")
	keyPath = filepath.Join(ca.dir, cn+".key")
	writePEM(t, certPath, "CERTIFICATE", der)
	writePEM(t, keyPath, "PRIVATE KEY", keyDER)
	return certPath, keyPath
}

// tlsNode is an in-process TLS node that requires a client certificate of
// clientCA and answers GetLeader with the client certificate's CN as
// responder id (so a test sees which certificate a connection presented).
type tlsNode struct {
	addr string
	srv  *grpc.Server
	t    *testing.T
	cfg  *tls.Config
}

type tlsService struct {
	electdpb.UnimplementedElectionServiceServer
}

func (tlsService) GetLeader(ctx context.Context, _ *electdpb.GetLeaderRequest) (*electdpb.GetLeaderResponse, error) {
	p, _ := peer.FromContext(ctx)
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		return nil, status.Error(codes.Unauthenticated, "no client certificate")
	}
	return leaderResp(info.State.PeerCertificates[0].Subject.CommonName, 7), nil
}

func startTLSNode(t *testing.T, ca *testCA, clientCA *testCA, addr string) *tlsNode {
	t.Helper()
	certPath, keyPath := ca.issue(t, "node", true)
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(clientCA.cert)
	n := &tlsNode{t: t, cfg: &tls.Config{
		Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool,
	}}
	n.listen(addr)
	return n
}

// listen serves on addr ("127.0.0.1:0": a new port).
func (n *tlsNode) listen(addr string) {
	n.t.Helper()
	var lis net.Listener
	var err error
	for range 50 { // the port of a node just stopped may take a moment to be free
		if lis, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		n.t.Fatal(err)
	}
	n.srv = grpc.NewServer(grpc.Creds(credentials.NewTLS(n.cfg)),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: time.Second, PermitWithoutStream: true}))
	electdpb.RegisterElectionServiceServer(n.srv, tlsService{})
	go n.srv.Serve(lis)
	n.t.Cleanup(n.srv.Stop)
	n.addr = lis.Addr().String()
}

// restart closes every connection and serves again on the same address, so
// that a client's next call needs a new connection.
func (n *tlsNode) restart() {
	n.srv.Stop()
	n.listen(n.addr)
}

func (tlsService) WatchLeader(_ *electdpb.WatchLeaderRequest, w electdpb.ElectionService_WatchLeaderServer) error {
	if err := w.Send(elected("n1", 7)); err != nil {
		return err
	}
	<-w.Context().Done()
	return nil
}

func tlsClient(t *testing.T, addrs []string, opts ...Option) *ElectionClient {
	t.Helper()
	opts = append([]Option{WithBackoff(time.Millisecond, 10*time.Millisecond)}, opts...)
	c, err := New(addrs, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// answeredBy returns the responder id of the first GetLeader that succeeds
// within a few tries (the first call after a node restart may still meet
// the old, closed connection).
func answeredBy(t *testing.T, c *ElectionClient) string {
	t.Helper()
	var err error
	for range 20 {
		var resp *electdpb.GetLeaderResponse
		if resp, err = c.GetLeader(context.Background()); err == nil {
			return resp.GetResponderId()
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("GetLeader kept failing: %v", err)
	return ""
}

func TestTLSConstructionErrors(t *testing.T) {
	ca := newTestCA(t, "test CA")
	cert, key := ca.issue(t, "reader", false)
	otherCert, _ := ca.issue(t, "other", false)
	missing := filepath.Join(t.TempDir(), "missing.pem")
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		opts     []Option
		want     []string
		notExist bool
	}{
		{"cert without key", []Option{WithTLSCert(cert)}, []string{"WithTLSCert: needs WithTLSKey too"}, false},
		{"key without cert", []Option{WithTLSCA(ca.pem), WithTLSKey(key)}, []string{"WithTLSKey: needs WithTLSCert too"}, false},
		{"missing CA", []Option{WithTLSCA(missing)}, []string{"WithTLSCA: cannot read " + missing}, true},
		{"missing cert", []Option{WithTLSCert(missing), WithTLSKey(key)}, []string{"WithTLSCert: cannot read " + missing}, true},
		{"missing key", []Option{WithTLSCert(cert), WithTLSKey(missing)}, []string{"WithTLSKey: cannot read " + missing}, true},
		{"CA without PEM", []Option{WithTLSCA(notPEM)}, []string{"WithTLSCA: no PEM certificate in " + notPEM}, false},
		{"key of another certificate", []Option{WithTLSCert(otherCert), WithTLSKey(key)},
			[]string{"WithTLSCert, WithTLSKey: cannot use", otherCert, key}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New([]string{"127.0.0.1:1"}, tc.opts...)
			if err == nil {
				c.Close()
				t.Fatal("New succeeded")
			}
			var e *Error
			if !errors.As(err, &e) || e.NoNodeAnswered() || len(e.Addrs) != 0 || e.Code() != codes.Unknown {
				t.Fatalf("want a bad-argument *Error, got %T %v", err, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if tc.notExist && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("error %q is not fs.ErrNotExist", err)
			}
		})
	}
	// Empty values are "not given": plaintext, no error.
	c, err := New([]string{"127.0.0.1:1"}, WithTLSCA(""), WithTLSCert(""), WithTLSKey(""), WithTLSServerName(""))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	// Only a server name: server-authenticated TLS with the system's roots, no file to read.
	c, err = New([]string{"127.0.0.1:1"}, WithTLSServerName("electd.example"))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func TestMutualTLS(t *testing.T) {
	ca := newTestCA(t, "test CA")
	node := startTLSNode(t, ca, ca, "127.0.0.1:0")
	cert, key := ca.issue(t, "reader", false)
	c := tlsClient(t, []string{node.addr}, WithTLSCA(ca.pem), WithTLSCert(cert), WithTLSKey(key))
	if got := answeredBy(t, c); got != "reader" {
		t.Fatalf("answered for %q, want the client certificate's CN reader", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := c.WatchLeader(ctx, func(l *electdpb.Leader) error {
		if l.GetNode().GetId() != "n1" {
			t.Errorf("leader %v", l)
		}
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("watch: %v", err)
	}
	// The server name check: the certificate carries localhost and 127.0.0.1.
	c = tlsClient(t, []string{node.addr}, WithTLSCA(ca.pem), WithTLSCert(cert), WithTLSKey(key), WithTLSServerName("localhost"))
	if got := answeredBy(t, c); got != "reader" {
		t.Fatalf("answered for %q", got)
	}
}

// A failed handshake is a failed connection: UNAVAILABLE, next address; when
// no address is left, "no node answered".
func TestTLSHandshakeFailuresAreUnavailable(t *testing.T) {
	ca := newTestCA(t, "test CA")
	other := newTestCA(t, "other CA")
	node := startTLSNode(t, ca, ca, "127.0.0.1:0")
	cert, key := ca.issue(t, "reader", false)
	foreignCert, foreignKey := other.issue(t, "foreign", false)
	for _, tc := range []struct {
		name string
		opts []Option
	}{
		{"plaintext", nil},
		{"untrusted node certificate", []Option{WithTLSCA(other.pem), WithTLSCert(cert), WithTLSKey(key)}},
		{"name mismatch", []Option{WithTLSCA(ca.pem), WithTLSCert(cert), WithTLSKey(key), WithTLSServerName("elsewhere.example")}},
		{"no client certificate", []Option{WithTLSCA(ca.pem)}},
		{"client certificate of another CA", []Option{WithTLSCA(ca.pem), WithTLSCert(foreignCert), WithTLSKey(foreignKey)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tlsClient(t, []string{node.addr}, tc.opts...)
			_, err := c.GetLeader(context.Background())
			var e *Error
			if !errors.As(err, &e) || !e.NoNodeAnswered() || e.Code() != codes.Unavailable {
				t.Fatalf("want no node answered with UNAVAILABLE, got %v", err)
			}
			err = c.WatchLeader(context.Background(), func(*electdpb.Leader) error { return errors.New("reported") })
			if !errors.As(err, &e) || !e.NoNodeAnswered() || e.Code() != codes.Unavailable {
				t.Fatalf("watch: want no node answered with UNAVAILABLE, got %v", err)
			}
		})
	}
	// The next address, signed by the CA the client trusts, answers.
	foreignNode := startTLSNode(t, other, ca, "127.0.0.1:0")
	c := tlsClient(t, []string{foreignNode.addr, node.addr}, WithTLSCA(ca.pem), WithTLSCert(cert), WithTLSKey(key))
	if got := answeredBy(t, c); got != "reader" {
		t.Fatalf("answered for %q", got)
	}
	if c.Addrs()[c.start()] != node.addr {
		t.Fatalf("the client did not move to %s", node.addr)
	}
}

// replace puts src's contents at dst atomically, as a certificate manager does.
func replace(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	tmp := dst + ".new"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
}

func TestRotatedClientCertificateServesNewConnections(t *testing.T) {
	ca := newTestCA(t, "test CA")
	node := startTLSNode(t, ca, ca, "127.0.0.1:0")
	oldCert, oldKey := ca.issue(t, "old", false)
	newCert, newKey := ca.issue(t, "new", false)
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")
	replace(t, oldCert, cert)
	replace(t, oldKey, key)
	c := tlsClient(t, []string{node.addr}, WithTLSCA(ca.pem), WithTLSCert(cert), WithTLSKey(key))
	if got := answeredBy(t, c); got != "old" {
		t.Fatalf("answered for %q, want old", got)
	}

	// Half a rotation (the new certificate, the old key): unusable, so the
	// certificate in use is kept.
	replace(t, newCert, cert)
	node.restart()
	if got := answeredBy(t, c); got != "old" {
		t.Fatalf("after half a rotation: answered for %q, want old", got)
	}

	// The key too: the next connection presents the new certificate.
	replace(t, newKey, key)
	if got := answeredBy(t, c); got != "old" {
		t.Fatalf("the open connection changed certificate: %q", got)
	}
	node.restart()
	if got := answeredBy(t, c); got != "new" {
		t.Fatalf("after the rotation: answered for %q, want new", got)
	}
}

func TestRotatedCAVerifiesNewConnections(t *testing.T) {
	oldCA := newTestCA(t, "old CA")
	newCA := newTestCA(t, "new CA")
	node := startTLSNode(t, newCA, oldCA, "127.0.0.1:0") // the node's certificate: of the new CA
	cert, key := oldCA.issue(t, "reader", false)
	caPath := filepath.Join(t.TempDir(), "ca.pem")
	replace(t, oldCA.pem, caPath)
	c := tlsClient(t, []string{node.addr}, WithTLSCA(caPath), WithTLSCert(cert), WithTLSKey(key))
	_, err := c.GetLeader(context.Background())
	var e *Error
	if !errors.As(err, &e) || e.Code() != codes.Unavailable {
		t.Fatalf("trusting only the old CA: want UNAVAILABLE, got %v", err)
	}
	replace(t, newCA.pem, caPath)
	if got := answeredBy(t, c); got != "reader" {
		t.Fatalf("answered for %q", got)
	}
}
