package io.electd.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.electd.v1.ElectionServiceGrpc;
import io.electd.v1.GetLeaderRequest;
import io.electd.v1.GetLeaderResponse;
import io.electd.v1.Leader;
import io.electd.v1.LeaderState;
import io.electd.v1.ListNodesRequest;
import io.electd.v1.ListNodesResponse;
import io.electd.v1.Node;
import io.electd.v1.WatchLeaderRequest;
import io.electd.v1.WatchLeaderResponse;
import io.grpc.ConnectivityState;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.BiConsumer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The client contract of clients/README.md against scripted gRPC servers and misbehaving TCP
 * endpoints on 127.0.0.1. Time bounds are the contract's with generous margins (the tests run
 * on two shared cores); each is far below what the behaviour would take without the rule.
 */
@Timeout(60)
@SuppressWarnings("try") // watches opened in try-with-resources only to be closed at the end
class ElectionClientTest {
  // grpc-java sets TCP_USER_TIMEOUT to the keepalive timeout, which also ends a SYN that gets
  // no answer: the connect-deadline tests use a long one, so that only the deadline can help.
  private static final Duration THREE_S = Duration.ofSeconds(3);
  private static final Duration LONG = Duration.ofSeconds(30);

  private final List<Server> servers = new ArrayList<>();
  private final List<AutoCloseable> resources = new ArrayList<>();

  /** A scripted node: each handler says how to answer one RPC. */
  static class FakeNode extends ElectionServiceGrpc.ElectionServiceImplBase {
    volatile BiConsumer<GetLeaderRequest, ServerCallStreamObserver<GetLeaderResponse>> getLeader =
        (req, obs) -> obs.onError(Status.UNAVAILABLE.withDescription("no session").asRuntimeException());
    volatile BiConsumer<ListNodesRequest, ServerCallStreamObserver<ListNodesResponse>> listNodes =
        (req, obs) -> obs.onError(Status.UNAVAILABLE.withDescription("no session").asRuntimeException());
    volatile BiConsumer<WatchLeaderRequest, ServerCallStreamObserver<WatchLeaderResponse>> watch =
        (req, obs) -> obs.onCompleted();
    final AtomicInteger calls = new AtomicInteger();
    final List<Long> minEpochs = new CopyOnWriteArrayList<>();

    @Override
    public void getLeader(GetLeaderRequest request, StreamObserver<GetLeaderResponse> obs) {
      calls.incrementAndGet();
      getLeader.accept(request, (ServerCallStreamObserver<GetLeaderResponse>) obs);
    }

    @Override
    public void listNodes(ListNodesRequest request, StreamObserver<ListNodesResponse> obs) {
      calls.incrementAndGet();
      listNodes.accept(request, (ServerCallStreamObserver<ListNodesResponse>) obs);
    }

    @Override
    public void watchLeader(WatchLeaderRequest request, StreamObserver<WatchLeaderResponse> obs) {
      calls.incrementAndGet();
      minEpochs.add(request.getMinEpoch());
      watch.accept(request, (ServerCallStreamObserver<WatchLeaderResponse>) obs);
    }

    /** Answers GetLeader with this leader. */
    FakeNode leads(String id, long epoch) {
      getLeader = (req, obs) -> {
        obs.onNext(GetLeaderResponse.newBuilder().setLeader(leader(id, epoch)).setResponderId(id).build());
        obs.onCompleted();
      };
      return this;
    }

    /** Streams this leader and keeps the stream open. */
    FakeNode streams(String id, long epoch) {
      watch = (req, obs) -> obs.onNext(elected(id, epoch));
      return this;
    }
  }

  /**
   * A node that behaves as electd does with min_epoch: a leader older than the request's
   * min_epoch is held back, so such a stream stays silent until a newer leader is published.
   */
  static final class HoldingNode extends FakeNode {
    private volatile Leader current;
    private final List<Object[]> open = new CopyOnWriteArrayList<>();

    HoldingNode(String id, long epoch) {
      current = leader(id, epoch);
      getLeader = (req, obs) -> {
        obs.onNext(GetLeaderResponse.newBuilder().setLeader(current).setResponderId("h").build());
        obs.onCompleted();
      };
      watch = (req, obs) -> {
        open.add(new Object[] {req.getMinEpoch(), obs});
        send(req.getMinEpoch(), obs);
      };
    }

    @SuppressWarnings("unchecked")
    void publish(String id, long epoch) {
      current = leader(id, epoch);
      for (Object[] s : open) {
        send((Long) s[0], (ServerCallStreamObserver<WatchLeaderResponse>) s[1]);
      }
    }

    private void send(long minEpoch, ServerCallStreamObserver<WatchLeaderResponse> obs) {
      Leader leader = current;
      if (leader.getEpoch() >= minEpoch && !obs.isCancelled()) {
        synchronized (obs) {
          obs.onNext(WatchLeaderResponse.newBuilder().setState(LeaderState.LEADER_STATE_ELECTED)
              .setLeader(leader).setResponderId("h").build());
        }
      }
    }
  }

  /** Records everything a watch tells its listener. */
  static final class Recorder implements LeaderListener {
    final LinkedBlockingQueue<Long> epochs = new LinkedBlockingQueue<>();
    final LinkedBlockingQueue<String[]> failovers = new LinkedBlockingQueue<>();
    final List<String> threads = new CopyOnWriteArrayList<>();

