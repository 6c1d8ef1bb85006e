package io.electd.client;

import io.electd.v1.Leader;

/** Receives what a {@link LeaderWatch} sees. Called from the watch's own thread, one call at a time. */
@FunctionalInterface
public interface LeaderListener {
  /**
   * A new leader, or a new term of the same node. Epochs strictly increase from one call to
   * the next, across failovers; a change is never reported twice.
   */
  void onLeader(Leader leader);

  /**
   * The watch left {@code address} (unreachable, stream ended, or the node could not vouch for
   * a leader) and is moving on to the next address. For logging; no action is needed.
   */
  default void onFailover(String address, String reason) {}
}
