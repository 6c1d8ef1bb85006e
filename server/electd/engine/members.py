"""The members of one election: what each entry's data says (its record, for display only),
the member listing (`ElectionEngine.members`), and the warnings about entries that do not
count.

Owns the record cache: (entry name, czxid) -> the decoded NodeRecord, or the reason its data
is not one. An entry's data at data version 0 is the data it was created with and never
changes (a rewrite makes the entry invalid, see order.py), so a cached record is never read
again. Owns the rule that this node's own entry carries the record it wrote, whatever its data
says now. Imports only the engine's model, order and store interface: no kazoo, no grpc.

Threads: `current` runs on any thread (RPC handlers), the rest on the engine's worker too. The
cache is guarded by `_lock`, never held across a store call.

Invariants:
  * A record that cannot be read never changes who leads: the member is listed with an empty
    record and `record_error`.
  * Each bad record, persistent or rewritten entry is warned about once (per znode), not once
    per pass.
"""

from __future__ import annotations

import logging
import threading

from electd.engine.model import Member, MemberView, NodeRecord, RecordError
from electd.engine.order import Ranked, election_order, why_not_valid
from electd.engine.store import Entry, Meta, Store, Stored

logger = logging.getLogger(__name__)

# How many reads `current` asks the store for at once.
_BATCH = 1000


class Members:
    def __init__(self, store: Store, record: NodeRecord) -> None:
        self._store = store
        self._record = record
        self._lock = threading.Lock()
        self._records: dict[tuple[str, int], NodeRecord | str] = {}
        self._warned: set[tuple[str, int]] = set()

    def current(self, own: Entry | None) -> list[MemberView]:
        """Every valid member in election order, read from the store now (`own`: our entry).
        The first entry of the order leads if it is valid; `watches` names the entry before
        each member in the order (valid or not), as the watch chain has it."""
        entries = self._store.entries()
        names = [e.name for e in entries]
        metas: list[Meta | None] = []
        for i in range(0, len(names), _BATCH):
            metas += self._store.stats(names[i : i + _BATCH], {})
        order = self.order(entries, metas)
        out: list[MemberView] = []
        prev = ""
        for i, ranked in enumerate(order):
            if ranked.valid:
                member = self.member(ranked.entry, ranked.meta, own)
                if member is None:  # its data is not cached and it went away meanwhile
                    continue
                out.append(MemberView(member, is_leader=i == 0, watches=prev))
            prev = ranked.name
        self.forget({(e.name, m.czxid) for e, m in zip(entries, metas, strict=True) if m})
        return out

    def order(self, entries: list[Entry], metas: list[Meta | None]) -> list[Ranked]:
        """`election_order`, warning once about each entry that exists but does not count."""
        for entry, meta in zip(entries, metas, strict=True):
            if meta is not None and (meta.session_id == 0 or meta.version != 0):
                self._warn_once(
                    entry.name, meta.czxid, "does not count in the election: " + why_not_valid(meta)
                )
        return election_order(entries, metas)

    def member(self, entry: Entry, meta: Meta, own: Entry | None) -> Member | None:
        """The member a valid entry stands for. Reads the entry's data only when its record is
        not cached; None if it went away meanwhile."""
        record = self.cached(entry, meta, own)
        if record is None:
            stored = self._store.read(entry.name)
            if stored is None or stored.czxid != meta.czxid:
                return None
            record = self.decode(entry, stored)
        return self._member(entry, meta, record)

    def from_stored(self, entry: Entry, stored: Stored, own: Entry | None) -> Member:
        """The member for an entry whose data has just been read."""
        record = self.cached(entry, stored, own)
        if record is None:
            record = self.decode(entry, stored)
        return self._member(entry, stored, record)

    def cached(self, entry: Entry, meta: Meta, own: Entry | None) -> NodeRecord | str | None:
        """The entry's record (or why it has none) if known without a read, else None."""
        if own is not None and entry.name == own.name:
            return self._record  # our own record is known; never trust a rewrite of it
        with self._lock:
            return self._records.get((entry.name, meta.czxid))

    def decode(self, entry: Entry, stored: Stored) -> NodeRecord | str:
        key = (entry.name, stored.czxid)
        try:
            record: NodeRecord | str = NodeRecord.decode(stored.data)
        except RecordError as exc:
            record = str(exc)
            self._warn_once(
                entry.name,
                stored.czxid,
                f"has data that is not an electd node record ({exc}); it counts in the election "
                "as any member, shown as unreadable",
            )
        with self._lock:
            self._records[key] = record
        return record

    def _member(self, entry: Entry, meta: Meta, record: NodeRecord | str) -> Member:
        error = record if isinstance(record, str) else ""
        return Member(
            entry.name,
            entry.sequence,
            NodeRecord.unreadable() if isinstance(record, str) else record,
            meta.session_id,
            meta.czxid,
            meta.created_ms,
            record_error=error,
        )

    def _warn_once(self, name: str, czxid: int, why: str) -> None:
        with self._lock:
            if (name, czxid) in self._warned:
                return
            self._warned.add((name, czxid))
        logger.warning("znode %s %s", name, why)

    def forget(self, live: set[tuple[str, int]]) -> None:
        """Drop what is cached about entries no longer there ((name, czxid) of every entry
        that exists now)."""
        with self._lock:
            for key in [k for k in self._records if k not in live]:
                del self._records[key]
            self._warned &= live
