"""The one rule of the election, applied identically by every node to every entry, its own
included, and by the member listing: decided from ZooKeeper's metadata alone.

  * An entry takes part only if its name is an electd entry name (zk/paths.py; anything else
    is dropped when listing) and it is ephemeral (ephemeralOwner is not 0): a persistent znode
    named like an entry is no process and never leads or blocks anyone.
  * Entries are ordered by czxid, the zxid of their create: the order in which ZooKeeper
    created them. For every entry electd creates (sequential) this is the order of the
    sequence numbers too; but a foreign client can create a znode with any name it likes, and
    ordering by name would let it jump the queue, while it cannot choose its czxid. This also
    keeps the engine's invariant that entries older than ours can only go away, and makes a
    wrapped (negative) sequence counter harmless.
  * The oldest entry leads if its data was never rewritten (data version 0). A rewritten
    entry is never a leader or a member, but it keeps its place: nobody behind it leads until
    it is gone. Its owner removes it the moment it hears of the rewrite (after it stopped
    claiming), so leadership passes on only once the old leader has stepped down.
  * What an entry's data says (the node record) is for display and never changes who leads.
  * Every entry has a companion, an ephemeral child its owner creates right after the entry
    in the same session; nobody claims before its own companion exists. The owner deletes its
    companion only once it has stopped vouching: with its entry in one transaction when it
    leaves, or alone when its entry was deleted by another client. A session that ends takes
    both. So when an entry older than ours is gone, we claim at once only if its companion,
    owned by the session that owned the entry, is gone too (the owner can no longer vouch).
    If that companion is still there, another client deleted the entry while its owner may
    still vouch: we wait until the companion goes or 2T/3 (T: the granted session timeout)
    have passed since we saw it, longer than any lease the owner can hold from before the
    delete (RELIABILITY.md, V11). A companion of another session (a forgery: nobody can
    forge an ephemeralOwner) neither holds anyone back for an entry we knew nor counts as
    anyone's own; a companion whose entry we never saw (found orphaned in a listing) holds
    us back whatever session owns it, ours excepted: we cannot tell whose entry it was.
Pure functions on immutable values; imports nothing but the store's types.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from electd.engine.store import Entry, Meta


@dataclass(frozen=True)
class Ranked:
    """An entry that takes part, with the metadata it was ranked by."""

    entry: Entry
    meta: Meta

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def valid(self) -> bool:
        """May lead and is a member: its data was never rewritten."""
        return is_valid(self.meta)


def takes_part(meta: Meta | None) -> bool:
    """An entry that exists and is ephemeral holds a place in the election."""
    return meta is not None and meta.session_id != 0


def is_valid(meta: Meta) -> bool:
    return meta.session_id != 0 and meta.version == 0


def election_order(entries: Sequence[Entry], metas: Sequence[Meta | None]) -> list[Ranked]:
    """The entries that take part, oldest (lowest czxid) first."""
    ranked = [
        Ranked(e, m)
        for e, m in zip(entries, metas, strict=True)
        if m is not None and m.session_id != 0
    ]
    ranked.sort(key=lambda r: r.meta.czxid)
    return ranked


def why_not_valid(meta: Meta) -> str:
    if meta.session_id == 0:
        return "it is persistent (no session owns it)"
    return f"its data was rewritten (data version {meta.version})"


def holds_back(companion: Meta | None, owner: int, ours: int) -> bool:
    """Whether the companion of an entry that is gone keeps us from claiming: it exists, is
    ephemeral, is not ours, and belongs to `owner`, the session that owned the entry (0: we
    never saw the entry, any session but ours counts)."""
    if companion is None or companion.session_id in (0, ours):
        return False
    return owner == 0 or companion.session_id == owner
