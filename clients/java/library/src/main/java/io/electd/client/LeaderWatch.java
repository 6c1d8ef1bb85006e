package io.electd.client;

import io.electd.v1.ElectionServiceGrpc;
import io.electd.v1.GetLeaderRequest;
import io.electd.v1.GetLeaderResponse;
import io.electd.v1.Leader;
import io.electd.v1.LeaderState;
import io.electd.v1.WatchLeaderRequest;
import io.electd.v1.WatchLeaderResponse;
import io.grpc.CallOptions;
import io.grpc.ClientCall;
import io.grpc.ConnectivityState;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Status;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executor;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A running {@code WatchLeader} stream that survives the loss of nodes. It follows one node
 * at a time and moves on to the next address when that node cannot be reached within the
 * connect deadline, sends no first message within the first-message deadline, stops
 * answering keepalive pings, ends its stream, fails it with {@code UNAVAILABLE}, {@code
 * DEADLINE_EXCEEDED} or {@code RESOURCE_EXHAUSTED}, or reports that it cannot vouch for a
 * leader; each time it calls {@link LeaderListener#onFailover}. On the next node it resumes
 * with {@code min_epoch} = the last epoch reported + 1 and reports only strictly newer
 * epochs, so a change is never reported twice or out of order. After a full round of
 * addresses without a leader it backs off (50 ms doubling to 2 s, full jitter).
 *
 * <p>If no node answers at all during the first round (every address unreachable or
 * refusing), the watch ends with an {@link ElectdException}; once some node has answered,
 * the watch keeps trying until it is closed. Errors that another node would not fix (for
 * example {@code PERMISSION_DENIED}) end it at once.
 *
 * <p>{@link #close()} ends it at once, also in the middle of a backoff or of a connection
 * attempt.
 */
public final class LeaderWatch implements AutoCloseable {
  private static final AtomicInteger THREADS = new AtomicInteger();
  private static final Event CLOSE = new Event(-1, null, null, false);

  private final ElectionClient client;
  private final String election; // "" for the electd nodes' own election
  private final LeaderListener listener;
  private final SerialDispatcher dispatcher;
  private final Thread thread;
  // Everything the watch thread waits for: stream messages and ends (tagged with the attempt
  // they belong to, so that a late event of an abandoned stream is ignored) and CLOSE.
  private final LinkedBlockingQueue<Event> events = new LinkedBlockingQueue<>();
  private final CountDownLatch done = new CountDownLatch(1);
  private final CompletableFuture<Void> completion = new CompletableFuture<>();

  private volatile boolean closed;
  private volatile ClientCall<?, ?> current;
  private volatile long lastEpoch;
  // A named election: the value_revision last reported for lastEpoch (MAX_VALUE: none; the
  // afterEpoch term's values count as handled).
  private long lastRevision = Long.MAX_VALUE;
  private volatile RuntimeException failure;
  private long attempts; // watch thread only

  /** A message, the end of a stream (status), or the stream being open on a ready connection. */
  private record Event(long attempt, WatchLeaderResponse message, Status status, boolean ready) {}

  LeaderWatch(ElectionClient client, String election, long afterEpoch, LeaderListener listener,
      Executor executor) {
    this.client = client;
    this.election = election;
    this.listener = listener;
    this.lastEpoch = afterEpoch;
    this.dispatcher = new SerialDispatcher(executor);
    this.thread = new Thread(this::run, "electd-watch-" + THREADS.incrementAndGet());
    // A forgotten watch must not keep the JVM alive.
    this.thread.setDaemon(true);
  }

  void start() {
    thread.start();
  }

  /**
   * The highest epoch reported so far (or the {@code afterEpoch} the watch started with): save
   * it, and pass it to {@link ElectionClient#watchLeader(long, LeaderListener)} to resume.
   */
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
    if (!completion.isDone()) {
      done.await();
    }
    if (failure != null) {
      throw failure;
    }
  }

  /** Like {@link #await()}, giving up after {@code timeout}; returns true if the watch ended. */
  public boolean await(Duration timeout) throws InterruptedException {
    if (!completion.isDone() && !done.await(timeout.toNanos(), TimeUnit.NANOSECONDS)) {
      return false;
    }
    if (failure != null) {
      throw failure;
    }
    return true;
  }

  /**
   * Completes when the watch has ended and its listener will not be called again: normally
   * when it was closed, exceptionally with what {@link #await()} would throw.
   */
  public CompletableFuture<Void> completion() {
    return completion.copy();
  }

  /**
   * Stops the watch at once: cancels the stream (the node stops sending) and any pending
   * connection attempt or backoff, and waits for the watch to finish. After it returns the
   * listener is not called again. Idempotent; may be called from the listener itself (it then
   * returns at once) and from signal handlers.
   */
  @Override
  public void close() {
    cancel();
    if (Thread.currentThread() == thread || dispatcher.onCurrentThread()) {
      return;
    }
    boolean interrupted = false;
    while (!completion.isDone()) {
      try {
        done.await();
        break;
      } catch (InterruptedException e) {
        interrupted = true;
      }
    }
    if (interrupted) {
      Thread.currentThread().interrupt();
    }
  }

  /** Starts closing without waiting. */
  void cancel() {
    closed = true;
    events.add(CLOSE);
    ClientCall<?, ?> call = current;
    if (call != null) {
      call.cancel("watch closed", null);
    }
  }

  /** Waits until the watch has finished or {@code deadline} (System.nanoTime()) passed. */
  void awaitStopped(long deadline) throws InterruptedException {
    if (Thread.currentThread() == thread || dispatcher.onCurrentThread()) {
      return;
    }
    done.await(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
  }

  private void run() {
    try {
      loop();
    } catch (InterruptedException e) {
      // Only close() ends a watch; an interrupt of this private thread means the same.
      closed = true;
    } catch (RuntimeException e) {
      failure = e;
    } catch (Error e) {
      failure = new IllegalStateException("the watch failed: " + e, e);
    } finally {
      client.unregister(this);
      // Through the dispatcher, so that the watch counts as done only after the listener's
      // last call has returned.
      // The future first, then the latch: whoever await() released finds completion() done.
      // The future's dependents run here before the latch opens; await() and close() called
      // from them return at once, as completion.isDone() already holds.
      Runnable finish = () -> {
        if (failure != null) {
          completion.completeExceptionally(failure);
        } else {
          completion.complete(null);
        }
        done.countDown();
      };
      try {
        dispatcher.execute(finish);
      } catch (RejectedExecutionException e) {
        finish.run();
      }
    }
  }

  /** Calls the listener: at once on this thread, or queued on the listener executor. */
  private void deliver(Runnable call) {
    if (dispatcher.inline()) {
      call.run(); // a throwing listener ends the loop, and the watch with it
      return;
    }
    dispatcher.execute(() -> {
      if (closed) {
        return;
      }
      try {
        call.run();
      } catch (RuntimeException e) {
        failure = e;
        cancel();
      } catch (Error e) {
        failure = new IllegalStateException("the listener failed: " + e, e);
        cancel();
      }
    });
  }

  private void loop() throws InterruptedException {
    Backoff backoff = new Backoff(client.backoffInitial(), client.backoffMax());
    int n = client.size();
    int index = client.preferredIndex();
    int fruitless = 0; // attempts in a row that did not yield an elected leader
    boolean anyAnswered = false;
    while (!closed) {
      Attempt a = follow(index);
      if (closed) {
        return;
      }
      if (a.rejection != null) {
        throw a.rejection;
      }
      anyAnswered |= a.answered;
      if (a.sawLeader) {
        fruitless = 0;
        backoff.reset();
      } else {
        fruitless++;
      }
      String address = client.address(index);
      String reason = a.reason;
      deliver(() -> listener.onFailover(address, reason));
      if (!anyAnswered && fruitless >= n) {
        throw client.noNodeAnswered(a.reason, a.status, null);
      }
      index = (index + 1) % n;
      if (fruitless > 0 && fruitless % n == 0) {
        // A full round without a leader: wait before the next one (or until closed).
        pause(backoff.next());
      }
    }
  }

  /** Waits for {@code delay}, or until closed. */
  private void pause(Duration delay) throws InterruptedException {
    long until = System.nanoTime() + delay.toNanos();
    while (!closed) {
      long left = until - System.nanoTime();
      if (left <= 0) {
        return;
      }
      events.poll(left, TimeUnit.NANOSECONDS); // CLOSE wakes it; late events are dropped
    }
  }

  /** Follows the stream of one node until there is a reason to leave it. */
  private Attempt follow(int index) throws InterruptedException {
    Attempt a = new Attempt();
    long id = ++attempts;
    long last = lastEpoch;
    boolean named = !election.isEmpty();
    // A named election: ask from the last epoch itself, so that the node sends its current
    // state at once (a value proclaimed meanwhile in that term is news too).
    long minEpoch = named || last == Long.MAX_VALUE ? last : last + 1;
    ManagedChannel channel = client.channelFor(index);
    ClientCall<WatchLeaderRequest, WatchLeaderResponse> call =
        channel.newCall(ElectionServiceGrpc.getWatchLeaderMethod(), CallOptions.DEFAULT);
    CompletableFuture<GetLeaderResponse> probe = null;
    AtomicBoolean following = new AtomicBoolean(true); // this attempt is still on
    try {
      call.start(new ClientCall.Listener<>() {
        @Override
        public void onMessage(WatchLeaderResponse message) {
          events.add(new Event(id, message, null, false));
        }

        @Override
        public void onClose(Status status, Metadata trailers) {
          events.add(new Event(id, null, status, false));
        }
      }, new Metadata());
      // Published only once started: a call cancelled before its start cannot start.
      current = call;
      if (closed) { // close() ran before it could see this call
        return a;
      }
      call.sendMessage(WatchLeaderRequest.newBuilder().setMinEpoch(minEpoch).setElection(election).build());
      call.halfClose();
      call.request(1);
      if (minEpoch > 1 && !named) {
        // A node holds back leaders older than min_epoch, so right after a failover a node
        // that still sees the leader we last reported rightly sends nothing. Ask that node who
        // leads: if it names a leader already reported, its silence is no fault and the
        // first-message deadline does not apply.
        probe = client.callOnce(index, ElectionServiceGrpc.getGetLeaderMethod(),
            GetLeaderRequest.getDefaultInstance(), client.connectTimeout().plus(client.firstMessageTimeout()));
      }
      // grpc-java calls onReady only for calls where the client streams, so the channel says
      // when the connection is up.
      whenReady(channel, following, () -> events.add(new Event(id, null, null, true)));
      long firstMessageNanos = client.firstMessageTimeout().toNanos();
      long connectBy = System.nanoTime() + client.connectTimeout().toNanos();
      // The first-message deadline runs from the moment the connection works (connecting has
      // its own deadline), or at the latest from the connect check that found it working.
      long firstBy = 0;
      boolean opened = false; // firstBy is set
      boolean connectChecked = false;
      boolean first = false;
      while (true) {
        Event e;
        if (first) {
          e = events.take();
        } else {
          long by = connectChecked ? firstBy : !opened ? connectBy : Math.min(connectBy, firstBy);
          e = events.poll(Math.max(0, by - System.nanoTime()), TimeUnit.NANOSECONDS);
        }
        if (closed) {
          return a;
        }
        if (e == null) { // a deadline
          long now = System.nanoTime();
          if (!connectChecked && now - connectBy >= 0) {
            connectChecked = true;
            if (channel.getState(false) != ConnectivityState.READY) {
              channel.enterIdle(); // drops the pending connection attempt
              return a.leave(client.connectDeadlineStatus(index));
            }
            if (!opened) {
              opened = true;
              firstBy = now + firstMessageNanos;
            }
          }
          if (opened && now - firstBy >= 0) {
            if (heldBack(probe, minEpoch)) {
              first = true;
              a.answered = true;
              a.sawLeader = true;
              continue;
            }
            return a.leave(Status.DEADLINE_EXCEEDED.withDescription(
                "no first message within the first-message deadline ("
                    + ElectionClient.format(client.firstMessageTimeout()) + ")"));
          }
          continue;
        }
        if (e.attempt() != id) {
          continue; // from a stream already left
        }
        if (e.ready()) {
          if (!opened) {
            opened = true;
            firstBy = System.nanoTime() + firstMessageNanos;
          }
          continue;
        }
        if (e.message() != null) {
          first = true;
          a.answered = true;
          WatchLeaderResponse response = e.message();
          if (named && response.getState() == LeaderState.LEADER_STATE_VACANT) {
            // The node vouches that nobody leads: an answer, not a reason to leave.
            a.sawLeader = true;
            call.request(1);
            continue;
          }
          if (response.getState() != LeaderState.LEADER_STATE_ELECTED || !response.hasLeader()) {
            a.reason = response.getResponderId() + " cannot vouch for a leader: " + response.getReason();
            return a;
          }
          a.sawLeader = true;
          Leader leader = response.getLeader();
          // A node may repeat what another node already told us (or, if it lags, hold it back);
          // only a strictly newer epoch is news.
          long revision = leader.getNode().getValueRevision();
          boolean newValue = named && leader.getEpoch() == lastEpoch && lastRevision != Long.MAX_VALUE
              && revision > lastRevision;
          if (leader.getEpoch() > lastEpoch || newValue) {
            lastEpoch = leader.getEpoch();
            lastRevision = revision;
            client.setPreferredIndex(index);
            deliver(() -> listener.onLeader(leader));
            if (closed) {
              return a;
            }
          }
          call.request(1);
          continue;
        }
        Status status = client.connectDeadlineOr(index, e.status());
        if (status.isOk()) {
          a.reason = "stream ended";
          return a;
        }
        // CANCELLED that we did not ask for comes from the node or a proxy dropping the
        // stream (for example on shutdown): the stream ended.
        if (!ElectionClient.isFailoverCode(status.getCode()) && status.getCode() != Status.Code.CANCELLED) {
          a.rejection = new ElectdException(
              client.address(index) + " rejected WatchLeader: " + ElectionClient.describe(status),
              List.of(client.address(index)), status, status.asRuntimeException());
          return a;
        }
        return a.leave(status);
      }
    } finally {
      following.set(false);
      // Leaving a stream early (state UNKNOWN, a deadline) must end it on the node too.
      call.cancel("left the node", null);
      if (probe != null) {
        probe.cancel(false);
      }
      current = null;
    }
  }

  /** Runs {@code ready} once the channel is READY, unless {@code active} was cleared first. */
  private static void whenReady(ManagedChannel channel, AtomicBoolean active, Runnable ready) {
    if (!active.get()) {
      return;
    }
    ConnectivityState state = channel.getState(false);
    if (state == ConnectivityState.READY) {
      ready.run();
    } else if (state != ConnectivityState.SHUTDOWN) {
      channel.notifyWhenStateChanged(state, () -> whenReady(channel, active, ready));
    }
  }

  /** True if the node answered GetLeader with a leader already reported (or older). */
  private static boolean heldBack(CompletableFuture<GetLeaderResponse> probe, long minEpoch) {
    if (probe == null || !probe.isDone() || probe.isCompletedExceptionally()) {
      return false;
    }
    GetLeaderResponse response = probe.getNow(null);
    return response != null && response.hasLeader() && response.getLeader().getEpoch() < minEpoch;
  }

  private static final class Attempt {
    boolean answered;
    boolean sawLeader;
    String reason = "closed";
    Status status;
    ElectdException rejection;

    Attempt leave(Status s) {
      status = s;
      reason = ElectionClient.describe(s);
      return this;
    }
  }
}
