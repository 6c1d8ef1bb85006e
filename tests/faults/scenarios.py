"""The named fault scenarios and the randomized mix, shared by the pytest suite and the soak.

Each scenario drives a FaultCluster: it injects one fault (recorded as a "fault" event, with
`deposes=True` when it is meant to depose the leader), holds it, heals it, and measures
convergence with `settle`. What holds for every run is judged afterwards by the checker over
the history; what a scenario promises beyond that (for example "no change of electd leader
while the sessions survive") it asserts itself.
"""

from __future__ import annotations

import contextlib
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from kazoo.client import KazooClient

from electd.devcluster.cluster import wait_until
from electd.engine.identity import ClusterIdentity
from electd.engine.model import MAX_RECORD_BYTES, NodeRecord
from electd.v1 import election_service_pb2 as pb
from tests.faults.checker import log_events
from tests.faults.cluster import POLL_INTERVAL, FaultCluster, Node, SpareZooKeeper


@dataclass(frozen=True)
class Scenario:
    name: str
    run: Callable[[FaultCluster, random.Random], None]
    nodes: int = 3
    session_timeout: float = 2.5


def node_ids(count: int) -> list[str]:
    return [f"n{i}" for i in range(1, count + 1)]


def hold(seconds: float) -> None:
    """Keep a fault in place for a while (holding a fault, not waiting for a condition)."""
    time.sleep(seconds)


def leader_epochs(c: FaultCluster, since: float) -> set[int]:
    """Every epoch a running node's stream reported as elected since `since`, and the one each
    was showing at `since` (a soak's history also holds nodes that left long ago)."""
    running = {n.id for n in c.running()}
    before: dict[str, int | None] = {}
    after: set[int] = set()
    for e in c.history.events("stream"):
        if e.node not in running:
            continue
        epoch = int(e.get("epoch")) if e.get("state") == "ELECTED" else None
        if e.t < since:
            before[e.node] = epoch
        elif epoch is not None:
            after.add(epoch)
    return after | {epoch for epoch in before.values() if epoch is not None}


def follower(c: FaultCluster, rng: random.Random, leader: Node) -> Node:
    return rng.choice([n for n in c.running() if n.id != leader.id])


def settle(c: FaultCluster, since: float, label: str) -> None:
    result = c.settle(since, label)
    assert result.ok(), f"{label}: the cluster did not converge: {result}"


# ----- faults on electd nodes ---------------------------------------------------------------


def kill_leader(c: FaultCluster, rng: random.Random) -> None:
    leader, epoch = c.wait_leader()
    c.fault("kill-leader", "inject", leader.id, deposes=True, epoch=epoch)
    c.kill(leader.id)
    new, new_epoch = c.wait_leader(c.session_timeout * 5)
    assert new.id != leader.id and new_epoch > epoch
    c.restart(leader.id)
    settle(c, c.fault("kill-leader", "heal", leader.id), "kill-leader")


def pause_leader(c: FaultCluster, rng: random.Random) -> None:
    """SIGSTOP the leader for longer than the session timeout: a successor takes over; after
    SIGCONT the old leader follows it and never writes with its old epoch after the successor
    has written."""
    leader, epoch = c.wait_leader()
    c.fault("pause-leader", "inject", leader.id, deposes=True, epoch=epoch)
    c.pause(leader.id)
    new, new_epoch = c.wait_leader(c.session_timeout * 5)
    assert new.id != leader.id and new_epoch > epoch
    wait_until(
        lambda: _writes(c, new_epoch),
        c.session_timeout * 3,
        "the successor's first write",
        interval=POLL_INTERVAL,
    )
    hold(1.0)
    c.resume(leader.id)
    healed = c.fault("pause-leader", "heal", leader.id)
    wait_until(
        lambda: (got := c.get_leader(leader)) is not None and got.node.id == new.id,
        c.session_timeout * 5,
        f"{leader.id} to follow {new.id} after SIGCONT",
        interval=POLL_INTERVAL,
    )
    settle(c, healed, "pause-leader")
    first_new = min(e.t for e in _writes(c, new_epoch))
    late = [e for e in _writes(c, epoch) if e.t > first_new]
    assert not late, f"{leader.id} wrote with epoch {epoch} after its successor: {late}"


def _writes(c: FaultCluster, epoch: int) -> list:  # type: ignore[type-arg]
    return [e for e in c.history.events("write") if e.get("epoch") == epoch]


def partition_leader(c: FaultCluster, rng: random.Random) -> None:
    """Cut the leader off from every ZooKeeper server for longer than the session timeout: it
    must stop leading by itself (no event reaches it), a successor takes over, and after the
    partition heals the old leader rejoins as a follower."""
    leader, epoch = c.wait_leader()
    c.fault("partition-leader", "inject", leader.id, deposes=True, epoch=epoch)
    c.partition_node(leader.id)
    new, new_epoch = wait_until(
        lambda: (got := c.self_leader()) is not None and got[0].id != leader.id and got,
        c.session_timeout * 5,
        "a new leader while the old one is cut off",
        interval=POLL_INTERVAL,
    )
    assert new.id != leader.id and new_epoch > epoch
    hold(1.0)
    c.heal_node(leader.id)
    settle(c, c.fault("partition-leader", "heal", leader.id), "partition-leader")


