package io.electd.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
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
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BiConsumer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Failover, epoch filtering and cancellation against scripted servers on 127.0.0.1. */
@Timeout(30)
class ElectionClientTest {
  private final List<Server> servers = new ArrayList<>();

  /** A scripted node: each handler says how to answer one RPC. */
  static final class FakeNode extends ElectionServiceGrpc.ElectionServiceImplBase {
    volatile BiConsumer<GetLeaderRequest, StreamObserver<GetLeaderResponse>> getLeader =
        (req, obs) -> obs.onError(Status.UNAVAILABLE.withDescription("no session").asRuntimeException());
    volatile BiConsumer<WatchLeaderRequest, ServerCallStreamObserver<WatchLeaderResponse>> watch =
        (req, obs) -> obs.onCompleted();
    final AtomicInteger calls = new AtomicInteger();
    final List<Long> minEpochs = new CopyOnWriteArrayList<>();

    @Override
    public void getLeader(GetLeaderRequest request, StreamObserver<GetLeaderResponse> obs) {
      calls.incrementAndGet();
      getLeader.accept(request, obs);
    }

    @Override
    public void listNodes(ListNodesRequest request, StreamObserver<ListNodesResponse> obs) {
      calls.incrementAndGet();
      obs.onError(Status.UNAVAILABLE.withDescription("no session").asRuntimeException());
    }

    @Override
    public void watchLeader(WatchLeaderRequest request, StreamObserver<WatchLeaderResponse> obs) {
      calls.incrementAndGet();
      minEpochs.add(request.getMinEpoch());
      watch.accept(request, (ServerCallStreamObserver<WatchLeaderResponse>) obs);
    }
  }

