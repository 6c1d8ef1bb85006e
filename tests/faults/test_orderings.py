"""Two orderings at which a leader must already have stopped vouching for itself, forced on real
processes instead of left to chance:

  * a leader that got SIGTERM stops vouching before the delete of its entry can reach
    ZooKeeper: the delete is held in a proxy between the node and ZooKeeper (so no successor
    can lead yet) while the node is asked GetLeader back to back;
  * a leader whose entry another ZooKeeper client deletes has stopped vouching before any
    successor begins to: every node is asked GetLeader back to back, from before the delete
    until a new leader answers, and the old term's last answer (asked) must come before the
    new term's first (answered), rule 1's exact evidence. Before the companion (order.py),
    the successor claimed after one round trip while the old leader stepped down when the
    same delete reached it, and nothing ordered the two (V11 in RELIABILITY.md). The test
    once asked instead that the old leader no longer name itself the moment the delete
    returned to the deleting client: that asks the old leader to hear of the delete before
    the client that made it, which no design can promise (the two are different processes
    on different connections); what must hold is that no successor begins before it stops.

Real ZooKeeper (the session's standalone server) and real `electd serve` processes; the
proxy is tests.support.tcpproxy.TcpProxy, which parses ZooKeeper's request frames.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator

import grpc
import pytest
from kazoo.client import KazooClient

from electd.devcluster.cluster import NodeProcess, wait_until
from electd.devcluster.zookeeper import ZooKeeperCluster
from electd.v1 import election_service_pb2 as pb
from electd.v1 import election_service_pb2_grpc as pb_grpc
from electd.zk import paths
from tests.conftest import NodeFactory
from tests.faults.history import channel
from tests.support.tcpproxy import OP_DELETE, OP_MULTI, TcpProxy

T = 4.0  # session timeout: the hold (1 s) stays well inside the node's lease and session
HOLD = 1.0


_stubs: dict[str, pb_grpc.ElectionServiceStub] = {}


def ask(proc: NodeProcess) -> tuple[float, str]:
    """GetLeader on `proc`: (asked at, what it said: "<id> <epoch>", or the status code)."""
    stub = _stubs.get(proc.address)
    if stub is None:
        stub = _stubs[proc.address] = pb_grpc.ElectionServiceStub(channel(proc.address))
    asked = time.monotonic()
    try:
        leader = stub.GetLeader(pb.GetLeaderRequest(), timeout=0.5).leader
        return asked, f"{leader.node.id} {leader.epoch}"
    except grpc.RpcError as exc:
        return asked, exc.code().name


def leads(proc: NodeProcess) -> int | None:
    """The epoch `proc` claims to lead with, if it names itself."""
    _, said = ask(proc)
    node, _, epoch = said.partition(" ")
    return int(epoch) if node == proc.node_id and epoch else None


@pytest.fixture
def proxy(zk: ZooKeeperCluster) -> Iterator[TcpProxy]:
    server = zk.servers[0]
    p = TcpProxy(server.host, server.client_port)
    yield p
    p.close()


@pytest.fixture
def kz(zk: ZooKeeperCluster) -> Iterator[KazooClient]:
    client = KazooClient(hosts=zk.connect_string, timeout=10.0)
    client.start(30)
    yield client
    client.stop()
    client.close()


def test_a_leaving_leader_stops_vouching_before_its_delete_reaches_zookeeper(
    nodes: NodeFactory, proxy: TcpProxy
) -> None:
    n1 = nodes.start("n1", session_timeout=T, zk=proxy.address)
    epoch = wait_until(lambda: leads(n1), 20, "n1 to lead")
    n2 = nodes.start("n2", session_timeout=T)
    wait_until(lambda: ask(n2)[1] == f"n1 {epoch}", 20, "n2 to follow n1")
    # The leave: one transaction deleting the entry and its companion (a plain delete before).
    held = proxy.hold_next(f"{nodes.path}/", (OP_DELETE, OP_MULTI))
    answers: list[tuple[float, str]] = []
    n1.signal(signal.SIGTERM)
    # From the signal on, ask n1 back to back: until it sends its delete (which the proxy
    # holds), and then for HOLD seconds while the delete cannot reach ZooKeeper.
    deadline = time.monotonic() + 10
    while not held.fired.is_set():
        answers.append(ask(n1))
        assert time.monotonic() < deadline, f"n1 sent no delete within 10 s: {answers[-3:]}"
    while time.monotonic() < held.fired_at + HOLD:
        answers.append(ask(n1))
    successor = ask(n2)  # the entry is still there: n2 must not have taken over
    held.release()
    wait_until(lambda: leads(n2), 20, "n2 to lead once the delete reached ZooKeeper")
    n1.wait(20)

    assert held.path.startswith(f"{nodes.path}/electd-"), held.path
    during = [(round(t - held.fired_at, 4), said) for t, said in answers if t >= held.fired_at]
    assert not [a for a in during if a[1].startswith("n1 ")], f"n1 named itself: {during}"
    assert sum(said == "UNAVAILABLE" for _, said in during) >= 10, f"too few answers: {during}"
    # The signal handler stops vouching before the delete is sent: once n1 stopped naming
    # itself it never did again.
    mine = f"n1 {epoch}"
    first_no = next((i for i, (_, said) in enumerate(answers) if said != mine), len(answers))
    assert all(said != mine for _, said in answers[first_no:]), answers
    assert not successor[1].startswith("n2 "), f"n2 led before the delete arrived: {successor}"


def probe_all(
    procs: list[NodeProcess], claims: list[tuple[str, float, float, str]], stop: threading.Event
) -> list[threading.Thread]:
    """Ask every node GetLeader back to back (one thread each) until `stop`, appending (node,
    asked, answered, what it said) to `claims` for every answer that named the node itself."""

    def run(proc: NodeProcess) -> None:
        while not stop.is_set():
            asked, said = ask(proc)
            if said.startswith(f"{proc.node_id} "):
                claims.append((proc.node_id, asked, time.monotonic(), said))

    threads = [threading.Thread(target=run, args=(p,), daemon=True) for p in procs]
    for t in threads:
        t.start()
    return threads


def test_a_leader_whose_entry_another_client_deletes_stops_vouching_before_a_successor_begins(
    nodes: NodeFactory, kz: KazooClient, proxy: TcpProxy
) -> None:
    """Three rounds. In the first, the leader (n1, behind the proxy) is cut off from ZooKeeper
    for HOLD while the delete happens: it cannot hear of it and vouches on its lease, so a
    successor that claimed on the delete alone would lead beside it for up to HOLD. In the
    other two nothing is held: the ordering is left to the machine's scheduling."""
    n1 = nodes.start("n1", session_timeout=T, zk=proxy.address)
    wait_until(lambda: leads(n1), 20, "n1 to lead")
    procs = [n1, *(nodes.start(f"n{i}", session_timeout=T) for i in (2, 3))]
    wait_until(lambda: all(ask(p)[1].startswith("n1 ") for p in procs), 20, "all follow n1")
    for round_ in range(3):
        leader, epoch = wait_until(
            lambda: next(((p, e) for p in procs if (e := leads(p)) is not None), None),
            20,
            "a leader",
        )
        entries = sorted(
            (e for e in kz.get_children(nodes.path) if paths.parse_name(e) is not None),
            key=lambda name: kz.exists(f"{nodes.path}/{name}").czxid,  # type: ignore[union-attr]
        )
        own = entries[0]
        stop = threading.Event()
        claims: list[tuple[str, float, float, str]] = []
        probers = probe_all(procs, claims, stop)
        wait_until(lambda: len(claims) >= 10, 20, "the probes to run")  # noqa: B023
        held = round_ == 0
        if held:
            assert leader is n1
            proxy.block()
        deleted = time.monotonic()
        kz.delete(f"{nodes.path}/{own}")
        try:
            if held:
                while time.monotonic() < deleted + HOLD:
                    stop.wait(0.05)
                proxy.unblock()
            wait_until(
                lambda: any(int(c[3].split()[1]) > epoch for c in list(claims)),  # noqa: B023
                20,
                "a new leader with a higher epoch",
            )
        finally:
            proxy.unblock()
            stop.set()
            for t in probers:
                t.join(5)
        old_term = [c for c in claims if c[3] == f"{leader.node_id} {epoch}"]
        new_term = [c for c in claims if int(c[3].split()[1]) > epoch]
        last_old = max(asked for _, asked, _, _ in old_term)
        first_new = min(answered for _, _, answered, _ in new_term)
        assert last_old < first_new, (
            f"round {round_}: {leader.node_id} still named itself with epoch {epoch} (asked "
            f"{last_old - deleted:+.4f}s after the delete) after {new_term[0][0]} had begun "
            f"leading (answered {first_new - deleted:+.4f}s)"
        )
        # The old leader acknowledged: its companion went after it stopped vouching.
        wait_until(
            lambda o=own: kz.exists(f"{nodes.path}/{paths.companion_name(o)}") is None,
            20,
            "the old leader's companion to go",
        )
