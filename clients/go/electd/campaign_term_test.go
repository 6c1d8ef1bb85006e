package electd

// Step-by-step tests of the candidate's term machine (campaign_term.go):
// deadlines from grants, when the work starts and stops, epochs never run
// twice, acks only after the work returned. No network, no real clock: every
// step is given its "now".

import (
	"testing"
	"time"

	"github.com/electd/electd/clients/go/electdpb"
)

var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func leadingMsg(epoch int64, nonce uint64, leaseMs int64) *electdpb.CampaignLeading {
	return &electdpb.CampaignLeading{Epoch: epoch, Nonce: nonce, LeaseMs: leaseMs}
}

func lostMsg(epoch int64, r electdpb.LossReason) *electdpb.CampaignLost {
	return &electdpb.CampaignLost{Epoch: epoch, Reason: r}
}

func TestSafetyMargin(t *testing.T) {
	for _, tc := range []struct{ lease, want time.Duration }{
		{2 * time.Second, 200 * time.Millisecond},
		{time.Second, 100 * time.Millisecond},
		{300 * time.Millisecond, 50 * time.Millisecond}, // 10 % is 30 ms: at least 50 ms
		{0, 50 * time.Millisecond},
	} {
		if got := safetyMargin(tc.lease); got != tc.want {
			t.Errorf("safetyMargin(%v) = %v, want %v", tc.lease, got, tc.want)
		}
	}
}

func TestLeadingWithoutGrantAsksForPingAndDoesNotStart(t *testing.T) {
	m := newTermMachine(DefaultPingInterval)
	st := m.onLeading(leadingMsg(7, 0, 0), at(0))
	if st.start != 0 || !st.pingNow {
		t.Fatalf("Leading without a grant: %+v, want no start and a ping", st)
	}
	n := m.ping(at(10))
	st = m.onLeading(leadingMsg(7, n, 2000), at(20))
	if st.start != 7 || st.pingNow {
		t.Fatalf("grant: %+v, want start of 7", st)
	}
	// The deadline counts from the ping's send time, not the answer's arrival.
	if want := at(10 + 2000); !m.deadline.Equal(want) {
		t.Fatalf("deadline %v, want %v", m.deadline, want)
	}
	if want := at(10 + 2000 - 200); !m.expiry().Equal(want) {
		t.Fatalf("expiry %v, want %v", m.expiry(), want)
	}
}

func TestGrantTooShortDoesNotStart(t *testing.T) {
	m := newTermMachine(DefaultPingInterval)
	n := m.ping(at(0))
	// Deadline at 100 ms, margin 50 ms: at 60 ms it is already inside it.
	if st := m.onLeading(leadingMsg(3, n, 100), at(60)); st.start != 0 {
		t.Fatalf("started with the deadline inside the margin: %+v", st)
	}
	n = m.ping(at(70))
	if st := m.onLeading(leadingMsg(3, n, 1000), at(80)); st.start != 3 {
		t.Fatalf("a later good grant did not start the term: %+v", st)
	}
}

func TestDeadlineIsMaxOverAnswersAndUnknownNoncesGrantNothing(t *testing.T) {
	m := newTermMachine(DefaultPingInterval)
	n1 := m.ping(at(0))
	n2 := m.ping(at(500))
	m.onLeading(leadingMsg(5, n2, 2000), at(510))
	if want := at(2500); !m.deadline.Equal(want) {
		t.Fatalf("deadline %v, want %v", m.deadline, want)
	}
	// n1 was forgotten with the answer to n2 (answers come in order): a late
	// answer to it, or to a nonce never sent, must not move the deadline.
	m.onLeading(leadingMsg(5, n1, 60000), at(520))
	m.onLeading(leadingMsg(5, 99, 60000), at(530))
	if want := at(2500); !m.deadline.Equal(want) {
		t.Fatalf("deadline moved to %v by an unknown nonce", m.deadline)
	}
	// A shorter grant never pulls the deadline back.
	n3 := m.ping(at(600))
	m.onLeading(leadingMsg(5, n3, 100), at(610))
	if want := at(2500); !m.deadline.Equal(want) {
		t.Fatalf("deadline pulled back to %v", m.deadline)
	}
	n4 := m.ping(at(1000))
	m.onLeading(leadingMsg(5, n4, 2000), at(1010))
	if want := at(3000); !m.deadline.Equal(want) {
		t.Fatalf("deadline %v, want %v", m.deadline, want)
	}
}

