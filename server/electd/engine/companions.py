"""The companions this node waits for before it claims (the rule is order.py's): the companions
of entries that went away while their owner may still vouch, since when we have seen each, and
until when at the latest we wait for it (2T/3 after we first saw it: V11 in RELIABILITY.md).

Owns the suspects (companions of entries older than ours that went away, not read yet), the
blocking ones (read, still there) and when each was first seen. Runs on the engine's worker
thread only (the engine's `_run` asks `wake_at` there too). Imports neither kazoo nor grpc.

Invariants:
  * A companion is known by (name, czxid): one recreated under the same name is another one.
  * A blocking companion stops blocking when it goes, or once 2T/3 have passed since it was
    first seen, whatever happens meanwhile (a later full pass keeps the first sighting).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from electd.engine.order import holds_back
from electd.engine.store import Meta


class Waits:
    def __init__(self, clock: Callable[[], float], length: Callable[[], float]) -> None:
        """`clock`: the lease clock; `length()`: how long a lease lasts (2T/3 of the granted
        session timeout, asked afresh each time)."""
        self._clock = clock
        self._length = length
        self._first: dict[tuple[str, int], float] = {}
        self.suspects: dict[str, int] = {}  # companion -> the session that owned its entry
        self.blocking: dict[str, float] = {}  # companion -> until when it blocks

    def suspect(self, companion: str, owner: int) -> None:
        """An entry older than ours went away: its companion must be read before we claim."""
        self.suspects[companion] = owner

    def to_read(self) -> list[tuple[str, int]]:
        """The companions to read before a claim, with the owner each must have to block."""
        out = dict.fromkeys(self.blocking, 0)
        out.update(self.suspects)
        return list(out.items())

    def judge(self, companion: str, owner: int, meta: Meta | None, ours: int) -> bool:
        """`meta`: the companion as just read. True if it blocks a claim now."""
        self.suspects.pop(companion, None)
        if not holds_back(meta, owner, ours):
            self.blocking.pop(companion, None)
            return False
        assert meta is not None
        now = self._clock()
        until = self._first.setdefault((companion, meta.czxid), now) + self._length()
        if now >= until:
            self.blocking.pop(companion, None)
            return False
        self.blocking[companion] = until
        return True

    def gone(self, companion: str) -> None:
        """Its watch says it was deleted."""
        self.suspects.pop(companion, None)
        self.blocking.pop(companion, None)

    def restart(self, live: Iterable[tuple[str, int]]) -> None:
        """A full pass starts over from a listing, which shows every companion still there:
        forget the suspects and blockers, and the first sightings of companions not in `live`
        ((name, czxid) of the companions that exist now)."""
        self.suspects.clear()
        self.blocking.clear()
        keep = set(live)
        self._first = {k: v for k, v in self._first.items() if k in keep}

    def wake_at(self) -> float | None:
        """When the first blocking companion stops blocking by itself (lease clock)."""
        return min(self.blocking.values(), default=None)

    def why(self) -> str:
        """The published reason while a claim waits."""
        return (
            f"an older entry was deleted by another client while its owner may still lead: "
            f"waiting for its companion {min(self.blocking)} to go (at most 2T/3)"
        )
