package io.electd.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.electd.v1.CampaignLeading;
import io.electd.v1.CampaignLost;
import io.electd.v1.CampaignProclaimed;
import io.electd.v1.CampaignQueued;
import io.electd.v1.CampaignRefused;
import io.electd.v1.CampaignRequest;
import io.electd.v1.CampaignResponse;
import io.electd.v1.ElectionServiceGrpc;
import io.electd.v1.ElectionSummary;
import io.electd.v1.GetLeaderRequest;
import io.electd.v1.GetLeaderResponse;
import io.electd.v1.Leader;
import io.electd.v1.ListElectionsRequest;
import io.electd.v1.ListElectionsResponse;
import io.electd.v1.LossReason;
import io.electd.v1.Node;
import io.electd.v1.ResignRequest;
import io.electd.v1.ResignResponse;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.StreamObserver;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Consumer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The campaign helper against scripted Campaign streams on 127.0.0.1: the test plays the node,
 * request by request. Checks the order of things (the ack only after the work returned, resign
 * after the work stopped, a new stream after an expired lease), failover, proclaim and the
 * unary Resign / ListElections / election-field calls. No timing assertions: every wait is for
 * an event, bounded only by the test timeout.
 */
@Timeout(60)
class CampaignTest {
  private static final long WAIT = 20; // seconds: a bound for events that must come

  private final List<Server> servers = new ArrayList<>();
  private final List<AutoCloseable> resources = new ArrayList<>();

  /** One Campaign stream as the node sees it. */
  static final class Stream {
    final LinkedBlockingQueue<CampaignRequest> received = new LinkedBlockingQueue<>();
    final CountDownLatch ended = new CountDownLatch(1);
    final StreamObserver<CampaignResponse> out;

    Stream(StreamObserver<CampaignResponse> out) {
      this.out = out;
    }

    /** The next request, failing the test if none comes. */
    CampaignRequest next() throws InterruptedException {
      CampaignRequest r = received.poll(WAIT, TimeUnit.SECONDS);
      assertNotNull(r, "no request came");
      return r;
    }

    /** The next request that is not a ping (pings are answered by {@code onPing}). */
    CampaignRequest nextNonPing(Consumer<Long> onPing) throws InterruptedException {
      while (true) {
        CampaignRequest r = next();
        if (r.hasPing()) {
          onPing.accept(r.getPing().getNonce());
        } else {
          return r;
        }
      }
    }

    /** The nonce of the next ping (other requests fail the test). */
    long nextPing() throws InterruptedException {
      CampaignRequest r = next();
      assertTrue(r.hasPing(), "want a ping, got " + r);
      return r.getPing().getNonce();
    }

    void send(CampaignResponse r) {
      synchronized (out) {
        out.onNext(r);
      }
    }

    void queued(int position, long nonce) {
      send(CampaignResponse.newBuilder().setResponderId("n1")
          .setQueued(CampaignQueued.newBuilder().setPosition(position).setNonce(nonce)).build());
    }

    void leading(long epoch, long nonce, long leaseMs) {
      send(CampaignResponse.newBuilder().setResponderId("n1")
          .setLeading(CampaignLeading.newBuilder().setEpoch(epoch).setNonce(nonce).setLeaseMs(leaseMs)).build());
    }

    void lost(long epoch, LossReason reason) {
      send(CampaignResponse.newBuilder().setResponderId("n1")
          .setLost(CampaignLost.newBuilder().setEpoch(epoch).setReason(reason).setDetail("scripted")).build());
    }

    void complete() {
      synchronized (out) {
        out.onCompleted();
      }
    }

    void fail(Status status) {
      synchronized (out) {
        out.onError(status.asRuntimeException());
      }
    }
  }

  /** A node whose Campaign streams the test scripts; unary calls answer as set. */
  static final class CampaignNode extends ElectionServiceGrpc.ElectionServiceImplBase {
    final LinkedBlockingQueue<Stream> streams = new LinkedBlockingQueue<>();
    final List<Object> unary = new CopyOnWriteArrayList<>();

    @Override
    public StreamObserver<CampaignRequest> campaign(StreamObserver<CampaignResponse> out) {
      Stream s = new Stream(out);
      streams.add(s);
      return new StreamObserver<>() {
        @Override
        public void onNext(CampaignRequest r) {
          s.received.add(r);
        }

        @Override
        public void onError(Throwable t) {
          s.ended.countDown();
        }

        @Override
        public void onCompleted() {
          s.ended.countDown();
        }
      };
    }

