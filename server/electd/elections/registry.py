"""The node's registry of named elections: every candidacy (candidacy.py) and observer
(observer.py) of this node, on the node's one shared ZooKeeper session and one `Lease`.

Owns the table of candidacies (by election and candidate id; `--max-candidates`), the
registry's shared threads (the observers' worker, the chores worker that creates and retires
entries, proclaims and keeps never_lead members, the reaper that stops retired engines, and
`ENGINE_THREADS` that run the rounds of every candidate entry's engine, engine/pool.py: a
thousand candidates are not a thousand threads), the blocking reads of a named election
(`members`, `resign`, `list`) and the registry-wide `granted_until` for the supervisor (C4).

API (S2 codes against it; additions to the design's interface are marked +):
    Elections(session, lease, root, host_id, version, candidate_lease, max_candidates)
        session: an `ElectionsSession` (engine/store.py): the node's `ZkSession` itself
        (zk/session_client.py has `election_store`, `list_elections`, `delete_entry`), the
        same session the node's own engine runs on through `ZkStore(session, path)`.
    start(); close(timeout=None)          graceful: C3 for every candidacy, then the threads
    observe(election, on_change) -> Observation     .view() any thread; .close()
    members(election) -> list[MemberView]  blocking
    campaign(election, spec, on_event) -> Candidacy  raises BadName (+ BadSpec, a BadName),
        TooManyCandidates, AlreadyCampaigning
    resign(election, epoch) -> LeaderInfo  blocking; NoLeader, StaleEpoch(current),
        CoordinatorUnavailable (+ BadName)
    list() -> list[tuple[str, int]]        blocking, sorted by name
    granted_until() -> float; add_grant_listener(cb)
    + candidates() -> int                  how many candidacies are open (metrics)
    + Candidacy.shutdown()                 what close() does to each
Every named election lives at `<root>/<name>` on the session; observers never create paths.

Threads: every method may be called from any thread. `members`, `resign`, `list` and `close`
block (bounded by the session timeout); everything else returns at once. Callbacks
(`on_change`, `on_event`, grant listeners) run on the registry's threads and must not block.
Imports neither kazoo nor grpc.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from electd import names
from electd.elections.candidacy import Candidacy, CandidateEvent, CandidateSpec, Host
from electd.elections.observer import (
    ElectionLeader,
    ElectionView,
    Observation,
    Observers,
    RecordCache,
    member_of,
    member_views,
    read_election,
)
from electd.elections.worker import Worker
from electd.engine.lease import Lease
from electd.engine.model import MAX_VALUE_BYTES, MemberView
from electd.engine.pool import SharedThreads
from electd.engine.store import ElectionsSession

logger = logging.getLogger(__name__)

#: Threads running the rounds of every candidate entry's engine. A round blocks its thread for
#: its ZooKeeper round trips (a heartbeat: one read, and now and then a sync), so this bounds
#: how many candidates make a round trip at once: with a millisecond each, 8 threads carry the
#: heartbeats of thousands of candidates and leave room for a handover's claim.
ENGINE_THREADS = 8


class ElectionError(Exception):
    """A request about a named election that cannot be served; the message says why."""


class BadName(ElectionError):
    """A malformed election name (INVALID_ARGUMENT)."""


class BadSpec(BadName):
    """A malformed candidate: id, labels or value (INVALID_ARGUMENT)."""


class TooManyCandidates(ElectionError):
    """--max-candidates reached (RESOURCE_EXHAUSTED)."""


class AlreadyCampaigning(ElectionError):
    """The same candidate id campaigns in that election through this node (ALREADY_EXISTS)."""


class NoLeader(ElectionError):
    """The election has no leader (NOT_FOUND)."""


class StaleEpoch(ElectionError):
    """The epoch is not the current leader's (FAILED_PRECONDITION); `current` is."""

    def __init__(self, message: str, current: int) -> None:
        super().__init__(message)
        self.current = current


def _spec_problem(spec: CandidateSpec) -> str | None:
    if not spec.candidate_id:
        return "the candidate id is empty"
    problem = names.node_id_problem(spec.candidate_id)
    if problem:
        return f"candidate id {problem}"
    for key, value in spec.labels.items():
        problem = names.label_problem(key, value)
        if problem:
            return f"label {problem}"
    if len(spec.labels) > names.MAX_LABELS:
        return f"{len(spec.labels)} labels, more than {names.MAX_LABELS}"
    if len(spec.value) > MAX_VALUE_BYTES:
        return f"the value has {len(spec.value)} bytes, more than {MAX_VALUE_BYTES}"
    if not -(2**31) <= spec.priority < 2**31:
        return "the priority is not a 32-bit integer"
    return None


