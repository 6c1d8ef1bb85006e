package electd

// The candidate's term bookkeeping, free of I/O and of the clock (every
// method is given "now"): which pings were sent when, the lease deadline of
// the current term, when to start and stop the work, which Lost still needs
// an ack. campaign.go drives it from one goroutine; campaign_term_test.go
// tests it step by step.

import (
	"time"

	"github.com/electd/electd/clients/go/electdpb"
)

// Margins of the contract: the work is cancelled when the deadline comes
// within 10 % of the lease granted, and at least 50 ms.
const (
	safetyFraction  = 10 // percent of lease_ms
	minSafetyMargin = 50 * time.Millisecond
)

// safetyMargin is how long before the deadline the work is cancelled, for a
// term whose last grant was lease.
func safetyMargin(lease time.Duration) time.Duration {
	return max(lease*safetyFraction/100, minSafetyMargin)
}

// termMachine is the state of one candidate across its streams. Not safe for
// concurrent use.
type termMachine struct {
	pingInterval time.Duration // the option; pingEvery caps it by the lease

	// Per stream (reset by newStream).
	nonce  uint64               // last nonce sent
	sent   map[uint64]time.Time // send time of each nonce not answered yet
	queued bool                 // a Queued event was emitted on this stream ...
	pos    int32                // ... for this position ...
	ahead  string               // ... and this candidate ahead

	// The term the node says we lead (0: none), and its grant.
	epoch    int64
	deadline time.Time     // max over the answers for epoch of send time + lease_ms
	lease    time.Duration // lease_ms of the answer that set deadline

	ran     int64 // highest epoch whose work was started: never start one <= ran
	over    int64 // highest epoch the node said ended: never start one <= over
	working bool  // the work of term ran is running (maybe cancelled, not returned)
	ending  bool  // ... and has been told to stop
	ackDue  int64 // a Lost for this epoch waits for the work to return, then ack
}

func newTermMachine(pingInterval time.Duration) *termMachine {
	m := &termMachine{pingInterval: pingInterval}
	m.newStream()
	return m
}

// newStream forgets what belonged to the previous stream: its pings, its
// grants and its term (the caller stopped that term's work first). ran stays:
// an epoch already run is never run again, whichever node reports it.
func (m *termMachine) newStream() {
	m.nonce, m.sent = 0, map[uint64]time.Time{}
	m.queued, m.pos, m.ahead = false, 0, ""
	m.epoch, m.deadline, m.lease = 0, time.Time{}, 0
	m.ackDue = 0
}

// ping records a ping sent now and returns its nonce.
func (m *termMachine) ping(now time.Time) uint64 {
	m.nonce++
	m.sent[m.nonce] = now
	return m.nonce
}

// pingEvery is the pause between pings: the option, but never more than a
// third of the last lease granted.
func (m *termMachine) pingEvery() time.Duration {
	if m.lease > 0 {
		return min(m.pingInterval, m.lease/3)
	}
	return m.pingInterval
}

// answered takes the send time of ping nonce and forgets it and every older
// ping (answers come in order). ok is false for a nonce never sent (0) or
// already answered.
func (m *termMachine) answered(nonce uint64) (sentAt time.Time, ok bool) {
	sentAt, ok = m.sent[nonce]
	for n := range m.sent {
		if n <= nonce {
			delete(m.sent, n)
		}
	}
	return sentAt, ok
}

// step is what the driver must do after an input, in this order: end the
// term (cancel the work with endCause, emit its Lost event), send ack{ack},
// ping at once, start the work of term start. At most a few are set.
type step struct {
	endEpoch int64      // the started term that ended (its work must stop)
	endCause *LostError // why (the work's context cause, the Lost event)
	ack      int64      // send ack for this epoch now (0: none)
	pingNow  bool       // the node needs a ping (a Leading without a grant)
	start    int64      // start the work of this term
	queued   bool       // emit a Queued event (position or candidate ahead changed)
}

// endTerm ends the running term (if any) with cause; the work is cancelled
// and ack{epoch} is sent once it returned, if ackLater.
func (m *termMachine) endTerm(st *step, cause *LostError, ackLater bool) {
	if m.working && !m.ending {
		m.ending = true
		st.endEpoch, st.endCause = m.ran, cause
	}
	if ackLater {
		m.ackDue = cause.Epoch
	}
}

