"""A process hosting many election contenders for the herd benchmark, each with its own
ZooKeeper session: electd engines (`ZkStore` + `ElectionEngine`) or naive contenders.

`python -m bench.herd_worker KIND HOSTS PATH SESSION_TIMEOUT`, driven by bench/herd.py with one
JSON command per line on stdin ([name, argument]); one JSON reply per line on stdout.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from typing import Any

from bench.naive import NaiveContender
from electd.devcluster.cluster import wait_until
from electd.engine import ElectionEngine, NodeRecord, Role, View
from electd.zk import ZkStore


class ElectdContender:
    def __init__(self, ident: str, hosts: str, path: str, session_timeout: float) -> None:
        self.id = ident
        self.store = ZkStore.standalone(hosts, path, session_timeout, connect_timeout=30)
        self.store.start()
        self.leader = ""
        self.leader_known_at = 0.0
        self.leader_since = 0.0
        self.seq = -1
        self.watching = ""
        self.engine = ElectionEngine(self.store, NodeRecord(ident, "127.0.0.1:1"), self._publish)

    def _publish(self, view: View) -> None:
        now = time.time()
        leader = view.leader.member.record.id if view.leader is not None else ""
        if leader and leader != self.leader:
            self.leader, self.leader_known_at = leader, now
        if view.role is Role.LEADER and not self.leader_since:
            self.leader_since = now
        if view.own_znode:
            self.seq = int(view.own_znode.rsplit("-", 1)[1])
        self.watching = view.watching

    def register(self) -> int:
        self.engine.start()
        with contextlib.suppress(TimeoutError):  # as before: -1 if it never registered
            wait_until(lambda: self.seq >= 0, 60, f"{self.id} to register", interval=0.002)
        return self.seq

    def arm(self) -> None:
        pass

    @property
    def notifications(self) -> int:
        s = self.engine.stats
        return s.predecessor_events + s.leader_events + s.own_events

    @property
    def reevaluations(self) -> int:
        return self.engine.stats.reconciles

    def leave(self) -> None:
        self.engine.stop()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.store.close()
        self.engine.stop(timeout=2)


class _Lines:
    """Commands from stdin, replies to stdout, one JSON document per line."""

    def recv(self) -> Any:
        line = sys.stdin.readline()
        return json.loads(line) if line else ("quit", None)

    def send(self, doc: Any) -> None:
        sys.stdout.write(json.dumps(doc) + "\n")
        sys.stdout.flush()


def main(kind: str, hosts: str, path: str, session_timeout: float) -> None:
    conn = _Lines()
    pool: dict[str, Any] = {}
    armed = False
    retired = [0, 0]  # counts of contenders that left, so that totals never go down
    make = ElectdContender if kind == "electd" else NaiveContender
    while True:
        cmd, arg = conn.recv()
        if cmd == "add":
            seqs = {}
            for ident in arg:
                c = make(ident, hosts, path, session_timeout)
                pool[ident] = c
                seqs[ident] = c.register()
                if armed:  # joining a running election
                    c.arm()
            conn.send(seqs)
        elif cmd == "arm":
            armed = True
            for c in pool.values():
                c.arm()
            conn.send(True)
        elif cmd == "leave":
            c = pool.pop(arg)
            t0 = time.time()
            c.leave()
            retired[0] += c.notifications
            retired[1] += c.reevaluations
            conn.send(t0)
        elif cmd == "status":
            conn.send(
                {
                    ident: (c.seq, c.leader, c.leader_known_at, c.leader_since)
                    for ident, c in pool.items()
                }
            )
        elif cmd == "counts":
            conn.send(
                (
                    retired[0] + sum(c.notifications for c in pool.values()),
                    retired[1] + sum(c.reevaluations for c in pool.values()),
                )
            )
        elif cmd == "quiet":
            for c in pool.values():
                c.quiet = True
            conn.send(True)
        elif cmd == "quit":
            for c in sorted(pool.values(), key=lambda c: -c.seq):
                c.close()
            conn.send(True)
            return


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]))