def partition_follower(c: FaultCluster, rng: random.Random) -> None:
    """Cut a follower off for less than the session timeout: it stops vouching, nothing else
    changes, and it comes back with the same znode."""
    leader, epoch = c.wait_leader()
    victim = follower(c, rng, leader)
    znode = _znode(c, leader, victim.id)
    t0 = c.fault("partition-follower", "inject", victim.id)
    c.partition_node(victim.id)
    wait_until(
        lambda: c.get_leader(victim) is None,
        c.session_timeout * 2,
        f"{victim.id} to stop vouching",
        interval=POLL_INTERVAL,
    )
    hold(max(0.0, c.session_timeout * 0.75 - (time.monotonic() - t0)))
    c.heal_node(victim.id)
    settle(c, c.fault("partition-follower", "heal", victim.id), "partition-follower")
    assert leader_epochs(c, t0) == {epoch}, "a follower's partition changed the leader"
    assert _znode(c, leader, victim.id) == znode, "the follower's session should have survived"


def session_expiry(c: FaultCluster, rng: random.Random) -> None:
    """Cut a follower off until its session expires, then heal: it learns of the expiry, joins
    again with a new znode at the back of the line; the leader does not change."""
    leader, epoch = c.wait_leader()
    victim = follower(c, rng, leader)
    znode = _znode(c, leader, victim.id)
    t0 = c.fault("session-expiry", "inject", victim.id)
    c.partition_node(victim.id)
    wait_until(
        lambda: _znode(c, leader, victim.id) is None,
        c.session_timeout * 4,
        "session expiry",
        interval=POLL_INTERVAL,
    )
    c.heal_node(victim.id)
    settle(c, c.fault("session-expiry", "heal", victim.id), "session-expiry")
    resp = c.list_nodes(leader)
    assert resp is not None and resp.nodes[-1].id == victim.id, "rejoined at the back"
    assert resp.nodes[-1].znode != znode
    assert leader_epochs(c, t0) == {epoch}, "a follower's session expiry changed the leader"
    logs = " ".join(str(r.get("msg")) for r in victim.proc.log_records())
    assert "ZooKeeper connection LOST" in logs


def _znode(c: FaultCluster, asked: Node, node_id: str) -> str | None:
    resp = c.list_nodes(asked)
    assert resp is not None, f"{asked.id} did not list members"
    return next((m.znode for m in resp.nodes if m.id == node_id), None)


def rolling_restart(c: FaultCluster, rng: random.Random) -> None:
    """Restart every node in turn (SIGTERM, start, wait until it serves): every restart of the
    leader hands over at once."""
    for node_id in sorted(c.nodes):
        leader, epoch = c.wait_leader()
        c.fault("rolling-restart", "inject", node_id, deposes=node_id == leader.id, epoch=epoch)
        c.terminate(node_id)
        c.restart(node_id)
        c.wait_joined([node_id])
        settle(c, c.fault("rolling-restart", "heal", node_id), "rolling-restart")


def churn(c: FaultCluster, rng: random.Random) -> None:
    """20 more nodes join and leave at random (SIGTERM or SIGKILL), at most 8 at once; the
    leader is restarted half-way. Every live node must be listed by every live node."""
    pending = [f"c{i:02d}" for i in range(1, 21)]
    live: list[str] = []
    restarted = False
    while pending or live:
        if not restarted and len(pending) <= 10:
            leader, epoch = c.wait_leader()
            c.fault("churn-leader-restart", "inject", leader.id, deposes=True, epoch=epoch)
            c.terminate(leader.id)
            c.restart(leader.id)
            settle(c, c.fault("churn-leader-restart", "heal", leader.id), "churn")
            restarted = True
        if pending and len(live) < 8 and (not live or rng.random() < 0.6):
            node_id = pending.pop(0)
            c.fault("churn-join", "inject", node_id)
            c.add(node_id)
            live.append(node_id)
        else:
            node_id = live.pop(rng.randrange(len(live)))
            c.fault("churn-leave", "inject", node_id)
            if rng.random() < 0.5:
                c.kill(node_id)
            else:
                c.terminate(node_id)
            c.retire(node_id)
        hold(rng.uniform(0.05, 0.4))
    settle(c, time.monotonic(), "churn")


# ----- faults on ZooKeeper -------------------------------------------------------------------


def _same_leader(
    c: FaultCluster, name: str, inject: Callable[[], object], heal: Callable[[], None]
) -> None:
    _, epoch = c.wait_leader()
    t0 = c.fault(name, "inject", "", epoch=epoch)
    target = inject()
    c.history.add("fault", str(target), name=name, phase="target")
    heal()
    settle(c, c.fault(name, "heal", str(target)), name)
    c.ensemble.restore()
    assert leader_epochs(c, t0) == {epoch}, (
        f"{name}: the electd leader changed although the sessions survive"
    )


def kill_zk_leader(c: FaultCluster, rng: random.Random) -> None:
    """SIGKILL the ZooKeeper ensemble's leader, restart it: no change of electd leader."""
    victim: list[int] = []

    def inject() -> int:
        myid = c.ensemble.leader_id()
        assert myid is not None
        c.ensemble.kill(myid)
        victim.append(myid)
        wait_until(
            lambda: c.ensemble.leader_id() is not None,
            30,
            "a new ZooKeeper leader",
            interval=POLL_INTERVAL,
        )
        hold(1.0)
        return myid

    _same_leader(c, "kill-zk-leader", inject, lambda: c.ensemble.start_server(victim[0]))


def kill_zk_follower(c: FaultCluster, rng: random.Random) -> None:
    """SIGKILL a ZooKeeper follower (the one the electd leader talks to, when it talks to one),
    restart it: no change of electd leader."""
    victim: list[int] = []

    def inject() -> int:
        leader, _ = c.wait_leader()
        zk_leader = c.ensemble.leader_id()
        mine = c.zk_server_of(leader.id)
        myid = mine if mine is not None and mine != zk_leader else _other(c, zk_leader, rng)
        c.ensemble.kill(myid)
        victim.append(myid)
        hold(c.session_timeout)
        return myid

    _same_leader(c, "kill-zk-follower", inject, lambda: c.ensemble.start_server(victim[0]))