    @Override
    public void onLeader(Leader leader) {
      threads.add(Thread.currentThread().getName());
      epochs.add(leader.getEpoch());
    }

    @Override
    public void onFailover(String address, String reason) {
      threads.add(Thread.currentThread().getName());
      failovers.add(new String[] {address, reason});
    }

    long nextEpoch(long seconds) throws InterruptedException {
      Long e = epochs.poll(seconds, TimeUnit.SECONDS);
      assertTrue(e != null, "no leader reported within " + seconds + " s");
      return e;
    }

    String[] nextFailover(long seconds) throws InterruptedException {
      String[] f = failovers.poll(seconds, TimeUnit.SECONDS);
      assertTrue(f != null, "no failover within " + seconds + " s");
      return f;
    }
  }

  private String serve(FakeNode node) throws IOException {
    Server server = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0))
        .addService(node)
        // As electd does: clients may ping every second, with or without calls open.
        .permitKeepAliveTime(1, TimeUnit.SECONDS)
        .permitKeepAliveWithoutCalls(true)
        .build()
        .start();
    servers.add(server);
    return "127.0.0.1:" + server.getPort();
  }

  /**
   * The first gRPC connection of a JVM loads Netty and starts its event loops, which on a busy
   * machine takes a good part of a 2 s deadline: do that once, before the timed tests.
   */
  @BeforeAll
  static void warmUp() throws Exception {
    Server server = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0))
        .addService(new FakeNode().leads("n0", 1)).build().start();
    try (ElectionClient client = ElectionClient.newBuilder().addresses("127.0.0.1:" + server.getPort())
        .connectTimeout(Duration.ofSeconds(30)).callTimeout(Duration.ofSeconds(30)).build()) {
      client.getLeader();
    } finally {
      server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
  }

  private <T extends AutoCloseable> T keep(T resource) {
    resources.add(resource);
    return resource;
  }

  @AfterEach
  void stopServers() throws Exception {
    for (AutoCloseable r : resources) {
      r.close();
    }
    for (Server server : servers) {
      server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
  }

  static Leader leader(String id, long epoch) {
    return Leader.newBuilder()
        .setNode(Node.newBuilder().setId(id).setAddress(id + ":7001"))
        .setEpoch(epoch)
        .build();
  }

  static WatchLeaderResponse elected(String id, long epoch) {
    return WatchLeaderResponse.newBuilder()
        .setState(LeaderState.LEADER_STATE_ELECTED)
        .setLeader(leader(id, epoch))
        .setResponderId(id)
        .build();
  }

  private static ElectionClient.Builder builder(String... addresses) {
    return ElectionClient.newBuilder()
        .addresses(addresses)
        .backoff(Duration.ofMillis(10), Duration.ofMillis(100));
  }

  private static ElectionClient client(String... addresses) {
    return builder(addresses).build();
  }

  private static double secondsSince(long startNanos) {
    return (System.nanoTime() - startNanos) / 1e9;
  }

  // --- unary calls ---

  @Test
  void getLeaderFailsOverPastDeadAndUnavailableNodes() throws Exception {
    FakeNode unavailable = new FakeNode();
    FakeNode good = new FakeNode().leads("n3", 4294967302L);
    try (ElectionClient client = client(TestNet.refusingAddress(), serve(unavailable), serve(good))) {
      GetLeaderResponse response = client.getLeader();
      assertEquals(4294967302L, response.getLeader().getEpoch());
      assertEquals(1, unavailable.calls.get());
      // The next call starts at the node that answered.
      client.getLeader();
      assertEquals(1, unavailable.calls.get());
      assertEquals(2, good.calls.get());
    }
  }

  @Test
  void resourceExhaustedFailsOverToTheNextNode() throws Exception {
    FakeNode full = new FakeNode();
    full.getLeader = (req, obs) -> obs.onError(
        Status.RESOURCE_EXHAUSTED.withDescription("node full (--max-streams)").asRuntimeException());
    full.watch = (req, obs) -> obs.onError(
        Status.RESOURCE_EXHAUSTED.withDescription("node full (--max-streams)").asRuntimeException());
    FakeNode good = new FakeNode().leads("n2", 9).streams("n2", 9);
    String fullAddress = serve(full);
    Recorder rec = new Recorder();
    try (ElectionClient client = client(fullAddress, serve(good))) {
      assertEquals(9, client.getLeader().getLeader().getEpoch());
      assertEquals(1, full.calls.get());
      try (ElectionClient fresh = client(fullAddress, client.addresses().get(1));
          LeaderWatch watch = fresh.watchLeader(0, rec)) {
        assertEquals(9L, rec.nextEpoch(10));
        String[] f = rec.nextFailover(1);
        assertEquals(fullAddress, f[0]);
        assertTrue(f[1].startsWith("RESOURCE_EXHAUSTED"), f[1]);
      }
    }
    // And a round of full nodes only is "no node answered", naming them all.
    try (ElectionClient client = client(fullAddress, fullAddress)) {
      ElectdException e = assertThrows(ElectdException.class, client::getLeader);
      assertTrue(e.noNodeAnswered());
      assertEquals(Status.Code.RESOURCE_EXHAUSTED, e.status().getCode());
    }
  }

  @Test
  void nonRetryableErrorIsReturnedAtOnce() throws Exception {
    FakeNode rejecting = new FakeNode();
    rejecting.getLeader = (req, obs) -> obs.onError(Status.INVALID_ARGUMENT.withDescription("nope").asRuntimeException());
    FakeNode good = new FakeNode().leads("n2", 1);
    try (ElectionClient client = client(serve(rejecting), serve(good))) {
      ElectdException e = assertThrows(ElectdException.class, client::getLeader);
      assertEquals(Status.Code.INVALID_ARGUMENT, e.status().getCode());
      assertEquals(0, good.calls.get());
    }
  }

  @Test
  void noNodeAnsweredNamesEveryAddress() throws Exception {
    String a = TestNet.refusingAddress();
    String b = serve(new FakeNode());
    try (ElectionClient client = client(a, b)) {
      ElectdException e = assertThrows(ElectdException.class, client::listNodes);
      assertTrue(e.noNodeAnswered());
      assertTrue(e.getMessage().contains(a) && e.getMessage().contains(b), e.getMessage());
      assertTrue(e.getMessage().contains("UNAVAILABLE"), e.getMessage());
    }
  }

  @Test
  void unaryConnectDeadlineLeavesABlackHoledAddress() throws Exception {
    TestNet.BlackHole hole = keep(new TestNet.BlackHole());
    FakeNode good = new FakeNode().leads("n2", 7);
    // A call deadline far beyond the connect deadline: only the connect deadline can end
    // the attempt on the black hole in time.
    try (ElectionClient client = builder(hole.address(), serve(good))
        .connectTimeout(Duration.ofSeconds(1)).callTimeout(Duration.ofSeconds(30)).keepAlive(THREE_S, LONG).build()) {
      long start = System.nanoTime();
      assertEquals(7, client.getLeader().getLeader().getEpoch());
      double took = secondsSince(start);
      assertTrue(took >= 0.8 && took < 5, "took " + took + " s; the connect deadline is 1 s");
    }
    try (ElectionClient client = builder(hole.address())
        .connectTimeout(Duration.ofSeconds(1)).callTimeout(Duration.ofSeconds(30)).keepAlive(THREE_S, LONG).build()) {
      long start = System.nanoTime();
      ElectdException e = assertThrows(ElectdException.class, client::getLeader);
      assertTrue(secondsSince(start) < 5, "took " + secondsSince(start) + " s");
      assertTrue(e.noNodeAnswered());
      assertEquals(Status.Code.UNAVAILABLE, e.status().getCode());
      assertTrue(e.getMessage().contains("connect deadline (1 s)"), e.getMessage());
    }
  }

  @Test
  void unaryConnectDeadlineCoversTheHttp2Handshake() throws Exception {
    TestNet.Silent silent = keep(new TestNet.Silent());
    FakeNode good = new FakeNode().leads("n2", 7);
    try (ElectionClient client = builder(silent.address(), serve(good))
        .connectTimeout(Duration.ofSeconds(1)).callTimeout(Duration.ofSeconds(30)).keepAlive(THREE_S, LONG).build()) {
      long start = System.nanoTime();
      assertEquals(7, client.listNodesAsync().handle((r, e) -> 0).thenCompose(x -> client.getLeaderAsync())
          .get(20, TimeUnit.SECONDS).getLeader().getEpoch());
      double took = secondsSince(start);
      assertTrue(took < 8, "took " + took + " s; two attempts on the silent node, 1 s each at most");
    }
  }

  @Test
  void defaultConnectDeadlineIsTwoSeconds() throws Exception {
    TestNet.BlackHole hole = keep(new TestNet.BlackHole());
    FakeNode good = new FakeNode().leads("n2", 7);
    try (ElectionClient client = builder(hole.address(), serve(good)).callTimeout(Duration.ofSeconds(30))
        .keepAlive(THREE_S, LONG).build()) {
      long start = System.nanoTime();
      assertEquals(7, client.getLeader().getLeader().getEpoch());
      double took = secondsSince(start);
      assertTrue(took >= 1.5 && took < 5, "took " + took + " s; the default connect deadline is 2 s");
    }
  }

  @Test
  void asyncCallsCompleteWithTheResponseOrAnElectdException() throws Exception {
    FakeNode node = new FakeNode().leads("n1", 3);
    node.listNodes = (req, obs) -> {
      if (req.getLabelSelectorMap().isEmpty()) {
        obs.onNext(ListNodesResponse.newBuilder().addNodes(Node.newBuilder().setId("n1")).setEpoch(3).build());
        obs.onCompleted();
      } else {
        obs.onError(Status.INVALID_ARGUMENT.withDescription("empty label key").asRuntimeException());
      }
    };
    try (ElectionClient client = client(serve(node))) {
      CompletableFuture<GetLeaderResponse> leader = client.getLeaderAsync();
      CompletableFuture<ListNodesResponse> nodes = client.listNodesAsync();
      assertEquals(3, leader.get(10, TimeUnit.SECONDS).getLeader().getEpoch());
      assertEquals("n1", nodes.get(10, TimeUnit.SECONDS).getNodes(0).getId());
      ExecutionException e = assertThrows(ExecutionException.class,
          () -> client.listNodesAsync(Map.of("", "x")).get(10, TimeUnit.SECONDS));
      ElectdException ee = (ElectdException) e.getCause();
      assertEquals(Status.Code.INVALID_ARGUMENT, ee.status().getCode());
      assertFalse(ee.noNodeAnswered());
    }
  }

  @Test
  void cancellingAnAsyncCallCancelsItOnTheNode() throws Exception {
    CountDownLatch started = new CountDownLatch(1);
    CountDownLatch cancelled = new CountDownLatch(1);
    FakeNode node = new FakeNode();
    node.getLeader = (req, obs) -> {
      obs.setOnCancelHandler(cancelled::countDown);
      started.countDown(); // and never answer
    };
    try (ElectionClient client = builder(serve(node)).callTimeout(Duration.ofSeconds(30)).build()) {
      CompletableFuture<GetLeaderResponse> f = client.getLeaderAsync();
      assertTrue(started.await(10, TimeUnit.SECONDS));
      assertTrue(f.cancel(true));
      assertTrue(cancelled.await(5, TimeUnit.SECONDS), "the node did not see the cancellation");
    }
  }

  @Test
  void closeEndsPendingCallsAtOnce() throws Exception {
    TestNet.BlackHole hole = keep(new TestNet.BlackHole());
    ElectionClient client = builder(hole.address())
        .connectTimeout(Duration.ofSeconds(30)).callTimeout(Duration.ofSeconds(30)).build();
    CompletableFuture<GetLeaderResponse> async = client.getLeaderAsync();
    AtomicReference<Throwable> blocking = new AtomicReference<>();
    CountDownLatch blockingDone = new CountDownLatch(1);
    Thread t = new Thread(() -> {
      try {
        client.getLeader();
      } catch (Throwable e) {
        blocking.set(e);
      }
      blockingDone.countDown();
    });
    t.start();
    Thread.sleep(300);
    long start = System.nanoTime();
    client.close();
    assertTrue(blockingDone.await(2, TimeUnit.SECONDS), "a blocking call outlived close()");
    ExecutionException e = assertThrows(ExecutionException.class, () -> async.get(2, TimeUnit.SECONDS));
    assertTrue(secondsSince(start) < 2, "close took " + secondsSince(start) + " s");
    assertEquals(Status.Code.CANCELLED, ((ElectdException) e.getCause()).status().getCode());
    assertEquals(Status.Code.CANCELLED, ((ElectdException) blocking.get()).status().getCode());
    assertThrows(ElectdException.class, client::getLeader);
    assertThrows(IllegalStateException.class, () -> client.watchLeader(0, l -> {}));
  }

  @Test
  void interruptingABlockingCallEndsItWithCancelled() throws Exception {
    TestNet.BlackHole hole = keep(new TestNet.BlackHole());
    try (ElectionClient client = builder(hole.address())
        .connectTimeout(Duration.ofSeconds(30)).callTimeout(Duration.ofSeconds(30)).build()) {
      AtomicReference<Throwable> caught = new AtomicReference<>();
      AtomicReference<Boolean> flag = new AtomicReference<>();
      Thread t = new Thread(() -> {
        try {
          client.getLeader();
        } catch (Throwable e) {
          caught.set(e);
          flag.set(Thread.currentThread().isInterrupted());
        }
      });
      t.start();
      Thread.sleep(300);
      t.interrupt();
      t.join(2000);
      assertFalse(t.isAlive());
      assertEquals(Status.Code.CANCELLED, ((ElectdException) caught.get()).status().getCode());
      assertTrue(flag.get(), "the interrupt flag must stay set");
    }
  }

  // --- watches ---

  @Test
  void watchResumesWithMinEpochAndNeverRepeatsOrGoesBack() throws Exception {
    FakeNode first = new FakeNode();
    first.watch = (req, obs) -> {
      obs.onNext(elected("n1", 5));
      obs.onCompleted(); // node shuts down
    };
    FakeNode unknown = new FakeNode();
    unknown.watch = (req, obs) -> obs.onNext(WatchLeaderResponse.newBuilder()
        .setState(LeaderState.LEADER_STATE_UNKNOWN).setReason("disconnected from ZooKeeper").build());
    FakeNode second = new FakeNode();
    second.watch = (req, obs) -> {
      obs.onNext(elected("n1", 5)); // what the client already reported
      obs.onNext(elected("n0", 3)); // a lagging view: must never be reported
      obs.onNext(elected("n2", 7));
    };
    LinkedBlockingQueue<Long> seen = new LinkedBlockingQueue<>();
    try (ElectionClient client = client(serve(first), TestNet.refusingAddress(), serve(unknown), serve(second));
        LeaderWatch watch = client.watchLeader(0, leader -> seen.add(leader.getEpoch()))) {
      assertEquals(5L, seen.poll(10, TimeUnit.SECONDS));
      assertEquals(7L, seen.poll(10, TimeUnit.SECONDS));
      assertNull(seen.poll(300, TimeUnit.MILLISECONDS));
      assertEquals(List.of(1L), first.minEpochs);
      assertEquals(6L, unknown.minEpochs.get(0));
      assertEquals(6L, second.minEpochs.get(0));
      assertEquals(7L, watch.lastEpoch());
    }
  }

  @Test
  void afterEpochReportsOnlyHigherEpochs() throws Exception {
    FakeNode first = new FakeNode();
    first.watch = (req, obs) -> {
      // A node that ignores min_epoch: the client must still drop what was handled.
      obs.onNext(elected("n1", 4));
      obs.onNext(elected("n1", 5));
      obs.onNext(elected("n2", 7));
      obs.onCompleted();
    };
    FakeNode second = new FakeNode().streams("n2", 7);
    Recorder rec = new Recorder();
    try (ElectionClient client = client(serve(first), serve(second));
        LeaderWatch watch = client.watchLeader(5, rec)) {
      assertEquals(7L, rec.nextEpoch(10));
      rec.nextFailover(10); // left the first node: its stream ended
      assertNull(rec.epochs.poll(500, TimeUnit.MILLISECONDS));
      assertEquals(List.of(6L), first.minEpochs, "min_epoch = afterEpoch + 1");
      assertEquals(8L, second.minEpochs.get(0), "min_epoch = last reported + 1");
      assertEquals(7L, watch.lastEpoch());
    }
    try (ElectionClient client = client(serve(new FakeNode().streams("n1", 1)))) {
      assertThrows(IllegalArgumentException.class, () -> client.watchLeader(-1, rec));
    }
  }

  @Test
  void failoverHookIsCalledEachTimeTheWatchLeavesAnAddress() throws Exception {
    FakeNode ended = new FakeNode(); // ends its streams at once
    String refused = TestNet.refusingAddress();
    FakeNode unknown = new FakeNode();
    unknown.watch = (req, obs) -> obs.onNext(WatchLeaderResponse.newBuilder().setResponderId("n3")
        .setState(LeaderState.LEADER_STATE_UNKNOWN).setReason("session expired").build());
    FakeNode unavailable = new FakeNode();
    unavailable.watch = (req, obs) -> obs.onError(Status.UNAVAILABLE.withDescription("shutting down").asRuntimeException());
    FakeNode good = new FakeNode().streams("n5", 11);
    String a = serve(ended);
    String c = serve(unknown);
    String d = serve(unavailable);
    Recorder rec = new Recorder();
    try (ElectionClient client = client(a, refused, c, d, serve(good));
        LeaderWatch watch = client.watchLeader(0, rec)) {
      assertEquals(11L, rec.nextEpoch(10));
      List<String> left = new ArrayList<>();
      List<String> reasons = new ArrayList<>();
      for (int i = 0; i < 4; i++) {
        String[] f = rec.nextFailover(1);
        left.add(f[0]);
        reasons.add(f[1]);
      }
      assertEquals(List.of(a, refused, c, d), left);
      assertEquals("stream ended", reasons.get(0));
      assertTrue(reasons.get(1).startsWith("UNAVAILABLE"), reasons.get(1));
      assertEquals("n3 cannot vouch for a leader: session expired", reasons.get(2));
      assertEquals("UNAVAILABLE: shutting down", reasons.get(3));
      watch.close();
      assertNull(rec.failovers.poll(300, TimeUnit.MILLISECONDS), "close() is not a failover");
    }
  }

  @Test
  void watchConnectDeadlineLeavesBlackHoledAndSilentAddresses() throws Exception {
    TestNet.BlackHole hole = keep(new TestNet.BlackHole());
    TestNet.Silent silent = keep(new TestNet.Silent());
    FakeNode good = new FakeNode().streams("n3", 3);
    Recorder rec = new Recorder();
    try (ElectionClient client = builder(hole.address(), silent.address(), serve(good))
        .connectTimeout(Duration.ofSeconds(1)).firstMessageTimeout(Duration.ofSeconds(30)).keepAlive(THREE_S, LONG).build();
        LeaderWatch watch = client.watchLeader(0, rec)) {
      long start = System.nanoTime();
      assertEquals(3L, rec.nextEpoch(15));
      double took = secondsSince(start);
      assertTrue(took < 7, "took " + took + " s for two connect deadlines of 1 s");
      String[] f1 = rec.nextFailover(1);
      String[] f2 = rec.nextFailover(1);
      assertEquals(List.of(hole.address(), silent.address()), List.of(f1[0], f2[0]));
      assertTrue(f1[1].contains("connect deadline (1 s)"), f1[1]);
      assertTrue(f2[1].contains("connect deadline (1 s)"), f2[1]);
    }
  }

  @Test
  void firstMessageDeadlineLeavesANodeThatSendsNothing() throws Exception {
    FakeNode mute = new FakeNode();
    mute.watch = (req, obs) -> {}; // accepts the stream and never sends
    FakeNode good = new FakeNode().streams("n2", 2);
    String muteAddress = serve(mute);
    Recorder rec = new Recorder();
    // The first-message deadline runs from the moment the stream is open, not from the
    // connect check: with a 10 s connect deadline it still ends the attempt after 1 s.
    try (ElectionClient client = builder(muteAddress, serve(good))
        .connectTimeout(Duration.ofSeconds(10)).firstMessageTimeout(Duration.ofSeconds(1)).build();
        LeaderWatch watch = client.watchLeader(0, rec)) {
      long start = System.nanoTime();
      assertEquals(2L, rec.nextEpoch(15));
      double took = secondsSince(start);
      assertTrue(took >= 0.8 && took < 5, "took " + took + " s; the first-message deadline is 1 s");
      String[] f = rec.nextFailover(1);
      assertEquals(muteAddress, f[0]);
      assertTrue(f[1].startsWith("DEADLINE_EXCEEDED: no first message"), f[1]);
    }
  }

  @Test
  void aNodeHoldingBackAnAlreadyReportedLeaderIsNotLeft() throws Exception {
    // Resuming after epoch 5 on a node whose leader still has epoch 5: the node rightly sends
    // nothing (min_epoch = 6), and it answers GetLeader with epoch 5, so it is alive.
    HoldingNode node = new HoldingNode("n1", 5);
    FakeNode other = new FakeNode().streams("n9", 99);
    Recorder rec = new Recorder();
    try (ElectionClient client = builder(serve(node), serve(other))
        .firstMessageTimeout(Duration.ofSeconds(1)).build();
        LeaderWatch watch = client.watchLeader(5, rec)) {
      assertNull(rec.failovers.poll(3500, TimeUnit.MILLISECONDS), "left a node that was only quiet");
      node.publish("n2", 6);
      assertEquals(6L, rec.nextEpoch(10));
      assertEquals(List.of(6L), node.minEpochs);
      assertEquals(0, other.calls.get());
    }
  }

  @Test
  void frozenNodeIsLeftWithinTwiceTheKeepaliveTimeout() throws Exception {
    FakeNode node = new FakeNode().streams("n1", 1);
    TestNet.FreezableProxy proxy = keep(new TestNet.FreezableProxy(
        Integer.parseInt(serve(node).split(":")[1])));
    FakeNode other = new FakeNode().streams("n1", 1);
    Recorder rec = new Recorder();
    // Default keepalive (3 s / 3 s).
    try (ElectionClient client = builder(proxy.address(), serve(other)).build();
        LeaderWatch watch = client.watchLeader(0, rec)) {
      assertEquals(1L, rec.nextEpoch(10));
      Thread.sleep(1000);
      proxy.freeze();
      long start = System.nanoTime();
      String[] f = rec.nextFailover(20);
      double took = secondsSince(start);
      assertEquals(proxy.address(), f[0]);
      // The contract: left within 6 s. grpc-java's own 10 s minimum would make it 13 s.
      assertTrue(took < 9, "left the frozen node after " + took + " s (reason: " + f[1] + ")");
      assertTrue(f[1].startsWith("UNAVAILABLE"), f[1]);
      assertNull(rec.epochs.poll(300, TimeUnit.MILLISECONDS), "the same leader again");
    }
  }

  @Test
  void idleConnectionsToAFrozenNodeAreClosedByKeepalive() throws Exception {
    FakeNode node = new FakeNode().leads("n1", 1);
    TestNet.FreezableProxy proxy = keep(new TestNet.FreezableProxy(
        Integer.parseInt(serve(node).split(":")[1])));
    try (ElectionClient client = builder(proxy.address()).build()) {
      client.getLeader();
      assertEquals(ConnectivityState.READY, client.channelState(0));
      proxy.freeze();
      long start = System.nanoTime();
      while (client.channelState(0) == ConnectivityState.READY && secondsSince(start) < 20) {
        Thread.sleep(50);
      }
      double took = secondsSince(start);
      assertTrue(took < 9, "an idle connection to a frozen node stayed up " + took + " s");
    }
  }

  @Test
  void closeCancelsTheStreamOnTheNode() throws Exception {
    CountDownLatch cancelled = new CountDownLatch(1);
    FakeNode node = new FakeNode();
    node.watch = (req, obs) -> {
      obs.setOnCancelHandler(cancelled::countDown);
      obs.onNext(elected("n1", 1));
    };
    LinkedBlockingQueue<Long> seen = new LinkedBlockingQueue<>();
    try (ElectionClient client = client(serve(node))) {
      LeaderWatch watch = client.watchLeader(0, leader -> seen.add(leader.getEpoch()));
      assertEquals(1L, seen.poll(10, TimeUnit.SECONDS));
      watch.close();
      assertTrue(cancelled.await(2, TimeUnit.SECONDS), "server did not see the cancellation");
      assertTrue(watch.await(Duration.ZERO));
      assertTrue(watch.completion().isDone());
    }
  }

  @Test
  void closeEndsAWatchInBackoffAtOnce() throws Exception {
    FakeNode unknown = new FakeNode();
    unknown.watch = (req, obs) -> obs.onNext(WatchLeaderResponse.newBuilder()
        .setState(LeaderState.LEADER_STATE_UNKNOWN).setReason("no session").build());
    Recorder rec = new Recorder();
    try (ElectionClient client = builder(serve(unknown))
        .backoff(Duration.ofSeconds(60), Duration.ofSeconds(60)).build()) {
      LeaderWatch watch = client.watchLeader(0, rec);
      rec.nextFailover(10); // now backing off, most likely for tens of seconds
      Thread.sleep(200);
      long start = System.nanoTime();
      watch.close();
      assertTrue(secondsSince(start) < 1.5, "close() took " + secondsSince(start) + " s");
      assertTrue(watch.await(Duration.ZERO));
    }
  }

  @Test
  void closeEndsAPendingConnectionAttemptAtOnce() throws Exception {
    TestNet.BlackHole hole = keep(new TestNet.BlackHole());
    try (ElectionClient client = builder(hole.address())
        .connectTimeout(Duration.ofSeconds(30)).firstMessageTimeout(Duration.ofSeconds(30)).build()) {
      LeaderWatch watch = client.watchLeader(0, l -> {});
      Thread.sleep(300);
      long start = System.nanoTime();
      watch.close();
      assertTrue(secondsSince(start) < 1.5, "close() took " + secondsSince(start) + " s");
      assertTrue(watch.await(Duration.ZERO));
      // And closing the client ends a watch it started.
      LeaderWatch second = client.watchLeader(0, l -> {});
      Thread.sleep(300);
      start = System.nanoTime();
      client.close();
      assertTrue(second.await(Duration.ofMillis(1500)), "the client's close() left a watch running");
      assertTrue(secondsSince(start) < 2, "close() took " + secondsSince(start) + " s");
    }
  }

  @Test
  void closeFromTheListenerReturnsAtOnce() throws Exception {
    FakeNode node = new FakeNode().streams("n1", 1);
    AtomicReference<LeaderWatch> ref = new AtomicReference<>();
    CountDownLatch closed = new CountDownLatch(1);
    try (ElectionClient client = client(serve(node))) {
      ref.set(client.watchLeader(0, leader -> {
        while (ref.get() == null) {
          Thread.onSpinWait();
        }
        ref.get().close();
        closed.countDown();
      }));
      assertTrue(closed.await(10, TimeUnit.SECONDS));
      assertTrue(ref.get().await(Duration.ofSeconds(2)));
    }
  }

  @Test
  void watchFailsWhenNoNodeIsReachable() throws Exception {
    Recorder rec = new Recorder();
    try (ElectionClient client = client(TestNet.refusingAddress(), TestNet.refusingAddress());
        LeaderWatch watch = client.watchLeader(0, rec)) {
      ElectdException e = assertThrows(ElectdException.class, watch::await);
      assertTrue(e.noNodeAnswered());
      assertEquals(2, rec.failovers.size(), "the hook hears of both addresses");
      ExecutionException ee = assertThrows(ExecutionException.class, () -> watch.completion().get());
      assertSame(e, ee.getCause());
    }
  }

  @Test
  void listenerExecutorRunsTheListenerInOrder() throws Exception {
    FakeNode node = new FakeNode();
    node.watch = (req, obs) -> {
      for (long epoch = 1; epoch <= 50; epoch++) {
        obs.onNext(elected("n1", epoch));
      }
    };
    ExecutorService executor = Executors.newFixedThreadPool(4, r -> new Thread(r, "app-pool"));
    Recorder rec = new Recorder();
    try (ElectionClient client = builder(serve(node)).listenerExecutor(executor).build();
        LeaderWatch watch = client.watchLeader(0, rec)) {
      for (long epoch = 1; epoch <= 50; epoch++) {
        assertEquals(epoch, rec.nextEpoch(10));
      }
      assertTrue(rec.threads.stream().allMatch("app-pool"::equals), rec.threads.toString());
    } finally {
      executor.shutdownNow();
    }
    // Default: the watch's own thread.
    Recorder own = new Recorder();
    try (ElectionClient client = client(serve(new FakeNode().streams("n1", 1)));
        LeaderWatch watch = client.watchLeader(0, own)) {
      assertEquals(1L, own.nextEpoch(10));
      assertTrue(own.threads.get(0).startsWith("electd-watch-"), own.threads.toString());
    }
  }

  @Test
  void aThrowingListenerEndsTheWatch() throws Exception {
    FakeNode node = new FakeNode().streams("n1", 1);
    String address = serve(node);
    ExecutorService executor = Executors.newSingleThreadExecutor();
    try {
      for (ElectionClient client : List.of(client(address),
          builder(address).listenerExecutor(executor).build())) {
        try (client; LeaderWatch watch = client.watchLeader(0, l -> {
          throw new IllegalStateException("boom");
        })) {
          IllegalStateException e = assertThrows(IllegalStateException.class, watch::await);
          assertEquals("boom", e.getMessage());
        }
      }
    } finally {
      executor.shutdownNow();
    }
  }

  @Test
  void watchRejectionIsReturned() throws Exception {
    FakeNode rejecting = new FakeNode();
    rejecting.watch = (req, obs) -> obs.onError(Status.PERMISSION_DENIED.withDescription("no").asRuntimeException());
    FakeNode good = new FakeNode().streams("n2", 2);
    String address = serve(rejecting);
    try (ElectionClient client = client(address, serve(good));
        LeaderWatch watch = client.watchLeader(0, leader -> {})) {
      ElectdException e = assertThrows(ElectdException.class, watch::await);
      assertFalse(e.noNodeAnswered());
      assertEquals(Status.Code.PERMISSION_DENIED, e.status().getCode());
      assertEquals(List.of(address), e.addresses());
      assertEquals(0, good.calls.get());
    }
  }

  // --- the rest ---

  @Test
  void backoffDoublesToTheCapWithFullJitter() {
    Backoff backoff = new Backoff(Backoff.INITIAL, Backoff.MAX);
    long[] ceilings = {50, 100, 200, 400, 800, 1600, 2000, 2000};
    for (long ceiling : ceilings) {
      assertEquals(ceiling, backoff.ceiling().toMillis());
      long ms = backoff.next().toMillis();
      assertTrue(ms >= 0 && ms <= ceiling, ceiling + " -> " + ms);
    }
    backoff.reset();
    assertEquals(50, backoff.ceiling().toMillis());
    // Full jitter: uniform over [0, ceiling], so the mean is half the ceiling.
    Backoff capped = new Backoff(Duration.ofSeconds(1), Duration.ofSeconds(1));
    double sum = 0;
    int n = 4000;
    for (int i = 0; i < n; i++) {
      sum += capped.next().toNanos() / 1e9;
    }
    double mean = sum / n;
    assertTrue(mean > 0.4 && mean < 0.6, "mean delay " + mean + " s for a 1 s ceiling");
  }

  @Test
  void addressesAreChecked() {
    ElectionClient.validateAddress("127.0.0.1:7001");
    ElectionClient.validateAddress("[::1]:7001");
    ElectionClient.validateAddress("node-1.example:1");
    for (String bad : List.of("", "host", ":7001", "host:", "host:0", "host:65536", "::1:7001", "h:p")) {
      assertThrows(IllegalArgumentException.class, () -> ElectionClient.validateAddress(bad), bad);
    }
  }

  @Test
  void builderValidatesItsSettings() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> ElectionClient.forAddresses("127.0.0.1:7001", "no-port"));
    assertTrue(e.getMessage().contains("no-port"), e.getMessage());
    assertThrows(IllegalArgumentException.class, () -> ElectionClient.newBuilder().build());
    assertThrows(IllegalArgumentException.class, () -> ElectionClient.newBuilder().connectTimeout(Duration.ZERO));
    assertThrows(IllegalArgumentException.class,
        () -> ElectionClient.newBuilder().firstMessageTimeout(Duration.ofSeconds(-1)));
    assertThrows(IllegalArgumentException.class,
        () -> ElectionClient.newBuilder().keepAlive(Duration.ofSeconds(3), Duration.ZERO));
    assertEquals(Duration.ofSeconds(2), ElectionClient.DEFAULT_CONNECT_TIMEOUT);
    assertEquals(Duration.ofSeconds(2), ElectionClient.DEFAULT_FIRST_MESSAGE_TIMEOUT);
    assertEquals(Duration.ofSeconds(3), ElectionClient.DEFAULT_KEEPALIVE_TIME);
    assertEquals(Duration.ofSeconds(3), ElectionClient.DEFAULT_KEEPALIVE_TIMEOUT);
  }

  @Test
  void rejectionErrorAccessors() throws Exception {
    FakeNode rejecting = new FakeNode();
    rejecting.getLeader = (req, obs) -> obs.onError(Status.PERMISSION_DENIED.withDescription("go away").asRuntimeException());
    String dead = TestNet.refusingAddress();
    String address = serve(rejecting);
    try (ElectionClient client = client(dead, address)) {
      ElectdException e = assertThrows(ElectdException.class, client::getLeader);
      assertFalse(e.noNodeAnswered());
      assertEquals(Status.Code.PERMISSION_DENIED, e.status().getCode());
      assertEquals("go away", e.status().getDescription());
      assertEquals(List.of(address), e.addresses());
      assertTrue(e.getMessage().startsWith(address + " rejected the call: PERMISSION_DENIED"), e.getMessage());
      // Thrown with the caller's stack trace.
      assertTrue(List.of(e.getStackTrace()).stream()
          .anyMatch(f -> f.getMethodName().equals("rejectionErrorAccessors")));
    }
  }

  @Test
  void noNodeAnsweredErrorAccessors() throws Exception {
    String a = TestNet.refusingAddress();
    String b = serve(new FakeNode());
    try (ElectionClient client = client(a, b)) {
      ElectdException e = assertThrows(ElectdException.class, client::getLeader);
      assertTrue(e.noNodeAnswered());
      assertEquals(List.of(a, b), e.addresses());
      // The last attempt was b's UNAVAILABLE "no session".
      assertEquals(Status.Code.UNAVAILABLE, e.status().getCode());
      assertEquals("no session", e.status().getDescription());
    }
  }

  @Test
  void watchNoNodeAnsweredErrorAccessors() throws Exception {
    String a = TestNet.refusingAddress();
    String b = TestNet.refusingAddress();
    try (ElectionClient client = client(a, b);
        LeaderWatch watch = client.watchLeader(0, leader -> {})) {
      ElectdException e = assertThrows(ElectdException.class, watch::await);
      assertTrue(e.noNodeAnswered());
      assertEquals(Status.Code.UNAVAILABLE, e.status().getCode());
      assertEquals(List.of(a, b), e.addresses());
      assertNotEquals(null, e.getMessage());
    }
  }
}
