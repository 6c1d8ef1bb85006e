"""An in-memory store with ZooKeeper's semantics for the engine's unit tests: sequential
ephemeral entries per session, one-shot watches, state transitions. No mocks that switch on
path strings: it is a small, real implementation of the `Store` protocol."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from electd.engine.clock import now as lease_clock
from electd.engine.store import (
    ConnState,
    CoordinatorUnavailable,
    Entry,
    Meta,
    SessionLost,
    StateListener,
    Stored,
    Watcher,
    WatchEvent,
)
from electd.zk.paths import companion_name, companion_of, parse_name


@dataclass
class _Node:
    data: bytes
    owner: int
    czxid: int
    version: int = 0
    watches: set[Watcher] = field(default_factory=set)


class MemEnsemble:
    """The shared 'server': one election path, a zxid counter, a sequence counter."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.nodes: dict[str, _Node] = {}
        self.foreign: set[str] = set()
        self.zxid = itertools.count(100)
        self.seq = itertools.count(0)
        self.sessions = itertools.count(0x1000)
        # The election path's data, data version and czxid (None: the path does not exist).
        self.path: tuple[bytes, int, int] | None = (b"", 0, next(self.zxid))
        self.path_watches: set[Watcher] = set()

    def expire(self, session: int) -> list[tuple[Watcher, WatchEvent]]:
        with self.lock:
            gone = [n for n, node in self.nodes.items() if node.owner == session]
            return [f for n in gone for f in self._delete(n)]

    def _delete(self, name: str) -> list[tuple[Watcher, WatchEvent]]:
        node = self.nodes.pop(name, None)
        if node is None:
            return []
        return [(w, WatchEvent.GONE) for w in node.watches]

    def delete(self, *names: str) -> None:
        """Another client deletes these children, in one transaction."""
        with self.lock:
            fire = [f for name in names for f in self._delete(name)]
        for w, ev in fire:
            w(ev)

    def add_raw(self, name: str, data: bytes, owner: int = 0) -> None:
        """A child created by someone else, with any name (foreign or corrupt data; owner 0:
        persistent, else the session that owns it)."""
        with self.lock:
            self.nodes[name] = _Node(data, owner, next(self.zxid))

    def set_path(self, data: bytes | None) -> None:
        """Another client sets the election path's data (None: deletes the path)."""
        with self.lock:
            if data is None:
                self.path = None
            else:
                old = self.path or (b"", 0, next(self.zxid))
                self.path = (data, old[1] + 1, old[2])
            fire, self.path_watches = self.path_watches, set()
        for w in fire:
            w(WatchEvent.GONE if data is None else WatchEvent.CHANGED)

    def rewrite(self, name: str, data: bytes) -> None:
        """Another client sets an entry's data (its data version goes up)."""
        with self.lock:
            node = self.nodes[name]
            node.data, node.version = data, node.version + 1
            fire, node.watches = node.watches, set()
        for w in fire:
            w(WatchEvent.CHANGED)


