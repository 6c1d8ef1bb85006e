"""The members of one election: decoding each entry's data into a member, the member listing
(`ElectionEngine.members`), and the cache of decoded and bad records.

Owns the cache (entry name -> Member, or None for data that is not an electd node record) and
the rule that this node's own entry carries the record it wrote, whatever its data says now.
Imports only the engine's model and store interface: no kazoo, no grpc, neither the engine nor
the lease.

Threads: `current` is called from any thread (RPC handlers), `member` from the engine's worker.
The cache is guarded by `_lock`, never held across a store call.

Invariants:
  * An entry's data never changes, so a cached entry is never read again; `current` drops the
    cache's entries that its listing no longer shows.
  * Each bad record is warned about once while it is cached.
"""

from __future__ import annotations

import logging
import threading

from electd.engine.model import Member, MemberView, NodeRecord, RecordError
from electd.engine.store import Entry, Store, Stored

logger = logging.getLogger(__name__)


class Members:
    def __init__(self, store: Store, record: NodeRecord) -> None:
        self._store = store
        self._record = record
        self._lock = threading.Lock()
        self._cache: dict[str, Member | None] = {}

    def current(self, own: Entry | None) -> list[MemberView]:
        """Every live member in election order, read from the store now (`own`: our entry)."""
        entries = self._store.entries()
        out: list[MemberView] = []
        seen: set[str] = set()
        for entry in entries:
            seen.add(entry.name)
            with self._lock:
                cached = self._cache.get(entry.name, False)
            if cached is False:
                stored = self._store.read(entry.name)
                if stored is None:
                    continue
                cached = self.member(entry, stored, own)
                with self._lock:
                    self._cache[entry.name] = cached
            if isinstance(cached, Member):
                prev = out[-1].member.znode if out else ""
                out.append(MemberView(cached, is_leader=not out, watches=prev))
        with self._lock:
            for name in [n for n in self._cache if n not in seen]:
                del self._cache[name]
        return out

    def member(self, entry: Entry, stored: Stored, own: Entry | None) -> Member | None:
        """The member an entry stands for, or None (warned about once) if its data is not a
        valid record. Our own entry (`own`) always carries our own record."""
        if own is not None and entry.name == own.name:
            record = self._record  # our own record is known; never trust a rewrite of it
        else:
            try:
                record = NodeRecord.decode(stored.data)
            except RecordError as exc:
                self._warn_corrupt(entry.name, str(exc))
                return None
        return Member(
            entry.name, entry.sequence, record, stored.session_id, stored.czxid, stored.created_ms
        )

    def _warn_corrupt(self, name: str, why: str) -> None:
        with self._lock:
            if name in self._cache:
                return
            self._cache[name] = None
        logger.warning("ignoring znode %s: its data is not an electd node record (%s)", name, why)