class Elections:
    def __init__(
        self,
        session: ElectionsSession,
        lease: Lease,
        root: str,
        host_id: str,
        version: str,
        candidate_lease: float,
        max_candidates: int,
    ) -> None:
        self._session = session
        self._lease = lease
        self._root = "/" + root.strip("/") if root.strip("/") else ""
        self._max = max_candidates
        self._observers = Observers(session, lease, self._root)
        self._lock = threading.Lock()
        self._table: dict[tuple[str, str], Candidacy] = {}
        self._all_ended = threading.Condition(self._lock)
        self._granted = -1e18
        self._grant_listeners: list[Callable[[float], None]] = []
        self._closing = False
        self._host = Host(
            session,
            lease,
            self._observers,
            Worker("election-chores"),
            Worker("election-reaper"),
            SharedThreads(ENGINE_THREADS, "candidate-engine"),
            host_id,
            version,
            candidate_lease,
            self._on_grant,
            self._on_ended,
        )

    # ----- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        self._observers.start()
        self._host.chores.start()
        self._host.reaper.start()
        self._host.engines.start()

    def close(self, timeout: float | None = None) -> None:
        """Every candidacy ends (Lost SHUTDOWN to a leader; its entry goes once it acknowledged
        or its last grant ran out, C3), then the registry's threads stop. Blocks until then, or
        `timeout` (default: the candidate lease plus twice the session timeout)."""
        with self._lock:
            self._closing = True
            candidacies = list(self._table.values())
        for candidacy in candidacies:
            candidacy.shutdown()
        limit = timeout
        if limit is None:
            limit = self._host.candidate_lease + 2 * self._session.session_timeout()
        deadline = time.monotonic() + limit
        with self._lock:
            while self._table and time.monotonic() < deadline:
                self._all_ended.wait(max(0.0, deadline - time.monotonic()))
            left = len(self._table)
        if left:
            logger.warning("%d candidacies did not end within %.1fs of the shutdown", left, limit)
        self._host.chores.stop()
        self._host.reaper.stop()
        self._host.engines.stop()
        self._observers.stop()

    # ----- reading ---------------------------------------------------------------------------

    def _path(self, election: str) -> str:
        problem = names.election_problem(election)
        if problem:
            raise BadName(problem)
        return f"{self._root}/{election}"

    def observe(self, election: str, on_change: Callable[[ElectionView], None]) -> Observation:
        self._path(election)
        return self._observers.observe(election, on_change)

    def members(self, election: str) -> list[MemberView]:
        store = self._session.election_store(self._path(election))
        reading = read_election(store, RecordCache())
        return [] if reading is None else member_views(store, reading)

    def list(self) -> list[tuple[str, int]]:
        return self._session.list_elections(self._root or "/")

    def resign(self, election: str, epoch: int) -> ElectionLeader:
        """End the term `epoch` of `election`: its entry alone is deleted (its holder tells its
        candidate Lost DELETED and deletes the companion once it acknowledged, C2)."""
        path = self._path(election)
        store = self._session.election_store(path)
        for _ in range(3):
            reading = read_election(store, RecordCache())
            leader = reading.leader() if reading is not None else None
            if reading is None or leader is None:
                raise NoLeader(f"election {election!r} has no leader")
            current = reading.epoch_base + leader.ranked.meta.czxid
            if current != epoch:
                raise StaleEpoch(
                    f"epoch {epoch} is not the current term of {election!r}: {current} is",
                    current,
                )
            value = store.read_value(leader.name)
            info = ElectionLeader(member_of(leader, value), current, time.time())
            if self._session.delete_entry(path, leader.name):
                logger.info(
                    "election=%s resigned epoch %d (deleted %s)", election, epoch, leader.name
                )
                return info
        raise StaleEpoch(f"the leader of {election!r} kept changing", 0)

    # ----- candidacies -----------------------------------------------------------------------

    def campaign(
        self,
        election: str,
        spec: CandidateSpec,
        on_event: Callable[[CandidateEvent], None],
    ) -> Candidacy:
        self._path(election)
        problem = _spec_problem(spec)
        if problem:
            raise BadSpec(problem)
        key = (election, spec.candidate_id)
        with self._lock:
            if self._closing:
                raise TooManyCandidates("the node is shutting down")
            if key in self._table:
                raise AlreadyCampaigning(
                    f"candidate {spec.candidate_id!r} already campaigns in {election!r} "
                    "through this node"
                )
            if len(self._table) >= self._max:
                raise TooManyCandidates(
                    f"this node holds {len(self._table)} candidacies, its --max-candidates"
                )
            candidacy = Candidacy(self._host, election, spec, on_event)
            self._table[key] = candidacy
        candidacy.start()
        return candidacy

    def candidates(self) -> int:
        with self._lock:
            return len(self._table)

    def _on_ended(self, candidacy: Candidacy) -> None:
        with self._lock:
            key = (candidacy.election, candidacy.spec.candidate_id)
            if self._table.get(key) is candidacy:
                del self._table[key]
            self._all_ended.notify_all()

    # ----- C4 -----------------------------------------------------------------------------------

    def granted_until(self) -> float:
        """The latest lease granted to any candidate of this node (lease clock)."""
        with self._lock:
            return self._granted

    def add_grant_listener(self, listener: Callable[[float], None]) -> None:
        """`listener(granted_until)` whenever it grows (on the granting thread; no blocking)."""
        with self._lock:
            self._grant_listeners.append(listener)

    def _on_grant(self, until: float) -> None:
        with self._lock:
            if until <= self._granted:
                return
            self._granted = until
            listeners = list(self._grant_listeners)
        for listener in listeners:
            listener(until)