def _other(c: FaultCluster, exclude: int | None, rng: random.Random) -> int:
    return rng.choice([s.myid for s in c.ensemble.zk.servers if s.myid != exclude])


def zk_minority_partition(c: FaultCluster, rng: random.Random) -> None:
    """Cut the ZooKeeper server the electd leader talks to off from the other two (it keeps its
    clients until it notices it lost the quorum): no change of electd leader."""
    names = c.ensemble.names
    victim: list[str] = []

    def inject() -> str:
        leader, _ = c.wait_leader()
        mine = c.zk_server_of(leader.id) or _other(c, None, rng)
        victim.append(f"zk{mine}")
        c.net.isolate(victim[0], names)
        hold(c.session_timeout + 1.0)
        return victim[0]

    _same_leader(c, "zk-minority-partition", inject, lambda: c.net.rejoin(victim[0], names))


def zk_stale_follower(c: FaultCluster, rng: random.Random) -> None:
    """Cut the ZooKeeper follower that the electd leader talks to off from its peers, with a
    session timeout shorter than that follower's stale window (syncLimit x tick = 2 s): until
    it notices, the follower still answers the leader's reads, while the ZooKeeper leader
    expires the session after T and a successor takes over. At most one leader must still hold.
    Three rounds; each first moves the leader's connection onto a follower if needed."""
    names = c.ensemble.names
    for _ in range(3):
        leader, epoch, mine, _ = _leader_on_a_zk_follower(c)
        victim = f"zk{mine}"
        c.fault("zk-stale-follower", "inject", victim, epoch=epoch, electd_leader=leader.id)
        c.net.isolate(victim, names)
        hold(c.session_timeout + 2.5)
        c.net.rejoin(victim, names)
        settle(c, c.fault("zk-stale-follower", "heal", victim), "zk-stale-follower")
        c.ensemble.restore()


def _leader_on_a_zk_follower(c: FaultCluster) -> tuple[Node, int, int, int]:
    """The electd leader, its epoch, the ZooKeeper follower it is connected to and the
    ZooKeeper leader; first moves its connection off the ZooKeeper leader if needed."""
    leader, epoch = c.wait_leader()
    zk_leader = c.ensemble.leader_id()
    assert zk_leader is not None
    mine = wait_until(
        lambda n=leader.id: c.zk_server_of(n),
        10,
        "the leader's ZooKeeper server",
        interval=POLL_INTERVAL,
    )
    if mine == zk_leader:
        c.net.cut(leader.id, f"zk{zk_leader}")
        mine = wait_until(
            lambda n=leader.id, z=zk_leader: (
                c.zk_server_of(n) not in (None, z) and c.zk_server_of(n)
            ),
            c.session_timeout * 5,
            f"{leader.id} to move to a ZooKeeper follower",
            interval=POLL_INTERVAL,
        )
        c.net.heal(leader.id, f"zk{zk_leader}")
        leader, epoch = c.wait_leader()
    return leader, epoch, mine, zk_leader


def pause_then_cut(c: FaultCluster, rng: random.Random) -> None:
    """V4 in RELIABILITY.md. SIGSTOP the leader for a little less than T, so that its lease
    runs out but its session does not yet; SIGCONT, and 20 ms later cut its ZooKeeper server (a
    follower) off from the ZooKeeper leader. The node's first sync after the pause succeeds,
    but unless the ZooKeeper leader happened to ping the follower in those 20 ms, it never
    hears of the session's activity and expires the session, and a successor takes over. The
    old leader must not vouch on the strength of that one sync. Three rounds."""
    T = c.session_timeout
    for _ in range(3):
        leader, epoch, mine, zk_leader = _leader_on_a_zk_follower(c)
        link = (f"zk{mine}", f"zk{zk_leader}")
        c.fault("pause-then-cut", "inject", leader.id, epoch=epoch, zk=link)
        c.pause(leader.id)
        hold(T - 0.25)
        c.resume(leader.id)
        hold(0.02)
        c.net.cut(*link)
        hold(T + 1.0)
        c.net.heal(*link)
        settle(c, c.fault("pause-then-cut", "heal", leader.id), "pause-then-cut")
        c.ensemble.restore()


def zk_quorum_loss(c: FaultCluster, rng: random.Random) -> None:
    """Cut every ZooKeeper server off from the others for longer than the session timeout: no
    node may vouch for a leader once its lease is out; after the quorum returns, a leader
    within the bound."""
    _, epoch = c.wait_leader()
    names = c.ensemble.names
    c.fault("zk-quorum-loss", "inject", "", epoch=epoch)
    for name in names:
        c.net.isolate(name, names)
    wait_until(
        lambda: all(c.get_leader(n) is None for n in c.running()),
        c.session_timeout * 3,
        "every node to stop vouching",
        interval=POLL_INTERVAL,
    )
    hold(c.session_timeout + 1.0)
    c.net.heal_all()
    healed = c.fault("zk-quorum-loss", "heal", "")
    settle(c, healed, "zk-quorum-loss")


# ----- hostile writers: other ZooKeeper clients on the election path ------------------------


def _path(c: FaultCluster, name: str) -> str:
    return f"{c.path}/{name}"


def _entry_name(sequence: int) -> str:
    """A name that parses as an electd entry's, with a sequence of our choosing."""
    return f"electd-{uuid.uuid4().hex}-{sequence:010d}"


