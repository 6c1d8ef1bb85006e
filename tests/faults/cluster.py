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

For hostile writers the harness also acts as other ZooKeeper clients (`zk_client`: sessions of
its own, straight to the ensemble, that it can end at will), can rebuild the ensemble from empty
data (`Ensemble.rebuild`) and can start a second, independent ZooKeeper (`SpareZooKeeper`) for
the nodes' client links to be diverted to (`Network.divert`).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from kazoo.client import KazooClient

from electd.devcluster.cluster import NodeProcess, wait_until
from electd.devcluster.zookeeper import ZooKeeperCluster, ZooKeeperServer, four_letter, free_port
from electd.v1 import election_service_pb2 as pb
from electd.v1 import election_service_pb2_grpc as pb_grpc
from tests.faults.fence import FencedStore
from tests.faults.history import History, Observer, channel
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

    def rebuild(self, timeout: float = 60) -> None:
        """Stop every server, remove its data directory (snapshots, transaction logs, epochs),
        and start them all again: an ensemble rebuilt from empty data, whose zxids start again
        from the bottom. The routed peer links stay as they were."""
        for s in self.zk.servers:
            if s.myid in self.paused:
                self.resume(s.myid)
            s.stop()
            self.history.add("zk", f"zk{s.myid}", action="stop")
        for s in self.zk.servers:
            shutil.rmtree(s.workdir / "data", ignore_errors=True)
            self.history.add("zk", f"zk{s.myid}", action="wipe")
        for s in self.zk.servers:
            self.start_server(s.myid)  # write_config creates the data directory and myid again
        wait_until(
            self.healthy, timeout, "the rebuilt ensemble to elect a leader", interval=POLL_INTERVAL
        )

    def close(self) -> None:
        for s in self.zk.servers:
            s.signal(signal.SIGCONT)
        self.zk.stop()
        self.net.close()


class SpareZooKeeper(ZooKeeperServer):
    """A second, independent ZooKeeper (one server) that shares nothing with the ensemble.
    With `epoch`, it runs as a quorum of one that starts at that ZooKeeper epoch, so its zxids
    (epoch << 32 | counter) are above those of a younger ensemble: one that has been through
    more leader elections. Without, it is a standalone server whose zxids start at 0."""

    def __init__(self, workdir: Path, epoch: int | None = None) -> None:
        peers = [(0, free_port(), free_port())] if epoch is not None else []
        super().__init__(workdir, free_port(), myid=1 if peers else 0, tick_ms=TICK_MS)
        if peers:
            self.peers = [(self.client_port, peers[0][1], peers[0][2])]
        self.epoch = epoch

    def write_config(self) -> Path:
        cfg = super().write_config()
        if self.epoch is not None:
            cfg.write_text(cfg.read_text() + "standaloneEnabled=false\n")
            epochs = self.workdir / "data" / "version-2"
            epochs.mkdir(parents=True, exist_ok=True)
            for name in ("acceptedEpoch", "currentEpoch"):
                if not (epochs / name).exists():
                    (epochs / name).write_text(str(self.epoch))
        return cfg

    def run(self, timeout: float = 60) -> SpareZooKeeper:
        self.start()
        self.wait_serving(timeout)
        return self


