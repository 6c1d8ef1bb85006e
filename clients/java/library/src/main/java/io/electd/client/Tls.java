package io.electd.client;

import io.grpc.ChannelCredentials;
import io.grpc.InsecureChannelCredentials;
import io.grpc.Status;
import io.grpc.netty.shaded.io.grpc.netty.GrpcSslContexts;
import io.grpc.netty.shaded.io.grpc.netty.NettySslContextChannelCredentials;
import io.grpc.netty.shaded.io.netty.handler.ssl.OpenSslSessionContext;
import io.grpc.netty.shaded.io.netty.handler.ssl.SslContext;
import io.grpc.netty.shaded.io.netty.handler.ssl.SslContextBuilder;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.KeyStore;
import java.security.Principal;
import java.security.PrivateKey;
import java.security.Signature;
import java.security.cert.CertificateException;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.List;
import java.util.Objects;
import java.util.logging.Level;
import java.util.logging.Logger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLException;
import javax.net.ssl.SSLSessionContext;
import javax.net.ssl.TrustManager;
import javax.net.ssl.TrustManagerFactory;
import javax.net.ssl.X509ExtendedKeyManager;
import javax.net.ssl.X509ExtendedTrustManager;

/**
 * The client's transport security (clients/README.md, "TLS"): plaintext, or TLS when any of
 * {@code tlsCa}, {@code tlsCert}, {@code tlsKey}, {@code tlsServerName} is given.
 *
 * <p>The PEM files are read at construction (a file that cannot be read or parsed is an
 * {@link ElectdException} naming the option and the path) and read again at the start of every
 * later TLS handshake whose files changed (device, inode, size or modification time): the key
 * manager and the trust manager handed to grpc-java check the files each time the TLS engine
 * asks them for the client certificate or to verify a node's chain. grpc-java keeps one channel
 * per address and reconnects inside it, so reloading in the managers (rather than building new
 * credentials per channel) is what makes a rotated certificate reach every new connection,
 * reconnects included. A reload that fails (a file half-written during a rotation, a key that
 * does not match its certificate yet) keeps the last good material and is tried again at the
 * next handshake.
 *
 * <p>TLS session resumption is off: a resumed session would carry the identity of the
 * connection it resumes (the handshake then asks the key manager nothing), so a rotated
 * certificate would not reach the node. electd connections are long-lived and few, so full
 * handshakes cost next to nothing. (With Netty's OpenSSL engine, grpc-java's default, the
 * session cache is disabled; with the JDK's engine, where that cannot be done, sessions expire
 * after a second.)
 */
final class Tls {
  private static final Logger logger = Logger.getLogger(Tls.class.getName());

  final Path ca;
  final Path cert;
  final Path key;
  final String serverName;
  private final ChannelCredentials credentials;

  private Tls(Path ca, Path cert, Path key, String serverName) {
    this.ca = ca;
    this.cert = cert;
    this.key = key;
    this.serverName = serverName;
    if (!enabled()) {
      credentials = InsecureChannelCredentials.create();
      return;
    }
    // grpc-java's own TLS settings (ALPN h2, ciphers, the OpenSSL engine when available);
    // host name checks are grpc-java's too (it sets the engine's endpoint identification).
    SslContextBuilder b = GrpcSslContexts.forClient();
    if (ca != null) {
      b.trustManager(new ReloadingTrustManager(ca));
    }
    if (cert != null) {
      b.keyManager(new ReloadingKeyManager(cert, key));
    }
    SslContext context;
    try {
      context = b.build();
    } catch (SSLException | RuntimeException e) {
      throw error("TLS: cannot set up the client's TLS context: " + e.getMessage());
    }
    SSLSessionContext sessions = context.sessionContext();
    if (sessions instanceof OpenSslSessionContext) {
      ((OpenSslSessionContext) sessions).setSessionCacheEnabled(false);
    } else if (sessions != null) {
      sessions.setSessionTimeout(1);
    }
    credentials = NettySslContextChannelCredentials.create(context);
  }

