"""Named elections on ZooKeeper (electd/elections): the store of one named election's path, and
the two calls on the elections' root that belong to no single election's engine.

Owns `ElectionZkStore`, a `ZkStore` (zk/store.py) with what engine/store.py's `ElectionStore`
adds: the child watch of the path (an exists watch while the path is missing: nothing is
created to watch it), pipelined reads of records, a candidate's proclaimed value (the `.value`
sibling of its entry, zk/paths.py: created in the entry's session by the first proclamation,
rewritten by later ones, deleted with the entry in one transaction), the never_lead members'
znodes, and the removal of its state listeners when the store closes (a candidacy's store
goes, the session lives on). Also `list_elections` (the root's children and how many entries
and members each has, pipelined) and `delete_entry` (Resign: the leader's entry alone, only if
never rewritten; its owner then deletes the companion once its candidate acknowledged, C2).

Threads: as zk/store.py: any thread; every call bounded by the session timeout.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError

from electd import names
from electd.engine.store import (
    Children,
    Entry,
    StateListener,
    Stored,
    ValueRefused,
    Watcher,
)
from electd.zk import paths
from electd.zk.store import ZkStore, _entry, _meta_fields

if TYPE_CHECKING:
    from electd.zk.session_client import ZkSession

_BATCH = 1000  # reads in flight at once


class ElectionZkStore(ZkStore):
    """The `ElectionStore` of one named election's path on a shared session."""

    def __init__(self, session: ZkSession, election_path: str) -> None:
        super().__init__(session, election_path)
        self._extra_lock = threading.Lock()
        self._valued: set[str] = set()  # our entries that have a value znode (ours)
        self._listeners: list[StateListener] = []

    # ----- lifecycle: a candidacy's store goes, the session stays -----------------------------

    def add_state_listener(self, listener: StateListener) -> None:
        with self._extra_lock:
            self._listeners.append(listener)
        super().add_state_listener(listener)

    def close(self) -> None:
        super().close()
        with self._extra_lock:
            listeners, self._listeners = self._listeners, []
        for listener in listeners:
            self.session.remove_state_listener(listener)

    def _with_entry(self, name: str) -> list[str]:
        with self._extra_lock:
            return [paths.value_name(name)] if name in self._valued else []

    def _forget(self, name: str) -> None:
        super()._forget(name)
        with self._extra_lock:
            self._valued.discard(name)

    # ----- ElectionStore ------------------------------------------------------------------------

    def children(self, watch: Watcher | None = None) -> Children | None:
        kwatch = self._wrap(watch, self._path) if watch is not None else None

        def run() -> Children | None:
            for _ in range(3):
                data_result = self._client.get_async(self._path)
                kids_result = self._client.get_children_async(self._path, kwatch)
                try:
                    data, stat = self._wait(data_result)
                    kids = self._wait(kids_result)
                except NoNodeError:
                    # Missing: watch for its creation; if it came meanwhile, read again.
                    if self._wait(self._client.exists_async(self._path, kwatch)) is None:
                        return None
                    continue
                return _children(kids, Stored(**_meta_fields(stat), data=data or b""))
            return None

        return self._call(lambda: self.session.retry()(run))

    def read_many(self, names: Sequence[str]) -> list[Stored | None]:
        def run() -> list[Stored | None]:
            out: list[Stored | None] = []
            for i in range(0, len(names), _BATCH):
                pending = [
                    self._client.get_async(paths.join(self._path, n)) for n in names[i : i + _BATCH]
                ]
                for result in pending:
                    try:
                        data, stat = self._wait(result)
                    except NoNodeError:
                        out.append(None)
                        continue
                    out.append(Stored(**_meta_fields(stat), data=data or b""))
            return out

        return self._call(lambda: self.session.retry()(run))

    def value_name(self, name: str) -> str:
        return paths.value_name(name)

    def read_value(self, name: str, watch: Watcher | None = None) -> Stored | None:
        path = paths.join(self._path, paths.value_name(name))
        kwatch = self._wrap(watch, path) if watch is not None else None

        def run() -> Stored | None:
            exists = self._client.exists_async(path, kwatch)  # fires on create, set, delete
            got = self._client.get_async(path)
            self._wait(exists)
            try:
                data, stat = self._wait(got)
            except NoNodeError:
                return None
            return Stored(**_meta_fields(stat), data=data or b"")

        return self._call(lambda: self.session.retry()(run))

    def write_value(self, name: str, data: bytes) -> int:
        entry = paths.join(self._path, name)
        path = paths.join(self._path, paths.value_name(name))
        with self._extra_lock:
            made = name in self._valued
        for _ in range(3):
            tx = self._client.transaction()
            tx.check(entry, 0)  # still there, never rewritten
            if made:
                tx.set_data(path, data)
            else:
                tx.create(path, data, ephemeral=True)
            results = self._commit(tx)
            failed = [r for r in results if isinstance(r, Exception)]
            if not failed:
                with self._extra_lock:
                    self._valued.add(name)
                return 1 if not made else int(results[1].version) + 1
            first = results[0]
            if isinstance(first, NoNodeError | BadVersionError):
                raise ValueRefused(f"entry {name} is gone or was rewritten")
            if isinstance(results[1], NodeExistsError):  # a reply lost earlier, or a forgery
                stat = self._call(lambda: self._wait(self._client.exists_async(path)))
                if stat is not None and int(stat.ephemeralOwner) != self.session_id():
                    raise ValueRefused(f"{path} belongs to another session")
                made = stat is not None
            elif isinstance(results[1], NoNodeError):  # deleted by another client: again
                made = False
            else:
                self._call(functools.partial(_raise, results[1]))
        raise ValueRefused(f"{path} kept changing under us")

    def _commit(self, tx: Any) -> list[Any]:
        return self._call(lambda: list(self._wait(tx.commit_async())))

    def add_member(self, token: str, data: bytes) -> tuple[str, int] | None:
        name = paths.member_name(token)
        path = paths.join(self._path, name)

        def attempt() -> tuple[str, int] | None:
            try:
                try:
                    self._wait(self._client.create_async(path, data, None, ephemeral=True))
                except NoNodeError:
                    self._ensure_path()
                    self._wait(self._client.create_async(path, data, None, ephemeral=True))
            except NodeExistsError:
                pass  # ours from a create whose reply was lost, or a forgery: compare owners
            stat = self._wait(self._client.exists_async(path))
            return None if stat is None else (name, int(stat.ephemeralOwner))

        return self._call(lambda: self.session.retry()(attempt))

    def remove_member(self, name: str) -> None:
        def attempt() -> None:
            with contextlib.suppress(NoNodeError):
                self._wait(self._client.delete_async(paths.join(self._path, name)))

        self._call(lambda: self.session.retry()(attempt))


