package io.electd.client;

import io.electd.v1.ElectionServiceGrpc;
import io.electd.v1.GetLeaderRequest;
import io.electd.v1.GetLeaderResponse;
import io.electd.v1.ListNodesRequest;
import io.electd.v1.ListNodesResponse;
import io.grpc.ConnectivityState;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Function;

/**
 * A client for a cluster of electd nodes. Any node answers for the whole cluster, so the
 * client keeps one channel per address and moves on to the next address (round-robin) when
 * the node in use is unreachable or answers {@code UNAVAILABLE} or {@code DEADLINE_EXCEEDED}.
 *
 * <pre>{@code
 * try (ElectionClient client = ElectionClient.forAddresses("10.0.0.1:7001", "10.0.0.2:7001")) {
 *   Leader leader = client.getLeader().getLeader();
 * }
 * }</pre>
 *
 * <p>Thread-safe; create one per cluster and share it.
 */
public final class ElectionClient implements AutoCloseable {
  /** Default deadline of each unary attempt. */
  public static final Duration DEFAULT_CALL_TIMEOUT = Duration.ofSeconds(2);

  private static final String USER_AGENT = "electd-java/0.1.0";

  private final List<String> addresses;
  private final List<ManagedChannel> channels;
  private final Duration callTimeout;
  private final Duration backoffInitial;
  private final Duration backoffMax;
  // The address that answered last: calls start there instead of always at the first
  // address, so a dead first node costs one failed attempt, not one per call.
  private final AtomicInteger preferred = new AtomicInteger();

  private ElectionClient(Builder b) {
    this.addresses = List.copyOf(b.addresses);
    this.callTimeout = b.callTimeout;
    this.backoffInitial = b.backoffInitial;
    this.backoffMax = b.backoffMax;
    List<ManagedChannel> chans = new ArrayList<>(addresses.size());
    for (String address : addresses) {
      // Channels connect lazily, on their first call.
      chans.add(
          Grpc.newChannelBuilder(address, InsecureChannelCredentials.create())
              .userAgent(USER_AGENT)
              // HTTP/2 pings notice a node that vanished without closing its connections
              // (power loss, partition), which would otherwise hang a watch forever.
              .keepAliveTime(10, TimeUnit.SECONDS)
              .keepAliveTimeout(5, TimeUnit.SECONDS)
              .build());
    }
    this.channels = List.copyOf(chans);
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
   * last, each attempt with the call timeout.
   *
   * @throws ElectdException if no node answered, or a node rejected the call
   */
  public GetLeaderResponse getLeader() {
    return callUnary(stub -> stub.getLeader(GetLeaderRequest.getDefaultInstance()));
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
    ListNodesRequest request = ListNodesRequest.newBuilder().putAllLabelSelector(labelSelector).build();
    return callUnary(stub -> stub.listNodes(request));
  }

  /**
   * Starts watching the leader on a background thread and returns at once. The listener hears
   * of each new leader with an epoch greater than {@code minEpoch} and than every epoch it was
   * told before. Close the returned watch to stop.
   *
   * @param minEpoch the highest epoch the caller already knows, or 0
   */
  public LeaderWatch watchLeader(long minEpoch, LeaderListener listener) {
    if (minEpoch < 0) {
      throw new IllegalArgumentException("minEpoch must not be negative: " + minEpoch);
    }
    LeaderWatch watch = new LeaderWatch(this, minEpoch, Objects.requireNonNull(listener));
    watch.start();
    return watch;
  }

  /** Shuts the channels down; calls and watches still running fail with CANCELLED. */
  @Override
  public void close() {
    for (ManagedChannel channel : channels) {
      channel.shutdownNow();
    }
    try {
      for (ManagedChannel channel : channels) {
        channel.awaitTermination(1, TimeUnit.SECONDS);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private <T> T callUnary(Function<ElectionServiceGrpc.ElectionServiceBlockingStub, T> call) {
    int start = preferred.get();
    StatusRuntimeException last = null;
    for (int i = 0; i < addresses.size(); i++) {
      int index = (start + i) % addresses.size();
      try {
        T result = call.apply(stub(index).withDeadlineAfter(callTimeout.toNanos(), TimeUnit.NANOSECONDS));
        preferred.set(index);
        return result;
      } catch (StatusRuntimeException e) {
        if (!isFailoverCode(e.getStatus().getCode())) {
          throw new ElectdException(
              addresses.get(index) + " rejected the call: " + describe(e.getStatus()),
              List.of(addresses.get(index)), e.getStatus(), e);
        }
        last = e;
      }
    }
    throw noNodeAnswered(describe(last.getStatus()), last.getStatus(), last);
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

  ElectionServiceGrpc.ElectionServiceBlockingStub stub(int index) {
    ManagedChannel channel = channels.get(index);
    // Our own backoff decides when to try a node again. A channel whose last connection
    // attempt failed waits out its own reconnect backoff (up to 2 minutes) and fails calls
    // at once meanwhile, so a node that came back would be ignored: reconnect now instead.
    if (channel.getState(false) == ConnectivityState.TRANSIENT_FAILURE) {
      channel.resetConnectBackoff();
    }
    return ElectionServiceGrpc.newBlockingStub(channel);
  }

  ElectdException noNodeAnswered(String lastError, Status status, Throwable cause) {
    return new ElectdException(
        "no electd node answered (tried " + String.join(", ", addresses) + "); last error: "
            + lastError,
        addresses, status, cause);
  }

  static boolean isFailoverCode(Status.Code code) {
    return code == Status.Code.UNAVAILABLE || code == Status.Code.DEADLINE_EXCEEDED;
  }

  static String describe(Status status) {
    StringBuilder sb = new StringBuilder(status.getCode().name());
    if (status.getDescription() != null) {
      sb.append(": ").append(status.getDescription());
    }
    if (status.getCause() != null && status.getCause().getMessage() != null) {
      sb.append(" (").append(status.getCause().getMessage()).append(')');
    }
    return sb.toString();
  }

  /** Builds an {@link ElectionClient}. */
  public static final class Builder {
    private List<String> addresses = List.of();
    private Duration callTimeout = DEFAULT_CALL_TIMEOUT;
    private Duration backoffInitial = Backoff.INITIAL;
    private Duration backoffMax = Backoff.MAX;

    private Builder() {}

    /** The nodes' {@code HOST:PORT} addresses; at least one. */
    public Builder addresses(List<String> addresses) {
      this.addresses = List.copyOf(addresses);
      return this;
    }

    /** The deadline of each unary attempt (default 2 s). */
    public Builder callTimeout(Duration callTimeout) {
      if (callTimeout.isNegative() || callTimeout.isZero()) {
        throw new IllegalArgumentException("callTimeout must be positive");
      }
      this.callTimeout = callTimeout;
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
     * The client. Its channels connect lazily, on the first call.
     *
     * @throws IllegalArgumentException if there is no address or one is not {@code HOST:PORT}
     */
    public ElectionClient build() {
      if (addresses.isEmpty()) {
        throw new IllegalArgumentException("at least one address is needed");
      }
      for (String address : addresses) {
        validateAddress(address);
      }
      return new ElectionClient(this);
    }
  }
}
