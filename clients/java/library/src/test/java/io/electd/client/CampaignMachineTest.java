package io.electd.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.electd.v1.CampaignLeading;
import io.electd.v1.CampaignLost;
import io.electd.v1.CampaignQueued;
import io.electd.v1.CampaignRequest;
import io.electd.v1.CampaignStart;
import io.electd.v1.LossReason;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The campaign's state machine step by step, on a made-up clock (no threads, no network): the
 * deadline of a term, when the work starts and stops, acks only after the work stopped, epochs
 * never run twice, and what each kind of loss leads to.
 */
class CampaignMachineTest {
  private static final long MS = 1_000_000L;
  private static final long T0 = 1_000_000 * MS; // an arbitrary nanoTime

  /** Records every effect as one line, and the requests sent. */
  static final class Recorder implements CampaignMachine.Effects {
    final List<String> log = new ArrayList<>();
    final List<CampaignRequest> sent = new ArrayList<>();
    long lastNonce;

    @Override
    public void send(CampaignRequest r) {
      sent.add(r);
      switch (r.getRequestCase()) {
        case PING:
          lastNonce = r.getPing().getNonce();
          log.add("ping " + lastNonce);
          break;
        case ACK:
          log.add("ack " + r.getAck().getEpoch());
          break;
        case PROCLAIM:
          log.add("proclaim " + r.getProclaim().getEpoch());
          break;
        default:
          log.add(r.getRequestCase().name().toLowerCase());
      }
    }

    @Override
    public void startWork(long epoch, long deadline, long margin) {
      log.add("start " + epoch + " until " + (deadline - T0) / MS + " margin " + margin / MS);
    }

    @Override
    public void extendWork(long deadline) {
      log.add("extend " + (deadline - T0) / MS);
    }

    @Override
    public void cancelWork() {
      log.add("cancel");
    }

    @Override
    public void queued(int position, String waitingFor, boolean neverLead) {
      log.add("queued " + position + (waitingFor.isEmpty() ? "" : " " + waitingFor));
    }

    @Override
    public void leading(long epoch) {
      log.add("leading " + epoch);
    }

    @Override
    public void lost(long epoch, Loss reason, String detail) {
      log.add("lost " + epoch + " " + reason.label());
    }

    @Override
    public void proclaimed(long valueRevision) {
      log.add("proclaimed " + valueRevision);
    }

    @Override
    public void proclaimRefused(String reason) {
      log.add("proclaim refused");
    }

    @Override
    public void refused(String request, String reason) {
      log.add("refused " + request);
    }

    /** The effects since the last call. */
    List<String> take() {
      List<String> copy = List.copyOf(log);
      log.clear();
      return copy;
    }
  }

  private final Recorder fx = new Recorder();

  private CampaignMachine machine(boolean stopOnLoss) {
    return new CampaignMachine(fx, CampaignStart.newBuilder().setElection("e").setCandidateId("c").build(),
        stopOnLoss, 500 * MS, 50 * MS);
  }

  private static CampaignLeading leading(long epoch, long nonce, long leaseMs) {
    return CampaignLeading.newBuilder().setEpoch(epoch).setNonce(nonce).setLeaseMs(leaseMs).build();
  }

  private static CampaignLost lost(long epoch, LossReason reason) {
    return CampaignLost.newBuilder().setEpoch(epoch).setReason(reason).setDetail("d").build();
  }

  private static CampaignQueued queued(int position, String waitingFor, long nonce) {
    return CampaignQueued.newBuilder().setPosition(position).setWaitingFor(waitingFor).setNonce(nonce).build();
  }

  /** A machine whose stream is open and that leads epoch 7 until T0 + 2000 ms (ping 1 at T0). */
  private CampaignMachine leadingAt7(boolean stopOnLoss) {
    CampaignMachine m = machine(stopOnLoss);
    m.opened(T0);
    m.onLeading(leading(7, 1, 2000), T0 + 5 * MS);
    assertEquals(List.of("start", "ping 1", "leading 7", "start 7 until 2000 margin 200"), fx.take());
    return m;
  }