def _junk(c: FaultCluster, victim: Node, round_: int) -> bytes:
    """What another client writes over an entry: bytes, a well-formed record that names another
    node, or nothing."""
    if round_ % 3 == 1:
        other = next(n for n in c.running() if n.id != victim.id)
        return NodeRecord(other.id, other.proc.address).encode()
    return b"" if round_ % 3 == 2 else b"junk written by another ZooKeeper client"


def rewrite_leader_data(c: FaultCluster, rng: random.Random) -> None:
    """Another ZooKeeper client `set`s junk on the leader's entry (junk bytes, a well-formed
    record naming another node, empty data; three rounds). The entry no longer counts but
    keeps its place: its owner steps down on the data watch, deletes it and rejoins at the
    back, and only then does the next entry lead, with a higher epoch."""
    kz = c.zk_client()
    for round_ in range(3):
        leader, epoch = c.wait_leader()
        znode = _znode(c, leader, leader.id)
        assert znode is not None
        c.fault("rewrite-leader-data", "inject", leader.id, deposes=True, epoch=epoch, znode=znode)
        kz.set(_path(c, znode), _junk(c, leader, round_))
        _, new_epoch = wait_until(
            lambda old=leader.id: (got := c.self_leader()) is not None and got[0].id != old and got,
            c.session_timeout * 5,
            "the next entry to lead",
            interval=POLL_INTERVAL,
        )
        assert new_epoch > epoch
        settle(c, c.fault("rewrite-leader-data", "heal", leader.id), "rewrite-leader-data")
        assert kz.exists(_path(c, znode)) is None, "the owner replaced its rewritten entry"
        assert _znode(c, leader, leader.id) not in (None, znode)
    c.end_client(kz)


def rewrite_follower_data(c: FaultCluster, rng: random.Random) -> None:
    """The same on a follower's entry, three rounds: the follower replaces its entry and
    rejoins at the back; the leader does not change."""
    kz = c.zk_client()
    leader, epoch = c.wait_leader()
    t0 = time.monotonic()
    for round_ in range(3):
        victim = follower(c, rng, leader)
        znode = _znode(c, leader, victim.id)
        assert znode is not None
        c.fault("rewrite-follower-data", "inject", victim.id, epoch=epoch, znode=znode)
        kz.set(_path(c, znode), _junk(c, victim, round_))
        wait_until(
            lambda v=victim.id, old=znode: _znode(c, leader, v) not in (None, old),
            c.session_timeout * 4,
            f"{victim.id} to replace its rewritten entry",
            interval=POLL_INTERVAL,
        )
        settle(c, c.fault("rewrite-follower-data", "heal", victim.id), "rewrite-follower-data")
        assert kz.exists(_path(c, znode)) is None
        resp = c.list_nodes(leader)
        assert resp is not None and resp.nodes[-1].id == victim.id, "rejoined at the back"
    assert leader_epochs(c, t0) == {epoch}, "rewriting a follower's entry changed the leader"
    c.end_client(kz)


INTRUDER = NodeRecord("intruder", "127.0.0.1:1")


def fake_lowest_entry(c: FaultCluster, rng: random.Random) -> None:
    """Two forged entries with the lowest sequences and a valid-looking record: a persistent
    znode (sequence 0, no session owns it) and an ephemeral one with sequence 1, created after
    the nodes' entries by a session of the harness. Neither leads or jumps the queue: the
    persistent one is no member at all, the ephemeral one is a member at the back (czxid
    order). Then the leader leaves: its successor is the next node, not the forgery."""
    leader, epoch = c.wait_leader()
    kz, forger = c.zk_client(), c.zk_client()
    persistent, forged = _entry_name(0), _entry_name(1)
    t0 = c.fault("fake-lowest-entry", "inject", "", epoch=epoch, znodes=[persistent, forged])
    kz.create(_path(c, persistent), INTRUDER.encode())
    forger.create(_path(c, forged), INTRUDER.encode(), ephemeral=True)

    def forgery_at_the_back() -> bool:
        ids = sorted(n.id for n in c.running())
        for node in c.running():
            resp = c.list_nodes(node)
            if resp is None or not resp.nodes:
                return False
            last = resp.nodes[-1]
            if (last.znode, last.id, last.is_leader) != (forged, "intruder", False):
                return False
            if sorted(m.id for m in resp.nodes[:-1]) != ids or resp.nodes[0].id != leader.id:
                return False
            if any(m.znode == persistent for m in resp.nodes):
                return False
        return True

    wait_until(forgery_at_the_back, 10, "the forgery listed last, the persistent one nowhere")
    hold(1.0)
    c.fault("fake-lowest-entry-leader-leaves", "inject", leader.id, deposes=True, epoch=epoch)
    c.terminate(leader.id)
    new, new_epoch = c.wait_leader(c.session_timeout * 5)
    assert new.id != leader.id and new_epoch > epoch
    c.restart(leader.id)
    c.wait_joined([leader.id])
    c.fault("fake-lowest-entry-leader-leaves", "heal", leader.id)
    resp = c.list_nodes(new)
    assert resp is not None
    assert [m.id for m in resp.nodes][-2:] == ["intruder", leader.id], "in czxid order"
    # Healing: the harness's session ends and the persistent znode is removed.
    c.end_client(forger)
    kz.delete(_path(c, persistent))
    c.end_client(kz)
    settle(c, c.fault("fake-lowest-entry", "heal", ""), "fake-lowest-entry")
    assert leader_epochs(c, t0) == {epoch, new_epoch}
    named = [e for e in c.history.events("stream") if e.get("leader") == "intruder"]
    assert not named, f"a forged entry was reported as leader: {named[:3]}"