def _raise(error: Exception) -> Any:
    raise error


def _children(kids: Sequence[str], path: Stored) -> Children:
    entries, alive, members = [], [], []
    for kid in kids:
        entry = _entry(kid)
        if entry is not None:
            entries.append(entry)
        elif (marked := paths.companion_of(kid)) is not None:
            alive.append(Entry(*marked))
        elif paths.is_member(kid):
            members.append(kid)
    entries.sort(key=lambda e: e.sequence)
    return Children(entries, alive, sorted(members), path)


def list_elections(session: ZkSession, root: str) -> list[tuple[str, int]]:
    """Every child of `root` that is an election name, with its entries and members counted."""
    client = session.client

    def run() -> list[tuple[str, int]]:
        try:
            kids = session.wait(client.get_children_async(root))
        except NoNodeError:
            return []
        elections = sorted(k for k in kids if names.election_problem(k) is None)
        out = []
        for i in range(0, len(elections), _BATCH):
            batch = elections[i : i + _BATCH]
            pending = [client.get_children_async(paths.join(root, e)) for e in batch]
            for election, result in zip(batch, pending, strict=True):
                try:
                    children = session.wait(result)
                except NoNodeError:
                    continue  # deleted meanwhile
                count = sum(1 for c in children if paths.parse_name(c) or paths.is_member(c))
                out.append((election, count))
        return out

    return session.call(lambda: session.retry()(run))


def delete_entry(session: ZkSession, path: str, name: str) -> bool:
    """Resign's delete: entry `name` under `path` alone, only at data version 0."""

    def run() -> bool:
        try:
            session.wait(session.client.delete_async(paths.join(path, name), version=0))
        except (NoNodeError, BadVersionError):
            return False
        return True

    return session.call(lambda: session.retry()(run))
