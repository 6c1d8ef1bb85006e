package io.electd.client;

import io.electd.v1.Leader;

/**
 * Receives what a {@link LeaderWatch} sees. Called one call at a time, in order: on the watch's
 * own thread, or on the executor given to {@link ElectionClient.Builder#listenerExecutor}. A
 * listener that throws ends the watch; {@link LeaderWatch#await()} then rethrows it.
 */
@FunctionalInterface
public interface LeaderListener {
  /**
   * A new leader, or a new term of the same node. Epochs strictly increase from one call to
   * the next, across failovers, and are greater than the watch's {@code afterEpoch}; a change
   * is never reported twice. In a named election (watchLeader(election, ...)) also a new value
   * the leader proclaimed: the same epoch again, with a higher {@code
   * getNode().getValueRevision()} (never for the {@code afterEpoch} term).
   */
  void onLeader(Leader leader);

  /**
   * The failover hook: the watch left {@code address} and moves on to the next address (or,
   * when no node at all answered in the first round, ends with an {@link ElectdException}).
   * Called every time the watch leaves an address, except when it is closed or a node rejects
   * the call outright. {@code reason} says why, for people: for example {@code "UNAVAILABLE:
   * no connection to 10.0.0.1:7001 within the connect deadline (2 s)"}, {@code
   * "DEADLINE_EXCEEDED: no first message within the first-message deadline (2 s)"}, {@code
   * "stream ended"} or {@code "n1 cannot vouch for a leader: disconnected from ZooKeeper"}.
   * For logs and metrics; no action is needed.
   */
  default void onFailover(String address, String reason) {}
}
