package io.electd.client;

import com.google.protobuf.ByteString;
import io.electd.v1.CampaignRequest;
import io.electd.v1.CampaignResponse;
import io.electd.v1.CampaignStart;
import io.electd.v1.ElectionServiceGrpc;
import io.grpc.CallOptions;
import io.grpc.ClientCall;
import io.grpc.ConnectivityState;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Status;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A running candidacy in a named election (the {@code Campaign} stream): "run this work while
 * leader; it is cancelled before the lease deadline passes; on loss it campaigns again or
 * stops, as asked". Started by {@link ElectionClient#campaign(CampaignOptions, LeaderWork)}.
 *
 * <p>The campaign holds one stream to one node at a time and moves on to the next address with
 * the client's failover rules (connect and first-message deadlines, keepalive, failover codes,
 * the stream ending, backoff after a full round). It pings every {@code pingInterval} (at most a
 * third of the last lease) and keeps the term's deadline = send time of the answered ping +
 * lease_ms, on {@link System#nanoTime()}. Each term's {@link LeaderWork} runs on its own thread
 * and is cancelled a safety margin before that deadline unless it was extended, on the node's
 * Lost, when the stream breaks, and on {@link #resign()}; only after it stopped does the
 * campaign acknowledge the loss. A term whose epoch is not above every epoch already run is
 * never started.
 *
 * <p>On a loss ({@link Loss}) the campaign stays a candidate ({@link CampaignOptions.OnLoss#RECAMPAIGN})
 * or ends ({@link CampaignOptions.OnLoss#STOP}). When the work returns by itself the candidate
 * resigns and the campaign ends; when it throws, the same, and {@link #await()} rethrows.
 * If no node answers at all during the first round, or a node rejects the campaign
 * ({@code INVALID_ARGUMENT}, {@code PERMISSION_DENIED}, {@code ALREADY_EXISTS}, ...), the
 * campaign ends with an {@link ElectdException}.
 */
public final class Campaign implements AutoCloseable {
  private static final AtomicInteger THREADS = new AtomicInteger();
  private static final long MS = 1_000_000L;

  private final ElectionClient client;
  private final CampaignOptions options;
  private final LeaderWork work;
  private final CampaignListener listener;
  private final CampaignMachine machine;
  private final Thread thread;
  private final LinkedBlockingQueue<Event> events = new LinkedBlockingQueue<>();
  private final CountDownLatch done = new CountDownLatch(1);
  private final CompletableFuture<Void> completion = new CompletableFuture<>();
  // Proclaims sent and not yet answered, oldest first (campaign thread only).
  private final ArrayDeque<CompletableFuture<Long>> proclaims = new ArrayDeque<>();

  private volatile boolean closed;
  private volatile ClientCall<CampaignRequest, CampaignResponse> current;
  private volatile Term term;          // the running term (its work may be stopping)
  private volatile Thread workThread;
  private volatile long epoch;         // the leading epoch, 0 when not leading
  private volatile Throwable failure;
  private volatile String address;     // the node currently used
  private long attempts;               // campaign thread only

  private enum Kind { MESSAGE, CLOSED, READY, WORK_DONE, RESIGN, PROCLAIM, CLOSE, FAILED }

  private record Event(Kind kind, long attempt, CampaignResponse message, Status status,
      Term term, Throwable error, byte[] value, CompletableFuture<Long> future) {
    static Event of(Kind kind) {
      return new Event(kind, 0, null, null, null, null, null, null);
    }
  }

  Campaign(ElectionClient client, CampaignOptions options, LeaderWork work) {
    this.client = client;
    this.options = options;
    this.work = work;
    this.listener = options.listener();
    CampaignStart start = CampaignStart.newBuilder()
        .setElection(options.election())
        .setCandidateId(options.candidateId())
        .setValue(ByteString.copyFrom(options.value()))
        .putAllLabels(options.labels())
        .setPriority(options.priority())
        .setNeverLead(options.neverLead())
        .build();
    this.machine = new CampaignMachine(new Driver(), start,
        options.onLoss() == CampaignOptions.OnLoss.STOP,
        options.pingInterval().toNanos(), options.minSafetyMargin().toNanos());
    this.thread = new Thread(this::run, "electd-campaign-" + THREADS.incrementAndGet());
    this.thread.setDaemon(true);
  }

  void start() {
    thread.start();
  }

  /** The options this campaign runs with. */
  public CampaignOptions options() {
    return options;
  }

  /** The epoch of the term being led right now (its work runs, not cancelled), else 0. */
  public long epoch() {
    return epoch;
  }

  /** True while a term's work runs and is not cancelled. */
  public boolean isLeading() {
    return epoch != 0;
  }

  /** The address of the node the campaign uses now (or used last), or null before the first. */
  public String address() {
    return address;
  }

  /**
   * Sets the leader's value ({@code CampaignProclaim} for the current term) and returns its new
   * value_revision once the node stored it.
   *
   * @throws ElectdException {@code FAILED_PRECONDITION} when not leading or the node refused it
   *     (the message says why), {@code UNAVAILABLE} when the stream broke first, {@code
   *     CANCELLED} when interrupted or the campaign ended
   * @throws IllegalArgumentException for a value over 16 KiB
   */
  public long proclaim(byte[] value) {
    CompletableFuture<Long> f = proclaimAsync(value);
    try {
      return f.get();
    } catch (ExecutionException e) {
      Throwable c = e.getCause();
      if (c instanceof ElectdException) {
        ElectdException ee = (ElectdException) c;
        throw new ElectdException(ee.getMessage(), ee.addresses(), ee.status(), ee);
      }
      throw new CompletionException(c);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new ElectdException("interrupted while proclaiming", List.of(),
          Status.CANCELLED.withDescription("interrupted"), e);
    }
  }

  /** {@link #proclaim(byte[])} without blocking: the future completes on the campaign's thread. */
  public CompletableFuture<Long> proclaimAsync(byte[] value) {
    byte[] copy = CampaignOptions.checkValue(value).clone();
    CompletableFuture<Long> f = new CompletableFuture<>();
    if (closed || done.getCount() == 0) {
      f.completeExceptionally(notLeading("the campaign has ended"));
      return f;
    }
    events.add(new Event(Kind.PROCLAIM, 0, null, null, null, null, copy, f));
    return f;
  }

  /**
   * Resigns and waits for the campaign to end: cancels the running work and waits for it to
   * return, sends {@code resign} (the node deletes the entry at once), and returns when the
   * campaign has ended. From the work's own thread or the listener it only starts resigning and
   * returns at once (the work should then return). Idempotent.
   */
  public void resign() {
    events.add(Event.of(Kind.RESIGN));
    if (Thread.currentThread() == thread || Thread.currentThread() == workThread) {
      return;
    }
    awaitQuietly();
  }

  /** {@link #resign()}. */
  @Override
  public void close() {
    resign();
  }

  /**
   * Blocks until the campaign ends.
   *
   * @throws ElectdException if no node answered in the first round, a node rejected the
   *     campaign, or the client was closed ({@code CANCELLED})
   * @throws RuntimeException what the work or the listener threw (a checked exception wrapped
   *     in a {@link CompletionException})
   */
  public void await() throws InterruptedException {
    if (!completion.isDone()) {
      done.await();
    }
    rethrow();
  }

  /** Like {@link #await()}, giving up after {@code timeout}; returns true if the campaign ended. */
  public boolean await(Duration timeout) throws InterruptedException {
    if (!completion.isDone() && !done.await(timeout.toNanos(), TimeUnit.NANOSECONDS)) {
      return false;
    }
    rethrow();
    return true;
  }

  /** Completes when the campaign has ended: normally, or exceptionally as {@link #await()} throws. */
  public CompletableFuture<Void> completion() {
    return completion.copy();
  }

  private void rethrow() {
    Throwable f = failure;
    if (f == null) {
      return;
    }
    if (f instanceof RuntimeException) {
      throw (RuntimeException) f;
    }
    if (f instanceof Error) {
      throw (Error) f;
    }
    throw new CompletionException(f);
  }

  private void awaitQuietly() {
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

  /** Ends the campaign at once (the client is closing): the work is cancelled, the stream too. */
  void cancel() {
    closed = true;
    events.add(Event.of(Kind.CLOSE));
    ClientCall<?, ?> call = current;
    if (call != null) {
      call.cancel("client closed", null);
    }
  }

  void awaitStopped(long deadline) throws InterruptedException {
    if (Thread.currentThread() == thread || Thread.currentThread() == workThread) {
      return;
    }
    done.await(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
  }

  // --- the campaign thread ---

  private void run() {
    try {
      loop();
    } catch (InterruptedException e) {
      machine.fail(closedError());
      drainUntilStopped();
    } catch (RuntimeException | Error e) {
      machine.fail(e);
      drainUntilStopped();
    } finally {
      client.unregister(this);
      failure = machine.failure();
      failProclaims(notLeading("the campaign has ended"));
      try {
        listener.onStopped();
      } catch (RuntimeException e) {
        if (failure == null) {
          failure = e;
        }
      }
      epoch = 0;
      // The future first, then the latch: whoever await() released finds completion() done.
      if (failure != null) {
        completion.completeExceptionally(failure);
      } else {
        completion.complete(null);
      }
      done.countDown();
    }
  }

  /** After a failure of the loop itself: wait (uninterruptibly) for the work to return. */
  private void drainUntilStopped() {
    Term t = term;
    Thread w = workThread;
    if (t != null) {
      t.cancel();
    }
    if (w != null) {
      boolean interrupted = false;
      while (w.isAlive()) {
        try {
          w.join();
        } catch (InterruptedException e) {
          interrupted = true;
        }
      }
      if (interrupted) {
        Thread.currentThread().interrupt();
      }
    }
  }

  private void loop() throws InterruptedException {
    Backoff backoff = new Backoff(client.backoffInitial(), client.backoffMax());
    int n = client.size();
    int index = client.preferredIndex();
    int fruitless = 0;
    boolean anyAnswered = false;
    while (!machine.finished()) {
      if (!machine.wantsStream()) {
        waitFor(Long.MAX_VALUE); // the work is still stopping
        continue;
      }
      Attempt a = follow(index);
      if (a.answered) {
        anyAnswered = true;
        fruitless = 0;
        backoff.reset();
      }
      if (machine.finished() || !machine.wantsStream()) {
        continue;
      }
      if (a.rejection != null) {
        machine.fail(a.rejection);
        continue;
      }
      if (a.again) {
        continue; // resigned an expired term: campaign again on the same node
      }
      if (!a.answered) {
        fruitless++;
      }
      String left = client.address(index);
      String reason = a.reason;
      tell(() -> listener.onFailover(left, reason));
      if (!anyAnswered && fruitless >= n) {
        machine.fail(client.noNodeAnswered(a.reason, a.status, null));
        continue;
      }
      index = (index + 1) % n;
      if (fruitless > 0 && fruitless % n == 0) {
        waitFor(System.nanoTime() + backoff.next().toNanos());
      }
    }
  }

  /**
   * Handles events without a stream (a backoff, or the work stopping) until {@code until}
   * (nanoTime; Long.MAX_VALUE: until the machine is finished or wants a stream).
   */
  private void waitFor(long until) throws InterruptedException {
    while (!machine.finished()) {
      if (until != Long.MAX_VALUE && until - System.nanoTime() <= 0) {
        return;
      }
      if (until == Long.MAX_VALUE && machine.wantsStream()) {
        return;
      }
      long wake = machine.nextWake(System.nanoTime());
      long by = Math.min(until == Long.MAX_VALUE ? Long.MAX_VALUE : until, wake);
      Event e = by == Long.MAX_VALUE ? events.take()
          : events.poll(Math.max(0, by - System.nanoTime()), TimeUnit.NANOSECONDS);
      if (e == null) {
        machine.tick(System.nanoTime());
      } else {
        handleLocal(e);
      }
    }
  }

  /** Events that are not from a stream; stream events of an old attempt are dropped. */
  private void handleLocal(Event e) {
    long now = System.nanoTime();
    switch (e.kind()) {
      case WORK_DONE:
        if (e.term() == term) {
          workThread = null;
          machine.workStopped(e.error(), now);
        }
        break;
      case RESIGN:
        machine.resignRequested();
        break;
      case CLOSE:
        machine.fail(closedError());
        break;
      case FAILED:
        machine.fail(e.error());
        break;
      case PROCLAIM:
        if (machine.proclaim(e.value())) {
          proclaims.add(e.future());
        } else {
          e.future().completeExceptionally(notLeading("not leading"));
        }
        break;
      default:
        break; // MESSAGE, CLOSED, READY of a stream already left
    }
  }

  /** Campaigns on one node until the stream is over. */
  private Attempt follow(int index) throws InterruptedException {
    Attempt a = new Attempt();
    long id = ++attempts;
    address = client.address(index);
    ManagedChannel channel = client.channelFor(index);
    ClientCall<CampaignRequest, CampaignResponse> call =
        channel.newCall(ElectionServiceGrpc.getCampaignMethod(), CallOptions.DEFAULT);
    AtomicBoolean following = new AtomicBoolean(true);
    try {
      call.start(new ClientCall.Listener<>() {
        @Override
        public void onMessage(CampaignResponse message) {
          events.add(new Event(Kind.MESSAGE, id, message, null, null, null, null, null));
        }

        @Override
        public void onClose(Status status, Metadata trailers) {
          events.add(new Event(Kind.CLOSED, id, null, status, null, null, null, null));
        }
      }, new Metadata());
      current = call;
      if (closed) {
        machine.fail(closedError());
        return a;
      }
      call.request(1);
      machine.opened(System.nanoTime()); // sends start and a first ping (buffered until connected)
      whenReady(channel, following, () -> events.add(new Event(Kind.READY, id, null, null, null, null, null, null)));
      long connectBy = System.nanoTime() + client.connectTimeout().toNanos();
      long firstBy = 0;
      boolean opened = false;
      boolean first = false;
      long resignBy = 0; // once resign is sent: the node must end the stream by then
      while (true) {
        if (machine.isResigning() && resignBy == 0) {
          resignBy = System.nanoTime() + client.callTimeout().toNanos();
        }
        if (!machine.isOpen()) {
          return a; // the machine is done with this stream (cannot happen while following)
        }
        long now = System.nanoTime();
        long by = machine.nextWake(now);
        if (!first) {
          by = earliest(by, opened ? firstBy : connectBy);
        }
        if (resignBy != 0) {
          by = earliest(by, resignBy);
        }
        Event e = by == Long.MAX_VALUE ? events.take()
            : events.poll(Math.max(0, by - now), TimeUnit.NANOSECONDS);
        now = System.nanoTime();
        if (e == null) {
          if (!first && !opened && now - connectBy >= 0) {
            if (channel.getState(false) != ConnectivityState.READY) {
              channel.enterIdle();
              return a.leave(client.connectDeadlineStatus(index));
            }
            opened = true;
            firstBy = now + client.firstMessageTimeout().toNanos();
          }
          if (!first && opened && now - firstBy >= 0) {
            return a.leave(Status.DEADLINE_EXCEEDED.withDescription(
                "no first message within the first-message deadline ("
                    + ElectionClient.format(client.firstMessageTimeout()) + ")"));
          }
          if (resignBy != 0 && now - resignBy >= 0) {
            return a.leave(Status.DEADLINE_EXCEEDED.withDescription(
                "the node did not end the stream after resign"));
          }
          machine.tick(now);
          continue;
        }
        if (e.attempt() != 0 && e.attempt() != id) {
          continue;
        }
        switch (e.kind()) {
          case READY:
            if (!opened) {
              opened = true;
              firstBy = now + client.firstMessageTimeout().toNanos();
            }
            continue;
          case MESSAGE:
            first = true;
            a.answered = true;
            client.setPreferredIndex(index);
            onMessage(e.message(), now);
            call.request(1);
            continue;
          case CLOSED: {
            Status status = client.connectDeadlineOr(index, e.status());
            if (status.isOk()) {
              a.reason = machine.isResigning() ? "resigned" : "stream ended";
            } else {
              if (!isRetryable(status)) {
                a.rejection = new ElectdException(
                    client.address(index) + " rejected Campaign: " + ElectionClient.describe(status),
                    List.of(client.address(index)), status, status.asRuntimeException());
              }
              a.leave(status);
            }
            return a;
          }
          default:
            handleLocal(e);
            if (closed) {
              return a;
            }
        }
      }
    } finally {
      following.set(false);
      call.cancel("left the node", null);
      current = null;
      if (machine.isOpen()) {
        // Campaign again on the same node only if it ended the resigned stream itself (a node
        // that did not answer the resign is left like any other).
        a.again = machine.streamEnded(address + ": " + a.reason) && a.status == null;
      }
      failProclaims(new ElectdException("the stream to " + address + " ended before the node "
          + "answered the proclaim: " + a.reason, List.of(address), Status.UNAVAILABLE, null));
    }
  }

  private boolean isRetryable(Status status) {
    Status.Code code = status.getCode();
    if (ElectionClient.isFailoverCode(code) || code == Status.Code.CANCELLED) {
      return true;
    }
    // After a broken stream this node may still hold our old candidacy (until its lease ran
    // out or the node noticed): another node, or this one a little later, takes us.
    return code == Status.Code.ALREADY_EXISTS && attempts > 1;
  }

  private void onMessage(CampaignResponse m, long now) {
    switch (m.getResponseCase()) {
      case QUEUED:
        machine.onQueued(m.getQueued());
        break;
      case LEADING:
        machine.onLeading(m.getLeading(), now);
        break;
      case LOST:
        machine.onLost(m.getLost(), now);
        break;
      case PROCLAIMED:
        machine.onProclaimed(m.getProclaimed().getValueRevision());
        break;
      case REFUSED:
        machine.onRefused(m.getRefused().getRequest(), m.getRefused().getReason());
        break;
      default:
        break; // a response kind from a newer server: nothing to do
    }
  }

  /** Calls the listener; one that throws ends the campaign (after the machine's current step). */
  private void tell(Runnable call) {
    try {
      call.run();
    } catch (RuntimeException e) {
      events.add(new Event(Kind.FAILED, 0, null, null, null, e, null, null));
    }
  }

  private void failProclaims(ElectdException e) {
    CompletableFuture<Long> f;
    while ((f = proclaims.poll()) != null) {
      f.completeExceptionally(e);
    }
  }

  private ElectdException notLeading(String why) {
    return new ElectdException("cannot proclaim: " + why, List.of(),
        Status.FAILED_PRECONDITION.withDescription(why), null);
  }

  private ElectdException closedError() {
    return new ElectdException("the electd client is closed", client.addresses(),
        Status.CANCELLED.withDescription("client closed"), null);
  }

  private static long earliest(long a, long b) {
    if (a == Long.MAX_VALUE) {
      return b;
    }
    if (b == Long.MAX_VALUE) {
      return a;
    }
    return a - b <= 0 ? a : b;
  }

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

  private static final class Attempt {
    boolean answered;
    boolean again;
    String reason = "closed";
    Status status;
    ElectdException rejection;

    Attempt leave(Status s) {
      status = s;
      reason = ElectionClient.describe(s);
      return this;
    }
  }

  /** Carries out the machine's effects on the campaign thread. */
  private final class Driver implements CampaignMachine.Effects {
    @Override
    public void send(CampaignRequest request) {
      ClientCall<CampaignRequest, CampaignResponse> call = current;
      if (call != null) {
        call.sendMessage(request);
      }
    }

    @Override
    public void startWork(long e, long deadline, long marginNanos) {
      Term t = new Term(e, deadline, marginNanos);
      Thread w = new Thread(() -> {
        Throwable error = null;
        try {
          work.run(t);
        } catch (InterruptedException ex) {
          if (!t.isCancelled()) {
            error = ex;
          }
        } catch (Throwable ex) {
          error = ex;
        }
        if (t.isCancelled() && !(error instanceof Error)) {
          error = null; // stopping once cancelled, however it stopped, is what was asked
        }
        events.add(new Event(Kind.WORK_DONE, 0, null, null, t, error, null, null));
      }, "electd-campaign-work-" + e);
      w.setDaemon(true);
      t.bind(w);
      term = t;
      workThread = w;
      epoch = e;
      w.start();
    }

    @Override
    public void extendWork(long deadline) {
      Term t = term;
      if (t != null) {
        t.extend(deadline);
      }
    }

    @Override
    public void cancelWork() {
      epoch = 0;
      Term t = term;
      if (t != null) {
        t.cancel();
      }
    }

    @Override
    public void queued(int position, String waitingFor, boolean neverLead) {
      tell(() -> listener.onQueued(position, waitingFor, neverLead));
    }

    @Override
    public void leading(long e) {
      tell(() -> listener.onLeading(e));
    }

    @Override
    public void lost(long e, Loss reason, String detail) {
      tell(() -> listener.onLost(e, reason, detail));
    }

    @Override
    public void proclaimed(long valueRevision) {
      CompletableFuture<Long> f = proclaims.poll();
      if (f != null) {
        f.complete(valueRevision);
      }
    }

    @Override
    public void proclaimRefused(String reason) {
      CompletableFuture<Long> f = proclaims.poll();
      if (f != null) {
        f.completeExceptionally(new ElectdException(address + " refused the proclaim: " + reason,
            List.of(address), Status.FAILED_PRECONDITION.withDescription(reason), null));
      }
    }

    @Override
    public void refused(String request, String reason) {
      tell(() -> listener.onRefused(request, reason));
    }
  }
}
