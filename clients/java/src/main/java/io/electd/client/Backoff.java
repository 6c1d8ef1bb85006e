package io.electd.client;

import java.time.Duration;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Exponential backoff between full rounds over the address list: 50 ms, 100 ms, 200 ms, ...
 * capped at 2 s, each delay jittered by +/-20% so that many clients that lost the same node
 * do not all hit the next one in lockstep.
 */
final class Backoff {
  static final Duration INITIAL = Duration.ofMillis(50);
  static final Duration MAX = Duration.ofSeconds(2);
  private static final double FACTOR = 2.0;
  private static final double JITTER = 0.2;

  private final long initialNanos;
  private final long maxNanos;
  private long nextNanos;

  Backoff(Duration initial, Duration max) {
    this.initialNanos = initial.toNanos();
    this.maxNanos = max.toNanos();
    this.nextNanos = initialNanos;
  }

  /** The delay to wait now; each call doubles the one after it, up to the cap. */
  Duration next() {
    long base = nextNanos;
    nextNanos = (long) Math.min(maxNanos, base * FACTOR);
    double jitter = 1 + JITTER * (ThreadLocalRandom.current().nextDouble() * 2 - 1);
    return Duration.ofNanos(Math.min(maxNanos, (long) (base * jitter)));
  }

  /** Starts over from the initial delay, after a node answered. */
  void reset() {
    nextNanos = initialNanos;
  }
}
