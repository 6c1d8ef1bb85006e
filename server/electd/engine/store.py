"""The store interface the election engine decides through, and the errors it may raise.

Implemented by `electd.zk.store.ZkStore` (real ZooKeeper) and, in unit tests, by an in-memory
store with the same semantics. Imports neither kazoo nor grpc.

Contract (ZooKeeper's semantics, restated so other stores can honour them):
  * `register` creates one ephemeral sequential entry, named with the caller's unique token,
    and reports the session that owns it; when `maybe_exists` is true it first looks for an
    entry with that token (a previous attempt's create may have succeeded on the server while
    its reply was lost) so that no attempt leaves an orphan behind.
  * Every entry has a companion (`companion` names it): an ephemeral child its owner creates
    right after the entry, in the same session (`mark_alive`), and deletes only after it has
    stopped vouching: with the entry in one transaction (`remove`), or alone once the entry
    is gone. A companion is neither an entry nor foreign.
  * `entries` lists the children whose names are electd entry names (never other children);
    `listing` also names the entries whose companion is a child (the entry may be gone);
    `stats` reads many entries' metadata at once, without their data (pipelined: a foreign
    client may have created thousands of children).
  * Watch callbacks are one-shot, may run on any thread and must not block.
  * State callbacks report CONNECTED / SUSPENDED / LOST transitions, also on any thread, and
    must not block either.

Named elections (electd/elections) need more of a store than the engine does: `ElectionStore`
adds the child watch of the election path, pipelined reads of records, a candidate's
proclaimed value (a sibling `.value` znode of its entry, never the entry's own data) and the
never_lead members (ephemeral children that are not entries); `ElectionsSession` is what the
registry needs of the one session all its elections share (a store per election path, the
listing of the elections' root, the delete of Resign).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol


class CoordinatorUnavailable(Exception):
    """No usable connection to the coordinator (ZooKeeper) right now; retry later."""


class SessionLost(CoordinatorUnavailable):
    """The coordinator session expired: every ephemeral entry of it is gone."""


class ConnState(enum.Enum):
    CONNECTED = "CONNECTED"
    SUSPENDED = "SUSPENDED"
    LOST = "LOST"


class WatchEvent(enum.Enum):
    GONE = "GONE"  # the entry was deleted
    CHANGED = "CHANGED"  # its data changed
    SESSION = "SESSION"  # the watch was dropped because of a session event


@dataclass(frozen=True)
class Entry:
    """A child of the election path that carries an electd name: `token` and `sequence`."""

    name: str
    token: str
    sequence: int


@dataclass(frozen=True)
class Meta:
    """What ZooKeeper itself says about an entry: the only facts the election is decided on
    (a client of the ensemble can write any data, but cannot forge these)."""

    session_id: int  # the ephemeralOwner; 0 for a persistent znode
    czxid: int  # the zxid of its create: the order of creation, and the epoch if it leads
    version: int  # the data version: 0 until someone rewrites the data
    created_ms: int  # the create time on the ZooKeeper server's clock

    @property
    def ephemeral(self) -> bool:
        return self.session_id != 0


@dataclass(frozen=True)
class Stored(Meta):
    """An entry's metadata and its data."""

    data: bytes = b""


Watcher = Callable[[WatchEvent], None]
StateListener = Callable[[ConnState], None]


