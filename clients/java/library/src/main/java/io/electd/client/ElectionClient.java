package io.electd.client;

import io.electd.v1.ElectionServiceGrpc;
import io.electd.v1.GetLeaderRequest;
import io.electd.v1.GetLeaderResponse;
import io.electd.v1.ListNodesRequest;
import io.electd.v1.ListElectionsRequest;
import io.electd.v1.ListElectionsResponse;
import io.electd.v1.ListNodesResponse;
import io.electd.v1.ResignRequest;
import io.electd.v1.ResignResponse;
import io.grpc.CallOptions;
import io.grpc.ClientCall;
import io.grpc.ConnectivityState;
import io.grpc.ManagedChannel;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.shaded.io.netty.channel.ChannelOption;
import io.grpc.netty.shaded.io.netty.channel.ConnectTimeoutException;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.StreamObserver;
import java.lang.reflect.Field;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * A client for a cluster of electd nodes. Any node answers for the whole cluster, so the
 * client keeps one channel per address and moves on to the next address when the node in use
 * is unreachable, too slow, or answers {@code UNAVAILABLE}, {@code DEADLINE_EXCEEDED} or
 * {@code RESOURCE_EXHAUSTED} (the failover contract of clients/README.md).
 *
 * <pre>{@code
 * try (ElectionClient client = ElectionClient.forAddresses("10.0.0.1:7001", "10.0.0.2:7001")) {
 *   Leader leader = client.getLeader().getLeader();
 *   client.listNodesAsync().thenAccept(r -> System.out.println(r.getNodesCount()));
 * }
 * }</pre>
 *
 * <p>Every attempt on an address has a <em>connect deadline</em> (default 2 s): if the channel
 * has no working HTTP/2 connection by then (the address drops packets, or the process accepts
 * TCP but never speaks HTTP/2), the attempt is abandoned and the next address is tried. Unary
 * attempts also have the <em>call deadline</em> (default 2 s, counted from the start of the
 * attempt). Connections send HTTP/2 keepalive pings every 3 s, also while no call is open, and
 * close when a ping is not acknowledged within 3 s.
 *
 * <p>TLS (clients/README.md, "TLS") is on when any of {@link Builder#tlsCa}, {@link
 * Builder#tlsCert} with {@link Builder#tlsKey}, or {@link Builder#tlsServerName} is given; a
 * handshake that fails is a connection failure ({@code UNAVAILABLE}, next address). The PEM
 * files are read again for each new connection whenever they changed, so a rotated client
 * certificate is used without a new client.
 *
 * <p>Thread-safe; create one per cluster and share it. {@link #close()} ends every call and
 * watch of this client at once.
 */
public final class ElectionClient implements AutoCloseable {
  /** Default deadline of each unary attempt. */
  public static final Duration DEFAULT_CALL_TIMEOUT = Duration.ofSeconds(2);
  /** Default time an attempt waits for a working connection to an address. */
  public static final Duration DEFAULT_CONNECT_TIMEOUT = Duration.ofSeconds(2);
  /** Default time a watch waits for the first message of a node's stream. */
  public static final Duration DEFAULT_FIRST_MESSAGE_TIMEOUT = Duration.ofSeconds(2);
  /** Default interval of HTTP/2 keepalive pings. */
  public static final Duration DEFAULT_KEEPALIVE_TIME = Duration.ofSeconds(3);
  /** Default time to wait for a keepalive ping's acknowledgement before closing the connection. */
  public static final Duration DEFAULT_KEEPALIVE_TIMEOUT = Duration.ofSeconds(3);

  private static final String USER_AGENT = "electd-java/0.1.0";
  private static final Logger logger = Logger.getLogger(ElectionClient.class.getName());
  private static final long GRPC_MIN_KEEPALIVE_NANOS = TimeUnit.SECONDS.toNanos(10);
  private static final Duration CLOSE_WAIT = Duration.ofMillis(900);
  private static volatile boolean keepAliveWarned;

  private final List<String> addresses;
  private final List<ManagedChannel> channels;
  private final Duration callTimeout;
  private final Duration connectTimeout;
  private final Duration firstMessageTimeout;
  private final Duration backoffInitial;
  private final Duration backoffMax;
  private final Executor listenerExecutor;
  // Connect deadlines of unary attempts; one daemon thread for the whole client.
  private final ScheduledThreadPoolExecutor timer;
  // The address that answered last: calls start there instead of always at the first
  // address, so a dead first node costs one failed attempt, not one per call.
  private final AtomicInteger preferred = new AtomicInteger();
  private final Set<LeaderWatch> watches = ConcurrentHashMap.newKeySet();
  private final Set<Campaign> campaigns = ConcurrentHashMap.newKeySet();
  private final Set<UnaryCall<?, ?>> calls = ConcurrentHashMap.newKeySet();
  private volatile boolean closed;

  private ElectionClient(Builder b, Tls tls) {
    this.addresses = List.copyOf(b.addresses);
    this.callTimeout = b.callTimeout;
    this.connectTimeout = b.connectTimeout;
    this.firstMessageTimeout = b.firstMessageTimeout;
    this.backoffInitial = b.backoffInitial;
    this.backoffMax = b.backoffMax;
    this.listenerExecutor = b.listenerExecutor;
    this.timer = new ScheduledThreadPoolExecutor(1, r -> {
      Thread t = new Thread(r, "electd-client-timer");
      t.setDaemon(true);
      return t;
    });
    this.timer.setRemoveOnCancelPolicy(true);
    List<ManagedChannel> chans = new ArrayList<>(addresses.size());
    for (String address : addresses) {
      chans.add(newChannel(address, b, tls)); // channels connect lazily, on their first call
    }
    this.channels = List.copyOf(chans);
  }

  private static ManagedChannel newChannel(String address, Builder b, Tls tls) {
    NettyChannelBuilder builder = NettyChannelBuilder
        .forTarget(address, tls.credentials())
        .userAgent(USER_AGENT)
        // A black-holed address fails the TCP connect after the connect deadline rather than
        // the kernel's minutes; the attempt's own connect deadline (below) also covers the
        // HTTP/2 handshake, which this option does not.
        .withOption(ChannelOption.CONNECT_TIMEOUT_MILLIS,
            (int) Math.min(Integer.MAX_VALUE, Math.max(1, b.connectTimeout.toMillis())));
    if (tls.serverName != null) {
      // The name the node's certificate must carry, and the SNI: one for every address.
      builder.overrideAuthority(tls.serverName);
    }
    keepAlive(builder, b.keepAliveTime, b.keepAliveTimeout);
    return builder.build();
  }

  /**
   * HTTP/2 pings notice a node that froze or vanished without closing its connections (SIGSTOP,
   * power loss, a partition), which would otherwise hang a watch for good.
   */
  private static void keepAlive(NettyChannelBuilder builder, Duration time, Duration timeout) {
    builder.keepAliveTime(time.toNanos(), TimeUnit.NANOSECONDS)
        .keepAliveTimeout(timeout.toNanos(), TimeUnit.NANOSECONDS)
        .keepAliveWithoutCalls(true);
    if (time.toNanos() >= GRPC_MIN_KEEPALIVE_NANOS) {
      return;
    }
    // grpc-java raises any keepalive time below 10 s to 10 s, to spare servers that answer
    // frequent pings with GOAWAY. electd nodes accept a ping every second and the contract
    // wants one every 3 s (a frozen node left within 6 s, not 13 s), so set the builder's
    // field past the clamp. ElectionClientTest's frozen-node test fails if this stops working
    // with a newer grpc-java; until fixed, keepalive then runs at 10 s and a warning says so.
    try {
      Field field = NettyChannelBuilder.class.getDeclaredField("keepAliveTimeNanos");
      field.setAccessible(true);
      field.setLong(builder, time.toNanos());
    } catch (ReflectiveOperationException | RuntimeException e) {
      if (!keepAliveWarned) {
        keepAliveWarned = true;
        logger.log(Level.WARNING, "electd client: cannot set the keepalive time below grpc-java's "
            + "10 s minimum; frozen nodes are found later than the contract says", e);
      }
    }
  }

  /** A client with default settings for the given {@code HOST:PORT} addresses. */
  public static ElectionClient forAddresses(String... addresses) {
    return newBuilder().addresses(List.of(addresses)).build();
  }

  /** A builder for a client with non-default settings; it needs at least one address. */
  public static Builder newBuilder() {
    return new Builder();
  }

  /**
   * Checks an address up front, so that a typo is a usage error rather than a retry loop:
   * throws {@link IllegalArgumentException} unless {@code address} is {@code HOST:PORT} with a
   * port from 1 to 65535. An IPv6 host goes in brackets, as in {@code [::1]:7001}.
   * {@link Builder#build()} checks every address this way.
   *
   * @throws IllegalArgumentException if {@code address} is not {@code HOST:PORT}
   */
  public static void validateAddress(String address) {
    int colon = address.lastIndexOf(':');
    String host = colon > 0 ? address.substring(0, colon) : "";
    String port = colon > 0 ? address.substring(colon + 1) : "";
    if (host.contains(":") && !(host.startsWith("[") && host.endsWith("]"))) {
      host = "";
    }
    boolean ok = !host.isEmpty() && !host.equals("[]") && port.matches("[0-9]{1,5}")
        && Integer.parseInt(port) >= 1 && Integer.parseInt(port) <= 65535;
    if (!ok) {
      throw new IllegalArgumentException("bad address '" + address + "': want HOST:PORT");
    }
  }

  /** The addresses this client uses, in order. */
  public List<String> addresses() {
    return addresses;
  }

  /**
   * Returns the current leader. Tries each address once, starting with the one that answered
   * last, each attempt with the connect and call deadlines.
   *
   * @throws ElectdException if no node answered, a node rejected the call, or the client was
   *     closed or the thread interrupted meanwhile ({@code CANCELLED}; the interrupt flag stays
   *     set)
   */
  public GetLeaderResponse getLeader() {
    return join(getLeaderAsync());
  }

  /**
   * {@link #getLeader()} without blocking: the future completes with the response, or
   * exceptionally with an {@link ElectdException}, on one of gRPC's threads. Cancelling the
   * future cancels the call on the node.
   */
  public CompletableFuture<GetLeaderResponse> getLeaderAsync() {
    return callUnary(ElectionServiceGrpc.getGetLeaderMethod(), GetLeaderRequest.getDefaultInstance());
  }

  /**
   * Returns the current leader of the named election {@code election} ({@code ""}: the
   * election of the electd nodes, as {@link #getLeader()}).
   *
   * @throws ElectdException {@code NOT_FOUND} when the named election has no leader, {@code
   *     INVALID_ARGUMENT} for a malformed name, or as {@link #getLeader()}
   */
  public GetLeaderResponse getLeader(String election) {
    return join(getLeaderAsync(election));
  }

  /** {@link #getLeader(String)} without blocking; see {@link #getLeaderAsync()}. */
  public CompletableFuture<GetLeaderResponse> getLeaderAsync(String election) {
    return callUnary(ElectionServiceGrpc.getGetLeaderMethod(),
        GetLeaderRequest.newBuilder().setElection(Objects.requireNonNull(election, "election")).build());
  }

  /** Returns every live member, in election order (the leader first). */
  public ListNodesResponse listNodes() {
    return listNodes(Map.of());
  }

  /**
   * Returns the live members whose labels contain every pair of {@code labelSelector}, in
   * election order.
   *
   * @throws ElectdException if no node answered, or a node rejected the call (for example
   *     {@code INVALID_ARGUMENT} for an empty label key)
   */
  public ListNodesResponse listNodes(Map<String, String> labelSelector) {
    return join(listNodesAsync(labelSelector));
  }

  /** {@link #listNodes()} without blocking; see {@link #getLeaderAsync()}. */
  public CompletableFuture<ListNodesResponse> listNodesAsync() {
    return listNodesAsync(Map.of());
  }

  /** {@link #listNodes(Map)} without blocking; see {@link #getLeaderAsync()}. */
  public CompletableFuture<ListNodesResponse> listNodesAsync(Map<String, String> labelSelector) {
    return listNodesAsync("", labelSelector);
  }

  /**
   * Returns the members of the named election {@code election} (its candidates, never_lead ones
   * included) whose labels contain every pair of {@code labelSelector}, in election order;
   * {@code ""}: the electd nodes, as {@link #listNodes(Map)}.
   */
  public ListNodesResponse listNodes(String election, Map<String, String> labelSelector) {
    return join(listNodesAsync(election, labelSelector));
  }

  /** {@link #listNodes(String, Map)} without blocking; see {@link #getLeaderAsync()}. */
  public CompletableFuture<ListNodesResponse> listNodesAsync(String election, Map<String, String> labelSelector) {
    ListNodesRequest request = ListNodesRequest.newBuilder()
        .setElection(Objects.requireNonNull(election, "election"))
        .putAllLabelSelector(labelSelector)
        .build();
    return callUnary(ElectionServiceGrpc.getListNodesMethod(), request);
  }

  /**
   * Ends the current term of the named election {@code election} on an operator's behalf: the
   * leader's entry is deleted, its candidate is told (Lost, reason DELETED) and the next one
   * leads once it acknowledged or its lease ran out.
   *
   * @param epoch the current leader's epoch (as {@link #getLeader(String)} reports it)
   * @throws ElectdException {@code FAILED_PRECONDITION} (the message names the current epoch)
   *     when {@code epoch} is not the current leader's, {@code NOT_FOUND} when the election has
   *     no leader, {@code INVALID_ARGUMENT} for a malformed or empty name or an epoch that is not
   *     positive, {@code PERMISSION_DENIED} without the write right, or no node answered
   */
  public ResignResponse resign(String election, long epoch) {
    return join(resignAsync(election, epoch));
  }

  /** {@link #resign(String, long)} without blocking; see {@link #getLeaderAsync()}. */
  public CompletableFuture<ResignResponse> resignAsync(String election, long epoch) {
    ResignRequest request = ResignRequest.newBuilder()
        .setElection(Objects.requireNonNull(election, "election"))
        .setEpoch(epoch)
        .build();
    return callUnary(ElectionServiceGrpc.getResignMethod(), request);
  }

  /** Lists the named elections (sorted by name, with their number of candidates). */
  public ListElectionsResponse listElections() {
    return join(listElectionsAsync());
  }

  /** {@link #listElections()} without blocking; see {@link #getLeaderAsync()}. */
  public CompletableFuture<ListElectionsResponse> listElectionsAsync() {
    return callUnary(ElectionServiceGrpc.getListElectionsMethod(), ListElectionsRequest.getDefaultInstance());
  }

  /**
   * Campaigns in a named election: runs {@code work} on its own thread for each term this
   * candidate leads, cancels it before the lease deadline passes, and on a loss campaigns again
   * or stops as {@link CampaignOptions#onLoss()} says. Returns at once; see {@link Campaign}.
   *
   * <pre>{@code
   * try (Campaign campaign = client.campaign(
   *     CampaignOptions.newBuilder("billing-cron", "host-a").build(),
   *     term -> {
   *       while (term.isValid()) {
   *         runOneJob(term.epoch()); // the epoch fences every write
   *       }
   *     })) {
   *   campaign.await();
   * }
   * }</pre>
   *
   * @throws IllegalStateException if this client is closed
   */
  public Campaign campaign(CampaignOptions options, LeaderWork work) {
    Objects.requireNonNull(options, "options");
    Objects.requireNonNull(work, "work");
    if (closed) {
      throw new IllegalStateException("the electd client is closed");
    }
    Campaign campaign = new Campaign(this, options, work);
    campaigns.add(campaign);
    if (closed) {
      campaigns.remove(campaign);
      throw new IllegalStateException("the electd client is closed");
    }
    campaign.start();
    return campaign;
  }

  /** {@code watchLeader(0, listener)}: every leader from the current one on. */
  public LeaderWatch watchLeader(LeaderListener listener) {
    return watchLeader(0, listener);
  }

  /**
   * Starts watching the leader and returns at once. The listener hears of each leader whose
   * epoch is greater than {@code afterEpoch} and than every epoch it was told before, across
   * failovers; {@link LeaderListener#onFailover} each time the watch leaves an address. Close
   * the returned watch to stop.
   *
   * @param afterEpoch the highest epoch the caller already handled (a saved epoch), or 0 for
   *     every leader from the current one on
   * @throws IllegalStateException if this client is closed
   */
  public LeaderWatch watchLeader(long afterEpoch, LeaderListener listener) {
    return watchLeader("", afterEpoch, listener);
  }

  /**
   * {@link #watchLeader(long, LeaderListener)} for the named election {@code election} ({@code
   * ""}: the electd nodes). For a named election the listener also hears of a new value the
   * leader proclaimed (same epoch, higher {@code Node.value_revision}); a node that says the
   * election has no leader ({@code LEADER_STATE_VACANT}) is not left.
   */
  public LeaderWatch watchLeader(String election, long afterEpoch, LeaderListener listener) {
    Objects.requireNonNull(election, "election");
    if (afterEpoch < 0) {
      throw new IllegalArgumentException("afterEpoch must not be negative: " + afterEpoch);
    }
    Objects.requireNonNull(listener, "listener");
    if (closed) {
      throw new IllegalStateException("the electd client is closed");
    }
    LeaderWatch watch = new LeaderWatch(this, election, afterEpoch, listener, listenerExecutor);
    watches.add(watch);
    if (closed) { // close() ran meanwhile and may not have seen it
      watches.remove(watch);
      throw new IllegalStateException("the electd client is closed");
    }
    watch.start();
    return watch;
  }

  /**
   * Ends every call, watch and campaign of this client at once (calls fail with {@code
   * CANCELLED}, watches end as if closed, campaigns cancel their work and their stream without
   * resigning: resign them first for a prompt hand-over) and shuts the channels down. Returns
   * within about a second.
   * Idempotent.
   */
  @Override
  public void close() {
    closed = true;
    for (LeaderWatch watch : watches) {
      watch.cancel();
    }
    for (Campaign campaign : campaigns) {
      campaign.cancel();
    }
    for (UnaryCall<?, ?> call : calls) {
      call.fail(closedError(null));
    }
    for (ManagedChannel channel : channels) {
      channel.shutdownNow();
    }
    timer.shutdownNow();
    long deadline = System.nanoTime() + CLOSE_WAIT.toNanos();
    try {
      for (LeaderWatch watch : watches) {
        watch.awaitStopped(deadline);
      }
      for (Campaign campaign : campaigns) {
        campaign.awaitStopped(deadline);
      }
      for (ManagedChannel channel : channels) {
        long left = deadline - System.nanoTime();
        if (left > 0) {
          channel.awaitTermination(left, TimeUnit.NANOSECONDS);
        }
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  // --- unary calls ---

  private static <T> T join(CompletableFuture<T> future) {
    try {
      return future.get();
    } catch (ExecutionException e) {
      Throwable cause = e.getCause();
      if (cause instanceof ElectdException) {
        ElectdException ee = (ElectdException) cause;
        // The same failure, with the caller's stack trace rather than a gRPC thread's.
        throw new ElectdException(ee.getMessage(), ee.addresses(), ee.status(), ee.getCause());
      }
      if (cause instanceof RuntimeException) {
        throw (RuntimeException) cause;
      }
      throw new IllegalStateException(cause);
    } catch (CancellationException e) {
      throw new ElectdException("the call was cancelled", List.of(), Status.CANCELLED, e);
    } catch (InterruptedException e) {
      future.cancel(true);
      Thread.currentThread().interrupt();
      throw new ElectdException("interrupted while waiting for electd", List.of(),
          Status.CANCELLED.withDescription("interrupted"), e);
    }
  }

  private <Q, R> CompletableFuture<R> callUnary(MethodDescriptor<Q, R> method, Q request) {
    UnaryCall<Q, R> call = new UnaryCall<>(method, request, preferred.get());
    if (closed) {
      call.fail(closedError(null));
      return call.future;
    }
    calls.add(call);
    call.future.whenComplete((r, e) -> {
      calls.remove(call);
      if (e != null) {
        call.cancelCurrent(); // the caller cancelled it, or the client was closed
      }
    });
    if (closed) {
      call.fail(closedError(null));
    }
    call.attempt(0, null);
    return call.future;
  }

  /** One unary call: one attempt per address, in order, until one answers. */
  private final class UnaryCall<Q, R> {
    final CompletableFuture<R> future = new CompletableFuture<>();
    final MethodDescriptor<Q, R> method;
    final Q request;
    final int start;
    volatile CompletableFuture<R> current;

    UnaryCall(MethodDescriptor<Q, R> method, Q request, int start) {
      this.method = method;
      this.request = request;
      this.start = start;
    }

    void attempt(int i, StatusRuntimeException last) {
      if (future.isDone()) {
        return;
      }
      if (closed) {
        fail(closedError(last));
        return;
      }
      if (i == addresses.size()) {
        fail(noNodeAnswered(describe(last.getStatus()), last.getStatus(), last));
        return;
      }
      int index = (start + i) % addresses.size();
      CompletableFuture<R> attempt = callOnce(index, method, request, callTimeout);
      current = attempt;
      if (future.isDone()) {
        attempt.cancel(false);
        return;
      }
      attempt.whenComplete((response, error) -> {
        if (error == null) {
          preferred.set(index);
          future.complete(response);
          return;
        }
        StatusRuntimeException e = asStatusException(error);
        if (future.isDone()) {
          return;
        }
        if (closed) {
          fail(closedError(e));
        } else if (isFailoverCode(e.getStatus().getCode())) {
          attempt(i + 1, e);
        } else {
          fail(new ElectdException(
              addresses.get(index) + " rejected the call: " + describe(e.getStatus()),
              List.of(addresses.get(index)), e.getStatus(), e));
        }
      });
    }

    void fail(ElectdException e) {
      future.completeExceptionally(e);
    }

    void cancelCurrent() {
      CompletableFuture<R> attempt = current;
      if (attempt != null) {
        attempt.cancel(false);
      }
    }
  }

  /**
   * One unary call on one address, with the call deadline and the connect deadline. The future
   * fails with a {@link StatusRuntimeException}; cancelling it cancels the call.
   */
  <Q, R> CompletableFuture<R> callOnce(int index, MethodDescriptor<Q, R> method, Q request, Duration timeout) {
    CompletableFuture<R> result = new CompletableFuture<>();
    if (closed) {
      result.completeExceptionally(Status.CANCELLED.withDescription("client closed").asRuntimeException());
      return result;
    }
    ManagedChannel channel = channelFor(index);
    ClientCall<Q, R> call = channel.newCall(method,
        CallOptions.DEFAULT.withDeadlineAfter(timeout.toNanos(), TimeUnit.NANOSECONDS));
    AtomicBoolean connectExpired = new AtomicBoolean();
    ScheduledFuture<?> watchdog;
    try {
      watchdog = timer.schedule(() -> {
        if (!result.isDone() && channel.getState(false) != ConnectivityState.READY) {
          connectExpired.set(true);
          call.cancel("connect deadline exceeded", null);
          channel.enterIdle(); // drops the pending connection attempt
        }
      }, connectTimeout.toNanos(), TimeUnit.NANOSECONDS);
    } catch (RejectedExecutionException e) { // closed meanwhile
      result.completeExceptionally(Status.CANCELLED.withDescription("client closed").asRuntimeException());
      return result;
    }
    ClientCalls.asyncUnaryCall(call, request, new StreamObserver<R>() {
      private R value;

      @Override
      public void onNext(R v) {
        value = v;
      }

      @Override
      public void onError(Throwable t) {
        result.completeExceptionally(connectExpired.get()
            ? connectDeadlineStatus(index).withCause(t).asRuntimeException()
            : connectDeadlineOr(index, asStatusException(t)));
      }

      @Override
      public void onCompleted() {
        result.complete(value);
      }
    });
    // Registered once the call has started (a call cancelled before it starts cannot start).
    result.whenComplete((r, e) -> {
      watchdog.cancel(false);
      if (result.isCancelled()) {
        call.cancel("cancelled by the caller", null);
      }
    });
    return result;
  }

  private static StatusRuntimeException asStatusException(Throwable t) {
    if (t instanceof StatusRuntimeException) {
      return (StatusRuntimeException) t;
    }
    return Status.fromThrowable(t).asRuntimeException();
  }

  private ElectdException closedError(Throwable cause) {
    return new ElectdException("the electd client is closed", addresses,
        Status.CANCELLED.withDescription("client closed"), cause);
  }

  // --- shared with LeaderWatch ---

  int size() {
    return addresses.size();
  }

  int preferredIndex() {
    return preferred.get();
  }

  void setPreferredIndex(int index) {
    preferred.set(index);
  }

  String address(int index) {
    return addresses.get(index);
  }

  Duration backoffInitial() {
    return backoffInitial;
  }

  Duration backoffMax() {
    return backoffMax;
  }

  Duration connectTimeout() {
    return connectTimeout;
  }

  Duration firstMessageTimeout() {
    return firstMessageTimeout;
  }

  void unregister(LeaderWatch watch) {
    watches.remove(watch);
  }

  void unregister(Campaign campaign) {
    campaigns.remove(campaign);
  }

  Duration callTimeout() {
    return callTimeout;
  }

  /** The state of an address's channel, for tests; does not start a connection. */
  ConnectivityState channelState(int index) {
    return channels.get(index).getState(false);
  }

  /** The channel of an address, ready for a new attempt. */
  ManagedChannel channelFor(int index) {
    ManagedChannel channel = channels.get(index);
    // Our own backoff decides when to try a node again. A channel whose last connection
    // attempt failed waits out its own reconnect backoff (up to 2 minutes) and fails calls at
    // once meanwhile, so a node that came back would be ignored: start over from idle, so that
    // this attempt makes a fresh connection.
    if (channel.getState(false) == ConnectivityState.TRANSIENT_FAILURE) {
      channel.enterIdle();
    }
    return channel;
  }

  /**
   * The same failure as {@code e}, but said as the connect deadline when it is Netty's connect
   * timeout (set to the same deadline), so that the reason does not depend on which fired first.
   */
  StatusRuntimeException connectDeadlineOr(int index, StatusRuntimeException e) {
    Status status = connectDeadlineOr(index, e.getStatus());
    return status == e.getStatus() ? e : status.asRuntimeException();
  }

  Status connectDeadlineOr(int index, Status status) {
    for (Throwable c = status.getCause(); c != null; c = c.getCause()) {
      if (c instanceof ConnectTimeoutException) {
        return connectDeadlineStatus(index).withCause(status.getCause());
      }
    }
    return status;
  }

  Status connectDeadlineStatus(int index) {
    return Status.UNAVAILABLE.withDescription("no connection to " + addresses.get(index)
        + " within the connect deadline (" + format(connectTimeout) + ")");
  }

  ElectdException noNodeAnswered(String lastError, Status status, Throwable cause) {
    return new ElectdException(
        "no electd node answered (tried " + String.join(", ", addresses) + "); last error: "
            + lastError,
        addresses, status, cause);
  }

  /** The codes after which another node may well answer: the client fails over on them. */
  static boolean isFailoverCode(Status.Code code) {
    return code == Status.Code.UNAVAILABLE || code == Status.Code.DEADLINE_EXCEEDED
        || code == Status.Code.RESOURCE_EXHAUSTED;
  }

  static String describe(Status status) {
    String tls = tlsFailure(status.getCause());
    if (tls != null) {
      // grpc-java's own text ("io exception", then the Netty pipeline) says nothing useful.
      return status.getCode().name() + ": TLS handshake failed: " + tls;
    }
    StringBuilder sb = new StringBuilder(status.getCode().name());
    if (status.getDescription() != null) {
      sb.append(": ").append(status.getDescription());
    }
    if (status.getCause() != null && status.getCause().getMessage() != null
        && !(status.getCause() instanceof StatusRuntimeException)) {
      sb.append(" (").append(status.getCause().getMessage()).append(')');
    }
    return sb.toString();
  }

  /**
   * If {@code t} is (or is caused by) a TLS failure, its most specific message (say, "No
   * subject alternative names matching IP address 127.0.0.1 found"); else {@code null}.
   */
  static String tlsFailure(Throwable t) {
    boolean tls = false;
    String message = null;
    for (Throwable c = t; c != null; c = c.getCause() == c ? null : c.getCause()) {
      if (c instanceof javax.net.ssl.SSLException || c instanceof java.security.cert.CertificateException) {
        tls = true;
      }
      if (tls && c.getMessage() != null && !c.getMessage().isBlank()) {
        message = c.getMessage().lines().findFirst().orElse(c.getMessage());
      }
    }
    return tls ? (message == null ? "no details" : message) : null;
  }

  static String format(Duration d) {
    long ms = d.toMillis();
    return ms % 1000 == 0 ? (ms / 1000) + " s" : ms + " ms";
  }

  /** Builds an {@link ElectionClient}. */
  public static final class Builder {
    private List<String> addresses = List.of();
    private Duration callTimeout = DEFAULT_CALL_TIMEOUT;
    private Duration connectTimeout = DEFAULT_CONNECT_TIMEOUT;
    private Duration firstMessageTimeout = DEFAULT_FIRST_MESSAGE_TIMEOUT;
    private Duration keepAliveTime = DEFAULT_KEEPALIVE_TIME;
    private Duration keepAliveTimeout = DEFAULT_KEEPALIVE_TIMEOUT;
    private Duration backoffInitial = Backoff.INITIAL;
    private Duration backoffMax = Backoff.MAX;
    private Executor listenerExecutor;
    private Path tlsCa;
    private Path tlsCert;
    private Path tlsKey;
    private String tlsServerName;

    private Builder() {}

    /** The nodes' {@code HOST:PORT} addresses; at least one. */
    public Builder addresses(List<String> addresses) {
      this.addresses = List.copyOf(addresses);
      return this;
    }

    /** The nodes' {@code HOST:PORT} addresses; at least one. */
    public Builder addresses(String... addresses) {
      return addresses(List.of(addresses));
    }

    /** The deadline of each unary attempt, from its start (default 2 s). */
    public Builder callTimeout(Duration callTimeout) {
      this.callTimeout = positive(callTimeout, "callTimeout");
      return this;
    }

    /**
     * How long an attempt waits for a working connection to an address, TCP and HTTP/2
     * handshake included, before it moves on to the next address (default 2 s).
     */
    public Builder connectTimeout(Duration connectTimeout) {
      this.connectTimeout = positive(connectTimeout, "connectTimeout");
      return this;
    }

    /**
     * How long a watch waits for the first message of a node's stream (a node sends its
     * current state at once) before it moves on to the next address (default 2 s).
     */
    public Builder firstMessageTimeout(Duration firstMessageTimeout) {
      this.firstMessageTimeout = positive(firstMessageTimeout, "firstMessageTimeout");
      return this;
    }

    /**
     * HTTP/2 keepalive: a ping after {@code time} without reads (also with no call open), the
     * connection closed if the ack takes longer than {@code timeout} (default 3 s and 3 s: a
     * frozen node is left within 6 s). electd nodes accept a ping every second.
     */
    public Builder keepAlive(Duration time, Duration timeout) {
      this.keepAliveTime = positive(time, "keepalive time");
      this.keepAliveTimeout = positive(timeout, "keepalive timeout");
      return this;
    }

    /** The watch's backoff between full rounds over the addresses (default 50 ms to 2 s). */
    public Builder backoff(Duration initial, Duration max) {
      if (initial.isNegative() || initial.isZero() || max.compareTo(initial) < 0) {
        throw new IllegalArgumentException("need 0 < initial <= max");
      }
      this.backoffInitial = initial;
      this.backoffMax = max;
      return this;
    }

    /**
     * Where watches call their {@link LeaderListener}: one call at a time, in order, on this
     * executor. {@code null} (the default): on each watch's own thread.
     */
    public Builder listenerExecutor(Executor executor) {
      this.listenerExecutor = executor;
      return this;
    }

    /**
     * TLS: the PEM file of one or more CA certificates that the nodes' certificates must chain
     * to (default, when TLS is on: the JDK's trust store). Turns TLS on. {@code null} or an
     * empty path: not given.
     */
    public Builder tlsCa(Path tlsCa) {
      this.tlsCa = tlsCa;
      return this;
    }

    /**
     * TLS: the PEM file of the client's certificate chain, leaf first, presented for mutual
     * TLS; needs {@link #tlsKey}. Its URI/DNS SANs (else its CN) are the identity the nodes'
     * {@code --allow-read}/{@code --allow-write} match. Turns TLS on.
     */
    public Builder tlsCert(Path tlsCert) {
      this.tlsCert = tlsCert;
      return this;
    }

    /**
     * TLS: the PEM file of {@link #tlsCert}'s private key, unencrypted (PKCS#8, or traditional
     * RSA or EC). Turns TLS on.
     */
    public Builder tlsKey(Path tlsKey) {
      this.tlsKey = tlsKey;
      return this;
    }

    /**
     * TLS: the DNS name the nodes' certificates must carry, checked instead of each address's
     * host and sent as SNI; one name for all addresses. Turns TLS on. {@code null} or empty:
     * not given (each address's host is checked).
     */
    public Builder tlsServerName(String tlsServerName) {
      this.tlsServerName = tlsServerName;
      return this;
    }

    private static Duration positive(Duration d, String what) {
      if (d.isNegative() || d.isZero()) {
        throw new IllegalArgumentException(what + " must be positive");
      }
      return d;
    }

    /**
     * The client. Its channels connect lazily, on the first call.
     *
     * @throws IllegalArgumentException if there is no address or one is not {@code HOST:PORT}
     * @throws ElectdException if the TLS options are wrong: {@code tlsCert} without {@code
     *     tlsKey} or the other way round, or a file that cannot be read or parsed (the message
     *     names the option and the path; {@code status()} is {@code INVALID_ARGUMENT}, {@code
     *     addresses()} empty)
     */
    public ElectionClient build() {
      if (addresses.isEmpty()) {
        throw new IllegalArgumentException("at least one address is needed");
      }
      for (String address : addresses) {
        validateAddress(address);
      }
      Tls tls = Tls.create(tlsCa, tlsCert, tlsKey, tlsServerName);
      return new ElectionClient(this, tls);
    }
  }
}