  /**
   * Checks the options by rules 1 to 3 and reads the files once.
   *
   * @throws ElectdException naming the option (and the path) that is wrong
   */
  static Tls create(Path ca, Path cert, Path key, String serverName) {
    ca = given(ca);
    cert = given(cert);
    key = given(key);
    serverName = serverName == null || serverName.isEmpty() ? null : serverName;
    if (cert != null && key == null) {
      throw error("tlsCert: needs tlsKey too (a client certificate and its private key)");
    }
    if (key != null && cert == null) {
      throw error("tlsKey: needs tlsCert too (a client certificate and its private key)");
    }
    return new Tls(ca, cert, key, serverName);
  }

  private static Path given(Path p) {
    return p == null || p.toString().isEmpty() ? null : p;
  }

  boolean enabled() {
    return ca != null || cert != null || key != null || serverName != null;
  }

  ChannelCredentials credentials() {
    return credentials;
  }

  static ElectdException error(String message) {
    return new ElectdException(message, List.of(), Status.INVALID_ARGUMENT.withDescription(message), null);
  }

  // --- files ---

  /** What identifies a file's content without reading it. */
  private static List<Object> stamp(Path... paths) {
    List<Object> out = new ArrayList<>();
    for (Path p : paths) {
      try {
        BasicFileAttributes a = Files.readAttributes(p, BasicFileAttributes.class);
        out.add(Arrays.asList(a.fileKey(), a.size(), a.lastModifiedTime()));
      } catch (IOException | RuntimeException e) {
        out.add(null);
      }
    }
    return out;
  }

  private static byte[] read(String option, Path path) {
    try {
      return Files.readAllBytes(path);
    } catch (IOException | RuntimeException e) {
      String why = e.getMessage();
      if (e instanceof java.nio.file.NoSuchFileException) {
        why = "no such file";
      } else if (e instanceof java.nio.file.AccessDeniedException) {
        why = "permission denied";
      }
      throw error(option + ": cannot read " + path + ": " + why);
    }
  }

  static List<X509Certificate> certificates(String option, Path path) {
    byte[] pem = read(option, path);
    List<X509Certificate> out = new ArrayList<>();
    try {
      CertificateFactory cf = CertificateFactory.getInstance("X.509");
      for (Block block : blocks(pem)) {
        if (block.type.equals("CERTIFICATE")) {
          out.add((X509Certificate) cf.generateCertificate(new ByteArrayInputStream(block.der)));
        }
      }
    } catch (CertificateException | RuntimeException e) {
      throw error(option + ": bad certificate in " + path + ": " + e.getMessage());
    }
    if (out.isEmpty()) {
      throw error(option + ": no PEM certificate (BEGIN CERTIFICATE) in " + path);
    }
    return out;
  }

  static PrivateKey privateKey(String option, Path path) {
    byte[] pem = read(option, path);
    for (Block block : blocks(pem)) {
      byte[] pkcs8;
      switch (block.type) {
        case "PRIVATE KEY":
          pkcs8 = block.der;
          break;
        case "RSA PRIVATE KEY": // PKCS#1
          pkcs8 = Der.pkcs8(Der.RSA_ALGORITHM, block.der);
          break;
        case "EC PRIVATE KEY": // SEC 1: the curve is in its parameters
          try {
            pkcs8 = Der.pkcs8(Der.ecAlgorithm(Der.sec1Curve(block.der)), block.der);
          } catch (RuntimeException e) {
            throw error(option + ": bad EC private key in " + path + ": " + e.getMessage());
          }
          break;
        case "ENCRYPTED PRIVATE KEY":
          throw error(option + ": " + path + " holds an encrypted private key; an unencrypted one is needed");
        default:
          continue;
      }
      for (String alg : new String[] {"EC", "RSA", "Ed25519", "Ed448", "RSASSA-PSS"}) {
        try {
          return KeyFactory.getInstance(alg).generatePrivate(new PKCS8EncodedKeySpec(pkcs8));
        } catch (GeneralSecurityException | RuntimeException e) {
          // not this algorithm
        }
      }
      throw error(option + ": cannot parse the private key in " + path
          + " (want unencrypted PKCS#8, or traditional RSA or EC)");
    }
    throw error(option + ": no PEM private key (BEGIN PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY) in " + path);
  }

