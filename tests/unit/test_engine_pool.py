"""Where engines' rounds run (engine/pool.py): on a thread of their own or on a few shared
threads, each engine's rounds one at a time, events coalesced, timers kept, a stopped engine run
no more. Real threads; the "engines" are small recorders of the rounds they are given."""

from __future__ import annotations

import threading
import time

from electd.devcluster.cluster import wait_until
from electd.engine.pool import Mailbox, OwnThread, SharedThreads


class Recorder:
    """Records every round; a round lasts `hold` seconds; `stop` in the events ends it."""

    def __init__(self, every: float = 3600.0, hold: float = 0.0) -> None:
        self.mailbox = Mailbox()
        self.every, self.hold = every, hold
        self.rounds: list[set[str]] = []
        self.inside = 0
        self.overlaps = 0
        self.lock = threading.Lock()
        self.next = time.monotonic()

    def next_round(self) -> float:
        return self.next

    def run_round(self, events: set[str]) -> bool:
        with self.lock:
            self.inside += 1
            self.overlaps += self.inside > 1
        time.sleep(self.hold)
        with self.lock:
            self.inside -= 1
            self.rounds.append(events)
        self.next = time.monotonic() + self.every
        return "stop" not in events


def test_an_own_thread_runs_at_once_then_on_events_and_on_time() -> None:
    r = Recorder(every=0.05)
    runner = OwnThread(r, "test-engine", time.monotonic)
    runner.start()
    wait_until(lambda: len(r.rounds) >= 3, 5, "timed rounds")
    assert r.rounds[0] == set()  # its first round is due at once
    r.every = 3600.0
    wait_until(lambda: r.next > time.monotonic() + 60, 5, "the long timer is set")
    count = len(r.rounds)
    r.mailbox.put("wake")
    wait_until(lambda: len(r.rounds) > count, 5, "a round for the event")
    assert r.rounds[count] == {"wake"}
    assert not runner.join(0.01)
    r.mailbox.put("stop")
    assert runner.join(5)


def test_shared_threads_never_run_one_engine_twice_at_once_and_rerun_it_for_late_events() -> None:
    pool = SharedThreads(4, "test-pool", time.monotonic)
    pool.start()
    try:
        r = Recorder(hold=0.05)
        join = pool.attach(r)
        for _ in range(20):  # events arriving while its rounds run
            r.mailbox.put("wake")
            time.sleep(0.01)
        wait_until(lambda: not r.mailbox.pending() and r.inside == 0, 5, "the rounds run out")
        time.sleep(0.1)
        assert r.overlaps == 0
        assert r.rounds[-1] == {"wake"}  # the last events got a round of their own
        assert 2 <= len(r.rounds) < 21  # coalesced, never lost
        r.mailbox.put("stop")
        assert join(5)
        rounds = len(r.rounds)
        r.mailbox.put("wake")  # a stopped engine runs no more
        time.sleep(0.1)
        assert len(r.rounds) == rounds
    finally:
        pool.stop()


def test_a_thousand_engines_on_four_threads_all_keep_their_timers() -> None:
    pool = SharedThreads(4, "test-pool", time.monotonic)
    pool.start()
    engines = [Recorder(every=0.2) for _ in range(1000)]
    try:
        before = threading.active_count()
        joins = [pool.attach(e) for e in engines]
        # Every engine has its first round, then its timer's rounds; none runs twice at once.
        wait_until(lambda: min(len(e.rounds) for e in engines) >= 3, 20, "three rounds each")
        assert threading.active_count() <= before  # no thread per engine
        assert sum(e.overlaps for e in engines) == 0
        for e in engines:
            e.mailbox.put("stop")
        assert all(join(5) for join in joins)
    finally:
        pool.stop()


def test_a_slow_round_holds_only_its_own_thread() -> None:
    pool = SharedThreads(2, "test-pool", time.monotonic)
    pool.start()
    try:
        slow, quick = Recorder(hold=1.0), Recorder()
        pool.attach(slow)
        wait_until(lambda: slow.inside == 1, 5, "the slow round runs")
        pool.attach(quick)
        wait_until(lambda: len(quick.rounds) == 1, 0.5, "the quick engine's round beside it")
        assert slow.inside == 1
    finally:
        pool.stop()
