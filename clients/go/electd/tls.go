package electd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"sync"

	"google.golang.org/grpc/credentials"
)

// The four TLS options of clients/README.md ("TLS"). Any of them, non-empty,
// turns TLS on; without them the client speaks plaintext.

// WithTLSCA sets the PEM file of one or more CA certificates that the nodes'
// certificates must chain to (default, with TLS on: the system's roots).
// Giving it turns TLS on.
func WithTLSCA(path string) Option { return func(o *options) { o.tls.ca = path } }

// WithTLSCert sets the PEM file of the client's certificate chain (leaf
// first), presented in the TLS handshake for mutual TLS; it needs
// [WithTLSKey]. Its URI or DNS SANs, else its CN, are the identity the nodes'
// --allow-read/--allow-write match. Giving it turns TLS on.
func WithTLSCert(path string) Option { return func(o *options) { o.tls.cert = path } }

// WithTLSKey sets the PEM file of the unencrypted private key of
// [WithTLSCert] (PKCS#8, PKCS#1 or SEC 1). Giving it turns TLS on.
func WithTLSKey(path string) Option { return func(o *options) { o.tls.key = path } }

// WithTLSServerName sets the DNS name the nodes' certificates must carry,
// checked instead of each address's host and sent as SNI (and as the
// :authority of requests); one name for all addresses. Without it, the host
// of each address is checked (an IP address against the certificate's IP
// SANs). Giving it turns TLS on.
func WithTLSServerName(name string) Option { return func(o *options) { o.tls.serverName = name } }

// tlsOptions are the four TLS options as given.
type tlsOptions struct {
	ca, cert, key, serverName string
}

// on reports whether TLS is on: any of the four is given (non-empty).
func (t tlsOptions) on() bool {
	return t.ca != "" || t.cert != "" || t.key != "" || t.serverName != ""
}

// check returns what is wrong with the combination, before any file is read.
func (t tlsOptions) check() error {
	switch {
	case t.cert != "" && t.key == "":
		return errors.New("WithTLSCert: needs WithTLSKey too (a client certificate and its key)")
	case t.key != "" && t.cert == "":
		return errors.New("WithTLSKey: needs WithTLSCert too (a client certificate and its key)")
	}
	return nil
}

// tlsFile is one of the files of the TLS options.
type tlsFile struct {
	option, path string
}

// stamp identifies the version of a file on disk without reading it: the
// file itself (device and inode, through os.SameFile), its size and its
// modification time. A file that cannot be stat'ed has a nil info.
type stamp struct {
	info fs.FileInfo
}

func stat(path string) stamp {
	fi, err := os.Stat(path)
	if err != nil {
		return stamp{}
	}
	return stamp{fi}
}

func (s stamp) same(t stamp) bool {
	if s.info == nil || t.info == nil {
		return s.info == nil && t.info == nil
	}
	return os.SameFile(s.info, t.info) && s.info.Size() == t.info.Size() &&
		s.info.ModTime().Equal(t.info.ModTime())
}

// reloadingTLS is the client's transport credentials with TLS on: grpc-go's
// TLS credentials (credentials.NewTLS) built from the files, built again for
// a new connection whenever one of the files changed since they were last
// read (the check is a stat of each file per connection attempt, no read
// while nothing changed). So rotated certificates, client certificate and
// CA alike, are used by the next connection without a new client;
// connections already open keep the certificates of their handshake.
//
// If the changed files cannot be used (a rotation caught half-way: a new
// certificate with the old key, or a file missing for a moment), the
// credentials in use are kept and the files are tried again at the next
// connection, so a botched rotation does not take the client down.
//
// Safe for concurrent use: grpc-go runs handshakes of several addresses at once.
type reloadingTLS struct {
	opts  tlsOptions
	files []tlsFile

	mu     sync.Mutex
	stamps []stamp
	inner  credentials.TransportCredentials
	// lastErr is why the files on disk are not in use (nil when they are).
	lastErr error
}

// newReloadingTLS reads the files now: one that cannot be read or used is an
// error naming the option and the path.
func newReloadingTLS(t tlsOptions) (*reloadingTLS, error) {
	r := &reloadingTLS{opts: t}
	for _, f := range []tlsFile{{"WithTLSCA", t.ca}, {"WithTLSCert", t.cert}, {"WithTLSKey", t.key}} {
		if f.path != "" {
			r.files = append(r.files, f)
		}
	}
	stamps := r.stat()
	inner, err := r.load()
	if err != nil {
		return nil, err
	}
	r.stamps, r.inner = stamps, inner
	return r, nil
}