  @Test
  void theDeadlineIsTheSendTimeOfTheAnsweredPingPlusTheLease() {
    CampaignMachine m = machine(false);
    m.opened(T0);
    m.tick(T0 + 500 * MS); // ping 2 sent at T0 + 500 ms
    fx.take();
    // The answer to ping 2 arrives late: the deadline still counts from when it was sent.
    m.onLeading(leading(7, 2, 1000), T0 + 900 * MS);
    assertEquals(List.of("leading 7", "start 7 until 1500 margin 100"), fx.take());
    assertEquals(T0 + 1500 * MS, m.deadline());
    assertEquals(7, m.leadingEpoch());
  }

  @Test
  void noUsableLeaseMeansNoWorkAndAPingAtOnce() {
    CampaignMachine m = machine(false);
    m.opened(T0);
    fx.take();
    m.onLeading(leading(7, 0, 0), T0 + MS); // "you lead; ping me" (no ping arrived yet)
    assertEquals(List.of("ping 2"), fx.take());
    m.onLeading(leading(7, 99, 2000), T0 + 2 * MS); // a nonce this stream never sent
    assertEquals(List.of("ping 3"), fx.take());
    assertEquals(0, m.leadingEpoch());
    m.onLeading(leading(7, 2, 2000), T0 + 3 * MS);
    assertEquals(List.of("leading 7", "start 7 until 2001 margin 200"), fx.take());
  }

  @Test
  void aLeaseThatEndsWithinTheMarginDoesNotStartTheWork() {
    CampaignMachine m = machine(false);
    m.opened(T0);
    fx.take();
    // Granted 100 ms from T0, but the answer comes 60 ms later: 40 ms left < the 50 ms margin.
    m.onLeading(leading(7, 1, 100), T0 + 60 * MS);
    assertEquals(List.of(), fx.take());
    m.tick(T0 + 60 * MS); // pings every third of the lease now
    assertEquals(List.of("ping 2"), fx.take());
    m.onLeading(leading(7, 2, 100), T0 + 61 * MS);
    assertEquals(List.of("leading 7", "start 7 until 160 margin 50"), fx.take());
  }

  @Test
  void answersExtendTheDeadlineAndNeverShortenIt() {
    CampaignMachine m = leadingAt7(false);
    m.tick(T0 + 500 * MS);
    m.tick(T0 + 1000 * MS);
    assertEquals(List.of("ping 2", "ping 3"), fx.take());
    m.onLeading(leading(7, 3, 2000), T0 + 1010 * MS);
    assertEquals(List.of("extend 3000"), fx.take());
    m.onLeading(leading(7, 2, 2000), T0 + 1020 * MS); // an older answer: would be 2500
    assertEquals(List.of(), fx.take());
    assertEquals(T0 + 3000 * MS, m.deadline());
  }

  @Test
  void pingsComeAtLeastEveryThirdOfTheLease() {
    CampaignMachine m = machine(false);
    m.opened(T0);
    m.onLeading(leading(7, 1, 600), T0 + MS);
    assertEquals(200 * MS, m.pingIntervalNanos());
    fx.take();
    m.tick(T0 + 199 * MS);
    assertEquals(List.of(), fx.take());
    m.tick(T0 + 200 * MS);
    assertEquals(List.of("ping 2"), fx.take());
  }