  private String serve(FakeNode node) throws IOException {
    Server server = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0))
        .addService(node)
        .build()
        .start();
    servers.add(server);
    return "127.0.0.1:" + server.getPort();
  }

  /** An address where nothing listens. */
  private static String deadAddress() throws IOException {
    try (ServerSocket socket = new ServerSocket(0, 1, java.net.InetAddress.getByName("127.0.0.1"))) {
      return "127.0.0.1:" + socket.getLocalPort();
    }
  }

  @AfterEach
  void stopServers() throws InterruptedException {
    for (Server server : servers) {
      server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
  }

  private static Leader leader(String id, long epoch) {
    return Leader.newBuilder()
        .setNode(Node.newBuilder().setId(id).setAddress(id + ":7001"))
        .setEpoch(epoch)
        .build();
  }

  private static WatchLeaderResponse elected(String id, long epoch) {
    return WatchLeaderResponse.newBuilder()
        .setState(LeaderState.LEADER_STATE_ELECTED)
        .setLeader(leader(id, epoch))
        .setResponderId(id)
        .build();
  }

  private static ElectionClient client(String... addresses) {
    return ElectionClient.newBuilder()
        .addresses(List.of(addresses))
        .callTimeout(Duration.ofSeconds(2))
        .backoff(Duration.ofMillis(10), Duration.ofMillis(100))
        .build();
  }

  @Test
  void getLeaderFailsOverPastDeadAndUnavailableNodes() throws Exception {
    FakeNode unavailable = new FakeNode();
    FakeNode good = new FakeNode();
    good.getLeader = (req, obs) -> {
      obs.onNext(GetLeaderResponse.newBuilder().setLeader(leader("n3", 4294967302L)).setResponderId("n3").build());
      obs.onCompleted();
    };
    try (ElectionClient client = client(deadAddress(), serve(unavailable), serve(good))) {
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
  void nonRetryableErrorIsReturnedAtOnce() throws Exception {
    FakeNode rejecting = new FakeNode();
    rejecting.getLeader = (req, obs) -> obs.onError(Status.INVALID_ARGUMENT.withDescription("nope").asRuntimeException());
    FakeNode good = new FakeNode();
    try (ElectionClient client = client(serve(rejecting), serve(good))) {
      ElectdException e = assertThrows(ElectdException.class, client::getLeader);
      assertEquals(Status.Code.INVALID_ARGUMENT, e.status().getCode());
      assertEquals(0, good.calls.get());
    }
  }

  @Test
  void noNodeAnsweredNamesEveryAddress() throws Exception {
    String a = deadAddress();
    String b = serve(new FakeNode());
    try (ElectionClient client = client(a, b)) {
      ElectdException e = assertThrows(ElectdException.class, client::listNodes);
      assertTrue(e.noNodeAnswered());
      assertTrue(e.getMessage().contains(a) && e.getMessage().contains(b), e.getMessage());
      assertTrue(e.getMessage().contains("UNAVAILABLE"), e.getMessage());
    }
  }

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
    try (ElectionClient client = client(serve(first), deadAddress(), serve(unknown), serve(second));
        LeaderWatch watch = client.watchLeader(0, leader -> seen.add(leader.getEpoch()))) {
      assertEquals(5L, seen.poll(10, TimeUnit.SECONDS));
      assertEquals(7L, seen.poll(10, TimeUnit.SECONDS));
      assertEquals(null, seen.poll(300, TimeUnit.MILLISECONDS));
      assertEquals(List.of(0L), first.minEpochs);
      assertEquals(5L, unknown.minEpochs.get(0));
      assertEquals(5L, second.minEpochs.get(0));
      assertEquals(7L, watch.lastEpoch());
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
    }
  }

  @Test
  void watchFailsWhenNoNodeIsReachable() throws Exception {
    try (ElectionClient client = client(deadAddress(), deadAddress());
        LeaderWatch watch = client.watchLeader(0, leader -> {})) {
      ElectdException e = assertThrows(ElectdException.class, watch::await);
      assertTrue(e.noNodeAnswered());
    }
  }

  @Test
  void backoffDoublesToTheCapWithJitter() {
    Backoff backoff = new Backoff(Backoff.INITIAL, Backoff.MAX);
    long[] bases = {50, 100, 200, 400, 800, 1600, 2000, 2000};
    for (long base : bases) {
      long ms = backoff.next().toMillis();
      assertTrue(ms >= base * 0.8 - 1 && ms <= Math.min(2000, base * 1.2), base + " -> " + ms);
    }
    backoff.reset();
    assertTrue(backoff.next().toMillis() <= 60);
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
  void builderValidatesEveryAddress() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> ElectionClient.forAddresses("127.0.0.1:7001", "no-port"));
    assertTrue(e.getMessage().contains("no-port"), e.getMessage());
    assertThrows(IllegalArgumentException.class, () -> ElectionClient.newBuilder().build());
  }

  @Test
  void rejectionErrorAccessors() throws Exception {
    FakeNode rejecting = new FakeNode();
    rejecting.getLeader = (req, obs) -> obs.onError(Status.PERMISSION_DENIED.withDescription("go away").asRuntimeException());
    String dead = deadAddress();
    String address = serve(rejecting);
    try (ElectionClient client = client(dead, address)) {
      ElectdException e = assertThrows(ElectdException.class, client::getLeader);
      assertFalse(e.noNodeAnswered());
      assertEquals(Status.Code.PERMISSION_DENIED, e.status().getCode());
      assertEquals("go away", e.status().getDescription());
      assertEquals(List.of(address), e.addresses());
      assertTrue(e.getMessage().startsWith(address + " rejected the call: PERMISSION_DENIED"), e.getMessage());
    }
  }

  @Test
  void noNodeAnsweredErrorAccessors() throws Exception {
    String a = deadAddress();
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
  void watchErrorAccessors() throws Exception {
    FakeNode rejecting = new FakeNode();
    rejecting.watch = (req, obs) -> obs.onError(Status.UNIMPLEMENTED.asRuntimeException());
    String address = serve(rejecting);
    try (ElectionClient client = client(address);
        LeaderWatch watch = client.watchLeader(0, leader -> {})) {
      ElectdException e = assertThrows(ElectdException.class, watch::await);
      assertFalse(e.noNodeAnswered());
      assertEquals(Status.Code.UNIMPLEMENTED, e.status().getCode());
      assertEquals(List.of(address), e.addresses());
    }
    String a = deadAddress();
    String b = deadAddress();
    try (ElectionClient client = client(a, b);
        LeaderWatch watch = client.watchLeader(0, leader -> {})) {
      ElectdException e = assertThrows(ElectdException.class, watch::await);
      assertTrue(e.noNodeAnswered());
      assertEquals(Status.Code.UNAVAILABLE, e.status().getCode());
      assertEquals(List.of(a, b), e.addresses());
    }
  }
}
