package io.electd.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.electd.v1.ElectionServiceGrpc;
import io.electd.v1.GetLeaderRequest;
import io.electd.v1.GetLeaderResponse;
import io.electd.v1.Leader;
import io.electd.v1.Node;
import io.grpc.Context;
import io.grpc.Contexts;
import io.grpc.Grpc;
import io.grpc.Metadata;
import io.grpc.Server;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.ServerInterceptors;
import io.grpc.Status;
import io.grpc.TlsServerCredentials;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.StreamObserver;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.Key;
import java.security.KeyStore;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.SSLSession;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * TLS (clients/README.md, "TLS"): the construction errors of rules 2 and 3, and real TLS
 * handshakes against in-process grpc-java servers with certificates made by the JDK's keytool:
 * mutual TLS, the server name override, a handshake failure as a failover, and a rotated
 * client certificate picked up by the next connection of the same client.
 */
@Timeout(60)
class TlsTest {
  private static final String PASS = "changeit";

  @TempDir
  static Path dir;

  private static Path ca;
  private static Path otherCa;
  private static Pem server;      // SANs: DNS localhost, IP 127.0.0.1
  private static Pem namedServer; // SAN: DNS node.electd.test only
  private static Pem alice;       // client, CN alice (EC)
  private static Pem bob;         // client, CN bob (RSA; its key also written as PKCS#1)
  private static Path bobPkcs1;

  private final List<Server> servers = new ArrayList<>();

  /** A certificate (PEM, leaf first) and its PKCS#8 key (PEM). */
  static final class Pem {
    final Path cert;
    final Path key;

    Pem(Path cert, Path key) {
      this.cert = cert;
      this.key = key;
    }
  }

  @BeforeAll
  static void makeCertificates() throws Exception {
    Path caStore = dir.resolve("ca.p12");
    keytool("-genkeypair", "-alias", "ca", "-keyalg", "EC", "-groupname", "secp256r1",
        "-dname", "CN=electd test CA", "-ext", "bc:c", "-validity", "2",
        "-keystore", caStore.toString());
    ca = dir.resolve("ca.pem");
    Files.writeString(ca, keytool("-exportcert", "-rfc", "-alias", "ca", "-keystore", caStore.toString()));
    Path otherStore = dir.resolve("other.p12");
    keytool("-genkeypair", "-alias", "ca", "-keyalg", "EC", "-groupname", "secp256r1",
        "-dname", "CN=other CA", "-ext", "bc:c", "-validity", "2", "-keystore", otherStore.toString());
    otherCa = dir.resolve("other.pem");
    Files.writeString(otherCa, keytool("-exportcert", "-rfc", "-alias", "ca", "-keystore", otherStore.toString()));

    server = issue(caStore, "server", "EC", "CN=localhost", "SAN=dns:localhost,ip:127.0.0.1", "EKU=serverAuth");
    namedServer = issue(caStore, "named", "EC", "CN=node", "SAN=dns:node.electd.test", "EKU=serverAuth");
    alice = issue(caStore, "alice", "EC", "CN=alice", "SAN=uri:spiffe://electd.test/alice", "EKU=clientAuth");
    bob = issue(caStore, "bob", "RSA", "CN=bob", "SAN=uri:spiffe://electd.test/bob", "EKU=clientAuth");
    // The traditional form of bob's key: PKCS#1, the OCTET STRING inside its PKCS#8.
    byte[] pkcs8 = der(Files.readString(bob.key));
    byte[] pkcs1 = lastOctetString(pkcs8);
    bobPkcs1 = dir.resolve("bob-pkcs1.key");
    Files.writeString(bobPkcs1, pem("RSA PRIVATE KEY", pkcs1));
  }