func (r *reloadingTLS) stat() []stamp {
	out := make([]stamp, len(r.files))
	for i, f := range r.files {
		out[i] = stat(f.path)
	}
	return out
}

// read returns the contents of the file of option, or nil if it is not given.
func (r *reloadingTLS) read(option string) ([]byte, error) {
	for _, f := range r.files {
		if f.option != option {
			continue
		}
		b, err := os.ReadFile(f.path)
		if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return nil, fmt.Errorf("%s: cannot read %s: %w", f.option, f.path, err)
		}
		return b, nil
	}
	return nil, nil
}

// load reads the files and builds grpc-go's TLS credentials from them.
func (r *reloadingTLS) load() (credentials.TransportCredentials, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: r.opts.serverName}
	ca, err := r.read("WithTLSCA")
	if err != nil {
		return nil, err
	}
	if ca != nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ca) {
			return nil, fmt.Errorf("WithTLSCA: no PEM certificate in %s", r.opts.ca)
		}
		cfg.RootCAs = pool
	}
	if r.opts.cert != "" {
		certPEM, err := r.read("WithTLSCert")
		if err != nil {
			return nil, err
		}
		keyPEM, err := r.read("WithTLSKey")
		if err != nil {
			return nil, err
		}
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("WithTLSCert, WithTLSKey: cannot use %s and %s: %w", r.opts.cert, r.opts.key, err)
		}
		// Presented whatever CAs the node asks for: the node, not the
		// client, decides whether it is acceptable.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }
	}
	return credentials.NewTLS(cfg), nil
}

// current returns the credentials for a new connection, built again from the
// files if any of them changed since they were last read.
func (r *reloadingTLS) current() credentials.TransportCredentials {
	r.mu.Lock()
	defer r.mu.Unlock()
	stamps := r.stat()
	if !r.changed(stamps) {
		return r.inner
	}
	inner, err := r.load()
	if err != nil {
		// Keep what works; stamps are not taken, so the next connection tries again.
		r.lastErr = err
		return r.inner
	}
	// A file replaced while it was read is read again next time.
	if after := r.stat(); !r.differ(stamps, after) {
		r.stamps = stamps
	}
	r.inner, r.lastErr = inner, nil
	return r.inner
}

func (r *reloadingTLS) changed(stamps []stamp) bool { return r.differ(r.stamps, stamps) }

func (r *reloadingTLS) differ(a, b []stamp) bool {
	for i := range a {
		if !a[i].same(b[i]) {
			return true
		}
	}
	return false
}

// ClientHandshake runs the TLS handshake of a new connection with the
// current credentials. A failed handshake is a failed connection attempt:
// grpc-go fails the calls with UNAVAILABLE, and the client moves on to the
// next address.
func (r *reloadingTLS) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	c, info, err := r.current().ClientHandshake(ctx, authority, conn)
	if err != nil {
		r.mu.Lock()
		stale := r.lastErr
		r.mu.Unlock()
		if stale != nil {
			// Say why the new files are not in use, too.
			err = fmt.Errorf("%w (changed TLS files not used: %v)", err, stale)
		}
	}
	return c, info, err
}

// ServerHandshake is not used by a client.
func (r *reloadingTLS) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("electd: client credentials cannot serve")
}

// Info reports TLS, with the WithTLSServerName name (if any) as the server
// name: grpc-go then uses it as the channel's authority, which it checks the
// certificate against and sends as SNI.
func (r *reloadingTLS) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls", SecurityVersion: "1.2", ServerName: r.opts.serverName}
}

// Clone returns credentials reading the same files.
func (r *reloadingTLS) Clone() credentials.TransportCredentials {
	r.mu.Lock()
	defer r.mu.Unlock()
	return &reloadingTLS{opts: r.opts, files: r.files, stamps: r.stamps, inner: r.inner, lastErr: r.lastErr}
}

// OverrideServerName is deprecated in grpc-go and not supported: use
// WithTLSServerName.
func (r *reloadingTLS) OverrideServerName(string) error {
	return errors.New("electd: use WithTLSServerName")
}
