"""The lease on its own: a fake session and a clock the test moves by hand, no ZooKeeper.

T = 3 s throughout unless a test changes it: lease 2T/3 = 2 s, proof gap T/4 = 0.75 s,
heartbeat T/8 = 0.375 s (all exact in binary, so times compare exactly)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from electd.devcluster.cluster import wait_until
from electd.engine import CoordinatorUnavailable, ElectionEngine, Lease, NodeRecord, View
from electd.engine.lease import Vouch
from tests.support.memstore import MemEnsemble, MemStore


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeSession:
    """The session facts a store reports, set by hand. `during_sync` runs inside each sync
    (time passing, the session changing under it); `fail` makes syncs raise."""

    def __init__(self, timeout: float = 3.0) -> None:
        self.sid: int | None = 1
        self.timeout = timeout
        self.established: tuple[int, float] | None = None
        self.during_sync: Callable[[], None] | None = None
        self.fail = False
        self.syncs = 0

    def session_id(self) -> int | None:
        return self.sid

    def session_timeout(self) -> float:
        return self.timeout

    def session_established(self) -> tuple[int, float] | None:
        return self.established

    def sync(self) -> None:
        self.syncs += 1
        if self.during_sync is not None:
            self.during_sync()
        if self.fail:
            raise CoordinatorUnavailable("no quorum")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def session() -> FakeSession:
    return FakeSession()


@pytest.fixture
def lease(session: FakeSession, clock: FakeClock) -> Lease:
    return Lease(session, clock)


def sync_at(lease: Lease, clock: FakeClock, sent: float) -> None:
    clock.now = sent
    lease.renew()


def expired(lease: Lease, clock: FakeClock) -> bool:
    return lease.valid_until() <= clock() and lease.remaining() <= 0


def test_the_timings_follow_the_timeout_the_session_was_granted(lease, session, clock) -> None:
    assert (lease.length(), lease.proof_gap(), lease.heartbeat()) == (2.0, 0.75, 0.375)
    sync_at(lease, clock, 1000.0)
    sync_at(lease, clock, 1000.75)
    assert lease.valid_until() == 1002.0
    session.timeout = 6.0  # a new session granted another timeout: asked afresh every time
    assert (lease.length(), lease.proof_gap(), lease.heartbeat()) == (4.0, 1.5, 0.75)
    assert lease.valid_until() == 1004.0


def test_nothing_is_vouched_for_before_anything_is_proven(lease, clock) -> None:
    assert expired(lease, clock)
    assert lease.valid_until() < -1e17


def test_one_successful_sync_proves_nothing_by_itself(lease, session, clock) -> None:
    sync_at(lease, clock, 1000.0)
    assert session.syncs == 1
    assert expired(lease, clock)


def test_a_later_sync_sent_a_proof_gap_after_an_earlier_one_proves_it(lease, clock) -> None:
    sync_at(lease, clock, 1000.0)
    sync_at(lease, clock, 1000.75)  # exactly one gap later: enough
    assert lease.valid_until() == 1000.0 + 2.0  # from the earlier sync's send time
    clock.now = 1001.0
    assert lease.remaining() == 1.0
    sync_at(lease, clock, 1001.0)  # only 0.25 s after the proving sync: proves nothing new
    assert lease.valid_until() == 1002.0
    sync_at(lease, clock, 1001.5)  # a gap after 1000.75 (and 0.5 s after 1001.0)
    assert lease.valid_until() == 1000.75 + 2.0


def test_a_sync_sent_less_than_a_proof_gap_later_proves_nothing(lease, clock) -> None:
    sync_at(lease, clock, 1000.0)
    sync_at(lease, clock, 1000.5)
    assert expired(lease, clock)
    sync_at(lease, clock, 1001.25)  # a gap after both: the later one is the anchor
    assert lease.valid_until() == 1000.5 + 2.0


def test_the_gap_runs_between_send_times_and_the_anchor_is_a_send_time(
    lease, session, clock
) -> None:
    def slow() -> None:
        clock.now += 0.5

    session.during_sync = slow
    sync_at(lease, clock, 1000.0)  # succeeds at 1000.5
    session.during_sync = None
    sync_at(lease, clock, 1000.75)
    assert lease.valid_until() == 1002.0  # not 1002.5: the refresh was not after the send


def test_a_failed_sync_changes_nothing_and_proves_nothing(lease, session, clock) -> None:
    sync_at(lease, clock, 1000.0)
    session.fail = True
    with pytest.raises(CoordinatorUnavailable):
        sync_at(lease, clock, 1001.0)  # would prove 1000 had it succeeded
    assert expired(lease, clock)
    session.fail = False
    sync_at(lease, clock, 1001.25)
    assert lease.valid_until() == 1002.0
    # Had the failed sync been kept, this one would prove it (1001.0 <= 1002.0 - 0.75).
    sync_at(lease, clock, 1001.75)
    assert lease.valid_until() == 1002.0
    sync_at(lease, clock, 1002.0)  # proves 1001.25
    assert lease.valid_until() == 1001.25 + 2.0


def test_a_handshake_proves_the_session_from_its_start(lease, session, clock) -> None:
    session.established = (1, 999.5)
    assert expired(lease, clock)  # learned of only through a successful sync
    session.fail = True
    with pytest.raises(CoordinatorUnavailable):
        sync_at(lease, clock, 1000.0)
    assert expired(lease, clock)
    session.fail = False
    sync_at(lease, clock, 1000.0)  # one sync suffices
    assert lease.valid_until() == 999.5 + 2.0
    assert lease.remaining() == 1.5


def test_the_anchor_never_moves_back(lease, session, clock) -> None:
    sync_at(lease, clock, 1000.0)
    sync_at(lease, clock, 1001.0)
    assert lease.valid_until() == 1002.0
    session.established = (1, 990.0)  # an old handshake of this session
    sync_at(lease, clock, 1001.25)
    assert lease.valid_until() == 1002.0


def test_another_sessions_handshake_proves_nothing(lease, session, clock) -> None:
    session.established = (2, 999.5)
    sync_at(lease, clock, 1000.0)
    assert expired(lease, clock)


def test_a_new_sessions_syncs_do_not_prove_the_old_sessions(lease, session, clock) -> None:
    sync_at(lease, clock, 1000.0)  # session 1, unproven
    session.sid = 2  # expired; a new session (its handshake left out, to isolate the syncs)
    sync_at(lease, clock, 1001.0)  # would prove 1000.0 if sessions did not matter
    assert expired(lease, clock)
    sync_at(lease, clock, 1002.0)  # proves session 2's own sync
    assert lease.valid_until() == 1001.0 + 2.0


def test_a_sync_during_which_the_session_changed_proves_nothing(lease, session, clock) -> None:
    def replaced() -> None:  # the store found the session expired and made a new one
        session.sid = 2
        session.established = (2, 1000.25)

    sync_at(lease, clock, 999.0)  # session 1, unproven
    session.during_sync = replaced
    sync_at(lease, clock, 1000.0)  # sent in session 1, answered in session 2
    session.during_sync = None
    # It proves neither session 1's sync of 999.0 nor session 2's handshake.
    assert expired(lease, clock)
    sync_at(lease, clock, 1000.5)  # sent in session 2: its handshake counts now
    assert lease.valid_until() == 1000.25 + 2.0


def test_a_sync_during_which_the_session_changed_is_not_kept(lease, session, clock) -> None:
    def replaced() -> None:  # a new session whose handshake the store did not learn of
        session.sid = 2

    session.during_sync = replaced
    sync_at(lease, clock, 1000.0)
    session.during_sync = None
    sync_at(lease, clock, 1000.5)
    sync_at(lease, clock, 1000.875)  # a gap after 1000.0, but not after 1000.5
    assert expired(lease, clock)
    sync_at(lease, clock, 1001.25)
    assert lease.valid_until() == 1000.5 + 2.0


def test_a_pause_longer_than_the_lease_needs_two_syncs_a_gap_apart(lease, clock) -> None:
    """V4 in RELIABILITY.md: heartbeats every T/8 keep the lease 1.25 s ahead; after a 10 s
    pause the first sync proves nothing (ZooKeeper's leader may never have heard of it), nor
    does the next heartbeat; the one a proof gap after the first does, from the first."""
    for k in range(8):
        sent = 1000.0 + k * 0.375
        sync_at(lease, clock, sent)
        if k >= 2:
            assert lease.valid_until() == sent - 0.75 + 2.0
            assert lease.remaining() > lease.heartbeat()
    clock.now += 10.0
    assert expired(lease, clock)
    first = clock.now
    sync_at(lease, clock, first)
    assert expired(lease, clock)
    sync_at(lease, clock, first + 0.375)
    assert expired(lease, clock)
    sync_at(lease, clock, first + 0.75)
    assert lease.valid_until() == first + 2.0
    assert not expired(lease, clock)


def test_a_shared_lease_counts_only_syncs_that_had_succeeded_before_the_proving_one_was_sent(
    lease, session, clock
) -> None:
    """Two engines on one session renew the same lease at once. A sync still in flight when a
    later one was sent is not proven by that later one, however much earlier it was sent."""
    gates = [threading.Event(), threading.Event()]
    entered = [threading.Event(), threading.Event()]
    calls = iter(range(2))

    def gated() -> None:
        i = next(calls)
        entered[i].set()
        assert gates[i].wait(5)

    session.during_sync = gated
    x = threading.Thread(target=lease.renew)
    x.start()  # sent at 1000.0
    assert entered[0].wait(5)
    clock.now = 1001.0
    y = threading.Thread(target=lease.renew)
    y.start()  # sent at 1001.0, while x is in flight
    assert entered[1].wait(5)
    clock.now = 1001.5
    gates[0].set()  # x succeeds after y was sent
    x.join(5)
    gates[1].set()
    y.join(5)
    assert not x.is_alive() and not y.is_alive()
    assert expired(lease, clock)
    session.during_sync = None
    sync_at(lease, clock, 1002.0)  # sent after both had succeeded: proves both
    assert lease.valid_until() == 1001.0 + 2.0


def test_an_engine_publishes_the_end_of_the_lease_it_is_given() -> None:
    """An engine given a lease (one per store, shared) stamps its views with that lease and
    renews it: here the store's handshake anchors it at once."""
    clock = FakeClock()
    store = MemStore(MemEnsemble(), 3.0, clock)
    lease = Lease(store, clock)
    views: list[View] = []
    engine = ElectionEngine(store, NodeRecord("a", "a:1"), views.append, clock=clock, lease=lease)
    store.connect()
    engine.start()
    try:
        wait_until(lambda: engine.view().is_leader(clock()), 5, "a leads")
        assert engine.view().valid_until == lease.valid_until() == 1000.0 + 2.0
        clock.now += 10.0  # a pause: the shared lease ran out, so the engine vouches for nothing
        assert not engine.view().is_leader(clock())
        assert lease.remaining() < 0
    finally:
        engine.stop()


def test_an_engine_vouches_only_up_to_an_anchor_it_read_its_own_entry_after(
    lease, session, clock
) -> None:
    """Two engines share one lease. Engine a read its entry after the anchor 1000.0; then b's
    syncs move the session's anchor to 1001.0 (a's entry may have been deleted in between,
    unheard of by a): a's views still end at 1000.0 + 2T/3, b's (read after 1001.0) later."""
    a, b = Vouch(lease), Vouch(lease)
    assert a.valid_until() < clock() and b.remaining() < 0  # nothing confirmed yet
    sync_at(lease, clock, 1000.0)
    sync_at(lease, clock, 1000.75)  # proves 1000.0
    mark = a.mark()
    assert mark == 1000.0
    a.confirm(mark)  # a's read of its entry found it
    assert a.valid_until() == lease.valid_until() == 1002.0
    assert b.valid_until() < clock()  # b has not read its entry since any anchor
    sync_at(lease, clock, 1001.0)  # b's heartbeats
    sync_at(lease, clock, 1001.75)  # proves 1001.0
    assert lease.valid_until() == 1003.0
    b.confirm(b.mark())
    assert b.valid_until() == 1003.0
    assert a.valid_until() == 1002.0  # not lifted by b's syncs
    assert a.remaining() == 1002.0 - 1001.75
    a.confirm(a.mark())  # a reads its entry again: it catches up
    assert a.valid_until() == 1003.0


def test_an_earlier_mark_never_lowers_what_a_later_one_confirmed(lease, clock) -> None:
    vouch = Vouch(lease)
    sync_at(lease, clock, 1000.0)
    early = vouch.mark()  # before any proof: far in the past
    sync_at(lease, clock, 1000.75)
    vouch.confirm(vouch.mark())
    vouch.confirm(early)  # a slow read, sent before, confirmed after
    assert vouch.valid_until() == 1002.0


def test_alone_on_its_lease_an_engine_stamps_the_lease_itself() -> None:
    """One engine, one lease: every view it publishes ends where the lease does, as before the
    lease was shared (the engine's marks are the anchor itself)."""
    clock = FakeClock()
    store = MemStore(MemEnsemble(), 3.0, clock)
    lease = Lease(store, clock)
    views: list[View] = []
    engine = ElectionEngine(store, NodeRecord("a", "a:1"), views.append, clock=clock, lease=lease)
    store.connect()
    engine.start()
    try:
        wait_until(lambda: engine.view().is_leader(clock()), 5, "a leads")
        assert engine.view().valid_until == lease.valid_until() == 1002.0  # the handshake's
        clock.now += 0.75
        time.sleep(0.5)  # a heartbeat (T/8 = 0.375 s) syncs at 1000.75
        clock.now += 0.75  # and the next one proves it
        wait_until(lambda: lease.valid_until() == 1002.75, 5, "the lease renewed")
        wait_until(lambda: engine.view().valid_until == lease.valid_until(), 5, "view renewed")
        assert engine.view().is_leader(clock())
    finally:
        engine.stop()


def test_engines_sharing_a_lease_take_turns_at_the_heartbeat_sync(clock: FakeClock) -> None:
    """A heartbeat syncs only if no sync sent within the last half heartbeat succeeded, so N
    engines on one session make about two syncs per heartbeat interval, not N; a failed sync
    does not count."""
    session = FakeSession()
    lease = Lease(session, clock)
    assert lease.heartbeat_due()  # nothing sent yet
    lease.renew()
    assert not lease.heartbeat_due()
    clock.now += lease.heartbeat() / 2 - 0.125
    assert not lease.heartbeat_due()
    clock.now += 0.125
    assert lease.heartbeat_due()
    session.fail = True
    with pytest.raises(CoordinatorUnavailable):
        lease.renew()
    assert lease.heartbeat_due()  # a failed sync proves nothing: the next engine syncs


def test_heard_is_the_send_time_of_the_latest_sync_of_that_session(
    lease: Lease, session: FakeSession, clock: FakeClock
) -> None:
    """What a heartbeat without a read may vouch up to (`Vouch.mark_heard`): never a sync of
    another session, one that failed, or one during which the session changed."""
    assert lease.heard(1) < -1e17  # nothing heard yet
    sync_at(lease, clock, 10.0)
    sync_at(lease, clock, 11.0)
    assert lease.heard(1) == 11.0
    assert lease.heard(2) < -1e17
    session.fail = True
    with pytest.raises(CoordinatorUnavailable):
        sync_at(lease, clock, 12.0)
    assert lease.heard(1) == 11.0
    session.fail = False

    def new_session() -> None:
        session.sid = 2

    session.during_sync = new_session
    sync_at(lease, clock, 13.0)
    assert lease.heard(1) == 11.0 and lease.heard(2) < -1e17
    session.during_sync = None
    sync_at(lease, clock, 14.0)
    assert lease.heard(2) == 14.0 and lease.heard(1) < -1e17


def test_a_vouch_without_a_read_runs_no_later_than_the_last_sync_heard(
    lease: Lease, session: FakeSession, clock: FakeClock
) -> None:
    vouch = Vouch(lease)
    sync_at(lease, clock, 10.0)
    sync_at(lease, clock, 11.0)  # proves 10.0: the anchor
    assert lease.anchor() == 10.0
    assert vouch.mark_heard(1) == 10.0
    vouch.confirm(vouch.mark_heard(1))
    assert vouch.valid_until() == lease.valid_until() == 10.0 + 2.0

    def reconnected() -> None:  # a handshake began at 15 while the sync sent at 12 was out
        session.established = (1, 15.0)

    session.during_sync = reconnected
    sync_at(lease, clock, 12.0)
    assert lease.anchor() == 15.0 and lease.heard(1) == 12.0
    assert vouch.mark_heard(1) == 12.0  # a change at 13 might not have fired its watch yet
