package io.electd.client;

import io.electd.v1.LeaderState;
import io.electd.v1.WatchLeaderRequest;
import io.electd.v1.WatchLeaderResponse;
import io.grpc.Context;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.time.Duration;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * A running {@code WatchLeader} stream that survives the loss of nodes. It follows one node
 * at a time; when that node is unreachable, ends its stream, or reports that it cannot vouch
 * for a leader, the watch moves on to the next address, passing {@code min_epoch} so that a
 * node that is behind cannot take it back in time, and it drops anything it already reported.
 * After a full round of addresses without a leader it backs off (50 ms doubling to 2 s, with
 * jitter).
 *
 * <p>If no node answers at all during the first round (every address unreachable), the watch
 * ends with an {@link ElectdException}; once some node has answered, the watch keeps trying
 * until it is closed. Errors that another node would not fix (for example
 * {@code UNIMPLEMENTED}) end it at once.
 */
public final class LeaderWatch implements AutoCloseable {
  private final ElectionClient client;
  private final LeaderListener listener;
  private final Thread thread;
  private final CountDownLatch closing = new CountDownLatch(1);
  private final CountDownLatch done = new CountDownLatch(1);

  private volatile boolean closed;
  private volatile Context.CancellableContext current;
  private volatile long lastEpoch;
  private volatile RuntimeException failure;

  LeaderWatch(ElectionClient client, long minEpoch, LeaderListener listener) {
    this.client = client;
    this.listener = listener;
    this.lastEpoch = minEpoch;
    this.thread = new Thread(this::run, "electd-watch");
    // A forgotten watch must not keep the JVM alive.
    this.thread.setDaemon(true);
  }

  void start() {
    thread.start();
  }

  /** The highest epoch reported so far (or the {@code minEpoch} the watch started with). */
  public long lastEpoch() {
    return lastEpoch;
  }

  /**
   * Blocks until the watch is closed (returns normally) or fails.
   *
   * @throws ElectdException if no node answered in the first round, or a node rejected the call
   * @throws RuntimeException whatever the listener threw
   */
  public void await() throws InterruptedException {
    done.await();
    if (failure != null) {
      throw failure;
    }
  }

  /** Like {@link #await()}, giving up after {@code timeout}; returns true if the watch ended. */
  public boolean await(Duration timeout) throws InterruptedException {
    if (!done.await(timeout.toNanos(), TimeUnit.NANOSECONDS)) {
      return false;
    }
    if (failure != null) {
      throw failure;
    }
    return true;
  }

  /**
   * Stops the watch: cancels the stream (the node stops sending at once) and waits for the
   * watch thread to finish. After it returns the listener is not called again. Idempotent;
   * may be called from the listener itself and from signal handlers.
   */
  @Override
  public void close() {
    closed = true;
    closing.countDown();
    Context.CancellableContext ctx = current;
    if (ctx != null) {
      ctx.cancel(null);
    }
    if (Thread.currentThread() != thread) {
      try {
        done.await();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }

  private void run() {
    try {
      loop();
    } catch (InterruptedException e) {
      // Only close() ends a watch; an interrupt of this private thread means the same.
      closed = true;
    } catch (RuntimeException | Error e) {
      failure = e instanceof RuntimeException ? (RuntimeException) e : new RuntimeException(e);
    } finally {
      done.countDown();
    }
  }

  private void loop() throws InterruptedException {
    Backoff backoff = new Backoff(client.backoffInitial(), client.backoffMax());
    int n = client.size();
    int index = client.preferredIndex();
    int fruitless = 0; // attempts in a row that did not yield an elected leader
    boolean anyAnswered = false;
    while (!closed) {
      Attempt a = attempt(index);
      if (closed) {
        return;
      }
      anyAnswered |= a.answered;
      if (a.sawLeader) {
        fruitless = 0;
        backoff.reset();
      } else {
        fruitless++;
      }
      if (!anyAnswered && fruitless >= n) {
        throw client.noNodeAnswered(a.reason, a.status, null);
      }
      listener.onFailover(client.address(index), a.reason);
      index = (index + 1) % n;
      if (fruitless > 0 && fruitless % n == 0) {
        // A full round without a leader: wait before the next one (or until closed).
        closing.await(backoff.next().toNanos(), TimeUnit.NANOSECONDS);
      }
    }
  }

  /** Follows the stream of one node until there is a reason to leave it. */
  private Attempt attempt(int index) {
    Attempt a = new Attempt();
    Context.CancellableContext ctx = Context.current().withCancellation();
    current = ctx;
    if (closed) { // close() ran before it could see this context
      ctx.cancel(null);
      return a;
    }
    WatchLeaderRequest request = WatchLeaderRequest.newBuilder().setMinEpoch(lastEpoch).build();
    try {
      Iterator<WatchLeaderResponse> stream;
      // The call binds to the context current when it starts, so cancelling ctx cancels it.
      Context previous = ctx.attach();
      try {
        stream = client.stub(index).watchLeader(request);
      } finally {
        ctx.detach(previous);
      }
      a.reason = "stream ended";
      while (stream.hasNext()) {
        WatchLeaderResponse response = stream.next();
        a.answered = true;
        if (response.getState() != LeaderState.LEADER_STATE_ELECTED || !response.hasLeader()) {
          a.reason = response.getResponderId() + " cannot vouch for a leader: " + response.getReason();
          break;
        }
        a.sawLeader = true;
        long epoch = response.getLeader().getEpoch();
        // A node may repeat what another node already told us (or, if it lags, hold it back);
        // only a strictly newer epoch is news.
        if (epoch > lastEpoch && !closed) {
          lastEpoch = epoch;
          client.setPreferredIndex(index);
          listener.onLeader(response.getLeader());
        }
      }
    } catch (StatusRuntimeException e) {
      Status status = e.getStatus();
      if (closed) {
        return a;
      }
      // CANCELLED that we did not ask for comes from the node or a proxy dropping the
      // stream (for example on shutdown): as retryable as UNAVAILABLE.
      if (!ElectionClient.isFailoverCode(status.getCode()) && status.getCode() != Status.Code.CANCELLED) {
        throw new ElectdException(
            client.address(index) + " rejected WatchLeader: " + ElectionClient.describe(status),
            List.of(client.address(index)), status, e);
      }
      a.status = status;
      a.reason = ElectionClient.describe(status);
    } finally {
      // Leaving a stream early (state UNKNOWN) must end it on the node too.
      ctx.cancel(null);
    }
    return a;
  }

  private static final class Attempt {
    boolean answered;
    boolean sawLeader;
    String reason = "closed";
    Status status;
  }
}