  private static final class Block {
    final String type;
    final byte[] der;

    Block(String type, byte[] der) {
      this.type = type;
      this.der = der;
    }
  }

  private static final Pattern PEM = Pattern.compile(
      "-----BEGIN ([A-Z0-9 ]+)-----\\s*([A-Za-z0-9+/=\\s]*?)-----END \\1-----");

  private static List<Block> blocks(byte[] pem) {
    List<Block> out = new ArrayList<>();
    Matcher m = PEM.matcher(new String(pem, StandardCharsets.US_ASCII));
    while (m.find()) {
      out.add(new Block(m.group(1), Base64.getMimeDecoder().decode(m.group(2))));
    }
    return out;
  }

  /** The client certificate chain and its key, checked to belong together. */
  static final class Identity {
    final X509Certificate[] chain;
    final PrivateKey key;

    Identity(X509Certificate[] chain, PrivateKey key) {
      this.chain = chain;
      this.key = key;
    }

    static Identity read(Path certPath, Path keyPath) {
      List<X509Certificate> chain = certificates("tlsCert", certPath);
      PrivateKey key = privateKey("tlsKey", keyPath);
      if (!matches(chain.get(0), key)) {
        throw error("tlsKey: the private key in " + keyPath
            + " does not belong to the certificate in " + certPath + " (tlsCert)");
      }
      return new Identity(chain.toArray(new X509Certificate[0]), key);
    }

    /** Signs a few bytes with the key and checks them with the certificate's public key. */
    private static boolean matches(X509Certificate cert, PrivateKey key) {
      String alg;
      switch (key.getAlgorithm()) {
        case "EC": alg = "SHA256withECDSA"; break;
        case "RSA": alg = "SHA256withRSA"; break;
        case "Ed25519": case "Ed448": case "EdDSA": alg = key.getAlgorithm(); break;
        default: return true; // cannot tell here; the handshake will
      }
      try {
        byte[] data = "electd key check".getBytes(StandardCharsets.US_ASCII);
        Signature s = Signature.getInstance(alg);
        s.initSign(key);
        s.update(data);
        byte[] sig = s.sign();
        Signature v = Signature.getInstance(alg);
        v.initVerify(cert.getPublicKey());
        v.update(data);
        return v.verify(sig);
      } catch (GeneralSecurityException | RuntimeException e) {
        return false;
      }
    }

    /** Whether one of the TLS engine's key types ("EC", "RSA", "EC_EC", ...) fits the key. */
    boolean fits(String[] keyTypes) {
      if (keyTypes == null) {
        return true;
      }
      String alg = key.getAlgorithm();
      for (String t : keyTypes) {
        if (t == null) {
          continue;
        }
        if (t.equals(alg) || t.startsWith(alg + "_")
            || (alg.startsWith("Ed") && (t.equals("EdDSA") || t.startsWith("Ed")))) {
          return true;
        }
      }
      return false;
    }
  }

  /**
   * Presents the client certificate of {@code tlsCert}/{@code tlsKey}, read again when the
   * files changed since the last handshake. Each reload is a new alias, so that the chain and
   * the key of one handshake always come from the same read.
   */
  static final class ReloadingKeyManager extends X509ExtendedKeyManager {
    private final Path certPath;
    private final Path keyPath;
    private List<Object> stamp;
    private long generation;
    private Identity current;
    private Identity previous;
    private List<Object> failedStamp;

    ReloadingKeyManager(Path certPath, Path keyPath) {
      this.certPath = Objects.requireNonNull(certPath);
      this.keyPath = Objects.requireNonNull(keyPath);
      this.stamp = stamp(certPath, keyPath);
      this.current = Identity.read(certPath, keyPath); // construction errors surface here
    }

