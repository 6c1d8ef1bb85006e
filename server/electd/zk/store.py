"""ZkStore: the engine's `Store` for one election path, on a `ZkSession` (zk/session_client.py).

Owns what is per election path: its znodes (entries, companions, the path's own data, through
zk/paths.py's names), the watches set on them, the retries of each call and the foreign
children warned about. Everything per session (the kazoo client, state listeners, handshakes,
sync, credentials, error translation) is the session's; several stores, one per election, may
share one session (`ZkStore(session, path)`), and `ZkStore.standalone(...)` is one election on
a session of its own, as every node runs today. A missing znode is a normal `None`.

Threads: every method may be called from any thread (kazoo's client is thread-safe). Watch and
state callbacks run on kazoo's threads and are passed straight to the engine's callbacks, which
must not block. Every blocking call is bounded by the session timeout, so no caller can hang
while ZooKeeper is away.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from kazoo.exceptions import BadVersionError, KazooException, NodeExistsError, NoNodeError
from kazoo.protocol.states import EventType, WatchedEvent

from electd.engine.store import (
    CoordinatorUnavailable,
    Entry,
    Meta,
    StateListener,
    Stored,
    Watcher,
    WatchEvent,
)
from electd.zk import paths
from electd.zk.session_client import ZkSession

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

_EVENTS = {EventType.DELETED: WatchEvent.GONE, EventType.CHANGED: WatchEvent.CHANGED}
# How many metadata reads `stats` keeps in flight at once (pipelined on the one connection).
_BATCH = 1000


class ZkStore:
    """One election path on a `ZkSession` (zk/session_client.py): the engine's `Store`. The
    session's facts (id, timeout, handshakes, state, sync) are the session's; several stores
    may share one session, one per election. `owns_session`: the store starts the session and
    closes it with itself (`ZkStore.standalone`, one election on its own session)."""

    def __init__(self, session: ZkSession, election_path: str, owns_session: bool = False) -> None:
        self.session = session
        self._path = election_path
        self._owns = owns_session
        self._client = session.client
        self._foreign_lock = threading.Lock()
        self._foreign: set[str] = set()
        self._wrapped_lock = threading.Lock()
        self._wrapped: dict[tuple[Watcher, str], Callable[[WatchedEvent], Any]] = {}
        self._mine_lock = threading.Lock()
        self._mine: set[str] = set()  # entries this store registered and has not deleted yet
        self._closed = False

    @classmethod
    def standalone(
        cls,
        hosts: str,
        election_path: str,
        session_timeout: float,
        connect_timeout: float = 10.0,
        client_options: Mapping[str, Any] | None = None,
    ) -> ZkStore:
        """One election on a session of its own (today's node): `start` connects, `close` ends
        the session. Its syncs name the election path, as they always did."""
        session = ZkSession(
            hosts, session_timeout, connect_timeout, client_options, sync_path=election_path
        )
        return cls(session, election_path, owns_session=True)

    # ----- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Connect (if this store owns its session) and make sure the election path exists.
        Raises CoordinatorUnavailable when no server answers within the connect timeout."""
        if self._owns:
            self.session.start()
        self._call(self._ensure_path)

    def close(self) -> None:
        """Done with this election. A store that owns its session ends it (and every ephemeral
        znode of it). On a shared session, the session lives on for the other elections: an
        entry the engine could not delete is handed to the session, which deletes it as soon
        as ZooKeeper answers (the engine stopped vouching for it before)."""
        if self._closed:
            return
        self._closed = True
        if self._owns:
            self.session.close()
            return
        with self._mine_lock:
            left, self._mine = sorted(self._mine), set()
        for name in left:
            companion = paths.join(self._path, paths.companion_name(name))
            extra = tuple(paths.join(self._path, n) for n in self._with_entry(name))
            self.session.leave_behind((paths.join(self._path, name), *extra, companion))

    def _with_entry(self, name: str) -> list[str]:
        """Other znodes of ours that go with the entry `name` (besides its companion, which
        goes last): none here; a candidate's value znode (zk/elections.py)."""
        return []

    # ----- Store: the session's facts ---------------------------------------------------------

    def session_id(self) -> int | None:
        return self.session.session_id()

    def session_credentials(self) -> tuple[int, bytes] | None:
        """The session's id and password, for the supervisor alone (zk/session_client.py)."""
        return self.session.session_credentials()

    def session_timeout(self) -> float:
        return self.session.session_timeout()

    def session_established(self) -> tuple[int, float] | None:
        return self.session.session_established()

    def add_state_listener(self, listener: StateListener) -> None:
        self.session.add_state_listener(listener)

    def sync(self) -> None:
        self.session.sync(self._path)

    # ----- Store: the election ------------------------------------------------------------------

    def register(self, token: str, data: bytes, maybe_exists: bool) -> tuple[Entry, int]:
        prefix = paths.create_prefix(self._path, token)
        first = [not maybe_exists]

        def attempt() -> tuple[Entry, int]:
            if not first[0]:
                # An earlier create may have succeeded on the server while its reply was lost
                # (connection loss): find it by its token instead of creating a second one.
                for entry in self._list()[0]:
                    if entry.token != token:
                        continue
                    stat = self._wait(self._client.exists_async(paths.join(self._path, entry.name)))
                    if stat is not None:
                        logger.info("found our znode %s from an interrupted create", entry.name)
                        return entry, int(stat.ephemeralOwner)
            first[0] = False
            try:
                created, stat = self._wait(self._create(prefix, data))
            except NoNodeError:  # the election path was deleted: recreate it
                self._ensure_path()
                created, stat = self._wait(self._create(prefix, data))
            parsed = _entry(str(created).rsplit("/", 1)[-1])
            assert parsed is not None, created
            return parsed, int(stat.ephemeralOwner)

        entry, owner = self._call(lambda: self.session.retry()(attempt))
        with self._mine_lock:
            self._mine.add(entry.name)
        return entry, owner

    def _create(self, prefix: str, data: bytes) -> Any:
        return self._client.create_async(
            prefix, data, None, ephemeral=True, sequence=True, include_data=True
        )

    def entries(self) -> list[Entry]:
        return self._call(lambda: self.session.retry()(self._list))[0]

    def listing(self) -> tuple[list[Entry], list[Entry]]:
        return self._call(lambda: self.session.retry()(self._list))

    def companion(self, name: str) -> str:
        return paths.companion_name(name)

    def mark_alive(self, name: str) -> int | None:
        path = paths.join(self._path, paths.companion_name(name))

        def attempt() -> int | None:
            try:
                _, stat = self._wait(
                    self._client.create_async(path, b"", None, ephemeral=True, include_data=True)
                )
            except NodeExistsError:  # ours from a create whose reply was lost, or a forgery
                stat = self._wait(self._client.exists_async(path))
                if stat is None:  # and gone again: another client is at it; the engine retries
                    raise CoordinatorUnavailable(f"{path} came and went under us") from None
            except NoNodeError:  # the election path is gone, and our entry with it
                return None
            return int(stat.ephemeralOwner)

        return self._call(lambda: self.session.retry()(attempt))

    def read(self, name: str, watch: Watcher | None = None) -> Stored | None:
        path = paths.join(self._path, name)
        kwatch = self._wrap(watch, path) if watch is not None else None

        def get() -> tuple[bytes, Any]:
            return self._wait(self._client.get_async(path, kwatch))  # type: ignore[no-any-return]

        try:
            data, stat = self._call(lambda: self.session.retry()(get))
        except NoNodeError:
            return None
        return Stored(**_meta_fields(stat), data=data or b"")

    def stats(self, names: Sequence[str], watches: Mapping[str, Watcher]) -> list[Meta | None]:
        def run() -> list[Meta | None]:
            out: list[Meta | None] = []
            for i in range(0, len(names), _BATCH):
                pending = []
                for name in names[i : i + _BATCH]:
                    path = paths.join(self._path, name)
                    watch = watches.get(name)
                    kwatch = self._wrap(watch, path) if watch is not None else None
                    pending.append(self._client.exists_async(path, kwatch))
                for result in pending:
                    stat = self._wait(result)
                    out.append(None if stat is None else Meta(**_meta_fields(stat)))
            return out

        return self._call(lambda: self.session.retry()(run))

    def path_data(self, watch: Watcher | None = None) -> Stored:
        kwatch = self._wrap(watch, self._path) if watch is not None else None

        def get() -> tuple[bytes, Any]:
            try:
                return self._wait(self._client.get_async(self._path, kwatch))  # type: ignore[no-any-return]
            except NoNodeError:
                self._ensure_path()
                return self._wait(self._client.get_async(self._path, kwatch))  # type: ignore[no-any-return]

        data, stat = self._call(lambda: self.session.retry()(get))
        return Stored(**_meta_fields(stat), data=data or b"")

    def init_path_data(self, data: bytes) -> bool:
        self._call(self._ensure_path)
        try:
            self._call(lambda: self._wait(self._client.set_async(self._path, data, 0)))
        except BadVersionError:
            return False
        return True

    def remove(self, name: str) -> None:
        self._call(
            lambda: self.session.retry()(lambda: self._wait_removed(self._remove_async(name)))
        )
        self._forget(name)

    def _forget(self, name: str) -> None:
        """`name` and its companion are deleted: nothing of it is left to hand to the session."""
        with self._mine_lock:
            self._mine.discard(name)

    def remove_nowait(self, name: str, done: Callable[[Exception | None], None]) -> None:
        def finished(result: Any) -> None:
            try:
                self._call(lambda: self._removed(result.get_nowait()))
            except CoordinatorUnavailable as exc:
                done(exc)
            else:
                self._forget(name)
                done(None)

        try:
            sent = self._call(lambda: self._remove_async(name))
        except CoordinatorUnavailable as exc:
            done(exc)
            return
        sent.rawlink(finished)

    def _remove_async(self, name: str) -> Any:
        """Send the deletes of an entry and its companion, in one transaction (so that a
        successor sees both go at once, and claims without waiting: order.py); if that fails
        because one of them is gone already, the other goes alone (the entry first), sent
        from the transaction's callback. The result is that of the last request sent."""
        entry = paths.join(self._path, name)
        companion = paths.join(self._path, paths.companion_name(name))
        extra = [paths.join(self._path, n) for n in self._with_entry(name)]
        tx = self._client.transaction()
        tx.delete(entry)
        for path in extra:
            tx.delete(path)
        tx.delete(companion)
        result = self._client.handler.async_result()

        def committed(sent: Any) -> None:
            try:
                results = sent.get_nowait()
            except KazooException as exc:  # handed on to the waiter, translated there
                result.set_exception(exc)
                return
            if all(r is True for r in results):
                result.set(True)
                return
            for path in (entry, *extra):
                self._client.delete_async(path)
            self._client.delete_async(companion).rawlink(
                lambda last: result.set(self._settled(last))
            )

        tx.commit_async().rawlink(committed)
        return result

    @staticmethod
    def _settled(last: Any) -> Any:
        try:
            last.get_nowait()
        except NoNodeError:
            return True
        except KazooException as exc:  # handed on to the waiter, translated there
            return exc
        return True

    def _wait_removed(self, async_result: Any) -> None:
        self._removed(self._wait(async_result))

    @staticmethod
    def _removed(outcome: Any) -> None:
        if isinstance(outcome, Exception):
            raise outcome

    # ----- helpers --------------------------------------------------------------------------

    def _list(self) -> tuple[list[Entry], list[Entry]]:
        try:
            names = self._wait(self._client.get_children_async(self._path))
        except NoNodeError:
            return [], []
        out, alive = [], []
        for name in names:
            entry = _entry(name)
            if entry is not None:
                out.append(entry)
            elif (marked := paths.companion_of(name)) is not None:
                alive.append(Entry(*marked))
            elif paths.value_of(name) is None and not paths.is_member(name):
                self._warn_foreign(name)  # a candidate's value or member znode is ours
        out.sort(key=lambda e: e.sequence)
        return out, alive

    def _ensure_path(self) -> None:
        """Create the election path and its parents if missing, bounded like every call
        (kazoo's own `ensure_path` waits for its reply without a limit)."""
        self._wait(self._client.ensure_path_async(self._path))

    def _wait(self, async_result: Any) -> Any:
        return self.session.wait(async_result)

    def _wrap(self, watch: Watcher, path: str) -> Callable[[WatchedEvent], Any]:
        """kazoo watch -> engine watch. One wrapper per engine callback and znode, so that kazoo
        (which keeps watchers in a set per path) never registers the same callback twice on a
        znode. A wrapper is forgotten when it fires (kazoo forgets a fired watch too), so the
        table only holds watches that are set."""
        key = (watch, path)
        with self._wrapped_lock:
            wrapped = self._wrapped.get(key)
            if wrapped is None:

                def on_event(event: WatchedEvent) -> None:
                    with self._wrapped_lock:
                        if self._wrapped.get(key) is on_event:
                            del self._wrapped[key]
                    watch(_EVENTS.get(event.type, WatchEvent.SESSION))

                wrapped = self._wrapped[key] = on_event
        return wrapped

    def _warn_foreign(self, name: str) -> None:
        with self._foreign_lock:
            if name in self._foreign:
                return
            if len(self._foreign) > 10_000:
                self._foreign.clear()
            self._foreign.add(name)
        logger.warning("ignoring foreign znode %s/%s: not an electd member name", self._path, name)

    def _call(self, fn: Callable[[], _T]) -> _T:
        return self.session.call(fn)


def _meta_fields(stat: Any) -> dict[str, int]:
    return {
        "session_id": int(stat.ephemeralOwner),
        "czxid": int(stat.czxid),
        "version": int(stat.version),
        "created_ms": int(stat.ctime),
    }


def _entry(name: str) -> Entry | None:
    parsed = paths.parse_name(name)
    if parsed is None:
        return None
    return Entry(name, parsed[0], parsed[1])
