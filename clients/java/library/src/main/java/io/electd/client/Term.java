package io.electd.client;

import java.time.Duration;
import java.util.concurrent.CompletableFuture;

/**
 * One term of leadership of a {@link Campaign}, handed to {@link LeaderWork#run}. Its epoch is
 * the fencing token; its deadline is the local monotonic time ({@link System#nanoTime()}) until
 * which the node has granted the lease, pushed further by every ping answer. The campaign
 * cancels the term a safety margin before the deadline unless it was extended. Thread-safe.
 */
public final class Term {
  private final long epoch;
  private final long marginNanos;
  private final CompletableFuture<Void> cancelled = new CompletableFuture<>();
  private volatile long deadline;
  private volatile Thread thread;

  Term(long epoch, long deadline, long marginNanos) {
    this.epoch = epoch;
    this.deadline = deadline;
    this.marginNanos = marginNanos;
  }

  /** The fencing epoch of this term: pass it to every resource the leader writes to. */
  public long epoch() {
    return epoch;
  }

  /**
   * The lease deadline on the {@link System#nanoTime()} clock: the candidate may act as leader
   * until then and not a moment longer. It only ever grows.
   */
  public long deadline() {
    return deadline;
  }

  /** Time left until {@link #deadline()} (negative once it passed). */
  public Duration remaining() {
    return Duration.ofNanos(deadline - System.nanoTime());
  }

  /**
   * True while the term is not cancelled and its deadline is more than the safety margin away:
   * check it before each action that needs leadership.
   */
  public boolean isValid() {
    return !cancelled.isDone() && deadline - System.nanoTime() > marginNanos;
  }

  /** True once the campaign cancelled the term: stop acting as leader and return. */
  public boolean isCancelled() {
    return cancelled.isDone();
  }

  /**
   * Completes (normally) when the campaign cancels the term. A fresh copy each call: completing
   * it does not cancel the term.
   */
  public CompletableFuture<Void> cancelled() {
    return cancelled.copy();
  }

  /**
   * Blocks until the term is cancelled (for work that runs in the background of this thread).
   *
   * @throws InterruptedException when the thread is interrupted, which the cancellation does
   */
  public void awaitCancelled() throws InterruptedException {
    try {
      cancelled.get();
    } catch (java.util.concurrent.ExecutionException e) {
      throw new IllegalStateException(e); // never completed exceptionally
    }
  }

  @Override
  public String toString() {
    return "Term{epoch=" + epoch + (isCancelled() ? ", cancelled" : "") + "}";
  }

  void extend(long newDeadline) {
    if (newDeadline - deadline > 0) {
      deadline = newDeadline;
    }
  }

  void bind(Thread t) {
    thread = t;
  }

  void cancel() {
    if (cancelled.complete(null)) {
      Thread t = thread;
      if (t != null) {
        t.interrupt();
      }
    }
  }
}