func TestExpiryEndsTheTermAndTheEpochNeverRunsAgain(t *testing.T) {
	m := newTermMachine(DefaultPingInterval)
	n := m.ping(at(0))
	m.onLeading(leadingMsg(9, n, 1000), at(5))
	if st := m.onTick(at(899)); st.endEpoch != 0 {
		t.Fatalf("ended before the margin: %+v", st)
	}
	st := m.onTick(at(900))
	if st.endEpoch != 9 || st.endCause.Reason != ReasonExpired || st.ack != 0 {
		t.Fatalf("tick at the margin: %+v, want end of 9 (expired), no ack", st)
	}
	if !m.expiry().IsZero() {
		t.Fatalf("expiry still armed after the end: %v", m.expiry())
	}
	// A late grant for 9 neither restarts nor re-arms it.
	n = m.ping(at(950))
	if st := m.onLeading(leadingMsg(9, n, 1000), at(960)); st.start != 0 {
		t.Fatalf("epoch 9 started again: %+v", st)
	}
	if ack := m.workReturned(); ack != 0 {
		t.Fatalf("ack %d without a Lost", ack)
	}
	n = m.ping(at(970))
	if st := m.onLeading(leadingMsg(9, n, 1000), at(980)); st.start != 0 {
		t.Fatalf("epoch 9 started again after its work returned: %+v", st)
	}
}

func TestLostStopsWorkAndAcksOnlyAfterItReturned(t *testing.T) {
	m := newTermMachine(DefaultPingInterval)
	n := m.ping(at(0))
	m.onLeading(leadingMsg(4, n, 2000), at(1))
	st := m.onLost(lostMsg(4, electdpb.LossReason_LOSS_REASON_PREEMPTED))
	if st.endEpoch != 4 || st.endCause.Reason != ReasonPreempted || st.ack != 0 {
		t.Fatalf("Lost while working: %+v, want end of 4 and no ack yet", st)
	}
	if _, ok := m.leading(); ok {
		t.Fatal("still leading after Lost")
	}
	if ack := m.workReturned(); ack != 4 {
		t.Fatalf("ack after the work returned = %d, want 4", ack)
	}
	if ack := m.workReturned(); ack != 0 {
		t.Fatalf("acked twice: %d", ack)
	}
}

func TestLostOfATermThatNeverRanAcksAtOnce(t *testing.T) {
	m := newTermMachine(DefaultPingInterval)
	m.onLeading(leadingMsg(4, 0, 0), at(0)) // no grant: not started
	st := m.onLost(lostMsg(4, electdpb.LossReason_LOSS_REASON_DELETED))
	if st.endEpoch != 0 || st.ack != 4 {
		t.Fatalf("Lost of an unstarted term: %+v, want ack 4 at once", st)
	}
	// That epoch was never run, but the node ended it: a late grant for it
	// must not start it, nor for an older one.
	for _, e := range []int64{3, 4} {
		n := m.ping(at(5))
		if st := m.onLeading(leadingMsg(e, n, 2000), at(6)); st.start != 0 {
			t.Fatalf("epoch %d started after the node ended 4: %+v", e, st)
		}
	}
	n := m.ping(at(10))
	m.onLeading(leadingMsg(6, n, 2000), at(11))
	n = m.ping(at(20))
	if st := m.onLeading(leadingMsg(4, n, 2000), at(21)); st.start != 0 {
		t.Fatalf("older epoch 4 started after 6: %+v", st)
	}
}

func TestLostDuringExpiredWorkAcksAfterReturn(t *testing.T) {
	m := newTermMachine(DefaultPingInterval)
	n := m.ping(at(0))
	m.onLeading(leadingMsg(2, n, 1000), at(1))
	m.onTick(at(950))
	st := m.onLost(lostMsg(2, electdpb.LossReason_LOSS_REASON_ZOOKEEPER))
	if st.endEpoch != 0 || st.ack != 0 {
		t.Fatalf("Lost after the expiry: %+v, want nothing until the work returned", st)
	}
	if ack := m.workReturned(); ack != 2 {
		t.Fatalf("ack %d, want 2", ack)
	}
}

func TestNewTermStartsOnlyAboveEveryEpochRun(t *testing.T) {
	m := newTermMachine(DefaultPingInterval)
	n := m.ping(at(0))
	if st := m.onLeading(leadingMsg(10, n, 2000), at(1)); st.start != 10 {
		t.Fatalf("%+v", st)
	}
	m.onLost(lostMsg(10, electdpb.LossReason_LOSS_REASON_DELETED))
	m.workReturned()
	// Another node (a new stream) reports an older and the same epoch.
	m.onStreamEnd("test")
	for _, e := range []int64{3, 10} {
		n := m.ping(at(100))
		if st := m.onLeading(leadingMsg(e, n, 2000), at(101)); st.start != 0 {
			t.Fatalf("epoch %d started after 10 ran: %+v", e, st)
		}
	}
	m.onStreamEnd("test")
	n = m.ping(at(200))
	if st := m.onLeading(leadingMsg(11, n, 2000), at(201)); st.start != 11 {
		t.Fatalf("epoch 11 did not start: %+v", st)
	}
}