# Foreign data on entries that take part (ephemeral, electd names): every kind of poison.
POISON: dict[str, bytes] = {
    "deep-nesting": b'{"v":1,"id":' + b"[" * 30_000 + b"]" * 30_000 + b"}",
    "5000-digit-integer": b'{"v":1,"id":"p","address":"127.0.0.1:1","n":' + b"9" * 5000 + b"}",
    "invalid-utf8": b'{"v":1,"id":"p\xff\xfe\xc3\x28","address":"127.0.0.1:1"}',
    "lone-surrogate-id": b'{"v":1,"id":"\\ud800","address":"127.0.0.1:1"}',
    "control-chars-in-labels": (
        b'{"v":1,"id":"p","address":"127.0.0.1:1","labels":{"zone":"a\\u0000\\u001b[31mb"}}'
    ),
    "wrong-types": b'{"v":1,"id":42,"address":["127.0.0.1:1"],"labels":"zone=a"}',
    "future-format-v2": b'{"v":2,"id":"future","address":"127.0.0.1:1"}',
    "empty": b"",
    # A well-formed record, but over the size any record may have.
    "oversized": (
        b'{"v":1,"id":"big","address":"127.0.0.1:1","pad":"'
        + b"x" * (MAX_RECORD_BYTES + 1000)
        + b'"}'
    ),
}
ENGINE_BUG = "bug in the election engine"


def poisoned_records(c: FaultCluster, rng: random.Random) -> None:
    """Foreign ephemeral entries (owned by a session of the harness) whose data is each kind of
    poison in POISON. First younger than every node: the leader stays. Then every node
    restarts in turn, so that all of them are older than every node: the oldest poisoned
    entry leads by the rule (an unreadable member, which no electd node claims). Throughout,
    ListNodes works on every node and lists them as unreadable (record_error), and no node
    logs a bug. Healing ends the harness's session; the bounds are judged from then."""
    leader, epoch = c.wait_leader()
    owner = c.zk_client()
    c.fault("poisoned-records", "inject", "", epoch=epoch, kinds=list(POISON))
    poisoned = {}
    for i, (kind, data) in enumerate(POISON.items()):
        name = _entry_name(i)
        owner.create(_path(c, name), data, ephemeral=True)
        poisoned[name] = kind

    def listed(want_leader: str) -> bool:
        ids = sorted(n.id for n in c.running())
        for node in c.running():
            resp = c.list_nodes(node, timeout=5.0)
            if resp is None or len(resp.nodes) != len(ids) + len(poisoned):
                return False
            bad = [m for m in resp.nodes if m.znode in poisoned]
            if len(bad) != len(poisoned) or not all(m.record_error and not m.id for m in bad):
                return False
            if sorted(m.id for m in resp.nodes if m.znode not in poisoned) != ids:
                return False
            if not resp.nodes[0].is_leader or want_leader not in (resp.nodes[0].znode, ""):
                return False
        return True

    wait_until(lambda: listed(""), 20, "every node to list the poisoned entries as unreadable")
    assert c.self_leader() == (leader, epoch), "younger poisoned entries changed the leader"
    for node_id in sorted(c.nodes):  # afterwards every poisoned entry is older than every node
        c.terminate(node_id)
        c.restart(node_id)
        c.wait_joined([node_id])
    first = next(iter(poisoned))

    def foreign_leads() -> bool:
        for node in c.running():
            got = c.get_leader(node)
            if got is None or (got.node.znode, got.node.id) != (first, ""):
                return False
            if not got.node.record_error:
                return False
        return True

    wait_until(foreign_leads, 20, f"the oldest poisoned entry {first} to lead, unreadable")
    wait_until(lambda: listed(first), 20, "every node to list everyone under a poisoned leader")
    hold(1.0)
    assert c.self_leader() is None, "an electd node claimed while a foreign entry leads"
    c.figure("poisoned-records: poisoned entries", len(poisoned))
    c.end_client(owner)  # healing: the foreign session ends, its entries go
    settle(c, c.fault("poisoned-records", "heal", ""), "poisoned-records")
    for node in c.running():
        assert not c.log_lines(node, ENGINE_BUG), f"{node.id}: {c.log_lines(node, ENGINE_BUG)}"


FOREIGN_CHILDREN = 10_000