  @Test
  void theWorkIsCancelledAtTheMarginThenTheExpiredTermIsResignedAndNeverRunAgain() {
    CampaignMachine m = leadingAt7(false);
    assertEquals(T0 + 500 * MS, m.nextWake(T0 + 10 * MS)); // the next ping comes first
    m.tick(T0 + 1799 * MS);
    assertFalse(fx.take().contains("cancel"));
    m.tick(T0 + 1800 * MS); // 10 % of the 2000 ms lease before the deadline
    assertEquals(List.of("cancel"), fx.take().subList(0, 1));
    assertEquals(0, m.leadingEpoch());
    // A late answer for the same term does not revive it, before or after the work stopped.
    m.onLeading(leading(7, 4, 2000), T0 + 1801 * MS);
    m.workStopped(null, T0 + 1810 * MS);
    assertEquals(List.of("lost 7 expired", "resign"), fx.take());
    m.onLeading(leading(7, 4, 2000), T0 + 1811 * MS);
    assertEquals(List.of(), fx.take());
    // The node ends the stream after the resign: campaign again on a new stream.
    assertTrue(m.streamEnded("resigned"));
    assertTrue(m.wantsStream());
    assertFalse(m.finished());
    m.opened(T0 + 1900 * MS);
    fx.take();
    m.onLeading(leading(7, fx.lastNonce, 2000), T0 + 1901 * MS); // epoch 7 again: never
    assertEquals(List.of(), fx.take());
    m.tick(T0 + 2400 * MS);
    assertEquals(List.of("ping 4"), fx.take());
    m.onLeading(leading(9, 4, 2000), T0 + 2401 * MS);
    assertEquals(List.of("leading 9", "start 9 until 4400 margin 200"), fx.take());
  }

  @Test
  void anExpiredTermWithStopOnLossEndsTheCampaign() {
    CampaignMachine m = leadingAt7(true);
    m.tick(T0 + 1800 * MS);
    m.workStopped(null, T0 + 1801 * MS);
    assertEquals(List.of("cancel", "ping 2", "lost 7 expired", "resign"), fx.take());
    assertFalse(m.streamEnded("resigned"));
    assertTrue(m.finished());
  }

  @Test
  void lostCancelsTheWorkAndTheAckWaitsUntilItStopped() {
    CampaignMachine m = leadingAt7(false);
    m.onLost(lost(7, LossReason.LOSS_REASON_PREEMPTED), T0 + 100 * MS);
    assertEquals(List.of("cancel"), fx.take());
    m.tick(T0 + 500 * MS); // pings go on meanwhile, but no ack yet
    assertEquals(List.of("ping 2"), fx.take());
    m.workStopped(null, T0 + 600 * MS);
    assertEquals(List.of("lost 7 preempted", "ack 7"), fx.take());
    // Queued again (reported again even at a place reported before), then a new term.
    m.onQueued(queued(1, "other", 0));
    m.onQueued(queued(1, "other", 2)); // a ping answer at the same place: not news
    assertEquals(List.of("queued 1 other"), fx.take());
    m.tick(T0 + 1000 * MS);
    m.onLeading(leading(8, 3, 2000), T0 + 1001 * MS);
    assertEquals(List.of("ping 3", "leading 8", "start 8 until 3000 margin 200"), fx.take());
    assertTrue(m.wantsStream());
  }

  @Test
  void aLostTermThatNeverStartedIsAcknowledgedAtOnceAndNotReported() {
    CampaignMachine m = machine(false);
    m.opened(T0);
    m.onLeading(leading(7, 0, 0), T0 + MS);
    fx.take();
    m.onLost(lost(7, LossReason.LOSS_REASON_DELETED), T0 + 2 * MS);
    assertEquals(List.of("ack 7"), fx.take());
    m.onLeading(leading(7, 2, 2000), T0 + 3 * MS); // too late: that term ended
    assertEquals(0, m.leadingEpoch());
    assertEquals(List.of(), fx.take());
  }

  @Test
  void lostWithStopOnLossAcknowledgesResignsAndEnds() {
    CampaignMachine m = leadingAt7(true);
    m.onLost(lost(7, LossReason.LOSS_REASON_DELETED), T0 + 100 * MS);
    m.workStopped(null, T0 + 200 * MS);
    assertEquals(List.of("cancel", "lost 7 deleted", "ack 7", "resign"), fx.take());
    assertFalse(m.wantsStream());
    assertFalse(m.finished()); // the stream is still open
    m.onLost(lost(7, LossReason.LOSS_REASON_RESIGNED), T0 + 201 * MS); // the node confirms
    assertEquals(List.of(), fx.take());
    m.streamEnded("resigned");
    assertTrue(m.finished());
    assertNull(m.failure());
  }