func TestNewerLeadingWithoutLostEndsTheOldTermFirst(t *testing.T) {
	m := newTermMachine(DefaultPingInterval)
	n := m.ping(at(0))
	m.onLeading(leadingMsg(1, n, 2000), at(1))
	n = m.ping(at(10))
	st := m.onLeading(leadingMsg(2, n, 2000), at(11))
	if st.endEpoch != 1 || st.start != 0 {
		t.Fatalf("%+v, want end of 1 and no start while its work runs", st)
	}
	if ack := m.workReturned(); ack != 1 {
		t.Fatalf("ack %d, want 1", ack)
	}
	n = m.ping(at(20))
	if st := m.onLeading(leadingMsg(2, n, 2000), at(21)); st.start != 2 {
		t.Fatalf("epoch 2 did not start after 1 returned: %+v", st)
	}
}

func TestQueuedEventsOnlyOnChange(t *testing.T) {
	m := newTermMachine(DefaultPingInterval)
	q := func(pos int32, ahead string) bool {
		return m.onQueued(&electdpb.CampaignQueued{Position: pos, WaitingFor: ahead}).queued
	}
	if !q(2, "a") || q(2, "a") || !q(1, "a") || !q(1, "b") || q(1, "b") {
		t.Fatal("Queued events not emitted exactly on change")
	}
	m.onStreamEnd("test")
	if !q(1, "b") {
		t.Fatal("the first Queued of a new stream is news")
	}
}

func TestQueuedWhileLeadingEndsTheTerm(t *testing.T) {
	m := newTermMachine(DefaultPingInterval)
	n := m.ping(at(0))
	m.onLeading(leadingMsg(8, n, 2000), at(1))
	st := m.onQueued(&electdpb.CampaignQueued{Position: 1})
	if st.endEpoch != 8 {
		t.Fatalf("%+v, want end of 8", st)
	}
	if ack := m.workReturned(); ack != 8 {
		t.Fatalf("ack %d, want 8", ack)
	}
}

func TestStreamEndStopsWorkWithoutAck(t *testing.T) {
	m := newTermMachine(DefaultPingInterval)
	n := m.ping(at(0))
	m.onLeading(leadingMsg(5, n, 2000), at(1))
	st := m.onStreamEnd("connection reset")
	if st.endEpoch != 5 || st.endCause.Reason != ReasonDisconnected || st.ack != 0 {
		t.Fatalf("%+v", st)
	}
	if ack := m.workReturned(); ack != 0 {
		t.Fatalf("ack %d on a stream that is gone", ack)
	}
}

func TestResignEndsTheTerm(t *testing.T) {
	m := newTermMachine(DefaultPingInterval)
	n := m.ping(at(0))
	m.onLeading(leadingMsg(5, n, 2000), at(1))
	st := m.onResign("bye")
	if st.endEpoch != 5 || st.endCause.Reason != ReasonResigned {
		t.Fatalf("%+v", st)
	}
	if st := m.onResign("again"); st.endEpoch != 0 {
		t.Fatalf("ended twice: %+v", st)
	}
}

func TestPingEveryIsCappedByTheLease(t *testing.T) {
	m := newTermMachine(DefaultPingInterval)
	if got := m.pingEvery(); got != DefaultPingInterval {
		t.Fatalf("%v", got)
	}
	n := m.ping(at(0))
	m.onLeading(leadingMsg(1, n, 900), at(1))
	if got := m.pingEvery(); got != 300*time.Millisecond {
		t.Fatalf("pingEvery with a 900 ms lease = %v, want 300ms", got)
	}
	n = m.ping(at(100))
	m.onLeading(leadingMsg(1, n, 6000), at(101))
	if got := m.pingEvery(); got != DefaultPingInterval {
		t.Fatalf("pingEvery with a 6 s lease = %v, want the option", got)
	}
}

func TestLossReasonNames(t *testing.T) {
	for r, want := range map[electdpb.LossReason]string{
		electdpb.LossReason_LOSS_REASON_RESIGNED:  ReasonResigned,
		electdpb.LossReason_LOSS_REASON_DELETED:   ReasonDeleted,
		electdpb.LossReason_LOSS_REASON_PREEMPTED: ReasonPreempted,
		electdpb.LossReason_LOSS_REASON_ZOOKEEPER: ReasonZooKeeper,
		electdpb.LossReason_LOSS_REASON_SHUTDOWN:  ReasonShutdown,
		electdpb.LossReason(0):                    ReasonUnknown,
		electdpb.LossReason(99):                   ReasonUnknown,
	} {
		if got := lossReasonName(r); got != want {
			t.Errorf("%v: %q, want %q", r, got, want)
		}
	}
}