class ForeignAwareObserver(Observer):
    """An Observer that names a leader whose record cannot be read (a foreign entry that leads
    by the rule of order.py: its node id is empty) by its znode, as the nodes' own log lines do
    (`leader=<id or znode>`), so that the checker's "each epoch names one node" compares one
    name with one name. Every other message is recorded exactly as Observer records it."""

    def _record(self, stream: int, msg: pb.WatchLeaderResponse) -> None:
        if msg.state != pb.LEADER_STATE_ELECTED or msg.leader.node.id:
            super()._record(stream, msg)
            return
        epoch = msg.leader.epoch
        self.max_epoch = max(self.max_epoch, epoch)
        self.latest = self._history.add(
            "stream",
            self.node_id,
            stream=stream,
            state="ELECTED",
            leader=msg.leader.node.znode,
            epoch=epoch,
            znode=msg.leader.node.znode,
            record_error=msg.leader.node.record_error,
        )


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
        self._clients: list[KazooClient] = []
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="settle")
        # How long the harness waits for a ListNodes answer (a scenario that floods the election
        # path with children raises it: every ListNodes then reads them all).
        self.list_timeout = 1.0

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
        to_node = channel(proc.address)
        observer = ForeignAwareObserver(self.history, node_id, proc.address)
        node = Node(proc, observer, to_node, None)  # type: ignore[arg-type]
        node.stub = pb_grpc.ElectionServiceStub(to_node)
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

    def list_nodes(self, node: Node, timeout: float | None = None) -> pb.ListNodesResponse | None:
        try:
            return node.stub.ListNodes(pb.ListNodesRequest(), timeout=timeout or self.list_timeout)
        except grpc.RpcError:
            return None

    def self_leader(self) -> tuple[Node, int] | None:
        """The running node that says it leads, with its epoch. A node restarted while its
        dead predecessor's znode still leads names its own id too; it counts only once the
        members list holds that id just once."""
        for node, epoch in self._claims(self.running()):
            if self._unambiguous(node, self.list_nodes(node)):
                return node, epoch
        return None

    def _claims(self, nodes: list[Node]) -> list[tuple[Node, int]]:
        """The nodes that name themselves as leader (GetLeader), with their epochs."""
        out = []
        for node in nodes:
            leader = self.get_leader(node)
            if leader is not None and leader.node.id == node.id:
                out.append((node, leader.epoch))
        return out

    @staticmethod
    def _unambiguous(node: Node, resp: pb.ListNodesResponse | None) -> bool:
        return resp is not None and [m.id for m in resp.nodes].count(node.id) == 1

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

    def log_lines(self, node: Node, pattern: str) -> list[re.Match[str]]:
        """Every match of `pattern` in the messages of `node`'s log (every incarnation)."""
        regex = re.compile(pattern)
        found = (regex.search(str(r.get("msg", ""))) for r in node.proc.log_records())
        return [m for m in found if m is not None]

    # ----- other ZooKeeper clients (hostile writers) ------------------------------------------

    def zk_client(self, hosts: str | None = None) -> KazooClient:
        """A ZooKeeper session of the harness's own, straight to the ensemble (no proxy); ended
        by `end_client` or at `close`."""
        client = KazooClient(hosts=hosts or self.ensemble.zk.connect_string, timeout=10.0)
        client.start(30)
        self._clients.append(client)
        return client

    def end_client(self, client: KazooClient) -> None:
        """Close the session (its ephemeral znodes go at once)."""
        with contextlib.suppress(Exception):
            client.stop()
        with contextlib.suppress(Exception):
            client.close()
        if client in self._clients:
            self._clients.remove(client)

    # ----- faults, recorded --------------------------------------------------------------------

    def fault(self, name: str, phase: str, target: str = "", **data: Any) -> float:
        return self.history.add("fault", target, name=name, phase=phase, **data).t

    def figure(self, name: str, value: Any) -> None:
        """A figure of the scenario's own (for the report, beside the checker's)."""
        self.history.add("figure", "", name=name, value=value)

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
            since = time.monotonic()
        out = Settled(label, since, None, None, None)
        found: tuple[Node, int] | None = None
        while time.monotonic() < deadline:
            live = self.running()
            ids = sorted(n.id for n in live)
            if found is not None and out.streams is None and self._streams_agree(live, *found):
                out.streams = time.monotonic() - since  # the streams are local: no need to wait
            now = time.monotonic()
            claims = self._claims(live)
            # Every live node's ListNodes, asked of all at once (with many children on the
            # election path each one takes a while); they also tell a ghost from a leader.
            answers = self._pool.map(self.list_nodes, live)
            lists = dict(zip([n.id for n in live], answers, strict=True))
            listed = time.monotonic()
            found = next((c for c in claims if self._unambiguous(c[0], lists[c[0].id])), None)
            if found is not None:
                if out.leader is None:
                    out.leader = now - since
                out.leader_id, out.epoch = found[0].id, found[1]
                if out.streams is None and self._streams_agree(live, *found):
                    out.streams = time.monotonic() - since
            if out.members is None and all(
                r is not None and sorted(m.id for m in r.nodes) == ids for r in lists.values()
            ):
                out.members = listed - since
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

    def _streams_agree(self, live: list[Node], leader: Node, epoch: int) -> bool:
        return all(
            (e := n.observer.latest) is not None
            and e.get("state") == "ELECTED"
            and e.get("leader") == leader.id
            and e.get("epoch") == epoch
            for n in live
        )

    # ----- teardown ----------------------------------------------------------------------------

    def node_logs(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for node in [*self.retired, *self.nodes.values()]:
            out[node.id] = node.proc.log_records()
        return out

    def close(self) -> None:
        for client in list(self._clients):
            self.end_client(client)
        self._pool.shutdown(wait=False)
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