// onQueued handles a CampaignQueued.
func (m *termMachine) onQueued(q *electdpb.CampaignQueued) step {
	var st step
	if q.GetNonce() != 0 {
		m.answered(q.GetNonce())
	}
	if m.epoch != 0 {
		// Queued while the node had us leading, without a Lost first: the
		// node no longer grants that term. Treat it as lost (and ack it, in
		// case the node waits for that).
		m.lostTerm(&st, m.epoch, ReasonUnknown, "queued again without a Lost")
	}
	if !m.queued || q.GetPosition() != m.pos || q.GetWaitingFor() != m.ahead {
		m.queued, m.pos, m.ahead = true, q.GetPosition(), q.GetWaitingFor()
		st.queued = true
	}
	return st
}

// onLeading handles a CampaignLeading received at now.
func (m *termMachine) onLeading(l *electdpb.CampaignLeading, now time.Time) step {
	var st step
	e := l.GetEpoch()
	sentAt, answers := m.answered(l.GetNonce())
	if e <= 0 || e < m.epoch || e <= m.over || (e <= m.ran && !(m.working && !m.ending && e == m.ran)) {
		// An older term, or one already run and ended: never again.
		return st
	}
	if e != m.epoch {
		if m.epoch != 0 {
			// A newer term without a Lost for the old one: the old one ended.
			m.lostTerm(&st, m.epoch, ReasonUnknown, "a newer term began without a Lost")
		}
		m.epoch, m.deadline, m.lease = e, time.Time{}, 0
		m.queued = false // the next Queued is news
	}
	if answers && l.GetLeaseMs() > 0 {
		lease := time.Duration(l.GetLeaseMs()) * time.Millisecond
		if d := sentAt.Add(lease); d.After(m.deadline) {
			m.deadline, m.lease = d, lease
		}
	} else {
		st.pingNow = true // no grant yet: the node waits for a ping
	}
	if !m.working && e > m.ran && m.startable(now) {
		m.ran, m.working, m.ending = e, true, false
		st.start = e
	}
	return st
}

// startable reports whether the current grant leaves time to work.
func (m *termMachine) startable(now time.Time) bool {
	return !m.deadline.IsZero() && now.Before(m.deadline.Add(-safetyMargin(m.lease)))
}

// onLost handles a CampaignLost.
func (m *termMachine) onLost(l *electdpb.CampaignLost) step {
	var st step
	reason := lossReasonName(l.GetReason())
	m.lostTerm(&st, l.GetEpoch(), reason, l.GetDetail())
	return st
}

// lostTerm records that the node ended term e: stop its work if it runs and
// ack once it returned, or ack at once if it never ran.
func (m *termMachine) lostTerm(st *step, e int64, reason, detail string) {
	if e == m.epoch {
		m.epoch, m.deadline, m.lease = 0, time.Time{}, 0
	}
	m.over = max(m.over, e)
	cause := &LostError{Epoch: e, Reason: reason, Detail: detail}
	if m.working && m.ran == e {
		m.endTerm(st, cause, true) // ack once the work returned
		return
	}
	st.ack = e // nothing of ours runs for e
}

// expiry is when the work must be cancelled unless the deadline is extended
// (zero when no work runs).
func (m *termMachine) expiry() time.Time {
	if !m.working || m.ending || m.deadline.IsZero() || m.epoch != m.ran {
		return time.Time{}
	}
	return m.deadline.Add(-safetyMargin(m.lease))
}

// onTick checks the deadline at now: the running work is cancelled when the
// deadline comes within the safety margin.
func (m *termMachine) onTick(now time.Time) step {
	var st step
	if x := m.expiry(); !x.IsZero() && !now.Before(x) {
		m.endTerm(&st, &LostError{Epoch: m.ran, Reason: ReasonExpired,
			Detail: "the lease deadline came within the safety margin without a new grant"}, false)
	}
	return st
}

// onStreamEnd ends the running term because the stream broke (no ack: the
// node is gone, and decides by itself once the grant ran out).
func (m *termMachine) onStreamEnd(detail string) step {
	var st step
	if m.working {
		m.endTerm(&st, &LostError{Epoch: m.ran, Reason: ReasonDisconnected, Detail: detail}, false)
	}
	m.newStream()
	return st
}

// onResign ends the running term because the candidate resigns (the resign
// request counts as the ack).
func (m *termMachine) onResign(detail string) step {
	var st step
	m.endTerm(&st, &LostError{Epoch: m.ran, Reason: ReasonResigned, Detail: detail}, false)
	return st
}

// workReturned records that the work returned; ack is the epoch to
// acknowledge now (0: none).
func (m *termMachine) workReturned() (ack int64) {
	m.working, m.ending = false, false
	ack, m.ackDue = m.ackDue, 0
	return ack
}

// leading reports whether the work of a term runs and has not been told to
// stop; epoch is that term.
func (m *termMachine) leading() (epoch int64, ok bool) {
	return m.ran, m.working && !m.ending
}