  @Test
  void aBrokenStreamCancelsTheWorkWithoutAnAck() {
    CampaignMachine m = leadingAt7(false);
    assertFalse(m.streamEnded("UNAVAILABLE"));
    m.workStopped(null, T0 + 10 * MS);
    assertEquals(List.of("cancel", "lost 7 disconnected"), fx.take());
    assertTrue(m.wantsStream());
    m.tick(T0 + 5000 * MS); // no stream: nothing to ping
    assertEquals(List.of(), fx.take());
  }

  @Test
  void aBrokenStreamWithStopOnLossEndsOnceTheWorkStopped() {
    CampaignMachine m = leadingAt7(true);
    m.streamEnded("UNAVAILABLE");
    assertFalse(m.finished());
    m.workStopped(null, T0 + 10 * MS);
    assertTrue(m.finished());
  }

  @Test
  void workReturningOnItsOwnResignsAndEndsWithItsResult() {
    CampaignMachine m = leadingAt7(false);
    IllegalStateException boom = new IllegalStateException("boom");
    m.workStopped(boom, T0 + 10 * MS);
    assertEquals(List.of("resign"), fx.take());
    m.onLost(lost(7, LossReason.LOSS_REASON_RESIGNED), T0 + 11 * MS);
    assertEquals(List.of("lost 7 resigned"), fx.take());
    m.streamEnded("resigned");
    assertTrue(m.finished());
    assertSame(boom, m.failure());
  }

  @Test
  void callersResignCancelsFirstThenResignsAndReportsTheLossOnce() {
    CampaignMachine m = leadingAt7(false);
    m.resignRequested();
    assertEquals(List.of("cancel"), fx.take());
    assertFalse(m.proclaim(new byte[0]));
    m.workStopped(null, T0 + 10 * MS);
    assertEquals(List.of("lost 7 resigned", "resign"), fx.take());
    m.onLost(lost(7, LossReason.LOSS_REASON_RESIGNED), T0 + 11 * MS);
    assertEquals(List.of(), fx.take());
    m.streamEnded("resigned");
    assertTrue(m.finished());
  }

  @Test
  void resignWithoutAStreamEndsAtOnce() {
    CampaignMachine m = machine(false);
    m.resignRequested();
    assertTrue(m.finished());
    assertEquals(List.of(), fx.take());
  }

  @Test
  void proclaimCarriesTheCurrentTermOnlyWhileLeading() {
    CampaignMachine m = machine(false);
    m.opened(T0);
    assertFalse(m.proclaim(new byte[] {1}));
    m.onLeading(leading(7, 1, 2000), T0 + MS);
    fx.take();
    assertTrue(m.proclaim(new byte[] {1}));
    m.onProclaimed(3);
    m.onRefused("proclaim", "epoch 7 is not the current term");
    m.onRefused("ack", "no such term");
    assertEquals(List.of("proclaim 7", "proclaimed 3", "proclaim refused", "refused ack"), fx.take());
  }

  @Test
  void aNewerTermWithoutALostEndsTheOldOneFirst() {
    CampaignMachine m = leadingAt7(false);
    m.onLeading(leading(9, 1, 2000), T0 + 10 * MS); // not started: term 7's work still runs
    assertEquals(List.of("cancel", "ping 2"), fx.take()); // (nonce 1 is used up: no lease)
    m.onLeading(leading(9, 2, 2000), T0 + 501 * MS);
    assertEquals(List.of(), fx.take());
    m.workStopped(null, T0 + 502 * MS);
    assertEquals(List.of("lost 7 unknown", "leading 9", "start 9 until 2010 margin 200"), fx.take());
  }
}