    /** The alias of the current identity, after re-reading changed files. */
    synchronized String refresh() {
      List<Object> now = stamp(certPath, keyPath);
      if (!now.equals(stamp) && !now.equals(failedStamp)) {
        try {
          Identity fresh = Identity.read(certPath, keyPath);
          previous = current;
          current = fresh;
          generation++;
          stamp = now;
          failedStamp = null;
        } catch (ElectdException e) {
          failedStamp = now; // logged once per change; retried when the files change again
          logger.log(Level.WARNING, "electd client: keeping the previous client certificate: "
              + e.getMessage());
        }
      }
      return alias(generation);
    }

    private static String alias(long generation) {
      return "electd-client-" + generation;
    }

    private synchronized Identity identity(String alias) {
      if (alias(generation).equals(alias)) {
        return current;
      }
      if (generation > 0 && alias(generation - 1).equals(alias)) {
        return previous;
      }
      return null;
    }

    private String choose(String[] keyTypes) {
      String alias = refresh();
      Identity id = identity(alias);
      return id != null && id.fits(keyTypes) ? alias : null;
    }

    @Override
    public String chooseEngineClientAlias(String[] keyType, Principal[] issuers, SSLEngine engine) {
      return choose(keyType);
    }

    @Override
    public String chooseClientAlias(String[] keyType, Principal[] issuers, Socket socket) {
      return choose(keyType);
    }

    @Override
    public String[] getClientAliases(String keyType, Principal[] issuers) {
      String alias = choose(new String[] {keyType});
      return alias == null ? null : new String[] {alias};
    }

    @Override
    public X509Certificate[] getCertificateChain(String alias) {
      Identity id = identity(alias);
      return id == null ? null : id.chain.clone();
    }

    @Override
    public PrivateKey getPrivateKey(String alias) {
      Identity id = identity(alias);
      return id == null ? null : id.key;
    }

    @Override
    public String[] getServerAliases(String keyType, Principal[] issuers) {
      return null;
    }

    @Override
    public String chooseServerAlias(String keyType, Principal[] issuers, Socket socket) {
      return null;
    }

    @Override
    public String chooseEngineServerAlias(String keyType, Principal[] issuers, SSLEngine engine) {
      return null;
    }
  }

  /**
   * Verifies the nodes' chains against the CAs of {@code tlsCa}, read again when the file
   * changed since the last handshake. The checks themselves (chain, validity, and the host
   * name the engine asks for) are the JDK's default trust manager's.
   */
  static final class ReloadingTrustManager extends X509ExtendedTrustManager {
    private final Path path;
    private List<Object> stamp;
    private List<Object> failedStamp;
    private X509ExtendedTrustManager delegate;

    ReloadingTrustManager(Path path) {
      this.path = Objects.requireNonNull(path);
      this.stamp = stamp(path);
      this.delegate = load(path);
    }

    private static X509ExtendedTrustManager load(Path path) {
      List<X509Certificate> cas = certificates("tlsCa", path);
      try {
        KeyStore store = KeyStore.getInstance(KeyStore.getDefaultType());
        store.load(null, null);
        for (int i = 0; i < cas.size(); i++) {
          store.setCertificateEntry("ca-" + i, cas.get(i));
        }
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(store);
        for (TrustManager tm : tmf.getTrustManagers()) {
          if (tm instanceof X509ExtendedTrustManager) {
            return (X509ExtendedTrustManager) tm;
          }
        }
      } catch (GeneralSecurityException | IOException e) {
        throw error("tlsCa: cannot use the certificates in " + path + ": " + e.getMessage());
      }
      throw error("tlsCa: the JDK has no X509ExtendedTrustManager");
    }

