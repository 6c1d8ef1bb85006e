"""Where an engine's rounds of work run: on a thread of its own (`OwnThread`, the node's engine)
or on a few threads shared by many engines (`SharedThreads`, the candidates of named elections:
a thousand candidates must not be a thousand threads, each waking for its own heartbeat).

Owns the threads, the wake-ups and the timers; knows an engine only as a `Driven`: something
with a mailbox of events (`Mailbox`), one round of work to run for them, and the time of its
next round. The rules every runner keeps: one engine's rounds never overlap (an engine is never
on two threads at once), events put while a round runs lead to another round right after it,
and a round runs no later than the time the engine asked for (given a free thread). Imports
nothing of kazoo, grpc or the rest of the engine.

Threads: `Mailbox.put`, `SharedThreads.attach`, `SharedThreads.stop` may be called from any
thread (kazoo's callbacks included: they never block). Rounds run on the runner's threads; a
round that waits (a ZooKeeper round trip, or a leaving engine's last round waiting for its
delete's reply) holds its thread meanwhile.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Protocol

from electd.engine.clock import now as lease_clock

logger = logging.getLogger(__name__)


class Mailbox:
    """The events queued for one engine: a set (repeats coalesce into one round), and whom to
    tell when the first one arrives."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._events: set[str] = set()
        self._notify: Callable[[], None] | None = None

    def put(self, event: str) -> None:
        with self._cond:
            first = not self._events
            self._events.add(event)
            self._cond.notify()
            notify = self._notify if first else None
        if notify is not None:
            notify()

    def take(self, timeout: float | None = None) -> set[str]:
        """Everything queued; waits up to `timeout` (None: not at all) for the first event.
        An empty set: nothing came."""
        with self._cond:
            if timeout is not None and not self._events:
                self._cond.wait(max(0.0, timeout))
            events, self._events = self._events, set()
            return events

    def pending(self) -> bool:
        with self._cond:
            return bool(self._events)

    def on_first(self, notify: Callable[[], None]) -> None:
        """Call `notify` (on the putting thread, outside the lock) whenever an event arrives in
        an empty mailbox."""
        with self._cond:
            self._notify = notify


class Driven(Protocol):
    mailbox: Mailbox

    def next_round(self) -> float:
        """The lease-clock time of the next round if no event comes first."""
        ...

    def run_round(self, events: set[str]) -> bool:
        """One round of work for `events` (empty: the time came); False once the engine has
        stopped for good (its last round ran)."""
        ...


class OwnThread:
    """One thread for one engine: waits on the mailbox until the engine's next round is due."""

    def __init__(self, engine: Driven, name: str, clock: Callable[[], float] = lease_clock):
        self._engine, self._clock = engine, clock
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> bool:
        """True once the engine's last round has run."""
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        engine = self._engine
        while engine.run_round(engine.mailbox.take(engine.next_round() - self._clock())):
            pass


class SharedThreads:
    """A few threads running the rounds of many engines, each engine's rounds one at a time,
    ready ones first come first served, timers on one heap. A round blocks its thread for
    the ZooKeeper round trips it makes, so `threads` bounds how many engines make round trips
    at once, not how many engines there are."""

    def __init__(self, threads: int, name: str, clock: Callable[[], float] = lease_clock):
        self._clock = clock
        lock = threading.Lock()
        self._cond = threading.Condition(lock)  # idle threads wait here for a ready engine
        self._keeper = threading.Condition(lock)  # the one idle thread that waits for the timers
        # Guarded by the lock: engines ready to run (each at most once in `_ready`), the timers
        # (due, seq, engine; stale entries are skipped by `_due`), the engines running, whether
        # an idle thread keeps the timers and how many others are idle. One thread sleeps until
        # the next timer, the others until there is work: a due timer wakes one thread, not all.
        self._keeping = False
        self._idle = 0
        self._ready: deque[Driven] = deque()
        self._queued: set[int] = set()
        self._running: set[int] = set()
        self._timers: list[tuple[float, int, Driven]] = []
        self._due: dict[int, float] = {}
        self._seq = itertools.count()
        self._stopped = False
        self._finished_events: dict[int, threading.Event] = {}  # attached engines, by id
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(threads)
        ]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def attach(self, engine: Driven) -> Callable[[float], bool]:
        """Run `engine`'s rounds here from now on, its first at once; returns its `join`:
        True once its last round has run (waits up to the timeout given)."""
        with self._cond:
            finished = self._finished_events.setdefault(id(engine), threading.Event())
        engine.mailbox.on_first(lambda: self._make_ready(engine))
        self._make_ready(engine)
        return finished.wait

    def stop(self, timeout: float = 10.0) -> None:
        """End the threads (engines still attached run no more rounds)."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
            self._keeper.notify_all()
        for t in self._threads:
            t.join(timeout)

    # ----- internals ---------------------------------------------------------------------

    def _make_ready(self, engine: Driven) -> None:
        key = id(engine)
        with self._cond:
            if key in self._queued or key in self._running or key not in self._finished_events:
                return  # runs again after its round (see `_work`), or has finished
            self._queued.add(key)
            self._ready.append(engine)
            self._wake_one()

    def _wake_one(self) -> None:
        """Under the lock: a thread to take the work just made ready."""
        if self._idle:
            self._cond.notify()
        else:
            self._keeper.notify()

    def _next(self) -> Driven | None:
        """Under _cond: wait for an engine to run (ready, or its timer due); None: stopping."""
        while not self._stopped:
            now = self._clock()
            while self._timers and self._timers[0][0] <= now:
                due, _, engine = heapq.heappop(self._timers)
                key = id(engine)
                if self._due.get(key) != due or key in self._queued or key in self._running:
                    continue  # a stale timer, or it runs anyway
                del self._due[key]
                self._queued.add(key)
                self._ready.append(engine)
            if self._ready:
                engine = self._ready.popleft()
                self._queued.discard(id(engine))
                self._running.add(id(engine))
                self._due.pop(id(engine), None)
                if self._ready or not self._keeping:
                    self._wake_one()  # more work, or nobody left to keep the timers
                return engine
            if self._keeping:
                self._idle += 1
                self._cond.wait()
                self._idle -= 1
            else:
                self._keeping = True
                self._keeper.wait(self._timers[0][0] - now if self._timers else None)
                self._keeping = False
        return None

    def _work(self) -> None:
        while True:
            with self._cond:
                engine = self._next()
            if engine is None:
                return
            key = id(engine)
            try:
                alive = engine.run_round(engine.mailbox.take())
                due = engine.next_round() if alive else 0.0
            except Exception:  # a round handles its own failures: only its last may raise
                logger.exception("an engine's last round failed; it runs no more")
                alive, due = False, 0.0
            with self._cond:
                self._running.discard(key)
                if not alive:
                    self._due.pop(key, None)
                    self._finished_events.pop(key).set()
                    continue
                if engine.mailbox.pending():
                    self._queued.add(key)
                    self._ready.append(engine)  # this thread takes it next, in `_next`
                else:
                    self._due[key] = due
                    if not self._timers or due < self._timers[0][0]:
                        self._keeper.notify()  # sooner than the keeper sleeps
                    heapq.heappush(self._timers, (due, next(self._seq), engine))
