package io.electd.client.example;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.electd.client.ElectionClient;
import io.electd.v1.CampaignLeading;
import io.electd.v1.CampaignLost;
import io.electd.v1.CampaignQueued;
import io.electd.v1.CampaignRequest;
import io.electd.v1.CampaignResponse;
import io.electd.v1.ElectionServiceGrpc;
import io.electd.v1.ElectionSummary;
import io.electd.v1.ListElectionsRequest;
import io.electd.v1.ListElectionsResponse;
import io.electd.v1.LossReason;
import io.electd.v1.ResignRequest;
import io.electd.v1.ResignResponse;
import io.electd.v1.GetLeaderRequest;
import io.electd.v1.GetLeaderResponse;
import io.electd.v1.Leader;
import io.electd.v1.LeaderState;
import io.electd.v1.ListNodesRequest;
import io.electd.v1.ListNodesResponse;
import io.electd.v1.Node;
import io.electd.v1.WatchLeaderRequest;
import io.electd.v1.WatchLeaderResponse;
import io.grpc.Server;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.StreamObserver;
import java.io.BufferedReader;
import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.zip.ZipFile;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The CLI's exit codes and its exact --json lines (clients/README.md). */
@Timeout(30)
class MainTest {
  private static Server server;
  private static String address;

  @BeforeAll
  static void start() throws Exception {
    server = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0))
        .addService(new ElectionServiceGrpc.ElectionServiceImplBase() {
          @Override
          public void getLeader(GetLeaderRequest request, StreamObserver<GetLeaderResponse> obs) {
            obs.onNext(GetLeaderResponse.newBuilder()
                .setLeader(Leader.newBuilder()
                    .setNode(Node.newBuilder().setId("n1").setAddress("127.0.0.1:7001"))
                    .setEpoch(4294967302L))
                .setResponderId("n2")
                .build());
            obs.onCompleted();
          }

          @Override
          public void listNodes(ListNodesRequest request, StreamObserver<ListNodesResponse> obs) {
            obs.onNext(ListNodesResponse.newBuilder()
                .addNodes(Node.newBuilder().setId("n1").setAddress("127.0.0.1:7001").setIsLeader(true))
                .addNodes(Node.newBuilder().setId("n\"2").setAddress("127.0.0.1:7002").setSequence(1)
                    .setWatches("electd-x-0000000000"))
                .setEpoch(4294967302L)
                .build());
            obs.onCompleted();
          }

          @Override
          public void resign(ResignRequest request, StreamObserver<ResignResponse> obs) {
            obs.onNext(ResignResponse.newBuilder()
                .setLeader(Leader.newBuilder().setNode(Node.newBuilder().setId("c1")).setEpoch(request.getEpoch()))
                .setResponderId("n1")
                .build());
            obs.onCompleted();
          }

          @Override
          public void listElections(ListElectionsRequest request, StreamObserver<ListElectionsResponse> obs) {
            obs.onNext(ListElectionsResponse.newBuilder()
                .addElections(ElectionSummary.newBuilder().setName("jobs").setCandidates(2))
                .addElections(ElectionSummary.newBuilder().setName("web").setCandidates(1))
                .build());
            obs.onCompleted();
          }

          /** Queued at 1, then leads epoch 7 from the second ping on; a resign ends it. */
          @Override
          public StreamObserver<CampaignRequest> campaign(StreamObserver<CampaignResponse> obs) {
            return new StreamObserver<>() {
              int pings;

              @Override
              public synchronized void onNext(CampaignRequest r) {
                if (r.hasStart()) {
                  obs.onNext(CampaignResponse.newBuilder()
                      .setQueued(CampaignQueued.newBuilder().setPosition(1)).build());
                } else if (r.hasPing() && ++pings >= 2) {
                  obs.onNext(CampaignResponse.newBuilder().setLeading(CampaignLeading.newBuilder()
                      .setEpoch(7).setNonce(r.getPing().getNonce()).setLeaseMs(10_000)).build());
                } else if (r.hasPing()) {
                  obs.onNext(CampaignResponse.newBuilder()
                      .setQueued(CampaignQueued.newBuilder().setPosition(1).setNonce(r.getPing().getNonce()))
                      .build());
                } else if (r.hasResign()) {
                  obs.onNext(CampaignResponse.newBuilder().setLost(CampaignLost.newBuilder()
                      .setEpoch(7).setReason(LossReason.LOSS_REASON_RESIGNED)).build());
                  obs.onCompleted();
                }
              }

              @Override
              public void onError(Throwable t) {}

              @Override
              public void onCompleted() {}
            };
          }

          @Override
          public void watchLeader(WatchLeaderRequest request, StreamObserver<WatchLeaderResponse> obs) {
            obs.onNext(WatchLeaderResponse.newBuilder()
                .setState(LeaderState.LEADER_STATE_ELECTED)
                .setLeader(Leader.newBuilder()
                    .setNode(Node.newBuilder().setId("n1").setAddress("127.0.0.1:7001"))
                    .setEpoch(4294967302L))
                .setResponderId("n1")
                .build()); // and keep the stream open
          }
        })
        .build()
        .start();
    address = "127.0.0.1:" + server.getPort();
  }

  @AfterAll
  static void stop() throws InterruptedException {
    server.shutdownNow().awaitTermination();
  }

  private record Result(int code, String out, String err) {}

  private static Result run(String... args) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    int code = new Main(new PrintStream(out, true, StandardCharsets.UTF_8),
        new PrintStream(err, true, StandardCharsets.UTF_8)).run(args);
    return new Result(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
  }

  @Test
  void leaderJson() {
    Result r = run("--json", "leader", "127.0.0.1:1", address);
    assertEquals(new Result(0, "{\"id\":\"n1\",\"address\":\"127.0.0.1:7001\",\"epoch\":4294967302}\n", ""), r);
    assertEquals(r, run("leader", address, "--json"));
  }

  @Test
  void nodesJson() {
    assertEquals(new Result(0,
        "{\"id\":\"n1\",\"address\":\"127.0.0.1:7001\",\"sequence\":0,\"is_leader\":true,\"watches\":\"\"}\n"
            + "{\"id\":\"n\\\"2\",\"address\":\"127.0.0.1:7002\",\"sequence\":1,\"is_leader\":false,"
            + "\"watches\":\"electd-x-0000000000\"}\n",
        ""), run("nodes", "--json", address));
  }

  @Test
  void badUsageExits2() {
    for (String[] args : new String[][] {{}, {"leader"}, {"frob", address}, {"--bogus", "leader", address},
        {"nodes", "no-port"}}) {
      Result r = run(args);
      assertEquals(2, r.code(), String.join(" ", args));
      assertTrue(r.err().contains("usage:"), r.err());
      assertEquals("", r.out());
    }
    assertEquals(0, run("--help").code());
  }

  @Test
  void wrongTlsOptionsExit2NamingTheOption() throws Exception {
    Path missing = Files.createTempDirectory("electd-main-tls").resolve("missing.pem");
    for (String[][] c : new String[][][] {
        {{"leader", address, "--tls-cert", missing.toString()}, {"tlsCert: needs tlsKey too"}},
        {{"leader", address, "--tls-key=" + missing}, {"tlsKey: needs tlsCert too"}},
        {{"--tls-ca", missing.toString(), "leader", address}, {"tlsCa: cannot read " + missing}},
        {{"leader", address, "--tls-ca"}, {"--tls-ca needs a value"}}}) {
      Result r = run(c[0]);
      assertEquals(2, r.code(), String.join(" ", c[0]));
      assertTrue(r.err().contains(c[1][0]), r.err());
      assertEquals("", r.out());
    }
  }

  @Test
  void aPlaintextNodeIsNoTlsNode() {
    // Only a server name turns TLS on; the plaintext test node then fails the handshake.
    Result r = run("--json", "leader", address, "--tls-server-name", "localhost");
    assertEquals(1, r.code(), r.err());
    assertTrue(r.err().contains("no electd node answered"), r.err());
  }

  @Test
  void noNodeAnsweredExits1NamingTheAddresses() {
    Result r = run("--json", "nodes", "127.0.0.1:1", "127.0.0.1:2");
    assertEquals(1, r.code());
    assertEquals("", r.out());
    assertTrue(r.err().contains("no electd node answered (tried 127.0.0.1:1, 127.0.0.1:2)"), r.err());
  }

  @Test
  void electionsAndResign() {
    assertEquals(new Result(0, "{\"name\":\"jobs\",\"candidates\":2}\n{\"name\":\"web\",\"candidates\":1}\n", ""),
        run("--json", "elections", address));
    assertEquals(new Result(0, "{\"election\":\"jobs\",\"id\":\"c1\",\"epoch\":7}\n", ""),
        run("--json", "resign", "jobs", "7", address));
  }

  @Test
  void badCampaignUsageExits2() {
    for (String[] args : new String[][] {{"campaign", "jobs", address}, {"campaign", "a/b", "c1", address},
        {"campaign", "jobs", "-x", address}, {"campaign", "jobs", "c1", address, "--priority", "high"},
        {"resign", "jobs", "seven", address}, {"resign", "jobs"}, {"campaign", "jobs", "c1"}}) {
      Result r = run(args);
      assertEquals(2, r.code(), String.join(" ", args));
      assertEquals("", r.out());
    }
  }

  /**
   * The campaign command in its own JVM: its lines, the work's log lines while leading, and
   * SIGTERM ending it with a resign and exit status 0.
   */
  @Test
  @Timeout(60)
  void campaignPrintsItsEventsWritesTheLogAndResignsOnSigterm() throws Exception {
    String classpath = System.getProperty("surefire.test.class.path", System.getProperty("java.class.path"));
    String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
    Path log = Files.createTempDirectory("electd-campaign").resolve("log");
    ProcessBuilder pb = new ProcessBuilder(java, "-cp", classpath, Main.class.getName(), "campaign", "jobs", "c1",
        "--value", "v", "--priority", "2", address)
        .redirectError(ProcessBuilder.Redirect.DISCARD);
    pb.environment().put("ELECTD_CAMPAIGN_LOG", log.toString());
    Process p = pb.start();
    try {
      BufferedReader out = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
      assertEquals("queued position=1", out.readLine());
      assertEquals("leading epoch=7", out.readLine());
      while (!Files.exists(log) || Files.readString(log).isEmpty()) {
        Thread.sleep(50);
      }
      assertEquals(0, new ProcessBuilder("kill", "-TERM", Long.toString(p.pid())).start().waitFor());
      assertEquals("lost epoch=7 reason=resigned", out.readLine());
      assertEquals("stopped", out.readLine());
      assertTrue(p.waitFor(20, TimeUnit.SECONDS));
      assertEquals(0, p.exitValue());
      for (String line : Files.readAllLines(log)) {
        assertEquals("7 c1", line);
      }
    } finally {
      p.destroyForcibly();
    }
  }

  @Test
  void quoteEscapesJson() {
    assertEquals("\"a\\\"b\\\\c\\n\\u0001é\"", Main.quote("a\"b\\c\n\u0001é"));
  }

  @Test
  void watchWithNoNodeAnsweringExits1() {
    Result r = run("--json", "watch", "127.0.0.1:1", "127.0.0.1:2");
    assertEquals(1, r.code());
    assertEquals("", r.out());
    assertTrue(r.err().contains("no electd node answered (tried 127.0.0.1:1, 127.0.0.1:2)"), r.err());
  }

  /** The watch command in its own JVM: SIGTERM and SIGINT end it with exit status 0, at once. */
  @Test
  @Timeout(90)
  void watchExits0OnSigtermAndSigint() throws Exception {
    String classpath = System.getProperty("surefire.test.class.path", System.getProperty("java.class.path"));
    String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
    for (String signal : List.of("TERM", "INT")) {
      Process p = new ProcessBuilder(java, "-cp", classpath, Main.class.getName(), "--json", "watch",
          "127.0.0.1:1", address)
          .redirectError(ProcessBuilder.Redirect.DISCARD)
          .start();
      try {
        BufferedReader out = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
        assertEquals("{\"id\":\"n1\",\"address\":\"127.0.0.1:7001\",\"epoch\":4294967302}", out.readLine());
        long start = System.nanoTime();
        assertEquals(0, new ProcessBuilder("kill", "-" + signal, Long.toString(p.pid())).start().waitFor());
        assertTrue(p.waitFor(5, TimeUnit.SECONDS), "SIG" + signal + ": still running after 5 s");
        double took = (System.nanoTime() - start) / 1e9;
        assertEquals(0, p.exitValue(), "SIG" + signal);
        // The contract: within a second. Generous for two busy cores; a watch that waited out
        // a deadline or a backoff, or the JVM's default exit (143/130), fails anyway.
        assertTrue(took < 3, "SIG" + signal + ": took " + took + " s");
      } finally {
        p.destroyForcibly();
      }
    }
  }

  /** The library's own jar (or classes) holds no example program. */
  @Test
  void theLibraryHoldsNoExampleCode() throws Exception {
    URI location = ElectionClient.class.getProtectionDomain().getCodeSource().getLocation().toURI();
    Path path = Path.of(location);
    String example = Main.class.getName().replace('.', '/') + ".class";
    if (Files.isDirectory(path)) {
      assertTrue(Files.exists(path.resolve("io/electd/client/ElectionClient.class")));
      assertTrue(!Files.exists(path.resolve(example)), path + " holds " + example);
    } else {
      try (ZipFile jar = new ZipFile(new File(location))) {
        assertTrue(jar.getEntry("io/electd/client/ElectionClient.class") != null);
        assertTrue(jar.getEntry(example) == null, path + " holds " + example);
        assertTrue(jar.stream().noneMatch(e -> e.getName().contains("/example/")), path.toString());
      }
    }
  }
}
