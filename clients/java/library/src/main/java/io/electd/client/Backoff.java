package io.electd.client;

import java.time.Duration;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Exponential backoff between full rounds over the address list, with full jitter: the n-th
 * delay is drawn uniformly from [0, min(cap, initial * 2^n)], so 50 ms, 100 ms, 200 ms, ...
 * capped at 2 s by default. Full jitter spreads out many clients that lost the same node, so
 * they do not all hit the next one in lockstep. Not thread-safe; one per watch.
 */
final class Backoff {
  static final Duration INITIAL = Duration.ofMillis(50);
  static final Duration MAX = Duration.ofSeconds(2);

  private final long initialNanos;
  private final long maxNanos;
  private long ceilingNanos;

  Backoff(Duration initial, Duration max) {
    this.initialNanos = initial.toNanos();
    this.maxNanos = max.toNanos();
    this.ceilingNanos = Math.min(initialNanos, maxNanos);
  }

  /** The ceiling of the next delay (before jitter). */
  Duration ceiling() {
    return Duration.ofNanos(ceilingNanos);
  }

  /** The delay to wait now, in [0, ceiling]; each call doubles the ceiling, up to the cap. */
  Duration next() {
    long ceiling = ceilingNanos;
    ceilingNanos = ceiling >= maxNanos / 2 ? maxNanos : ceiling * 2;
    return Duration.ofNanos(ThreadLocalRandom.current().nextLong(ceiling + 1));
  }

  /** Starts over from the initial delay, after a node answered. */
  void reset() {
    ceilingNanos = Math.min(initialNanos, maxNanos);
  }
}
