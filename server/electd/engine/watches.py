"""The engine's watches: which entries have a watch set that has not fired yet (and what each
entry was to us when it was set), and the watch events the worker has not looked at yet.

Threads: `arm`, `disarm`, `role`, `take` run on the engine's worker; `fired` on the store's
threads (a watch callback: it only records, never blocks). All state is guarded by `_lock`.
Imports nothing of kazoo or grpc.

Invariant: an entry is armed from before the call that sets its watch until the watch fires
(or the call fails), so an event that races the reply only makes the worker look again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from electd.engine.store import WatchEvent

# What a watched entry was to us when its watch was set. PATH is the election path itself (its
# data holds the cluster identity); it is watched under that name, which no entry can have.
# ALIVE is our own entry's companion; BLOCKER the companion of an entry that went away while
# its owner may still vouch (order.py: we wait for it to go before we claim).
OWN, LEADER, PREDECESSOR, PATH = "own", "leader", "predecessor", ""
ALIVE, BLOCKER = "alive", "blocker"


class Watch:
    """The watch on one entry: reports the entry's name with the event. Equal per (book,
    entry), so that a store keeping one registration per callback and znode never registers
    the same watch twice."""

    __slots__ = ("_book", "name")

    def __init__(self, book: WatchBook, name: str) -> None:
        self._book = book
        self.name = name

    def __call__(self, event: WatchEvent) -> None:
        self._book.fired(self.name, event)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Watch) and other._book is self._book and other.name == self.name

    def __hash__(self) -> int:
        return hash((id(self._book), self.name))


class WatchBook:
    def __init__(self, on_fired: Callable[[str, str, WatchEvent], None]) -> None:
        """`on_fired(name, role, event)` runs on the store's thread after each event is
        recorded; it must not block."""
        self._on_fired = on_fired
        self._lock = threading.Lock()
        self._armed: dict[str, str] = {}
        self._events: list[tuple[str, WatchEvent]] = []

    def arm(self, name: str, role: str) -> Watch:
        """Mark `name` as watched (as `role`) before the call that sets the watch is sent."""
        with self._lock:
            self._armed[name] = role
        return Watch(self, name)

    def disarm(self, name: str) -> None:
        """The call that was to set the watch failed, or found the entry gone."""
        with self._lock:
            self._armed.pop(name, None)

    def role(self, name: str) -> str | None:
        """What `name` is watched as, or None if no watch of ours is set on it."""
        with self._lock:
            return self._armed.get(name)

    def relabel(self, name: str, role: str) -> bool:
        """Count an armed entry's watch as `role` from now on; False if it is not armed."""
        with self._lock:
            if name not in self._armed:
                return False
            self._armed[name] = role
            return True

    def take(self) -> list[tuple[str, WatchEvent]]:
        """The events not looked at yet (and forget them)."""
        with self._lock:
            events, self._events = self._events, []
            return events

    def clear_events(self) -> None:
        with self._lock:
            self._events.clear()

    def fired(self, name: str, event: WatchEvent) -> None:
        with self._lock:
            role = self._armed.pop(name, PREDECESSOR)
            self._events.append((name, event))
        self._on_fired(name, role, event)