    synchronized X509ExtendedTrustManager current() {
      List<Object> now = stamp(path);
      if (!now.equals(stamp) && !now.equals(failedStamp)) {
        try {
          delegate = load(path);
          stamp = now;
          failedStamp = null;
        } catch (ElectdException e) {
          failedStamp = now;
          logger.log(Level.WARNING, "electd client: keeping the previous CAs: " + e.getMessage());
        }
      }
      return delegate;
    }

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType, SSLEngine engine)
        throws CertificateException {
      current().checkServerTrusted(chain, authType, engine);
    }

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType, Socket socket)
        throws CertificateException {
      current().checkServerTrusted(chain, authType, socket);
    }

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType) throws CertificateException {
      current().checkServerTrusted(chain, authType);
    }

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType, SSLEngine engine)
        throws CertificateException {
      throw new CertificateException("an electd client verifies no clients");
    }

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType, Socket socket)
        throws CertificateException {
      throw new CertificateException("an electd client verifies no clients");
    }

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType) throws CertificateException {
      throw new CertificateException("an electd client verifies no clients");
    }

    @Override
    public X509Certificate[] getAcceptedIssuers() {
      return current().getAcceptedIssuers();
    }
  }

  /** Just enough DER to turn traditional RSA and EC keys into PKCS#8. */
  static final class Der {
    // rsaEncryption (1.2.840.113549.1.1.1) with NULL parameters
    static final byte[] RSA_ALGORITHM = {
        0x30, 0x0d, 0x06, 0x09, 0x2a, (byte) 0x86, 0x48, (byte) 0x86, (byte) 0xf7, 0x0d, 0x01,
        0x01, 0x01, 0x05, 0x00};
    // id-ecPublicKey (1.2.840.10045.2.1)
    private static final byte[] EC_PUBLIC_KEY = {
        0x06, 0x07, 0x2a, (byte) 0x86, 0x48, (byte) 0xce, 0x3d, 0x02, 0x01};

    /** PrivateKeyInfo { version 0, algorithm, OCTET STRING key }. */
    static byte[] pkcs8(byte[] algorithm, byte[] key) {
      ByteArrayOutputStream body = new ByteArrayOutputStream();
      body.writeBytes(new byte[] {0x02, 0x01, 0x00});
      body.writeBytes(algorithm);
      body.writeBytes(tlv(0x04, key));
      return tlv(0x30, body.toByteArray());
    }

    static byte[] ecAlgorithm(byte[] curveOid) {
      ByteArrayOutputStream body = new ByteArrayOutputStream();
      body.writeBytes(EC_PUBLIC_KEY);
      body.writeBytes(curveOid);
      return tlv(0x30, body.toByteArray());
    }

    /** The curve's OBJECT IDENTIFIER (tag and all) in an ECPrivateKey's [0] parameters. */
    static byte[] sec1Curve(byte[] der) {
      int[] seq = header(der, 0, 0x30);
      int p = seq[0];
      int end = p + seq[1];
      while (p < end) {
        int tag = der[p] & 0xff;
        int[] h = header(der, p, tag);
        if (tag == 0xa0) {
          int[] oid = header(der, h[0], 0x06);
          return Arrays.copyOfRange(der, h[0], oid[0] + oid[1]);
        }
        p = h[0] + h[1];
      }
      throw new IllegalArgumentException("no curve parameters (write the key as PKCS#8)");
    }

    /** {content offset, content length} of the element at {@code p}, which must have {@code tag}. */
    private static int[] header(byte[] der, int p, int tag) {
      if (p + 2 > der.length || (der[p] & 0xff) != tag) {
        throw new IllegalArgumentException("malformed DER");
      }
      int len = der[p + 1] & 0xff;
      int q = p + 2;
      if (len >= 0x80) {
        int n = len & 0x7f;
        if (n == 0 || n > 3 || q + n > der.length) {
          throw new IllegalArgumentException("malformed DER length");
        }
        len = 0;
        for (int i = 0; i < n; i++) {
          len = (len << 8) | (der[q++] & 0xff);
        }
      }
      if (q + len > der.length) {
        throw new IllegalArgumentException("truncated DER");
      }
      return new int[] {q, len};
    }

    private static byte[] tlv(int tag, byte[] content) {
      ByteArrayOutputStream out = new ByteArrayOutputStream();
      out.write(tag);
      int n = content.length;
      if (n < 0x80) {
        out.write(n);
      } else if (n < 0x100) {
        out.write(0x81);
        out.write(n);
      } else if (n < 0x10000) {
        out.write(0x82);
        out.write(n >> 8);
        out.write(n);
      } else {
        out.write(0x83);
        out.write(n >> 16);
        out.write(n >> 8);
        out.write(n);
      }
      out.writeBytes(content);
      return out.toByteArray();
    }
  }
}
