"""The named fault scenarios and the randomized mix, shared by the pytest suite and the soak.

Each scenario drives a FaultCluster: it injects one fault (recorded as a "fault" event, with
`deposes=True` when it is meant to depose the leader), holds it, heals it, and measures
convergence with `settle`. What holds for every run is judged afterwards by the checker over
the history; what a scenario promises beyond that (for example "no change of electd leader
while the sessions survive") it asserts itself.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from electd.devcluster.cluster import wait_until
from tests.faults.cluster import POLL_INTERVAL, FaultCluster, Node


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
    hold(max(0.0, c.session_timeout * 0.75 - (time.time() - t0)))
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
    settle(c, time.time(), "churn")


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
    while (steps is None or len(done) < steps) and (until is None or time.time() < until):
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
]