  /** A key pair in its own store, signed by the CA; written as PEM files. */
  private static Pem issue(Path caStore, String name, String alg, String dname, String... ext)
      throws Exception {
    Path store = dir.resolve(name + ".p12");
    List<String> gen = new ArrayList<>(List.of("-genkeypair", "-alias", name, "-keyalg", alg,
        "-dname", dname, "-validity", "2", "-keystore", store.toString()));
    if (alg.equals("EC")) {
      gen.addAll(List.of("-groupname", "secp256r1"));
    } else {
      gen.addAll(List.of("-keysize", "2048"));
    }
    keytool(gen.toArray(new String[0]));
    String csr = keytool("-certreq", "-alias", name, "-keystore", store.toString());
    List<String> sign = new ArrayList<>(List.of("-gencert", "-rfc", "-alias", "ca", "-validity", "2",
        "-keystore", caStore.toString()));
    for (String e : ext) {
      sign.add("-ext");
      sign.add(e);
    }
    String cert = keytoolWithInput(csr, sign.toArray(new String[0]));
    Pem out = new Pem(dir.resolve(name + ".pem"), dir.resolve(name + ".key"));
    Files.writeString(out.cert, cert);
    KeyStore ks = KeyStore.getInstance("PKCS12");
    try (InputStream in = Files.newInputStream(store)) {
      ks.load(in, PASS.toCharArray());
    }
    Key key = ks.getKey(name, PASS.toCharArray());
    Files.writeString(out.key, pem("PRIVATE KEY", key.getEncoded()));
    return out;
  }

  private static String keytool(String... args) throws Exception {
    return keytoolWithInput(null, args);
  }

