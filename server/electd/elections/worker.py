"""One worker thread for many small jobs: the registry's shared threads (electd/elections).

Owns a queue of callables and a heap of timers on the lease clock (engine/clock.py). Jobs run
one after the other on the worker's own thread, so jobs of one worker never race each other;
a job that raises is logged with its traceback (a bug) and the worker goes on.

Threads: `submit`, `at` and `stop` may be called from any thread (kazoo's callbacks included:
they never block); the jobs run on the worker's thread. Imports neither kazoo nor grpc.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
from collections.abc import Callable

from electd.engine.clock import now as lease_clock

logger = logging.getLogger(__name__)

Job = Callable[[], None]


class Worker:
    def __init__(self, name: str, clock: Callable[[], float] = lease_clock) -> None:
        self._clock = clock
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._timers: list[tuple[float, int, Job]] = []
        self._count = itertools.count()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, job: Job) -> None:
        """Run `job` on the worker, after the jobs submitted before it."""
        self._jobs.put(job)

    def at(self, when: float, job: Job) -> None:
        """Run `job` on the worker once the lease clock reads `when` (or later)."""
        with self._lock:
            heapq.heappush(self._timers, (when, next(self._count), job))
        self._jobs.put(_nothing)  # wake the worker: it may sleep past `when`

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the jobs queued so far (timers not due yet are dropped)."""
        self._stopped = True
        self._jobs.put(None)
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def on_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def _run(self) -> None:
        while True:
            with self._lock:
                due = self._timers[0][0] if self._timers else None
            timeout = None if due is None else max(0.0, due - self._clock())
            try:
                job = self._jobs.get(timeout=timeout)
            except queue.Empty:
                job = _nothing
            if job is None:
                return
            self._run_job(job)
            for timer in self._due():
                self._run_job(timer)

    def _due(self) -> list[Job]:
        now = self._clock()
        out: list[Job] = []
        with self._lock:
            while self._timers and self._timers[0][0] <= now:
                out.append(heapq.heappop(self._timers)[2])
        return out

    def _run_job(self, job: Job) -> None:
        try:
            job()
        except Exception:
            logger.exception("bug in a job of worker %s; going on", self._thread.name)


def _nothing() -> None:
    return None
