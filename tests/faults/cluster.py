"""The system under test and its fault injectors: a routed ZooKeeper ensemble, electd nodes, the
fenced resource and one observer per node, all recording into one History.

`Ensemble` is the 3-server ZooKeeper ensemble whose quorum and election traffic runs through
the `Network`'s proxies; it outlives a test (module scope) and `restore()` brings it back to
health between tests. `FaultCluster` runs 3 to 25 `electd serve` processes (NodeProcess), each
with the writer as its --leader-command and its ZooKeeper traffic through its own proxies, and
offers every fault the scenarios use: SIGKILL / SIGSTOP / SIGCONT / SIGTERM / restart of a node
or of a ZooKeeper server, and partitions (node <-> ZooKeeper, ZooKeeper <-> ZooKeeper).
`settle()` measures, after a fault heals, how long until a leader exists, every live node's
stream shows it, and every live node lists every live node.
"""

from __future__ import annotations

import contextlib
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from electd.devcluster.cluster import NodeProcess, wait_until
from electd.devcluster.zookeeper import ZooKeeperCluster, ZooKeeperServer, four_letter, free_port
from electd.v1 import election_service_pb2 as pb
from electd.v1 import election_service_pb2_grpc as pb_grpc
from tests.faults.fence import FencedStore
from tests.faults.history import History, Observer
from tests.faults.net import Network
from tests.faults.probe import Prober

WRITER = Path(__file__).with_name("writer.py")
TICK_MS = 200
SYNC_LIMIT = 10
# Bound FastLeaderElection's retry backoff (default up to 60 s) so that a healed quorum finds
# itself again within seconds; everything else is ZooKeeper's stock behaviour.
ZK_JVM_FLAGS = (
    "-Dzookeeper.fastleader.maxNotificationInterval=1000",
    "-Dorg.slf4j.simpleLogger.showDateTime=true",  # timestamps in ZooKeeper's logs
    "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
)


# The interval of the fault suite's `wait_until` polls (seconds): coarser than the 0.02 default.
POLL_INTERVAL = 0.05


class Ensemble:
    """A 3-server ZooKeeper ensemble with every peer link behind a proxy."""

    def __init__(self, workdir: Path, history: History | None = None) -> None:
        self.net = Network()
        self.history = history or History()
        self.zk = ZooKeeperCluster(
            workdir,
            size=3,
            tick_ms=TICK_MS,
            sync_limit=SYNC_LIMIT,
            route=self.net.zk_route,
            jvm_flags=ZK_JVM_FLAGS,
        )
        self.paused: set[int] = set()

    @property
    def names(self) -> list[str]:
        return [f"zk{s.myid}" for s in self.zk.servers]

    def start(self) -> None:
        try:
            self.zk.start()
            wait_until(
                self.healthy, 60, "the ZooKeeper ensemble to elect a leader", interval=POLL_INTERVAL
            )
        except Exception:
            self.close()
            raise

    def server(self, myid: int) -> ZooKeeperServer:
        return self.zk.servers[myid - 1]

    def modes(self) -> dict[int, str]:
        return {s.myid: ("paused" if s.myid in self.paused else s.mode()) for s in self.zk.servers}

    def leader_id(self) -> int | None:
        return next((i for i, m in self.modes().items() if m == "leader"), None)

    def healthy(self) -> bool:
        modes = sorted(self.modes().values())
        return modes == ["follower", "follower", "leader"]

    def restore(self, timeout: float = 60) -> None:
        """Heal every link, resume and restart every server, wait for a full quorum."""
        self.net.heal_all()
        for s in self.zk.servers:
            if s.myid in self.paused:
                self.resume(s.myid)
            if s.proc is None or s.proc.poll() is not None:
                self.start_server(s.myid)
        wait_until(
            self.healthy,
            timeout,
            f"a healthy ensemble (modes {self.modes()})",
            interval=POLL_INTERVAL,
        )

    # ----- faults on servers -----------------------------------------------------------------

    def kill(self, myid: int) -> None:
        self.server(myid).kill()
        self.history.add("zk", f"zk{myid}", action="kill")

    def start_server(self, myid: int) -> None:
        self.history.add("zk", f"zk{myid}", action="start")
        self.server(myid).start()

    def pause(self, myid: int) -> None:
        self.server(myid).signal(signal.SIGSTOP)
        self.paused.add(myid)
        self.history.add("zk", f"zk{myid}", action="pause")

    def resume(self, myid: int) -> None:
        self.server(myid).signal(signal.SIGCONT)
        self.paused.discard(myid)
        self.history.add("zk", f"zk{myid}", action="resume")

    def close(self) -> None:
        for s in self.zk.servers:
            s.signal(signal.SIGCONT)
        self.zk.stop()
        self.net.close()