  private static String keytoolWithInput(String stdin, String... args) throws Exception {
    List<String> cmd = new ArrayList<>();
    cmd.add(Path.of(System.getProperty("java.home"), "bin", "keytool").toString());
    cmd.addAll(Arrays.asList(args));
    cmd.addAll(List.of("-storetype", "PKCS12", "-storepass", PASS, "-keypass", PASS, "-noprompt"));
    Process p = new ProcessBuilder(cmd).redirectErrorStream(false).start();
    if (stdin != null) {
      p.getOutputStream().write(stdin.getBytes(StandardCharsets.US_ASCII));
    }
    p.getOutputStream().close();
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    p.getInputStream().transferTo(out);
    String err = new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8);
    assertEquals(0, p.waitFor(), "keytool " + String.join(" ", args) + ": " + err);
    return out.toString(StandardCharsets.US_ASCII);
  }

  private static String pem(String type, byte[] der) {
    return "-----BEGIN " + type + "-----\n"
        + Base64.getMimeEncoder(64, "\n".getBytes(StandardCharsets.US_ASCII)).encodeToString(der)
        + "\n-----END " + type + "-----\n";
  }

  private static byte[] der(String pem) {
    String body = pem.replaceAll("-----[A-Z ]+-----", "").replaceAll("\\s", "");
    return Base64.getDecoder().decode(body);
  }

  /** The content of the last top-level OCTET STRING in a PKCS#8 PrivateKeyInfo. */
  private static byte[] lastOctetString(byte[] pkcs8) {
    int p = 2 + ((pkcs8[1] & 0x80) != 0 ? pkcs8[1] & 0x7f : 0); // into the SEQUENCE
    byte[] found = null;
    while (p < pkcs8.length) {
      int tag = pkcs8[p] & 0xff;
      int len = pkcs8[p + 1] & 0xff;
      int q = p + 2;
      if (len >= 0x80) {
        int n = len & 0x7f;
        len = 0;
        for (int i = 0; i < n; i++) {
          len = (len << 8) | (pkcs8[q++] & 0xff);
        }
      }
      if (tag == 0x04) {
        found = Arrays.copyOfRange(pkcs8, q, q + len);
      }
      p = q + len;
    }
    return found;
  }

  @AfterEach
  void stopServers() throws InterruptedException {
    for (Server s : servers) {
      s.shutdownNow();
      s.awaitTermination(5, TimeUnit.SECONDS);
    }
  }

  // --- construction errors (rules 2 and 3) ---

  private static ElectdException buildError(ElectionClient.Builder b) {
    return assertThrows(ElectdException.class, () -> b.addresses("127.0.0.1:1").build().close());
  }

  private static void assertConstructionError(ElectdException e, String... parts) {
    for (String part : parts) {
      assertTrue(e.getMessage().contains(part), e.getMessage() + " should contain " + part);
    }
    assertEquals(Status.Code.INVALID_ARGUMENT, e.status().getCode());
    assertFalse(e.noNodeAnswered(), e.getMessage());
    assertTrue(e.addresses().isEmpty());
  }

  @Test
  void aCertificateWithoutItsKeyAndAKeyWithoutItsCertificateAreErrors() {
    assertConstructionError(buildError(ElectionClient.newBuilder().tlsCert(alice.cert)),
        "tlsCert: needs tlsKey too");
    assertConstructionError(buildError(ElectionClient.newBuilder().tlsCa(ca).tlsKey(alice.key)),
        "tlsKey: needs tlsCert too");
  }

  @Test
  void aFileThatCannotBeReadNamesTheOptionAndThePath() {
    Path missing = dir.resolve("no-such.pem");
    assertConstructionError(buildError(ElectionClient.newBuilder().tlsCa(missing)),
        "tlsCa: cannot read", missing.toString());
    assertConstructionError(buildError(ElectionClient.newBuilder().tlsCert(missing).tlsKey(alice.key)),
        "tlsCert: cannot read", missing.toString());
    assertConstructionError(buildError(ElectionClient.newBuilder().tlsCert(alice.cert).tlsKey(missing)),
        "tlsKey: cannot read", missing.toString());
    // A directory cannot be read as a file either.
    assertConstructionError(buildError(ElectionClient.newBuilder().tlsCa(dir)), "tlsCa: cannot read", dir.toString());
  }

  @Test
  void filesWithoutTheRightPemAreErrors() {
    // A key where the CAs should be, a certificate where the key should be.
    assertConstructionError(buildError(ElectionClient.newBuilder().tlsCa(alice.key)),
        "tlsCa: no PEM certificate", alice.key.toString());
    assertConstructionError(buildError(ElectionClient.newBuilder().tlsCert(alice.cert).tlsKey(alice.cert)),
        "tlsKey: no PEM private key", alice.cert.toString());
    // Another certificate's key.
    assertConstructionError(buildError(ElectionClient.newBuilder().tlsCert(alice.cert).tlsKey(bob.key)),
        "tlsKey: the private key in " + bob.key, "does not belong to the certificate in " + alice.cert);
  }

  @Test
  void emptyOptionsMeanPlaintextAndTraditionalKeysAreRead() {
    ElectionClient.newBuilder().addresses("127.0.0.1:1").tlsCa(Path.of("")).tlsServerName("")
        .build().close();
    ElectionClient.newBuilder().addresses("127.0.0.1:1").tlsCert(bob.cert).tlsKey(bobPkcs1)
        .build().close();
    assertTrue(Files.exists(bobPkcs1));
  }

  // --- real handshakes ---

  /** A TLS node on 127.0.0.1 that requires a client certificate of the CA (if {@code mutual})
   * and answers GetLeader with the leader id set to the client certificate's subject. */
  private String start(Pem cert, boolean mutual) throws IOException {
    TlsServerCredentials.Builder creds = TlsServerCredentials.newBuilder()
        .keyManager(cert.cert.toFile(), cert.key.toFile());
    if (mutual) {
      creds.trustManager(ca.toFile()).clientAuth(TlsServerCredentials.ClientAuth.REQUIRE);
    }
    Context.Key<String> peer = Context.key("peer");
    ServerInterceptor who = new ServerInterceptor() {
      @Override
      public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata headers,
          ServerCallHandler<Q, R> next) {
        String subject = "anonymous";
        SSLSession session = call.getAttributes().get(Grpc.TRANSPORT_ATTR_SSL_SESSION);
        try {
          if (session != null && mutual) {
            subject = ((X509Certificate) session.getPeerCertificates()[0]).getSubjectX500Principal().getName();
          }
        } catch (javax.net.ssl.SSLPeerUnverifiedException e) {
          subject = "unverified";
        }
        return Contexts.interceptCall(Context.current().withValue(peer, subject), call, headers, next);
      }
    };
    ElectionServiceGrpc.ElectionServiceImplBase service = new ElectionServiceGrpc.ElectionServiceImplBase() {
      @Override
      public void getLeader(GetLeaderRequest request, StreamObserver<GetLeaderResponse> obs) {
        obs.onNext(GetLeaderResponse.newBuilder()
            .setLeader(Leader.newBuilder().setNode(Node.newBuilder().setId(peer.get())).setEpoch(7))
            .build());
        obs.onCompleted();
      }
    };
    Server s = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0), creds.build())
        .addService(ServerInterceptors.intercept(service, who))
        .build()
        .start();
    servers.add(s);
    return "127.0.0.1:" + s.getPort();
  }

  private static String leaderId(ElectionClient client) {
    return client.getLeader().getLeader().getNode().getId();
  }

  @Test
  void mutualTlsPresentsTheClientCertificate() throws Exception {
    String addr = start(server, true);
    try (ElectionClient client = ElectionClient.newBuilder().addresses(addr)
        .tlsCa(ca).tlsCert(alice.cert).tlsKey(alice.key).build()) {
      assertEquals("CN=alice", leaderId(client));
    }
    // An RSA identity with its key in the traditional PKCS#1 form.
    try (ElectionClient client = ElectionClient.newBuilder().addresses(addr)
        .tlsCa(ca).tlsCert(bob.cert).tlsKey(bobPkcs1).build()) {
      assertEquals("CN=bob", leaderId(client));
    }
  }

  @Test
  void handshakeFailuresAreUnavailableAndTheNextAddressAnswers() throws Exception {
    String mutual = start(server, true);
    String named = start(namedServer, false); // its certificate names node.electd.test only
    String good = start(server, false);
    // No client certificate for a node that wants one; the IP address is not in the named
    // node's certificate; a plaintext client; a CA that did not sign the node.
    try (ElectionClient client = ElectionClient.newBuilder().addresses(mutual, named, good).tlsCa(ca).build()) {
      assertEquals("anonymous", leaderId(client));
    }
    try (ElectionClient client = ElectionClient.newBuilder().addresses(mutual, named).tlsCa(ca).build()) {
      ElectdException e = assertThrows(ElectdException.class, client::getLeader);
      assertTrue(e.noNodeAnswered(), e.getMessage());
      assertEquals(Status.Code.UNAVAILABLE, e.status().getCode(), e.getMessage());
      assertTrue(e.getMessage().contains("TLS handshake failed"), e.getMessage());
    }
    try (ElectionClient client = ElectionClient.newBuilder().addresses(good).build()) {
      ElectdException e = assertThrows(ElectdException.class, client::getLeader);
      assertEquals(Status.Code.UNAVAILABLE, e.status().getCode(), e.getMessage());
    }
    try (ElectionClient client = ElectionClient.newBuilder().addresses(good).tlsCa(otherCa).build()) {
      ElectdException e = assertThrows(ElectdException.class, client::getLeader);
      assertEquals(Status.Code.UNAVAILABLE, e.status().getCode(), e.getMessage());
      assertTrue(e.getMessage().contains("TLS handshake failed"), e.getMessage());
    }
  }

  @Test
  void theServerNameOverrideIsWhatTheCertificateMustCarry() throws Exception {
    String named = start(namedServer, false);
    String localhost = start(server, false);
    try (ElectionClient client = ElectionClient.newBuilder().addresses(named)
        .tlsCa(ca).tlsServerName("node.electd.test").build()) {
      assertEquals("anonymous", leaderId(client));
    }
    try (ElectionClient client = ElectionClient.newBuilder().addresses(localhost)
        .tlsCa(ca).tlsServerName("node.electd.test").build()) {
      ElectdException e = assertThrows(ElectdException.class, client::getLeader);
      assertEquals(Status.Code.UNAVAILABLE, e.status().getCode(), e.getMessage());
      assertTrue(e.getMessage().contains("node.electd.test"), e.getMessage());
    }
  }

  @Test
  void aRotatedClientCertificateIsUsedByTheNextConnection() throws Exception {
    String addr = start(server, true);
    Path cert = dir.resolve("rotating.pem");
    Path key = dir.resolve("rotating.key");
    Files.copy(alice.cert, cert, StandardCopyOption.REPLACE_EXISTING);
    Files.copy(alice.key, key, StandardCopyOption.REPLACE_EXISTING);
    try (ElectionClient client = ElectionClient.newBuilder().addresses(addr)
        .tlsCa(ca).tlsCert(cert).tlsKey(key).build()) {
      assertEquals("CN=alice", leaderId(client));

      // Rotate the way deployment tools do: new files renamed over the old ones.
      Path newCert = dir.resolve("rotating.pem.new");
      Path newKey = dir.resolve("rotating.key.new");
      Files.copy(bob.cert, newCert, StandardCopyOption.REPLACE_EXISTING);
      Files.copy(bob.key, newKey, StandardCopyOption.REPLACE_EXISTING);
      Files.move(newKey, key, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
      Files.move(newCert, cert, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);

      // The open connection keeps the identity it was made with...
      assertEquals("CN=alice", leaderId(client));
      // ... and a new connection of the same client and channel presents the new one.
      client.channelFor(0).enterIdle();
      assertEquals("CN=bob", leaderId(client));

      // A half-done rotation (a certificate whose key is not there yet) keeps the last good pair.
      Files.writeString(cert, Files.readString(alice.cert));
      client.channelFor(0).enterIdle();
      assertEquals("CN=bob", leaderId(client));
      Files.writeString(key, Files.readString(alice.key));
      client.channelFor(0).enterIdle();
      assertEquals("CN=alice", leaderId(client));
    }
  }
}