def foreign_children(c: FaultCluster, rng: random.Random) -> None:
    """10,000 foreign children created while the cluster runs: half with foreign names, half
    persistent znodes named like entries (with a valid record). Every node still lists exactly
    the nodes (each ListNodes reads them all) and the leader stays; the leader then restarts
    over them (its successor decides, the restarted node registers and reads them all; judged
    by rules 4 to 6 with them there); then they are removed."""
    leader, epoch = c.wait_leader()
    kz = c.zk_client()
    record = NodeRecord("fake", "127.0.0.1:1").encode()
    t0 = c.fault("foreign-children", "inject", "", epoch=epoch, count=FOREIGN_CHILDREN)
    names: list[str] = []
    pending = []
    for i in range(FOREIGN_CHILDREN // 2):
        for name, data in ((f"foreign-{i}", b"x"), (f"electd-{'e' * 32}-{i:010d}", record)):
            names.append(name)
            pending.append(kz.create_async(_path(c, name), data))
    for result in pending:
        result.get(60)
    created = time.monotonic()
    c.figure("foreign-children: created in (s)", round(created - t0, 3))
    c.list_timeout = 15.0  # every ListNodes now reads 10,000 children
    took = []
    for node in c.running():
        asked = time.monotonic()
        resp = c.list_nodes(node)
        took.append(round(time.monotonic() - asked, 3))
        assert resp is not None, f"{node.id} did not list members over 10,000 children"
        assert sorted(m.id for m in resp.nodes) == sorted(c.nodes), f"{node.id}: {resp.nodes}"
    c.figure("foreign-children: ListNodes over them, each node (s)", took)
    assert c.self_leader() == (leader, epoch)
    assert leader_epochs(c, t0) == {epoch}, "foreign children changed the leader"
    c.fault("foreign-children-leader-restart", "inject", leader.id, deposes=True, epoch=epoch)
    c.terminate(leader.id)
    c.restart(leader.id)
    c.wait_joined([leader.id], timeout=60)
    healed = c.fault("foreign-children-leader-restart", "heal", leader.id)
    settle(c, healed, "foreign-children-leader-restart")
    removing = time.monotonic()
    for result in [kz.delete_async(_path(c, name)) for name in names]:
        result.get(60)
    c.figure("foreign-children: removed in (s)", round(time.monotonic() - removing, 3))
    c.list_timeout = 1.0
    c.end_client(kz)
    settle(c, c.fault("foreign-children", "heal", ""), "foreign-children")


def _wipe(kz: KazooClient, path: str, recreate: bool) -> None:
    """Delete the election path with all its children in one transaction (and create it
    again, empty, in the same one). The children go in election order, oldest first, as a
    tool that walks the members would delete them."""
    for _ in range(20):
        tx = kz.transaction()
        children = [(kz.exists(f"{path}/{child}"), child) for child in kz.get_children(path)]
        for _, child in sorted((s.czxid, c) for s, c in children if s is not None):
            tx.delete(f"{path}/{child}")
        tx.delete(path)
        if recreate:
            tx.create(path)
        if not any(isinstance(r, Exception) for r in tx.commit()):
            return
    raise AssertionError(f"could not wipe {path}: its children kept changing")


def path_wiped(c: FaultCluster, rng: random.Random) -> None:
    """The election path deleted with all its children in one transaction, twice: recreated
    empty in the same transaction, then left for the nodes to recreate. Same ensemble, so the
    zxids went on: the nodes re-register, put their identity back, and the epochs keep growing
    (rule 2). On today's engine it often fails rule 1 (V10 in RELIABILITY.md): a follower
    hears of its predecessors' deletion before its own and claims on its deleted entry."""
    kz = c.zk_client()
    identity = ClusterIdentity.decode(kz.get(c.path)[0])
    for recreate in (True, False):
        _, epoch = c.wait_leader()
        c.fault("path-wiped", "inject", "", deposes=True, epoch=epoch, recreate=recreate)
        _wipe(kz, c.path, recreate)
        wait_until(
            lambda e=epoch: (got := c.self_leader()) is not None and got[1] > e,
            c.session_timeout * 5,
            "a leader with a higher epoch",
            interval=POLL_INTERVAL,
        )
        settle(c, c.fault("path-wiped", "heal", ""), "path-wiped")
        assert ClusterIdentity.decode(kz.get(c.path)[0]) == identity, "identity restored"
    c.end_client(kz)
    restored = sum(len(c.log_lines(n, "restored cluster")) for n in c.nodes.values())
    assert restored >= 2, "a node put the identity back after each wipe"


# ----- another ensemble behind --zk -----------------------------------------------------------

_REFUSES = "refuses to join the election"
_CARRY_ON = r"--epoch-floor (\d+) --previous ([0-9a-f]{32})"


def _why(c: FaultCluster, node: Node) -> str:
    """What GetLeader answers on `node`: the leader, or the reason it cannot vouch."""
    try:
        got = node.stub.GetLeader(pb.GetLeaderRequest(), timeout=1.0).leader
        return f"leader {got.node.id or got.node.znode} epoch {got.epoch}"
    except grpc.RpcError as exc:
        return f"{exc.code().name}: {exc.details()}"


def _nobody_vouches(c: FaultCluster, since: float, what: str) -> float:
    """Wait until no running node vouches for a leader; how long after `since` the last of
    them said so on its stream (the first message after `since` that names no leader)."""
    wait_until(
        lambda: all(c.get_leader(n) is None for n in c.running()),
        c.session_timeout * 3,
        what,
        interval=POLL_INTERVAL,
    )
    running = {n.id for n in c.running()}
    first: dict[str, float] = {}
    for e in c.history.events("stream"):
        if e.t >= since and e.node in running and e.get("state") != "ELECTED":
            first.setdefault(e.node, e.t)
    return round(max(first.values(), default=time.monotonic()) - since, 3)


def _refusing(c: FaultCluster, pattern: str = "") -> list[Node]:
    return [
        n for n in c.running() if any(pattern in m.string for m in c.log_lines(n, f"{_REFUSES}.*"))
    ]


def _operator_floor(c: FaultCluster) -> tuple[int, str, str]:
    """The --epoch-floor and --previous an operator takes from the nodes' logs: the command a
    refusing node names, else (no node refused) the highest epoch any node logged and the
    cluster it joined. Returns (floor, previous, where they came from)."""
    named = [m for n in c.nodes.values() for m in c.log_lines(n, _CARRY_ON)]
    if named:
        best = max(named, key=lambda m: int(m.group(1)))
        return int(best.group(1)), best.group(2), "a node's refusal"
    epochs = [
        epoch
        for n in c.nodes.values()
        for _, _, leader, epoch in log_events(n.id, n.proc.log_records())
        if leader != "!backwards"
    ]
    joined = [
        m.group(1) for n in c.nodes.values() for m in c.log_lines(n, r"cluster ([0-9a-f]{32})")
    ]
    assert epochs and joined, "the nodes' logs name no epoch or no cluster"
    return max(epochs), joined[-1], "the nodes' logs (no node refused)"


def _carry_on(c: FaultCluster, floor: int, previous: str) -> str:
    """Run `electd identity --epoch-floor --previous` against the ensemble, as the operator."""
    cmd = [
        sys.executable, "-m", "electd", "identity",
        "--zk", c.ensemble.zk.connect_string,
        "--election-path", c.path,
        "--epoch-floor", str(floor),
        "--previous", previous,
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{' '.join(cmd[1:])}: {done.stderr}"
    return done.stdout.strip()


def _recover(c: FaultCluster, name: str) -> tuple[int, float]:
    """After the operator fixed ZooKeeper: every running node vouches for a leader again by
    itself (no restart: a node gives up a session it could not reach for longer than T and
    starts a new one, V9 in RELIABILITY.md). Returns how many did, and when they had."""
    with contextlib.suppress(TimeoutError):
        wait_until(
            lambda: all(c.get_leader(n) is not None for n in c.running()),
            4 * c.session_timeout,
            "every node to vouch again",
            interval=POLL_INTERVAL,
        )
    serving = [n for n in c.running() if c.get_leader(n) is not None]
    c.history.add("fault", "", name=name, phase="by-themselves", nodes=[n.id for n in serving])
    assert len(serving) == len(c.running()), (
        f"{len(c.running()) - len(serving)} node(s) did not serve again by themselves: "
        f"{ {n.id: _why(c, n) for n in c.running() if n not in serving} }"
    )
    return len(serving), time.monotonic()


def ensemble_rebuilt(c: FaultCluster, rng: random.Random) -> None:
    """ZooKeeper stopped, every server's data directory removed, started again empty: its
    zxids start again from the bottom. No node may claim with an epoch lower than one handed
    out before. Every running node reconnects by itself (a new session: V9) and refuses the
    path; the harness then plays the operator: it runs `electd identity --epoch-floor E
    --previous X` with E and X from a refusal, and the running nodes, never restarted, lead
    again with higher epochs."""
    _, epoch = c.wait_leader()
    t0 = c.fault("ensemble-rebuilt", "inject", "", epoch=epoch)
    c.ensemble.rebuild()
    rebuilt = time.monotonic()
    c.figure(
        "ensemble-rebuilt: ZooKeeper stopped, wiped and serving again after (s)",
        round(rebuilt - t0, 3),
    )
    quiet = _nobody_vouches(c, t0, "every node to stop vouching on the rebuilt ensemble")
    c.figure("ensemble-rebuilt: every node stopped vouching after (s)", quiet)
    wait_until(
        lambda: len(_refusing(c)) == len(c.running()),
        c.session_timeout * 4,
        "every node to refuse the rebuilt ensemble",
        interval=POLL_INTERVAL,
    )
    reasons = {n.id: _why(c, n) for n in c.running()}
    c.history.add("fault", "", name="ensemble-rebuilt", phase="refused", reasons=reasons)
    c.figure("ensemble-rebuilt: nodes that logged a refusal", len(_refusing(c)))
    c.figure("ensemble-rebuilt: the nodes said", reasons)
    floor, previous, source = _operator_floor(c)
    assert floor >= epoch
    written = _carry_on(c, floor, previous)
    carried = time.monotonic()
    c.history.add("fault", "", name="ensemble-rebuilt", phase="carried-on", identity=written)
    c.figure("ensemble-rebuilt: floor taken from", source)
    by_themselves, done = _recover(c, "ensemble-rebuilt")
    c.figure("ensemble-rebuilt: nodes leading again without a restart", by_themselves)
    healed = c.fault("ensemble-rebuilt", "heal", "", rebuilt_at=rebuilt, carried_at=carried)
    settle(c, healed, "ensemble-rebuilt")
    found = c.self_leader()
    assert found is not None and found[1] > floor, f"epoch {found} not above the floor {floor}"
    c.figure(
        "ensemble-rebuilt: leader again after the identity was written (s)",
        round(time.monotonic() - carried, 3),
    )
    c.figure(
        "ensemble-rebuilt: every node serving again after the identity was written (s)",
        round(done - carried, 3),
    )


def second_ensemble(c: FaultCluster, rng: random.Random) -> None:
    """--zk (the nodes' client links, through the suite's proxies) switched from ensemble A to
    a second, independent ZooKeeper B, then back, two rounds. Round 1: B has run longer than A
    (higher zxids) and has the election path with another cluster's identity: every node
    must reach it and refuse it. Round 2: B is empty, with low zxids. No node may claim on B
    or with a lower epoch; switching back to A resumes, every node by itself (V9)."""
    T = c.session_timeout
    for round_, epoch_b in ((1, 4096), (2, None)):
        b = SpareZooKeeper(c.workdir / f"zk-b{round_}", epoch_b).run()
        try:
            other = ClusterIdentity.new()
            if epoch_b is not None:
                kb = c.zk_client(b.address)
                kb.create(c.path, other.encode(), makepath=True)
                c.end_client(kb)
            _, epoch = c.wait_leader()
            t0 = c.fault("second-ensemble", "inject", f"zk-b{round_}", epoch=epoch, round=round_)
            c.net.divert((b.host, b.client_port))
            quiet = _nobody_vouches(c, t0, f"every node to stop vouching on B (round {round_})")
            c.figure(f"second-ensemble {round_}: nobody vouches after (s)", quiet)
            if epoch_b is not None:
                wait_until(
                    lambda o=other.cluster: len(_refusing(c, o)) == len(c.running()),
                    T * 4,
                    "every node to refuse B's identity",
                    interval=POLL_INTERVAL,
                )
                c.figure(
                    f"second-ensemble {round_}: every node refused B after (s)",
                    round(time.monotonic() - t0, 3),
                )
                hold(1.0)
            else:
                hold(T + 1.0)  # long enough for A to expire every session
            reasons = {n.id: _why(c, n) for n in c.running()}
            c.history.add("fault", "", name="second-ensemble", phase="on-b", reasons=reasons)
            c.figure(f"second-ensemble {round_}: the nodes said", reasons)
            c.net.divert(None)
            back = time.monotonic()
            by_themselves, _ = _recover(c, "second-ensemble")
            c.figure(
                f"second-ensemble {round_}: nodes serving again without a restart", by_themselves
            )
            healed = c.fault("second-ensemble", "heal", f"zk-b{round_}", back_at=back)
            settle(c, healed, "second-ensemble")
            found = c.self_leader()
            assert found is not None and found[1] >= epoch
        finally:
            c.net.divert(None)  # also when the round failed: the next test needs ensemble A
            b.stop()


# ----- the randomized mix ------------------------------------------------------------------


def random_step(c: FaultCluster, rng: random.Random) -> str:
    """One random fault on a random target for a random time, healed, then settled."""
    T = c.session_timeout
    leader, epoch = c.wait_leader()
    nodes = sorted(c.running(), key=lambda n: n.id)
    node = leader if rng.random() < 0.5 else rng.choice(nodes)
    kind = rng.choice(
        [
            "kill-node",
            "pause-node",
            "partition-node",
            "restart-node",
            "kill-zk",
            "pause-zk",
            "isolate-zk",
            "cut-zk-pair",
            "quorum-loss",
            "kill-zk-and-partition-node",
        ]
    )
    is_leader = node.id == leader.id
    names = c.ensemble.names
    zk = rng.randrange(1, 4)
    duration = rng.uniform(0.2, 2.0) * T
    c.fault(
        kind,
        "inject",
        node.id if "node" in kind else f"zk{zk}",
        deposes=is_leader and _deposes(kind, duration, T),
        epoch=epoch,
        duration=round(duration, 3),
    )
    if kind == "kill-node":
        c.kill(node.id)
        hold(duration)
        c.restart(node.id)
    elif kind == "pause-node":
        c.pause(node.id)
        hold(duration)
        c.resume(node.id)
    elif kind == "partition-node":
        c.partition_node(node.id)
        hold(duration)
        c.heal_node(node.id)
    elif kind == "restart-node":
        c.terminate(node.id)
        c.restart(node.id)
    elif kind == "kill-zk":
        c.ensemble.kill(zk)
        hold(duration)
        c.ensemble.start_server(zk)
    elif kind == "pause-zk":
        c.ensemble.pause(zk)
        hold(duration)
        c.ensemble.resume(zk)
    elif kind == "isolate-zk":
        c.net.isolate(f"zk{zk}", names)
        hold(duration)
        c.net.rejoin(f"zk{zk}", names)
    elif kind == "cut-zk-pair":
        other = rng.choice([n for n in names if n != f"zk{zk}"])
        c.net.cut(f"zk{zk}", other)
        hold(duration)
        c.net.heal(f"zk{zk}", other)
    elif kind == "quorum-loss":
        for name in names:
            c.net.isolate(name, names)
        hold(duration)
        c.net.heal_all()
    else:  # two faults at once: a ZooKeeper server down and a node cut off
        c.ensemble.kill(zk)
        c.partition_node(node.id)
        hold(duration)
        c.heal_node(node.id)
        c.ensemble.start_server(zk)
    settle(c, c.fault(kind, "heal", node.id), kind)
    c.ensemble.restore()  # all three servers back before the next step
    return kind


def _deposes(kind: str, duration: float, session_timeout: float) -> bool:
    """Does this fault, on the leader, certainly depose it? A kill or a restart always does; a
    pause or a partition does when it outlasts the session's expiry (T + one tick) with a
    second to spare."""
    if kind in ("kill-node", "restart-node"):
        return True
    return kind in ("pause-node", "partition-node") and duration > session_timeout + 1.2


def random_mix(
    c: FaultCluster, rng: random.Random, steps: int | None = None, until: float | None = None
) -> list[str]:
    done: list[str] = []
    while (steps is None or len(done) < steps) and (until is None or time.monotonic() < until):
        done.append(random_step(c, rng))
    return done


NAMED = [
    Scenario("kill-leader", kill_leader),
    Scenario("pause-leader", pause_leader),
    Scenario("pause-then-cut", pause_then_cut),
    Scenario("partition-leader", partition_leader),
    Scenario("partition-follower", partition_follower),
    Scenario("kill-zk-leader", kill_zk_leader, session_timeout=4.0),
    Scenario("kill-zk-follower", kill_zk_follower, session_timeout=4.0),
    Scenario("zk-minority-partition", zk_minority_partition, session_timeout=4.0),
    Scenario("zk-stale-follower", zk_stale_follower, session_timeout=1.5),
    Scenario("zk-quorum-loss", zk_quorum_loss),
    Scenario("session-expiry", session_expiry),
    Scenario("rolling-restart", rolling_restart, nodes=5),
    Scenario("churn-20-nodes", churn),
    Scenario("rewrite-leader-data", rewrite_leader_data),
    Scenario("rewrite-follower-data", rewrite_follower_data),
    Scenario("fake-lowest-entry", fake_lowest_entry),
    Scenario("poisoned-records", poisoned_records),
    Scenario("foreign-children", foreign_children, session_timeout=4.0),
    Scenario("path-wiped", path_wiped),
    Scenario("second-ensemble", second_ensemble),
    Scenario("ensemble-rebuilt", ensemble_rebuilt),
]