    @Override
    public void resign(ResignRequest request, StreamObserver<ResignResponse> obs) {
      unary.add(request);
      if (request.getEpoch() != 7) {
        obs.onError(Status.FAILED_PRECONDITION.withDescription("the current epoch is 7").asRuntimeException());
        return;
      }
      obs.onNext(ResignResponse.newBuilder().setResponderId("n1")
          .setLeader(Leader.newBuilder().setEpoch(7).setNode(Node.newBuilder().setId("c1"))).build());
      obs.onCompleted();
    }

    @Override
    public void listElections(ListElectionsRequest request, StreamObserver<ListElectionsResponse> obs) {
      obs.onNext(ListElectionsResponse.newBuilder().setResponderId("n1")
          .addElections(ElectionSummary.newBuilder().setName("jobs").setCandidates(2)).build());
      obs.onCompleted();
    }

    @Override
    public void getLeader(GetLeaderRequest request, StreamObserver<GetLeaderResponse> obs) {
      unary.add(request);
      if (request.getElection().equals("empty")) {
        obs.onError(Status.NOT_FOUND.withDescription("election empty has no leader").asRuntimeException());
        return;
      }
      obs.onNext(GetLeaderResponse.newBuilder().setResponderId("n1")
          .setLeader(Leader.newBuilder().setEpoch(7).setNode(Node.newBuilder().setId("c1"))).build());
      obs.onCompleted();
    }

    Stream nextStream() throws InterruptedException {
      Stream s = streams.poll(WAIT, TimeUnit.SECONDS);
      assertNotNull(s, "no Campaign stream was opened");
      return s;
    }
  }

  /** Records listener calls as lines. */
  static final class Events implements CampaignListener {
    final LinkedBlockingQueue<String> lines = new LinkedBlockingQueue<>();

    @Override
    public void onQueued(int position, String waitingFor, boolean neverLead) {
      lines.add("queued " + position);
    }

    @Override
    public void onLeading(long epoch) {
      lines.add("leading " + epoch);
    }

    @Override
    public void onLost(long epoch, Loss reason, String detail) {
      lines.add("lost " + epoch + " " + reason.label());
    }

    @Override
    public void onFailover(String address, String reason) {
      lines.add("failover " + address);
    }

    @Override
    public void onStopped() {
      lines.add("stopped");
    }

    String next() throws InterruptedException {
      String line = lines.poll(WAIT, TimeUnit.SECONDS);
      assertNotNull(line, "no event came");
      return line;
    }
  }

  /** A term's work that records whether it ran and when it returned. */
  static final class Work implements LeaderWork {
    final LinkedBlockingQueue<Term> started = new LinkedBlockingQueue<>();
    final AtomicBoolean running = new AtomicBoolean();

    @Override
    public void run(Term term) throws InterruptedException {
      running.set(true);
      started.add(term);
      try {
        term.awaitCancelled();
      } finally {
        running.set(false);
      }
    }

    Term next() throws InterruptedException {
      Term t = started.poll(WAIT, TimeUnit.SECONDS);
      assertNotNull(t, "the work did not start");
      return t;
    }
  }

