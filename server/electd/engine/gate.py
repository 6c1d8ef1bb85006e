"""Which cluster this node takes part in (the rules are identity.py's; this is their I/O): the
identity the election path carries, read (and watched) on every full pass, created on a path
without one, restored on a path wiped in the same ensemble, adopted when it carries ours on,
refused otherwise. Runs on the engine's worker thread. Imports neither kazoo nor grpc.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from electd.engine.identity import ClusterIdentity, IdentityError, Refused, judge, missing
from electd.engine.store import CoordinatorUnavailable, Store
from electd.engine.watches import PATH, WatchBook

logger = logging.getLogger(__name__)


class ClusterGate:
    def __init__(
        self,
        store: Store,
        book: WatchBook,
        who: str,
        pinned: str,
        refuse: Callable[[str, bool], None],
    ) -> None:
        """`pinned`: --cluster-id ("" if not given); `refuse(reason, log)` publishes REFUSED."""
        self._store = store
        self._book = book
        self._who = who
        self._pinned = pinned
        self._refuse = refuse
        self.identity: ClusterIdentity | None = None  # the cluster this node joined
        self._refusal = ""  # the last refusal logged (each is logged once)

    def join(self, max_epoch: int, max_czxid: int) -> None:
        """Every full pass, before anything else: the election path must carry this node's
        cluster identity (identity.py), or one that carries it on (adopted at once: epochs
        only jump up); a path without one gets a new one (unless this node already joined a
        cluster, or --cluster-id pins it). The path's data stays watched, so a change wakes a
        full pass. Raises Refused (logged once per reason) after publishing a REFUSED view."""
        try:
            found = self._found(max_epoch, max_czxid)
            problem = judge(found, self.identity, max_epoch, self._pinned)
            if problem:
                raise Refused(problem)
        except Refused as exc:
            self._refuse(str(exc), str(exc) != self._refusal)
            self._refusal = str(exc)
            raise
        if found != self.identity:
            logger.info(
                "%s joined cluster %s (epoch base %d)",
                self._who,
                found.cluster,
                found.epoch_base,
            )
        self.identity, self._refusal = found, ""

    def _found(self, max_epoch: int, max_czxid: int) -> ClusterIdentity:
        for _ in range(3):
            found = self._store.path_data(self._book.arm(PATH, PATH))
            if found.version != 0 or found.data:
                try:
                    return ClusterIdentity.decode(found.data)
                except IdentityError as exc:
                    raise Refused(
                        f"the election path's data is not an electd cluster identity ({exc}): "
                        "another program uses this path? Use another --election-path, or "
                        "write an identity with electd identity --epoch-floor N"
                    ) from None
            if self.identity is not None:
                # The path was deleted and created again. In the same ensemble (zxids went on:
                # the path is younger than every entry we have seen) our identity is put back;
                # zxids that went back mean a rebuilt ensemble, or another one.
                if found.czxid <= max_czxid:
                    raise Refused(missing(self.identity, max_epoch))
                if self._store.init_path_data(self.identity.encode()):
                    logger.warning(
                        "%s the election path was created again without its identity; "
                        "restored cluster %s",
                        self._who,
                        self.identity.cluster,
                    )
                    return self.identity
                continue  # another node restored it first: read it
            if self._pinned:
                raise Refused(
                    f"the election path has no cluster identity and --cluster-id is "
                    f"{self._pinned}: create it once with electd identity --cluster-id "
                    f"{self._pinned} (same --zk and --election-path)"
                )
            new = ClusterIdentity.new()
            if self._store.init_path_data(new.encode()):
                logger.info("%s created cluster identity %s", self._who, new.cluster)
                return new
            # another node wrote one first: read it
        raise CoordinatorUnavailable("the election path's identity kept changing; will retry")
