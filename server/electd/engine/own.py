"""This node's own entry and its companion (order.py): registration (one entry per session, a
create whose reply was lost found again by its token), the companion right after it, the check
that both are still ours, and their removal (found rewritten or forged, refused, or gone: then
the companion alone, the acknowledgement a successor may wait for).

Runs on the engine's worker thread; `entry` is also read (one reference read) by the engine's
`leave` and `members` on other threads. Imports neither kazoo nor grpc.

Invariants:
  * Found rewritten, forged or gone: step down first, then delete, then register again.
  * A companion of our session whose entry is gone is ours to delete; nobody else's ever is.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING

from electd.engine.companions import Waits
from electd.engine.lease import Vouch
from electd.engine.store import Entry, Meta, Store
from electd.engine.watches import ALIVE, BLOCKER, OWN, WatchBook

if TYPE_CHECKING:
    from electd.engine.engine import ElectionEngine

logger = logging.getLogger(__name__)


class OwnEntry:
    def __init__(
        self,
        engine: ElectionEngine,
        store: Store,
        book: WatchBook,
        waits: Waits,
        vouch: Vouch,
        who: str,
        data: bytes,
    ) -> None:
        self._engine = engine
        self._store = store
        self._book = book
        self._waits = waits
        self._vouch = vouch
        self._who = who
        self._data = data
        self.entry: Entry | None = None
        self.sid: int | None = None  # the ephemeralOwner of `entry`
        # The entry the last `still_ours` found ours, unrewritten, with its companion ("" after
        # any other outcome): the watches it set are what `still_watched` relies on.
        self._verified = ""
        self._pending: tuple[int, str, bool] | None = None  # (session, token, tried)

    def register(self, sid: int) -> None:
        """Create our entry (one per session: a retry in the same session reuses the token and
        finds an entry whose create reply was lost), and right after it its companion. `sid`
        (the entry's real owner) differs from the session asked in only if the store changed
        sessions during the create."""
        old = self.entry
        if old is not None and self.sid != sid:
            # The entry of a session the store gave up (zk/handshake.py: disconnected for
            # longer than the timeout) can outlive it on ZooKeeper, ahead of our new one.
            self._book.disarm(old.name)
            self._store.remove(old.name)
            self.entry = None
        if self._pending is None or self._pending[0] != sid:
            self._pending = (sid, uuid.uuid4().hex, False)
        _, token, tried = self._pending
        self._pending = (sid, token, True)
        entry, owner = self._store.register(token, self._data, maybe_exists=tried)
        self.entry, self.sid, self._pending = entry, owner, None
        self._engine.stats.registrations += 1
        logger.info(
            "%s joined the election as %s (sequence %d)", self._who, entry.name, entry.sequence
        )
        # In the same session, before any claim. The pass that decides next reads it (and
        # watches it); one that fails here is made by that pass.
        self._store.mark_alive(entry.name)

    def withdraw(self) -> None:
        """Refused while registered: our entry (we stepped down already) must not count."""
        own = self.entry
        if own is not None:
            self._book.disarm(own.name)
            self._store.remove(own.name)
            self.entry = None

    def alive(self, meta: Meta | None, sid: int) -> bool:
        """Our companion exists in our session. Missing: make it and decide again. Another
        session's (a forgery; nobody can forge its owner): replace our entry and companion."""
        own = self.entry
        assert own is not None
        if meta is not None and meta.session_id == sid:
            return True
        if meta is None:
            self._book.disarm(self._store.companion(own.name))
            owner = self._store.mark_alive(own.name)
            if owner is None or owner == sid:
                return False  # made (or the path is gone): decide again, reading it
        self._engine.step_down("own companion znode belongs to another session; rejoining")
        logger.warning(
            "%s the companion of %s belongs to another session; replacing both",
            self._who,
            own.name,
        )
        return self._replace(own)

    def lost(self, what: str, ack: bool = False) -> bool:
        """Our entry is gone (`ack`: delete its companion, now that we no longer vouch)."""
        own = self.entry
        assert own is not None
        logger.warning("%s own znode %s %s; registering again", self._who, own.name, what)
        self._engine.step_down(f"own znode {what}; rejoining")
        self.entry = None
        if ack:
            self._book.disarm(self._store.companion(own.name))
            self._engine.acks.now(own.name)
        return False

    def rewritten(self) -> bool:
        """Another client rewrote our entry's data: it no longer counts (order.py), and nobody
        behind it leads while it is there. Step down, then remove it, then register again."""
        own = self.entry
        assert own is not None
        self._engine.step_down("own znode was rewritten by another client; rejoining")
        logger.warning(
            "%s own znode %s was rewritten by another ZooKeeper client; replacing it",
            self._who,
            own.name,
        )
        return self._replace(own)

    def _replace(self, own: Entry) -> bool:
        self._book.disarm(own.name)
        self._store.remove(own.name)  # with its companion
        self.entry = None
        return False

    def still_ours(self, claiming: bool = False) -> bool:
        """Heartbeat: our entry and its companion still exist, in our session, the entry
        unrewritten (watches set again); if so, our views may run from the lease's anchor as
        it was when we sent this read (`Vouch`). `claiming`: in the same round trip, read the
        companions we wait for (companions.py) and judge them."""
        own = self.entry
        self._verified = ""
        if own is None:
            return False
        alive = self._store.companion(own.name)
        others = self._waits.to_read() if claiming else []
        watches = {own.name: self._book.arm(own.name, OWN), alive: self._book.arm(alive, ALIVE)}
        watches.update((c, self._book.arm(c, BLOCKER)) for c, _ in others)
        mark = self._vouch.mark()
        try:
            metas = self._store.stats([own.name, alive, *(c for c, _ in others)], watches)
        except BaseException:
            for name in watches:
                self._book.disarm(name)
            raise
        sid = self.sid or 0
        for (companion, owner), meta in zip(others, metas[2:], strict=True):
            if not self._waits.judge(companion, owner, meta, sid):
                self._book.disarm(companion)
        meta, alive_meta = metas[0], metas[1]
        if alive_meta is None:
            self._book.disarm(alive)
        if meta is None:
            self._book.disarm(own.name)
            return False
        ok = alive_meta is not None and alive_meta.session_id == sid
        if ok and meta.session_id == sid and meta.version == 0:
            self._vouch.confirm(mark)  # read after that anchor, still ours (lease.py)
            self._verified = own.name
            return True
        return False

    def still_watched(self) -> bool:
        """Heartbeat without a round trip: True, and our views may run from the anchor (but no
        later than the session's last sync, `Vouch.mark_heard`), if the last `still_ours` found
        entry and companion ours and the watches it set on both have not fired since. ZooKeeper
        fires a watch for the change it committed before it answers any later request of the
        session, and the lease's sync returns only once the callbacks of such events have run
        (engine/store.py's `sync`): so neither was deleted or rewritten before that sync was
        sent. False: read them (`still_ours`)."""
        own = self.entry
        sid = self._store.session_id()
        if own is None or self._verified != own.name or sid is None or sid != self.sid:
            return False
        mark = self._vouch.mark_heard(sid)  # before looking at the watches
        alive = self._store.companion(own.name)
        if self._book.role(own.name) != OWN or self._book.role(alive) != ALIVE:
            return False
        self._vouch.confirm(mark)
        return True