  private String serve(CampaignNode node) throws Exception {
    Server server = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0))
        .addService(node)
        .permitKeepAliveTime(1, TimeUnit.SECONDS)
        .permitKeepAliveWithoutCalls(true)
        .build()
        .start();
    servers.add(server);
    return "127.0.0.1:" + server.getPort();
  }

  private ElectionClient client(String... addresses) {
    ElectionClient c = ElectionClient.newBuilder().addresses(addresses).build();
    resources.add(c);
    return c;
  }

  @AfterEach
  void stop() throws Exception {
    for (AutoCloseable r : resources) {
      r.close();
    }
    for (Server s : servers) {
      s.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
  }

  private static CampaignOptions.Builder options(Events events) {
    return CampaignOptions.newBuilder("jobs", "c1").value("v1").priority(3).listener(events);
  }

  @Test
  void leadsThenAcknowledgesALossOnlyAfterTheWorkReturnedThenResigns() throws Exception {
    CampaignNode node = new CampaignNode();
    Events events = new Events();
    Work work = new Work();
    Campaign campaign = client(serve(node)).campaign(options(events).build(), work);
    Stream s = node.nextStream();
    CampaignRequest start = s.next();
    assertEquals("jobs", start.getStart().getElection());
    assertEquals("c1", start.getStart().getCandidateId());
    assertEquals("v1", start.getStart().getValue().toStringUtf8());
    assertEquals(3, start.getStart().getPriority());
    long nonce = s.nextPing();
    s.queued(1, 0);
    assertEquals("queued 1", events.next());
    s.leading(7, nonce, 10_000);
    assertEquals("leading 7", events.next());
    Term term = work.next();
    assertEquals(7, term.epoch());
    assertTrue(term.isValid());
    assertEquals(7, campaign.epoch());

    s.lost(7, LossReason.LOSS_REASON_PREEMPTED);
    CampaignRequest ack = s.nextNonPing(n -> {});
    assertTrue(ack.hasAck(), ack.toString());
    assertEquals(7, ack.getAck().getEpoch());
    assertFalse(work.running.get(), "acknowledged while the work still ran");
    assertTrue(term.isCancelled());
    assertEquals("lost 7 preempted", events.next());
    s.queued(0, 0);
    assertEquals("queued 0", events.next());

    CountDownLatch resigned = inBackground(campaign::resign); // not leading: resigns at once
    CampaignRequest resign = s.nextNonPing(n -> {});
    assertTrue(resign.hasResign(), resign.toString());
    assertFalse(resigned.await(100, TimeUnit.MILLISECONDS), "resign() returned before the stream ended");
    s.complete();
    assertTrue(resigned.await(WAIT, TimeUnit.SECONDS));
    assertEquals("stopped", events.next());
    campaign.await();
  }

  @Test
  void anExpiredLeaseCancelsTheWorkResignsAndCampaignsAgainOnANewStream() throws Exception {
    CampaignNode node = new CampaignNode();
    Events events = new Events();
    Work work = new Work();
    Campaign campaign = client(serve(node)).campaign(
        options(events).pingInterval(Duration.ofMillis(50)).build(), work);
    Stream s = node.nextStream();
    s.next(); // start
    s.leading(7, s.nextPing(), 300); // and never answer another ping
    assertEquals("leading 7", events.next());
    Term term = work.next();
    CampaignRequest resign = s.nextNonPing(n -> {});
    assertTrue(resign.hasResign(), resign.toString());
    assertTrue(term.isCancelled());
    assertFalse(work.running.get(), "resigned while the work still ran");
    assertEquals("lost 7 expired", events.next());
    s.lost(7, LossReason.LOSS_REASON_RESIGNED);
    s.complete();
    // The same node, a new stream, a new entry; the expired epoch never runs again.
    Stream s2 = node.nextStream();
    assertTrue(s2.next().hasStart());
    long n2 = s2.nextPing();
    s2.leading(7, n2, 10_000);
    s2.queued(0, 0);
    assertEquals("queued 0", events.next());
    s2.leading(9, s2.nextPing(), 10_000);
    assertEquals("leading 9", events.next());
    assertEquals(9, work.next().epoch());
    CountDownLatch closed = inBackground(campaign::close);
    assertTrue(s2.nextNonPing(n -> {}).hasResign());
    s2.complete();
    assertTrue(closed.await(WAIT, TimeUnit.SECONDS));
    campaign.await();
    assertEquals("lost 9 resigned", events.next());
    assertEquals("stopped", events.next());
  }

  @Test
  void stopOnLossEndsAfterTheAckAndAResign() throws Exception {
    CampaignNode node = new CampaignNode();
    Events events = new Events();
    Work work = new Work();
    Campaign campaign = client(serve(node)).campaign(
        options(events).onLoss(CampaignOptions.OnLoss.STOP).build(), work);
    Stream s = node.nextStream();
    s.next();
    s.leading(7, s.nextPing(), 10_000);
    work.next();
    s.lost(7, LossReason.LOSS_REASON_DELETED);
    assertEquals(7, s.nextNonPing(n -> {}).getAck().getEpoch());
    assertTrue(s.nextNonPing(n -> {}).hasResign());
    s.complete();
    campaign.await();
    assertEquals(List.of("leading 7", "lost 7 deleted", "stopped"),
        List.of(events.next(), events.next(), events.next()));
  }

  @Test
  void aBrokenStreamCancelsTheWorkAndTheCampaignMovesToTheNextNode() throws Exception {
    CampaignNode a = new CampaignNode();
    CampaignNode b = new CampaignNode();
    Events events = new Events();
    Work work = new Work();
    String addrA = serve(a);
    String addrB = serve(b);
    Campaign campaign = client(addrA, addrB).campaign(options(events).build(), work);
    Stream s = a.nextStream();
    s.next();
    s.leading(7, s.nextPing(), 10_000);
    Term term = work.next();
    s.fail(Status.UNAVAILABLE.withDescription("shutting down"));
    Stream s2 = b.nextStream();
    assertTrue(s2.next().hasStart());
    assertTrue(term.isCancelled());
    assertEquals(List.of("leading 7", "failover " + addrA, "lost 7 disconnected"),
        sorted(events.next(), events.next(), events.next()));
    s2.leading(8, s2.nextPing(), 10_000);
    assertEquals("leading 8", events.next());
    assertEquals(addrB, campaign.address());
  }

  /** Runs {@code r} on a thread of its own; the latch opens when it returned. */
  private static CountDownLatch inBackground(Runnable r) {
    CountDownLatch done = new CountDownLatch(1);
    Thread t = new Thread(() -> {
      r.run();
      done.countDown();
    });
    t.setDaemon(true);
    t.start();
    return done;
  }

  private static List<String> sorted(String... lines) {
    // The failover hook and the loss are independent: the loss comes once the work stopped.
    List<String> l = new ArrayList<>(List.of(lines));
    l.sort((x, y) -> rank(x) - rank(y));
    return l;
  }

  private static int rank(String line) {
    return line.startsWith("leading") ? 0 : line.startsWith("failover") ? 1 : 2;
  }

  @Test
  void unreachableAndUnavailableNodesAreSkipped() throws Exception {
    CampaignNode down = new CampaignNode();
    CampaignNode up = new CampaignNode();
    String refusing = TestNet.refusingAddress();
    String downAddr = serve(down);
    Events events = new Events();
    Campaign campaign = client(refusing, downAddr, serve(up)).campaign(options(events).build(), new Work());
    Stream d = down.nextStream();
    d.fail(Status.UNAVAILABLE.withDescription("no session"));
    Stream s = up.nextStream();
    assertTrue(s.next().hasStart());
    assertEquals("failover " + refusing, events.next());
    assertEquals("failover " + downAddr, events.next());
    s.queued(2, 0);
    assertEquals("queued 2", events.next());
    assertFalse(campaign.isLeading());
  }

  @Test
  void aRejectionEndsTheCampaignWithTheStatus() throws Exception {
    CampaignNode node = new CampaignNode();
    Campaign campaign = client(serve(node)).campaign(options(new Events()).build(), new Work());
    node.nextStream().fail(Status.PERMISSION_DENIED.withDescription("no write right"));
    ElectdException e = assertThrows(ElectdException.class, campaign::await);
    assertEquals(Status.Code.PERMISSION_DENIED, e.status().getCode());
    assertFalse(e.noNodeAnswered());
  }

  @Test
  void noNodeAnsweringEndsTheCampaign() throws Exception {
    String a = TestNet.refusingAddress();
    Campaign campaign = client(a).campaign(options(new Events()).build(), new Work());
    ElectdException e = assertThrows(ElectdException.class, campaign::await);
    assertTrue(e.noNodeAnswered());
    assertTrue(e.getMessage().contains("no electd node answered (tried " + a + ")"), e.getMessage());
  }

  @Test
  void workReturningResignsAndFailingWorkIsRethrown() throws Exception {
    for (boolean fails : new boolean[] {false, true}) {
      CampaignNode node = new CampaignNode();
      IllegalStateException boom = new IllegalStateException("boom");
      Campaign campaign = client(serve(node)).campaign(options(new Events()).build(), term -> {
        if (fails) {
          throw boom;
        }
      });
      Stream s = node.nextStream();
      s.next();
      s.leading(7, s.nextPing(), 10_000);
      assertTrue(s.nextNonPing(n -> {}).hasResign());
      s.lost(7, LossReason.LOSS_REASON_RESIGNED);
      s.complete();
      if (fails) {
        assertSame(boom, assertThrows(IllegalStateException.class, campaign::await));
      } else {
        campaign.await();
      }
    }
  }

  @Test
  void checkedExceptionsOfTheWorkComeWrapped() throws Exception {
    CampaignNode node = new CampaignNode();
    Exception checked = new java.io.IOException("disk full");
    Campaign campaign = client(serve(node)).campaign(options(new Events()).build(), term -> {
      throw checked;
    });
    Stream s = node.nextStream();
    s.next();
    s.leading(7, s.nextPing(), 10_000);
    assertTrue(s.nextNonPing(n -> {}).hasResign());
    s.complete();
    CompletionException e = assertThrows(CompletionException.class, campaign::await);
    assertSame(checked, e.getCause());
  }

  @Test
  void proclaimReturnsTheRevisionOrTheRefusal() throws Exception {
    CampaignNode node = new CampaignNode();
    Work work = new Work();
    Campaign campaign = client(serve(node)).campaign(options(new Events()).build(), work);
    Stream s = node.nextStream();
    s.next();
    long nonce = s.nextPing();
    ElectdException notLeading = assertThrows(ElectdException.class, () -> campaign.proclaim(new byte[] {1}));
    assertEquals(Status.Code.FAILED_PRECONDITION, notLeading.status().getCode());
    s.leading(7, nonce, 10_000);
    work.next();
    var first = campaign.proclaimAsync("v2".getBytes());
    CampaignRequest p = s.nextNonPing(n -> s.leading(7, n, 10_000));
    assertEquals(7, p.getProclaim().getEpoch());
    assertEquals("v2", p.getProclaim().getValue().toStringUtf8());
    s.send(CampaignResponse.newBuilder()
        .setProclaimed(CampaignProclaimed.newBuilder().setEpoch(7).setValueRevision(1)).build());
    assertEquals(1L, first.get(WAIT, TimeUnit.SECONDS));
    var second = campaign.proclaimAsync("v3".getBytes());
    s.nextNonPing(n -> s.leading(7, n, 10_000));
    s.send(CampaignResponse.newBuilder()
        .setRefused(CampaignRefused.newBuilder().setRequest("proclaim").setReason("epoch 7 is not the current term"))
        .build());
    java.util.concurrent.ExecutionException e = assertThrows(java.util.concurrent.ExecutionException.class,
        () -> second.get(WAIT, TimeUnit.SECONDS));
    ElectdException refused = (ElectdException) e.getCause();
    assertEquals(Status.Code.FAILED_PRECONDITION, refused.status().getCode());
    assertTrue(refused.getMessage().contains("epoch 7 is not the current term"), refused.getMessage());
    assertThrows(IllegalArgumentException.class, () -> campaign.proclaim(new byte[16 * 1024 + 1]));
  }

  @Test
  void closingTheClientEndsTheCampaignAndItsWork() throws Exception {
    CampaignNode node = new CampaignNode();
    Work work = new Work();
    ElectionClient client = client(serve(node));
    Campaign campaign = client.campaign(options(new Events()).build(), work);
    Stream s = node.nextStream();
    s.next();
    s.leading(7, s.nextPing(), 10_000);
    Term term = work.next();
    client.close();
    ElectdException e = assertThrows(ElectdException.class, campaign::await);
    assertEquals(Status.Code.CANCELLED, e.status().getCode());
    assertTrue(term.isCancelled());
    assertFalse(work.running.get());
  }

  @Test
  void unaryCallsForNamedElections() throws Exception {
    CampaignNode node = new CampaignNode();
    ElectionClient client = client(serve(node));
    assertEquals("c1", client.resign("jobs", 7).getLeader().getNode().getId());
    ElectdException stale = assertThrows(ElectdException.class, () -> client.resign("jobs", 6));
    assertEquals(Status.Code.FAILED_PRECONDITION, stale.status().getCode());
    assertEquals(List.of(ElectionSummary.newBuilder().setName("jobs").setCandidates(2).build()),
        client.listElections().getElectionsList());
    assertEquals(7, client.getLeader("jobs").getLeader().getEpoch());
    assertEquals(Status.Code.NOT_FOUND,
        assertThrows(ElectdException.class, () -> client.getLeader("empty")).status().getCode());
    client.getLeader();
    List<String> asked = new ArrayList<>();
    for (Object o : node.unary) {
      if (o instanceof GetLeaderRequest) {
        asked.add(((GetLeaderRequest) o).getElection());
      }
    }
    assertEquals(List.of("jobs", "empty", ""), asked);
  }

  @Test
  void optionsAreChecked() {
    assertThrows(IllegalArgumentException.class, () -> CampaignOptions.newBuilder("", "c"));
    assertThrows(IllegalArgumentException.class, () -> CampaignOptions.newBuilder(".x", "c"));
    assertThrows(IllegalArgumentException.class, () -> CampaignOptions.newBuilder("a/b", "c"));
    assertThrows(IllegalArgumentException.class, () -> CampaignOptions.newBuilder("jobs", "-c"));
    assertThrows(IllegalArgumentException.class,
        () -> CampaignOptions.newBuilder("jobs", "c").value(new byte[16 * 1024 + 1]));
    assertThrows(IllegalArgumentException.class,
        () -> CampaignOptions.newBuilder("jobs", "c").pingInterval(Duration.ZERO));
    CampaignOptions o = CampaignOptions.newBuilder("a.b_c-1", "host@x:1").build();
    assertEquals(CampaignOptions.OnLoss.RECAMPAIGN, o.onLoss());
    assertEquals(Duration.ofMillis(500), o.pingInterval());
  }
}