class Store(Protocol):
    def session_id(self) -> int | None:
        """The current session's id, or None while there is none."""
        ...

    def session_timeout(self) -> float:
        """The session timeout in seconds."""
        ...

    def session_established(self) -> tuple[int, float] | None:
        """The current session and a lease-clock reading (engine/clock.py) taken before the
        handshake that last established or revalidated it began (ZooKeeper's leader refreshes
        the session during that handshake, so not before this time), or None before the first
        session."""
        ...

    def add_state_listener(self, listener: StateListener) -> None: ...

    def register(self, token: str, data: bytes, maybe_exists: bool) -> tuple[Entry, int]:
        """Create an ephemeral sequential entry for `token`, exactly once. Returns the entry
        and the session that owns it (its ephemeralOwner): normally the current session, but a
        create that raced a session change (the store reconnects on its own) may have landed
        in the other one, and the caller must know which."""
        ...

    def entries(self) -> list[Entry]:
        """The election's entries, lowest sequence first."""
        ...

    def listing(self) -> tuple[list[Entry], list[Entry]]:
        """In one read: the election's entries (as `entries`), and the entries whose companion
        is a child now, whether the entry itself still exists or not."""
        ...

    def companion(self, name: str) -> str:
        """The name of the companion of the entry named `name` (no round trip): `stats` and
        `read` take it like any name, and its watch reports it."""
        ...

    def mark_alive(self, name: str) -> int | None:
        """Create the companion of our entry `name` in the current session. Returns its
        ephemeralOwner: normally the current session, but a companion that existed already
        (a create whose reply was lost, or another client's forgery) keeps its owner, and the
        caller must compare. None if the election path (with the entry) is gone."""
        ...

    def stats(self, names: Sequence[str], watches: Mapping[str, Watcher]) -> list[Meta | None]:
        """The metadata of each named entry (None: gone), in the order given, with the calls
        in flight together. Sets `watches[name]` (fires once when that entry changes or goes
        away) on the entries named in `watches`, where it exists."""
        ...

    def read(self, name: str, watch: Watcher | None = None) -> Stored | None:
        """An entry's data and metadata, or None if it is gone. `watch` fires once when the
        entry changes or goes away (it is not set when None is returned)."""
        ...

    def path_data(self, watch: Watcher | None = None) -> Stored:
        """The election path's own data and metadata (the cluster identity lives there); the
        path is created (empty) if it is missing. `watch` fires once when its data changes or
        it is deleted."""
        ...

    def init_path_data(self, data: bytes) -> bool:
        """Write the election path's own data if it was never written (data version 0),
        creating the path if it is missing. False if another client wrote it first."""
        ...

    def remove(self, name: str) -> None:
        """Delete an entry and its companion, in one transaction: a successor sees both go at
        once. Whichever of the two is already gone is not an error (the other still goes)."""
        ...

    def remove_nowait(self, name: str, done: Callable[[Exception | None], None]) -> None:
        """Send the deletes of `remove` and return at once. `done` runs later, on any thread
        and without blocking, with None (deleted, or already gone) or the error
        (CoordinatorUnavailable). For leaving the election from a thread that must not wait."""
        ...

    def sync(self) -> None:
        """A round trip through the coordinator's quorum (ZooKeeper's sync): it cannot succeed
        on a server that has lost its quorum, unlike a read, which such a server still answers
        until it notices (up to syncLimit ticks). Returns only once the callback of every watch
        event that arrived before its answer has run: a watch that has not fired by then was
        not triggered by any change committed before ZooKeeper's leader handled the sync."""
        ...

    def close(self) -> None:
        """End the session (its ephemeral entries go with it)."""
        ...


class ValueRefused(Exception):
    """A proclamation was not stored: the entry is gone (or was rewritten), or its value znode
    belongs to another session."""


@dataclass(frozen=True)
class Children:
    """One read of an election path: its entries (as `Store.entries`), the entries whose
    companion is a child, the never_lead members' znode names and the path's own data (the
    cluster identity), read together."""

    entries: list[Entry]
    alive: list[Entry]
    members: list[str]
    path: Stored


class ElectionStore(Store, Protocol):
    """A `Store` for one named election's path, with what candidacies and observers need."""

    def children(self, watch: Watcher | None = None) -> Children | None:
        """The path's children and data, or None if the path does not exist (never created
        here). `watch` fires once when the children change or the path goes, or, for a
        missing path, when it is created."""
        ...

    def read_many(self, names: Sequence[str]) -> list[Stored | None]:
        """The data and metadata of each named child (None: gone), pipelined."""
        ...

    def value_name(self, name: str) -> str:
        """The name of the value znode of the entry `name` (no round trip; `read_many` takes
        it like any name)."""
        ...

    def read_value(self, name: str, watch: Watcher | None = None) -> Stored | None:
        """The value znode of entry `name` (None: none). `watch` fires once when it is
        created, rewritten or deleted."""
        ...

    def write_value(self, name: str, data: bytes) -> int:
        """Store `data` as the proclaimed value of our entry `name` (created in the current
        session on the first call, rewritten after), in one transaction with a check that the
        entry still exists unrewritten. Returns the value's revision (its data version + 1).
        Raises ValueRefused, or CoordinatorUnavailable."""
        ...

    def add_member(self, token: str, data: bytes) -> tuple[str, int] | None:
        """Create the never_lead member znode for `token` with `data` (the election path is
        created if missing); returns its name and ephemeralOwner (an existing one keeps its
        owner: compare)."""
        ...

    def remove_member(self, name: str) -> None:
        """Delete a never_lead member znode (already gone is not an error)."""
        ...


class ElectionsSession(Protocol):
    """What the elections registry needs of the session all its elections share."""

    def session_id(self) -> int | None: ...

    def session_timeout(self) -> float: ...

    def session_established(self) -> tuple[int, float] | None: ...

    def sync(self) -> None: ...

    def add_state_listener(self, listener: StateListener) -> None: ...

    def remove_state_listener(self, listener: StateListener) -> None: ...

    def election_store(self, path: str) -> ElectionStore:
        """A store for the election at `path` on this session (nothing is created)."""
        ...

    def list_elections(self, root: str) -> list[tuple[str, int]]:
        """The children of `root` and how many entries and members each has, sorted by name
        ([] if `root` does not exist)."""
        ...

    def delete_entry(self, path: str, name: str) -> bool:
        """Delete the entry `name` under `path` (not its companion), only if its data was never
        rewritten; False if it is gone or was rewritten."""
        ...