class MemStore:
    def __init__(
        self,
        ensemble: MemEnsemble,
        session_timeout: float = 3.0,
        clock: Callable[[], float] = lease_clock,
    ) -> None:
        self.ens = ensemble
        self._timeout = session_timeout
        self._clock = clock
        self._sid: int | None = None
        self._established = 0.0
        self._listeners: list[StateListener] = []
        self.connected = False
        self.calls = 0
        self.before_next_call: Callable[[], None] | None = None

    # ----- test controls ----------------------------------------------------------------------

    def connect(self) -> None:
        if self._sid is None:
            self._sid = next(self.ens.sessions)
        self._established = self._clock()
        self.connected = True
        self._emit(ConnState.CONNECTED)

    def suspend(self) -> None:
        self.connected = False
        self._emit(ConnState.SUSPENDED)

    def expire(self) -> None:
        sid, self._sid = self._sid, None
        self.connected = False
        fire = self.ens.expire(sid) if sid is not None else []
        self._emit(ConnState.LOST)
        for w, ev in fire:
            w(ev)

    def expire_and_reconnect(self) -> None:
        """What kazoo does after a long pause: the old session is found expired (its entries
        are gone), a new one is established, and calls in flight simply continue in it."""
        old = self._sid
        self._sid = next(self.ens.sessions)
        self._established = self._clock()
        fire = self.ens.expire(old) if old is not None else []
        self._emit(ConnState.LOST)
        self._emit(ConnState.CONNECTED)
        for w, ev in fire:
            w(ev)

    def _emit(self, state: ConnState) -> None:
        for listener in list(self._listeners):
            listener(state)

    # ----- Store ------------------------------------------------------------------------------

    def _check(self) -> int:
        self.calls += 1
        hook, self.before_next_call = self.before_next_call, None
        if hook is not None:
            hook()
        if self._sid is None:
            raise SessionLost("expired")
        if not self.connected:
            raise CoordinatorUnavailable("disconnected")
        return self._sid

    def session_id(self) -> int | None:
        return self._sid if self.connected else None

    def session_timeout(self) -> float:
        return self._timeout

    def session_established(self) -> tuple[int, float] | None:
        sid = self.session_id()
        return None if sid is None else (sid, self._established)

    def add_state_listener(self, listener: StateListener) -> None:
        self._listeners.append(listener)

    def register(self, token: str, data: bytes, maybe_exists: bool) -> tuple[Entry, int]:
        sid = self._check()
        with self.ens.lock:
            if maybe_exists:
                for e in self._entries():
                    if e.token == token:
                        return e, self.ens.nodes[e.name].owner
            name = f"electd-{token}-{next(self.ens.seq):010d}"
            self.ens.nodes[name] = _Node(data, sid, next(self.ens.zxid))
            return Entry(name, token, int(name[-10:])), sid

    def _entries(self) -> list[Entry]:
        out = []
        for name in self.ens.nodes:
            parsed = parse_name(name)
            if parsed is not None:
                out.append(Entry(name, *parsed))
        return sorted(out, key=lambda e: e.sequence)

    def entries(self) -> list[Entry]:
        self._check()
        with self.ens.lock:
            return self._entries()

    def listing(self) -> tuple[list[Entry], list[Entry]]:
        self._check()
        with self.ens.lock:
            alive = [Entry(*m) for n in self.ens.nodes if (m := companion_of(n)) is not None]
            return self._entries(), alive

    def companion(self, name: str) -> str:
        return companion_name(name)

    def mark_alive(self, name: str) -> int | None:
        sid = self._check()
        with self.ens.lock:
            if self.ens.path is None:
                return None
            node = self.ens.nodes.setdefault(
                companion_name(name), _Node(b"", sid, next(self.ens.zxid))
            )
            return node.owner

    def read(self, name: str, watch: Watcher | None = None) -> Stored | None:
        self._check()
        with self.ens.lock:
            node = self.ens.nodes.get(name)
            if node is None:
                return None
            if watch is not None:
                node.watches.add(watch)
            return Stored(node.owner, node.czxid, node.version, 0, data=node.data)

    def stats(self, names: Sequence[str], watches: Mapping[str, Watcher]) -> list[Meta | None]:
        self._check()
        out: list[Meta | None] = []
        with self.ens.lock:
            for name in names:
                node = self.ens.nodes.get(name)
                if node is None:
                    out.append(None)
                    continue
                if name in watches:
                    node.watches.add(watches[name])
                out.append(Meta(node.owner, node.czxid, node.version, 0))
        return out

    def path_data(self, watch: Watcher | None = None) -> Stored:
        self._check()
        with self.ens.lock:
            if self.ens.path is None:
                self.ens.path = (b"", 0, next(self.ens.zxid))
            if watch is not None:
                self.ens.path_watches.add(watch)
            data, version, czxid = self.ens.path
            return Stored(0, czxid, version, 0, data=data)

    def init_path_data(self, data: bytes) -> bool:
        self._check()
        with self.ens.lock:
            if self.ens.path is None:
                self.ens.path = (b"", 0, next(self.ens.zxid))
            if self.ens.path[1] != 0:
                return False
            self.ens.path = (data, 1, self.ens.path[2])
            fire, self.ens.path_watches = self.ens.path_watches, set()
        for w in fire:
            w(WatchEvent.CHANGED)
        return True

    def remove(self, name: str) -> None:
        self._check()
        self.ens.delete(name, companion_name(name))

    def remove_nowait(self, name: str, done: Callable[[Exception | None], None]) -> None:
        try:
            self.remove(name)
        except CoordinatorUnavailable as exc:
            done(exc)
        else:
            done(None)

    def sync(self) -> None:
        self._check()

    def close(self) -> None:
        if self._sid is not None:
            sid, self._sid = self._sid, None
            for w, ev in self.ens.expire(sid):
                w(ev)
        self.connected = False
