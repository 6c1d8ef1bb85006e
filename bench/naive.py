"""The herd baseline: a naive election in which every contender watches the children of the
election path. Any join or leave wakes every contender, and each re-lists all children to find
the lowest sequence. Written for the benchmarks only (never used by electd).

Znode names carry the contender id ("<id>-<sequence>"), so the leader's id is known from the
listing alone, without reading its data: the naive recipe is given its best case.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException


def _seq(name: str) -> int:
    return int(name.rsplit("-", 1)[1])


class NaiveContender:
    def __init__(self, ident: str, hosts: str, path: str, session_timeout: float) -> None:
        self.id = ident
        self.path = path
        self.kz = KazooClient(hosts=hosts, timeout=session_timeout)
        self.kz.start(30)
        self.kz.ensure_path(path)
        self.name = ""
        self.seq = -1
        self.notifications = 0
        self.reevaluations = 0
        self.leader = ""  # id of the lowest contender at the last evaluation
        self.leader_known_at = 0.0
        self.leader_since = 0.0
        self.quiet = False  # set while the run is being torn down: ignore events
        self._wake: queue.SimpleQueue[bool] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"naive-{ident}", daemon=True)

    def register(self) -> int:
        created = self.kz.create(f"{self.path}/{self.id}-", b"", ephemeral=True, sequence=True)
        self.name = created.rsplit("/", 1)[1]
        self.seq = _seq(self.name)
        return self.seq

    def arm(self) -> None:
        """Start watching the children (the first evaluation sets the watch)."""
        self._thread.start()
        self._wake.put(True)

    def _on_children(self, event: object) -> None:
        self.notifications += 1
        if not self.quiet:
            self._wake.put(True)

    def _run(self) -> None:
        while True:
            if not self._wake.get():
                return
            while not self._wake.empty():  # coalesce
                if not self._wake.get_nowait():
                    return
            with contextlib.suppress(KazooException):
                self._evaluate()

    def _evaluate(self) -> None:
        children = self.kz.get_children(self.path, watch=self._on_children)
        self.reevaluations += 1
        if not children:
            return
        lowest = min(children, key=_seq)
        leader = lowest.rsplit("-", 1)[0]
        now = time.time()
        if leader != self.leader:
            self.leader, self.leader_known_at = leader, now
        if lowest == self.name and not self.leader_since:
            self.leader_since = now

    def leave(self) -> None:
        """Graceful: delete the znode, then close the session."""
        with contextlib.suppress(KazooException):
            self.kz.delete(f"{self.path}/{self.name}")
        self.close()

    def close(self) -> None:
        self.quiet = True
        self._wake.put(False)
        with contextlib.suppress(KazooException, OSError):
            self.kz.stop()
        with contextlib.suppress(KazooException, OSError):
            self.kz.close()