@dataclass
class Node:
    proc: NodeProcess
    observer: Observer
    channel: grpc.Channel
    stub: pb_grpc.ElectionServiceStub
    paused: bool = False
    up: bool = True
    gone: bool = False  # left for good: not restarted by the scenario
    starts: list[float] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.proc.node_id

    def running(self) -> bool:
        return self.up and not self.paused and self.proc.alive()


@dataclass
class Settled:
    label: str
    since: float
    leader: float | None  # seconds after `since` until a live node led
    streams: float | None  # ... until every live node's stream named that leader and epoch
    members: float | None  # ... until every live node listed exactly the live nodes
    leader_id: str = ""
    epoch: int = 0

    def ok(self) -> bool:
        return None not in (self.leader, self.streams, self.members)


class FaultCluster:
    def __init__(
        self,
        ensemble: Ensemble,
        workdir: Path,
        election_path: str,
        session_timeout: float = 2.0,
    ) -> None:
        self.ensemble = ensemble
        self.history = ensemble.history
        self.net = ensemble.net
        self.workdir = workdir
        self.path = election_path
        self.session_timeout = session_timeout
        self.fence = FencedStore(self.history)
        self.nodes: dict[str, Node] = {}
        self.retired: list[Node] = []
        self.prober = Prober(self.history, lambda: [(n.id, n.stub) for n in self.running()])

    # ----- nodes -----------------------------------------------------------------------------

    def add(self, node_id: str) -> Node:
        hosts = self.net.client_hosts(node_id, self.ensemble.zk)
        proc = NodeProcess(
            hosts,
            free_port(),
            self.workdir,
            node_id=node_id,
            election_path=self.path,
            session_timeout=self.session_timeout,
            extra_args=("--leader-command", f"exec {sys.executable} {WRITER}"),
            env={"ELECTD_FAULTS_FENCE": self.fence.address},
        )
        channel = grpc.insecure_channel(proc.address)
        node = Node(proc, Observer(self.history, node_id, proc.address), channel, None)  # type: ignore[arg-type]
        node.stub = pb_grpc.ElectionServiceStub(channel)
        self.nodes[node_id] = node
        self._start(node)
        return node

    def _start(self, node: Node) -> None:
        node.proc.start()
        node.up, node.paused, node.gone = True, False, False
        node.starts.append(self.history.add("node", node.id, action="start").t)

    def start_nodes(self, ids: list[str], timeout: float = 30) -> None:
        for node_id in ids:
            self.add(node_id)
        self.wait_joined(ids, timeout)

    def joined(self, node: Node) -> bool:
        if not node.proc.alive():
            raise RuntimeError(f"node {node.id} exited:\n{node.proc.log_text()}")
        return self.get_leader(node) is not None

    def wait_joined(self, ids: list[str], timeout: float = 30) -> None:
        wait_until(
            lambda: all(self.joined(self.nodes[i]) for i in ids),
            timeout,
            f"{ids} to join",
            interval=POLL_INTERVAL,
        )

    def running(self) -> list[Node]:
        return [n for n in list(self.nodes.values()) if n.running()]

    def kill(self, node_id: str) -> None:
        node = self.nodes[node_id]
        node.proc.kill()
        node.up, node.paused = False, False
        self.history.add("node", node_id, action="kill")

    def terminate(self, node_id: str) -> None:
        node = self.nodes[node_id]
        self.history.add("node", node_id, action="term")
        focus = self.prober.focus(node_id, node.stub, lambda: not node.proc.alive())
        node.proc.stop()
        focus.join(5)
        node.up, node.paused = False, False
        self.history.add("node", node_id, action="exit", code=node.proc.proc.returncode)  # type: ignore[union-attr]

    def restart(self, node_id: str) -> None:
        self._start(self.nodes[node_id])

    def pause(self, node_id: str) -> None:
        node = self.nodes[node_id]
        node.proc.signal(signal.SIGSTOP)
        node.paused = True
        self.history.add("node", node_id, action="pause")

    def resume(self, node_id: str) -> None:
        node = self.nodes[node_id]
        node.proc.signal(signal.SIGCONT)
        node.paused = False
        self.history.add("node", node_id, action="resume")

    def retire(self, node_id: str) -> None:
        """Forget a stopped node for good (it left the cluster)."""
        node = self.nodes.pop(node_id)
        node.gone = True
        node.observer.close()
        node.channel.close()
        self.net.forget(node_id)
        self.retired.append(node)

    # ----- network ---------------------------------------------------------------------------

    def partition_node(self, node_id: str) -> None:
        self.net.isolate(node_id, self.ensemble.names)

    def heal_node(self, node_id: str) -> None:
        self.net.rejoin(node_id, self.ensemble.names)

    # ----- asking the nodes ------------------------------------------------------------------

    def get_leader(self, node: Node, timeout: float = 0.5) -> pb.Leader | None:
        try:
            return node.stub.GetLeader(pb.GetLeaderRequest(), timeout=timeout).leader
        except grpc.RpcError:
            return None

    def list_nodes(self, node: Node, timeout: float = 1.0) -> pb.ListNodesResponse | None:
        try:
            return node.stub.ListNodes(pb.ListNodesRequest(), timeout=timeout)
        except grpc.RpcError:
            return None

    def self_leader(self) -> tuple[Node, int] | None:
        """The running node that says it leads, with its epoch. A node restarted while its
        dead predecessor's znode still leads names its own id too; it counts only once the
        members list holds that id just once."""
        for node in self.running():
            leader = self.get_leader(node)
            if leader is not None and leader.node.id == node.id:
                resp = self.list_nodes(node)
                if resp is not None and [m.id for m in resp.nodes].count(node.id) == 1:
                    return node, leader.epoch
        return None

    def wait_leader(self, timeout: float = 30) -> tuple[Node, int]:
        found: tuple[Node, int] = wait_until(
            self.self_leader, timeout, "a leader", interval=POLL_INTERVAL
        )
        return found

    def zk_server_of(self, node_id: str) -> int | None:
        """The myid of the ZooKeeper server that holds `node_id`'s connection, if any."""
        sid = None
        for node in self.running():
            resp = self.list_nodes(node)
            if resp is not None:
                sid = next((m.session_id for m in resp.nodes if m.id == node_id), None)
                break
        if sid is None:
            return None
        # A server may still list a connection the client has abandoned (its proxy keeps the
        # socket open): the live one is the one that answered last (lresp, monotonic ms).
        pattern = re.compile(rf"sid=0x{sid & 0xFFFFFFFFFFFFFFFF:x},.*?lresp=(\d+)")
        best: tuple[int, int] | None = None
        for s in self.ensemble.zk.servers:
            if s.myid in self.ensemble.paused:
                continue
            for m in pattern.finditer(four_letter(s.host, s.client_port, "cons")):
                if best is None or int(m.group(1)) > best[0]:
                    best = (int(m.group(1)), s.myid)
        return best[1] if best else None

    # ----- faults, recorded --------------------------------------------------------------------

    def fault(self, name: str, phase: str, target: str = "", **data: Any) -> float:
        return self.history.add("fault", target, name=name, phase=phase, **data).t

    # ----- convergence -----------------------------------------------------------------------

    def settle(self, since: float, label: str, timeout: float = 40) -> Settled:
        """Poll until a leader exists, every running node's stream shows it, and every running
        node lists exactly the running nodes; record how long each took after `since`, or after
        ZooKeeper serves again if that is later (electd can do nothing before; how long
        ZooKeeper's own recovery took is recorded beside, as `zk_s`)."""
        deadline = time.monotonic() + timeout
        healed = since
        while self.ensemble.leader_id() is None and time.monotonic() < deadline:
            time.sleep(0.05)
            since = time.time()
        out = Settled(label, since, None, None, None)
        while time.monotonic() < deadline:
            live = self.running()
            ids = sorted(n.id for n in live)
            now = time.time()
            found = self.self_leader()
            if found is not None:
                if out.leader is None:
                    out.leader = now - since
                node, epoch = found
                out.leader_id, out.epoch = node.id, epoch
                latest = [n.observer.latest for n in live]
                if out.streams is None and all(
                    e is not None
                    and e.get("state") == "ELECTED"
                    and e.get("leader") == node.id
                    and e.get("epoch") == epoch
                    for e in latest
                ):
                    out.streams = time.time() - since
            if out.members is None and all(self._lists(n, ids) for n in live):
                out.members = time.time() - since
            if out.ok():
                break
            time.sleep(0.05)
        self.history.add(
            "settled",
            out.leader_id,
            label=label,
            since=since,
            healed=healed,
            zk_s=since - healed,
            leader_s=out.leader,
            streams_s=out.streams,
            members_s=out.members,
            epoch=out.epoch,
        )
        return out

    def _lists(self, node: Node, ids: list[str]) -> bool:
        resp = self.list_nodes(node)
        return resp is not None and sorted(m.id for m in resp.nodes) == ids

    # ----- teardown ----------------------------------------------------------------------------

    def node_logs(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for node in [*self.retired, *self.nodes.values()]:
            out[node.id] = node.proc.log_records()
        return out

    def close(self) -> None:
        self.prober.close()
        for node in [*self.nodes.values(), *self.retired]:
            with contextlib.suppress(Exception):
                node.proc.kill()
            node.up = False
        self.fence.close()
        for node in self.nodes.values():
            node.observer.close()
            node.channel.close()
        for node_id in list(self.nodes):
            self.net.forget(node_id)
