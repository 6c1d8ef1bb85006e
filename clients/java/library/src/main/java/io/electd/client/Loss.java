package io.electd.client;

import io.electd.v1.LossReason;

/**
 * Why a term of a {@link Campaign} ended, as {@link CampaignListener#onLost} reports it: the
 * node's reasons ({@code CampaignLost.reason}) and the two the client finds out by itself.
 * {@link #label()} is the lower-case word the example program prints ({@code lost epoch=E
 * reason=deleted}).
 */
public enum Loss {
  /** The candidate resigned: its work returned or failed, or the caller resigned. */
  RESIGNED,
  /** The entry was deleted by another client (an operator's {@code Resign}, for example). */
  DELETED,
  /** A candidate of higher priority waits. */
  PREEMPTED,
  /** The node lost (or cannot prove) its ZooKeeper session. */
  ZOOKEEPER,
  /** The node is shutting down; the campaign moves on to another node. */
  SHUTDOWN,
  /**
   * The lease deadline came within the safety margin without being extended (the node's ping
   * answers were too slow or missing): the client stopped the work and resigns the term.
   */
  EXPIRED,
  /** The stream to the node broke (or the node could not be reached) while leading. */
  DISCONNECTED,
  /** The node sent a reason this client does not know (a newer server). */
  UNKNOWN;

  /** The lower-case name, for logs and the example program's lines. */
  public String label() {
    return name().toLowerCase(java.util.Locale.ROOT);
  }

  static Loss of(LossReason reason) {
    switch (reason) {
      case LOSS_REASON_RESIGNED: return RESIGNED;
      case LOSS_REASON_DELETED: return DELETED;
      case LOSS_REASON_PREEMPTED: return PREEMPTED;
      case LOSS_REASON_ZOOKEEPER: return ZOOKEEPER;
      case LOSS_REASON_SHUTDOWN: return SHUTDOWN;
      default: return UNKNOWN;
    }
  }
}
