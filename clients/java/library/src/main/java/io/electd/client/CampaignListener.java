package io.electd.client;

/**
 * Hears what a {@link Campaign} does, for logs and metrics (every method has an empty default).
 * Called one call at a time, in order, on the campaign's own thread: return quickly. A
 * listener that throws ends the campaign (it resigns, and {@link Campaign#await()} rethrows).
 */
public interface CampaignListener {
  /**
   * The candidate waits: {@code position} entries are ahead of it (0: first, the old leader has
   * not acknowledged yet), {@code waitingFor} is the candidate id just ahead (empty when not
   * known); {@code neverLead} for a member that never leads. Called when the place changes, not
   * for every ping answer.
   */
  default void onQueued(int position, String waitingFor, boolean neverLead) {}

  /** The work for the term {@code epoch} starts now; epochs only grow from call to call. */
  default void onLeading(long epoch) {}

  /**
   * The term {@code epoch} ended and its work has stopped (called after {@link LeaderWork#run}
   * returned). {@code detail} says what happened, for people.
   */
  default void onLost(long epoch, Loss reason, String detail) {}

  /**
   * The failover hook: the campaign left {@code address} (unreachable, too slow, the stream
   * ended or failed) and moves on to the next address.
   */
  default void onFailover(String address, String reason) {}

  /** A node refused a request without ending the stream (for example a late {@code ack}). */
  default void onRefused(String request, String reason) {}

  /** The campaign ended (after its last term's work stopped); nothing is called after this. */
  default void onStopped() {}
}
