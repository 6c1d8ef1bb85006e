package io.electd.client;

import com.google.protobuf.ByteString;
import io.electd.v1.CampaignAck;
import io.electd.v1.CampaignLeading;
import io.electd.v1.CampaignLost;
import io.electd.v1.CampaignPing;
import io.electd.v1.CampaignProclaim;
import io.electd.v1.CampaignQueued;
import io.electd.v1.CampaignRequest;
import io.electd.v1.CampaignResign;
import io.electd.v1.CampaignStart;
import io.electd.v1.LossReason;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The campaign's state machine: pings and their send times, the lease deadline of each term,
 * when the work starts and is cancelled, acks, resigning and ending. Pure: no threads, no
 * gRPC calls, no clock of its own (every input carries {@code now}, {@link System#nanoTime()}
 * units), so the tests drive it step by step. {@link Campaign} feeds it from one thread and
 * carries out its {@link Effects}. Not thread-safe.
 *
 * <p>The rules (clients/README.md, "The client campaign helper"): the deadline of a term is the
 * max over the node's Leading answers of (send time of the answered nonce) + lease_ms; the work
 * starts only when that is further away than the safety margin, and is cancelled when the
 * deadline comes within the margin without being extended, on Lost, on a broken stream and on
 * the caller's resign. An ack (or the resign that counts as one) is sent only after the work
 * stopped. A term whose epoch is not above every epoch already run never starts.
 */
final class CampaignMachine {
  /** What the machine asks its driver to do. Calls come from the machine's inputs, in order. */
  interface Effects {
    /** Send on the open stream. */
    void send(CampaignRequest request);

    /** Start the work for the term {@code epoch} with this deadline (after {@link #leading}). */
    void startWork(long epoch, long deadline, long marginNanos);

    /** The running term's deadline moved to {@code deadline}. */
    void extendWork(long deadline);

    /** Cancel the running term; the driver calls {@link #workStopped} when its work returned. */
    void cancelWork();

    void queued(int position, String waitingFor, boolean neverLead);

    void leading(long epoch);

    void lost(long epoch, Loss reason, String detail);

    /** The oldest pending proclaim was stored with this revision. */
    void proclaimed(long valueRevision);

    /** The oldest pending proclaim was refused. */
    void proclaimRefused(String reason);

    /** Another request was refused. */
    void refused(String request, String reason);
  }

  private static final int MAX_NONCES = 256;
  private static final long MS = 1_000_000L;

  private final Effects fx;
  private final CampaignStart start;
  private final boolean stopOnLoss;
  private final long pingNanos;
  private final long minMarginNanos;
  // Send times of the pings not yet answered (the oldest dropped beyond MAX_NONCES).
  private final Map<Long, Long> sent = new LinkedHashMap<>(16, 0.75f, false) {
    private static final long serialVersionUID = 1L;

    @Override
    protected boolean removeEldestEntry(Map.Entry<Long, Long> eldest) {
      return size() > MAX_NONCES;
    }
  };

  private long nextNonce = 1;
  private long nextPing;
  private long lastPing;       // when the last ping was sent
  private long leaseMs;        // the last lease granted (0: none yet)
  private boolean open;        // a stream is open and its start was sent
  private boolean resigning;   // resign sent on this stream
  private boolean reopen;      // after this stream's resign ends it, campaign on a new one
  private boolean ending;      // the campaign ends once the work stopped and the stream closed

  private long highest;        // the highest epoch whose work started: never start one <= it
  private long term;           // the epoch of the running (or last) work
  private boolean working;     // the work of `term` runs (perhaps cancelled, not yet returned)
  private boolean cancelling;  // ... and was cancelled
  private long deadline;       // of `term`
  private Loss stopReason;     // why `term` was cancelled
  private String stopDetail;
  private long ackEpoch;       // a Lost to acknowledge once the work stopped (0: none)

  private long offered;        // an epoch the node says we lead, not started yet (no usable lease)
  private long offeredDeadline;
  private long reportedLeading; // the highest epoch reported by leading()
  private long reportedLost;    // the highest epoch reported by lost()
  private String queuedKey;     // what queued() reported last (null: report the next Queued)
  private Throwable failure;

  CampaignMachine(Effects fx, CampaignStart start, boolean stopOnLoss, long pingNanos, long minMarginNanos) {
    this.fx = fx;
    this.start = start;
    this.stopOnLoss = stopOnLoss;
    this.pingNanos = pingNanos;
    this.minMarginNanos = minMarginNanos;
  }

  // --- what the driver asks ---

  /** True when the campaign is over: ending, no stream open, no work running. */
  boolean finished() {
    return ending && !open && !working;
  }

  /** True while the campaign wants a stream (the driver connects when none is open). */
  boolean wantsStream() {
    return !ending;
  }

  boolean isOpen() {
    return open;
  }

  boolean isResigning() {
    return resigning;
  }

  /** The campaign's failure (the work's error, a listener's, a rejection), or null. */
  Throwable failure() {
    return failure;
  }

  /** The epoch of the term whose work runs and is not cancelled, else 0. */
  long leadingEpoch() {
    return working && !cancelling ? term : 0;
  }

  long deadline() {
    return deadline;
  }

  /** The safety margin for the last lease: 10 % of it, at least the minimum. */
  long marginNanos() {
    return Math.max(minMarginNanos, leaseMs * MS / 10);
  }

  /** When {@link #tick} should run next (a ping or the running term's margin), or Long.MAX_VALUE. */
  long nextWake(long now) {
    long wake = Long.MAX_VALUE;
    if (open && !resigning) {
      wake = nextPing;
    }
    if (working && !cancelling) {
      long cancelAt = deadline - marginNanos();
      if (wake == Long.MAX_VALUE || cancelAt - wake < 0) {
        wake = cancelAt;
      }
    }
    return wake;
  }

  /** The interval between pings: the option, but at most a third of the last lease. */
  long pingIntervalNanos() {
    long interval = pingNanos;
    if (leaseMs > 0) {
      interval = Math.min(interval, leaseMs * MS / 3);
    }
    return Math.max(interval, MS);
  }

  // --- inputs ---

  /** A new stream is open: sends start and a first ping. */
  void opened(long now) {
    open = true;
    resigning = false;
    reopen = false;
    offered = 0;
    queuedKey = null;
    sent.clear();
    fx.send(CampaignRequest.newBuilder().setStart(start).build());
    ping(now);
  }

  /** Time passed: cancels a term whose deadline came within the margin, pings when due. */
  void tick(long now) {
    if (working && !cancelling && deadline - marginNanos() - now <= 0) {
      cancel(Loss.EXPIRED, "the lease deadline came within the safety margin ("
          + marginNanos() / MS + " ms) without being extended");
    }
    if (open && !resigning && now - nextPing >= 0) {
      ping(now);
    }
  }

  void onQueued(CampaignQueued m) {
    if (m.getNonce() != 0) {
      sent.remove(m.getNonce());
    }
    offered = 0; // a Leading not acted on is over
    String key = m.getPosition() + "\u0000" + m.getWaitingFor() + "\u0000" + m.getNeverLead();
    if (!key.equals(queuedKey)) {
      queuedKey = key;
      fx.queued(m.getPosition(), m.getWaitingFor(), m.getNeverLead());
    }
  }

  void onLeading(CampaignLeading m, long now) {
    long epoch = m.getEpoch();
    long d = deadlineOf(m.getNonce(), m.getLeaseMs());
    if (m.getLeaseMs() > 0 && m.getLeaseMs() != leaseMs) {
      leaseMs = m.getLeaseMs();
      long due = lastPing + pingIntervalNanos(); // a shorter lease: ping sooner
      if (due - nextPing < 0) {
        nextPing = due;
      }
    }
    if (working && term == epoch) {
      if (!cancelling && d != 0 && d - deadline > 0) {
        deadline = d;
        fx.extendWork(d);
      }
      return;
    }
    if (epoch <= highest) {
      return; // a term already run (for example one that expired): never again
    }
    queuedKey = null;
    if (working && !cancelling) {
      // The node leads us in a newer term without having said the old one ended.
      cancel(Loss.UNKNOWN, "the node reports a newer term " + epoch);
    }
    if (offered != epoch) {
      offered = epoch;
      offeredDeadline = 0;
    }
    if (d != 0 && (offeredDeadline == 0 || d - offeredDeadline > 0)) {
      offeredDeadline = d;
    }
    if (d == 0 && open && !resigning) {
      ping(now); // no lease yet: ask for one at once
    }
    tryStart(now);
  }

  void onLost(CampaignLost m, long now) {
    long epoch = m.getEpoch();
    Loss reason = Loss.of(m.getReason());
    queuedKey = null;
    if (offered == epoch) {
      offered = 0;
    }
    if (working && term == epoch) {
      ackEpoch = epoch;
      highest = Math.max(highest, epoch);
      if (!cancelling) {
        cancel(reason, m.getDetail());
        if (stopOnLoss) {
          ending = true;
        }
      }
      return; // the ack goes out once the work stopped
    }
    // Not running this term (never started, or already stopped): acknowledge at once, and
    // never start it later.
    highest = Math.max(highest, epoch);
    if (m.getReason() != LossReason.LOSS_REASON_RESIGNED && open && !resigning) {
      sendAck(epoch);
    }
    if (epoch == reportedLeading && reportedLost < epoch) {
      reportedLost = epoch;
      fx.lost(epoch, reason, m.getDetail());
    }
  }

  void onProclaimed(long valueRevision) {
    fx.proclaimed(valueRevision);
  }

  void onRefused(String request, String reason) {
    if (request.equals("proclaim")) {
      fx.proclaimRefused(reason);
    } else {
      fx.refused(request, reason);
    }
  }

  /**
   * Sends a proclaim for the running term. Returns false (nothing sent) when not leading.
   */
  boolean proclaim(byte[] value) {
    if (!open || resigning || leadingEpoch() == 0) {
      return false;
    }
    fx.send(CampaignRequest.newBuilder()
        .setProclaim(CampaignProclaim.newBuilder().setEpoch(term).setValue(ByteString.copyFrom(value)))
        .build());
    return true;
  }

  /** The work of the running term returned ({@code error} null) or threw. */
  void workStopped(Throwable error, long now) {
    if (!working) {
      return;
    }
    working = false;
    long epoch = term;
    if (!cancelling) {
      // The work ended on its own: the candidate resigns and the campaign ends with its result.
      if (error != null && failure == null) {
        failure = error;
      }
      ending = true;
      resign();
      return; // the node's Lost (RESIGNED) is reported when it comes
    }
    cancelling = false;
    Loss reason = stopReason;
    if (reportedLost < epoch) {
      reportedLost = epoch;
      fx.lost(epoch, reason, stopDetail);
    }
    if (ackEpoch == epoch && open && !resigning && reason != Loss.EXPIRED) {
      sendAck(epoch);
    }
    ackEpoch = 0;
    switch (reason) {
      case EXPIRED:
        // The node still counts us as leading a term we may no longer act in: resign it (that
        // counts as the ack) and, unless told to stop, campaign again on a new stream.
        if (stopOnLoss) {
          ending = true;
        } else if (open) {
          reopen = true;
        }
        resign();
        break;
      case DISCONNECTED:
        if (stopOnLoss) {
          ending = true;
        }
        break;
      default:
        if (ending) {
          resign();
        }
        break;
    }
    tryStart(now);
  }

  /** The caller resigns: cancel the work (then resign) or resign now. */
  void resignRequested() {
    ending = true;
    if (working) {
      if (!cancelling) {
        cancel(Loss.RESIGNED, "resigned by the caller");
      }
      return; // resigns once the work stopped (workStopped: ending)
    }
    resign();
  }

  /** The campaign must end with {@code error}: cancel the work, resign if a stream is open. */
  void fail(Throwable error) {
    if (failure == null) {
      failure = error;
    }
    ending = true;
    if (working) {
      if (!cancelling) {
        cancel(Loss.DISCONNECTED, String.valueOf(error.getMessage()));
      }
      return;
    }
    resign();
  }

  /**
   * The stream ended (closed by the node, broke, or was left by the driver). Cancels a running
   * term ({@link Loss#DISCONNECTED}). Returns true if the campaign should reconnect at once to
   * the same node without counting a failover (the stream was resigned to campaign again).
   */
  boolean streamEnded(String why) {
    boolean wasResigning = resigning;
    open = false;
    resigning = false;
    offered = 0;
    sent.clear();
    if (working && !cancelling) {
      cancel(Loss.DISCONNECTED, why);
    }
    if (ackEpoch != 0 && !working) {
      ackEpoch = 0;
    }
    boolean again = wasResigning && reopen && !ending;
    reopen = false;
    if (wasResigning && !again) {
      ending = true;
    }
    return again;
  }

  // --- internals ---

  private void ping(long now) {
    long nonce = nextNonce++;
    sent.put(nonce, now);
    lastPing = now;
    fx.send(CampaignRequest.newBuilder().setPing(CampaignPing.newBuilder().setNonce(nonce)).build());
    nextPing = now + pingIntervalNanos();
  }

  private void sendAck(long epoch) {
    fx.send(CampaignRequest.newBuilder().setAck(CampaignAck.newBuilder().setEpoch(epoch)).build());
  }

  private void resign() {
    if (open && !resigning) {
      resigning = true;
      fx.send(CampaignRequest.newBuilder().setResign(CampaignResign.getDefaultInstance()).build());
    }
  }

  private void cancel(Loss reason, String detail) {
    cancelling = true;
    stopReason = reason;
    stopDetail = detail;
    fx.cancelWork();
  }

  /** The deadline a Leading answer grants, or 0 if it grants none we can use. */
  private long deadlineOf(long nonce, long lease) {
    if (nonce == 0 || lease <= 0) {
      return 0;
    }
    Long sentAt = sent.get(nonce);
    if (sentAt == null) {
      return 0; // not a ping of this stream (or too old to remember): no safe deadline
    }
    // Older pings are answered already or never will be usefully: forget them.
    sent.keySet().removeIf(n -> n <= nonce);
    return sentAt + lease * MS;
  }

  private void tryStart(long now) {
    if (offered <= highest || working || ending || !open || resigning || offeredDeadline == 0) {
      return;
    }
    if (offeredDeadline - marginNanos() - now <= 0) {
      return; // too close to its end to start: wait for a fresher lease
    }
    long epoch = offered;
    highest = epoch;
    term = epoch;
    deadline = offeredDeadline;
    working = true;
    cancelling = false;
    offered = 0;
    reportedLeading = epoch;
    fx.leading(epoch);
    fx.startWork(epoch, deadline, marginNanos());
  }
}
