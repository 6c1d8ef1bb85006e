"""Election as a service against real node processes on a real ZooKeeper, through the generated
stubs only: the Campaign stream's protocol and status codes, leases answered to pings, the
queue across nodes, resignation on the stream and by the unary Resign, a candidate that goes
away while its lease runs (C3), Proclaim seen by a watcher on another node, vacant elections,
ListElections, node shutdown, and the write right.

Safety is asserted as an order, never as a speed: a successor's Leading arrives no earlier than
the moment its predecessor stopped being allowed to act (its acknowledgement, or its deadline:
the send time of its last granted ping plus lease_ms, on this process's monotonic clock)."""

from __future__ import annotations

import queue
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from electd.devcluster.cluster import NodeProcess, wait_until
from electd.v1 import election_service_pb2 as pb
from electd.v1 import election_service_pb2_grpc as pb_grpc
from tests.conftest import NodeFactory
from tests.e2e.helpers import leader_id, stub, wait_joined

pytestmark = pytest.mark.timeout(180)

Message = pb.CampaignResponse


def elections_root(nodes: NodeFactory) -> str:
    """A fresh --elections-root per test, next to the test's election path."""
    return nodes.path.rsplit("/", 1)[0] + "/elections"


def start_nodes(
    nodes: NodeFactory, *names: str, session_timeout: float = 2.0, extra: tuple[str, ...] = ()
) -> list[NodeProcess]:
    procs = []
    for name in names:
        proc = nodes.start(
            name,
            session_timeout=session_timeout,
            extra=("--elections-root", elections_root(nodes), *extra),
        )
        procs.append(proc)
    for proc in procs:
        wait_joined(proc)
    return procs


def election_name() -> str:
    return f"e-{uuid.uuid4().hex[:10]}"


class Candidate:
    """One Campaign stream: requests from a queue (None half-closes), responses collected by
    a thread with their receive times, optional pings in the background."""

    def __init__(
        self,
        proc: NodeProcess,
        election: str,
        candidate_id: str,
        channel: grpc.Channel | None = None,
        first: pb.CampaignRequest | None = None,
        **start: Any,
    ) -> None:
        self.proc, self.election, self.id = proc, election, candidate_id
        self._requests: queue.Queue[pb.CampaignRequest | None] = queue.Queue()
        self._channel = channel or grpc.insecure_channel(proc.address)
        self._stub = pb_grpc.ElectionServiceStub(self._channel)
        self.seen: list[tuple[float, Message]] = []
        self._lock = threading.Lock()
        self.error: grpc.RpcError | None = None
        self.ended = threading.Event()
        self._nonce = 0
        self.sent: dict[int, float] = {}  # nonce -> monotonic send time
        self._pinging = threading.Event()
        self._call = self._stub.Campaign(self._iterate())
        if first is None:
            first = pb.CampaignRequest(
                start=pb.CampaignStart(election=election, candidate_id=candidate_id, **start)
            )
        self.send(first)
        threading.Thread(target=self._read, daemon=True).start()

    # ----- requests -----------------------------------------------------------------------

    def _iterate(self) -> Iterator[pb.CampaignRequest]:
        while True:
            request = self._requests.get()
            if request is None:
                return
            yield request

    def send(self, request: pb.CampaignRequest) -> None:
        self._requests.put(request)

    def ping(self) -> int:
        with self._lock:
            self._nonce += 1
            nonce = self._nonce
            self.sent[nonce] = time.monotonic()
        self.send(pb.CampaignRequest(ping=pb.CampaignPing(nonce=nonce)))
        return nonce

    def keep_pinging(self, every: float = 0.2) -> None:
        """Ping in the background (the default --candidate-timeout is 5 s)."""
        self._pinging.set()

        def run() -> None:
            while self._pinging.is_set() and not self.ended.is_set():
                self.ping()
                time.sleep(every)

        threading.Thread(target=run, daemon=True).start()

    def stop_pinging(self) -> None:
        self._pinging.clear()

    def ack(self, epoch: int) -> float:
        sent = time.monotonic()
        self.send(pb.CampaignRequest(ack=pb.CampaignAck(epoch=epoch)))
        return sent

    def resign(self) -> None:
        self.stop_pinging()
        self.send(pb.CampaignRequest(resign=pb.CampaignResign()))

    def proclaim(self, epoch: int, value: bytes) -> None:
        self.send(pb.CampaignRequest(proclaim=pb.CampaignProclaim(epoch=epoch, value=value)))

    def half_close(self) -> None:
        self.stop_pinging()
        self._requests.put(None)

    def cancel(self) -> float:
        self.stop_pinging()
        self._call.cancel()
        return time.monotonic()

    def close(self) -> None:
        self.stop_pinging()
        self._call.cancel()
        self._channel.close()

    # ----- responses ----------------------------------------------------------------------

    def _read(self) -> None:
        try:
            for message in self._call:
                with self._lock:
                    self.seen.append((time.monotonic(), message))
        except grpc.RpcError as exc:
            self.error = exc
        finally:
            self.ended.set()

    def messages(self) -> list[tuple[float, Message]]:
        with self._lock:
            return list(self.seen)

    def kinds(self) -> list[str]:
        return [str(m.WhichOneof("response")) for _, m in self.messages()]

    def wait_for(
        self, pred: Callable[[Message], bool], what: str, timeout: float = 20
    ) -> tuple[float, Message]:
        def found() -> tuple[float, Message] | None:
            for item in self.messages():
                if pred(item[1]):
                    return item
            return None

        return wait_until(found, timeout, f"{what} on {self.id}'s stream")

    def leading(self, timeout: float = 20, after: int = 0) -> tuple[float, pb.CampaignLeading]:
        t, msg = self.wait_for(
            lambda m: m.WhichOneof("response") == "leading" and m.leading.epoch > after,
            f"leading after epoch {after}",
            timeout,
        )
        return t, msg.leading

    def granted(self, timeout: float = 20) -> tuple[pb.CampaignLeading, float]:
        """A Leading that answers one of our pings with a lease, and the deadline it gives
        (send time of the nonce + lease_ms, this process's monotonic clock)."""
        _, msg = self.wait_for(
            lambda m: m.WhichOneof("response") == "leading" and m.leading.lease_ms > 0,
            "a granted lease",
            timeout,
        )
        return msg.leading, self.deadline()

    def deadline(self) -> float:
        """The latest deadline any answer gave us."""
        best = 0.0
        for _, m in self.messages():
            if m.WhichOneof("response") == "leading" and m.leading.lease_ms > 0:
                best = max(best, self.sent[m.leading.nonce] + m.leading.lease_ms / 1000)
        return best

    def finished(self, timeout: float = 20) -> grpc.RpcError | None:
        assert self.ended.wait(timeout), f"{self.id}'s stream did not end"
        return self.error


def rpc_error(call: Callable[[], Any]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


class Watch:
    """WatchLeader(election) collected by a thread."""

    def __init__(self, proc: NodeProcess, election: str, min_epoch: int = 0) -> None:
        self._channel = grpc.insecure_channel(proc.address)
        self._call = pb_grpc.ElectionServiceStub(self._channel).WatchLeader(
            pb.WatchLeaderRequest(election=election, min_epoch=min_epoch)
        )
        self.seen: list[tuple[float, pb.WatchLeaderResponse]] = []
        self.error: grpc.RpcError | None = None
        self.ended = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        try:
            for msg in self._call:
                self.seen.append((time.monotonic(), msg))
        except grpc.RpcError as exc:
            self.error = exc
        finally:
            self.ended.set()

    def wait_for(
        self, pred: Callable[[pb.WatchLeaderResponse], bool], what: str, timeout: float = 20
    ) -> tuple[float, pb.WatchLeaderResponse]:
        def found() -> tuple[float, pb.WatchLeaderResponse] | None:
            return next(((t, m) for t, m in list(self.seen) if pred(m)), None)

        return wait_until(found, timeout, what)

    def close(self) -> None:
        self._call.cancel()
        self._channel.close()


# ----- the stream's protocol ---------------------------------------------------------------


def test_the_first_request_must_be_start_and_only_the_first(nodes: NodeFactory) -> None:
    (n1,) = start_nodes(nodes, "n1")
    election = election_name()
    ping_first = Candidate(
        n1, election, "c1", first=pb.CampaignRequest(ping=pb.CampaignPing(nonce=1))
    )
    err = ping_first.finished()
    assert err is not None and err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "first CampaignRequest must be start, not ping" in (err.details() or "")
    assert ping_first.kinds() == []

    empty = Candidate(n1, election, "c1", first=pb.CampaignRequest())
    err = empty.finished()
    assert err is not None and err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not empty" in (err.details() or ""), err.details()

    twice = Candidate(n1, election, "c1")
    twice.wait_for(lambda m: m.WhichOneof("response") in ("queued", "leading"), "entered")
    twice.send(pb.CampaignRequest(start=pb.CampaignStart(election=election, candidate_id="c1")))
    err = twice.finished()
    assert err is not None and err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "start: sent twice" in (err.details() or "")
    # The stream that broke the protocol left the election at once (it was never granted).
    wait_until(
        lambda: not stub(n1).ListNodes(pb.ListNodesRequest(election=election), timeout=5).nodes,
        20,
        "c1's entry gone",
    )


BAD_STARTS: list[tuple[dict[str, Any], str]] = [
    ({"election": "", "candidate_id": "c1"}, "start.election"),
    ({"election": "-starts-badly", "candidate_id": "c1"}, "start.election"),
    ({"election": "..", "candidate_id": "c1"}, "start.election"),
    ({"election": "has/slash", "candidate_id": "c1"}, "start.election"),
    ({"election": "x" * 129, "candidate_id": "c1"}, "start.election"),
    ({"election": "ok", "candidate_id": ""}, "start.candidate_id"),
    ({"election": "ok", "candidate_id": "bad id"}, "start.candidate_id"),
    ({"election": "ok", "candidate_id": "c1", "labels": {"bad key": "v"}}, "start.labels"),
    ({"election": "ok", "candidate_id": "c1", "value": b"x" * 16385}, "start.value"),
]


def test_a_bad_start_names_the_field(nodes: NodeFactory) -> None:
    (n1,) = start_nodes(nodes, "n1")
    for start, field in BAD_STARTS:
        candidate = Candidate(
            n1, "unused", "unused", first=pb.CampaignRequest(start=pb.CampaignStart(**start))
        )
        err = candidate.finished()
        assert err is not None and err.code() == grpc.StatusCode.INVALID_ARGUMENT, (start, err)
        assert (err.details() or "").startswith(f"{field}: "), (start, err.details())
        candidate.close()
    listed = stub(n1).ListElections(pb.ListElectionsRequest(), timeout=5)
    assert list(listed.elections) == []  # nothing was created for a refused start


def test_bad_names_in_the_other_calls(nodes: NodeFactory) -> None:
    (n1,) = start_nodes(nodes, "n1")
    s = stub(n1)
    for call in (
        lambda: s.GetLeader(pb.GetLeaderRequest(election="bad name"), timeout=5),
        lambda: s.ListNodes(pb.ListNodesRequest(election="bad name"), timeout=5),
        lambda: next(iter(s.WatchLeader(pb.WatchLeaderRequest(election="bad name"), timeout=5))),
        lambda: s.Resign(pb.ResignRequest(election="bad name", epoch=1), timeout=5),
    ):
        err = rpc_error(call)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
        assert (err.details() or "").startswith("election: "), err.details()
    err = rpc_error(lambda: s.Resign(pb.ResignRequest(election="", epoch=1), timeout=5))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "node election" in (err.details() or ""), err.details()
    err = rpc_error(lambda: s.Resign(pb.ResignRequest(election="ok", epoch=0), timeout=5))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (err.details() or "").startswith("epoch: "), err.details()
    # The node election is still today's: "" means it, and it is unchanged.
    assert s.GetLeader(pb.GetLeaderRequest(election=""), timeout=5).leader.node.id == "n1"


# ----- leading, queueing, resigning ------------------------------------------------------------


def test_two_candidates_on_two_nodes_one_leads_with_a_lease_the_other_waits_for_it(
    nodes: NodeFactory,
) -> None:
    n1, n2 = start_nodes(nodes, "n1", "n2")
    election = election_name()
    c1 = Candidate(n1, election, "c1", value=b"v1", labels={"zone": "a"}, priority=0)
    _, first = c1.leading()
    nonce = c1.ping()
    _, answer = c1.wait_for(
        lambda m: m.WhichOneof("response") == "leading" and m.leading.nonce == nonce,
        f"the answer to ping {nonce}",
    )
    lease = answer.leading
    assert lease.epoch == first.epoch and lease.znode == first.znode
    assert 0 < lease.lease_ms <= 2000  # --candidate-lease default: min(2, 2T/3 - T/8)
    assert answer.responder_id == "n1"
    c1.keep_pinging()

    dup = Candidate(n1, election, "c1")
    err = dup.finished()
    assert err is not None and err.code() == grpc.StatusCode.ALREADY_EXISTS, err
    assert "c1" in (err.details() or "")

    c2 = Candidate(n2, election, "c2")
    c2.keep_pinging()
    _, queued = c2.wait_for(
        lambda m: m.WhichOneof("response") == "queued" and m.queued.waiting_for == "c1",
        "queued behind c1",
    )
    assert queued.queued.position == 1 and queued.responder_id == "n2"
    assert queued.queued.leader.epoch == lease.epoch
    assert queued.queued.leader.node.id == "c1"

    for proc in (n1, n2):
        got = stub(proc).GetLeader(pb.GetLeaderRequest(election=election), timeout=5).leader
        assert (got.node.id, got.epoch, got.node.value) == ("c1", lease.epoch, b"v1")
        assert got.node.host_id == "n1" and dict(got.node.labels) == {"zone": "a"}
    listed = stub(n2).ListNodes(pb.ListNodesRequest(election=election), timeout=5)
    assert [(n.id, n.is_leader, n.host_id) for n in listed.nodes] == [
        ("c1", True, "n1"),
        ("c2", False, "n2"),
    ]
    assert listed.epoch == lease.epoch
    assert listed.nodes[1].watches == listed.nodes[0].znode
    only_a = stub(n1).ListNodes(
        pb.ListNodesRequest(election=election, label_selector={"zone": "a"}), timeout=5
    )
    assert [n.id for n in only_a.nodes] == ["c1"]
    # The node election is untouched by the named one: its members are the nodes alone.
    node_leaders = {
        stub(p).GetLeader(pb.GetLeaderRequest(), timeout=5).leader.node.id for p in (n1, n2)
    }
    assert len(node_leaders) == 1 and node_leaders <= {"n1", "n2"}
    # So is the node's log: "I am a new leader" is the node election's line alone; a hosted
    # candidate's term is logged as its election's, in words and in the JSON fields.
    log = n1.log_text(400)
    assert f"candidate leads election {election}: node=c1 epoch={lease.epoch}" in log
    assert "I am a new leader: node=c1" not in log
    assert f'"election": "{election}"' in log
    # Its engine's other lines name it as a candidate of its election, never as a node.
    assert f"candidate=c1 election={election} joined the election as " in log
    assert '"msg": "node=c1 ' not in log
    node_members = stub(n1).ListNodes(pb.ListNodesRequest(), timeout=5).nodes
    assert sorted(n.id for n in node_members) == ["n1", "n2"]
    assert all(not n.host_id and n.address for n in node_members)

    c1.resign()
    assert c1.finished() is None  # status OK
    # Once the resignation is answered, reads through the same node no longer name its term.
    after = stub(n1).GetLeader(pb.GetLeaderRequest(election=election), timeout=5).leader
    assert after.node.id == "c2" and after.epoch > lease.epoch
    assert c1.kinds()[-1] == "lost"
    last = c1.messages()[-1][1].lost
    assert (last.epoch, last.reason) == (lease.epoch, pb.LOSS_REASON_RESIGNED)
    _, second = c2.leading(after=lease.epoch)
    assert second.epoch > lease.epoch
    order = c1.kinds()
    assert order.index("leading") < order.index("lost")
    c2.close()


def test_a_cancelled_leader_holds_the_election_until_its_lease_ran_out(
    nodes: NodeFactory,
) -> None:
    """C3: no ack, no Lost: the entry stays (still leading, no new grants) until the last
    grant has run out, then goes, and only then the next candidate leads."""
    n1, n2, n3 = start_nodes(nodes, "n1", "n2", "n3", session_timeout=4.0)
    election = election_name()
    c1 = Candidate(n1, election, "c1")
    c1.keep_pinging(0.1)
    lease, _ = c1.granted()
    c2 = Candidate(n2, election, "c2")
    c2.keep_pinging()
    c2.wait_for(lambda m: m.WhichOneof("response") == "queued", "queued")
    watch = Watch(n3, election)
    watch.wait_for(lambda m: m.leader.node.id == "c1", "c1 leads, seen from n3")

    c1.stop_pinging()
    time.sleep(0.3)  # let the last pings' answers arrive: their grants count too
    cancelled = c1.cancel()
    deadline = c1.deadline()
    assert deadline > 0
    seen_c2, second = c2.leading(after=lease.epoch)
    # Order, not speed: c2 leads no earlier than c1 stopped being allowed to.
    assert seen_c2 >= deadline, (seen_c2 - deadline, cancelled)
    print(
        f"\ncancelled {1000 * (deadline - cancelled):.0f} ms before c1's deadline; c2 led "
        f"{1000 * (seen_c2 - deadline):.0f} ms after it"
    )
    assert second.epoch > lease.epoch
    # The watcher saw c1's term, then (maybe VACANT, then) c2's, never anything else.
    t2, _ = watch.wait_for(lambda m: m.leader.node.id == "c2", "c2 leads, seen from n3")
    ids = [m.leader.node.id for _, m in watch.seen if m.state == pb.LEADER_STATE_ELECTED]
    assert ids[0] == "c1" and ids[-1] == "c2" and set(ids) == {"c1", "c2"}
    assert ids.index("c2") > max(i for i, x in enumerate(ids) if x == "c1")
    assert t2 >= deadline
    listed = stub(n3).ListNodes(pb.ListNodesRequest(election=election), timeout=5)
    assert [n.id for n in listed.nodes] == ["c2"]  # c1's entry deleted after its lease
    watch.close()
    c2.close()


def test_half_close_of_a_leader_that_acked_nothing_ends_ok_and_hands_over(
    nodes: NodeFactory,
) -> None:
    n1, n2 = start_nodes(nodes, "n1", "n2")
    election = election_name()
    c1 = Candidate(n1, election, "c1")
    c1.keep_pinging()
    lease, _ = c1.granted()
    c2 = Candidate(n2, election, "c2")
    c2.keep_pinging()
    c2.wait_for(lambda m: m.WhichOneof("response") == "queued", "queued")
    c1.stop_pinging()
    time.sleep(0.3)
    c1.half_close()
    assert c1.finished() is None  # half-close: OK
    deadline = c1.deadline()
    seen_c2, second = c2.leading(after=lease.epoch)
    assert seen_c2 >= deadline and second.epoch > lease.epoch
    c2.close()


def test_unary_resign_checks_the_epoch_and_ends_the_term(nodes: NodeFactory) -> None:
    n1, n2, n3 = start_nodes(nodes, "n1", "n2", "n3")
    election = election_name()
    c1 = Candidate(n1, election, "c1")
    c1.keep_pinging()
    lease, _ = c1.granted()
    c2 = Candidate(n2, election, "c2")
    c2.keep_pinging()
    c2.wait_for(lambda m: m.WhichOneof("response") == "queued", "queued")
    s3 = stub(n3)

    for stale in (lease.epoch - 1, lease.epoch + 1):
        err = rpc_error(lambda e=stale: s3.Resign(pb.ResignRequest(election=election, epoch=e)))
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, err
        assert str(lease.epoch) in (err.details() or ""), err.details()
    err = rpc_error(lambda: s3.Resign(pb.ResignRequest(election=election_name(), epoch=5)))
    assert err.code() == grpc.StatusCode.NOT_FOUND, err

    resigned = s3.Resign(pb.ResignRequest(election=election, epoch=lease.epoch), timeout=10)
    assert (resigned.leader.node.id, resigned.leader.epoch) == ("c1", lease.epoch)
    assert resigned.responder_id == "n3"
    after = s3.GetLeader(pb.GetLeaderRequest(election=election), timeout=5).leader
    assert after.node.id == "c2" and after.epoch > lease.epoch  # read-your-writes on n3
    _, lost = c1.wait_for(lambda m: m.WhichOneof("response") == "lost", "Lost")
    assert (lost.lost.epoch, lost.lost.reason) == (lease.epoch, pb.LOSS_REASON_DELETED)
    acked = c1.ack(lease.epoch)
    seen_c2, second = c2.leading(after=lease.epoch)
    assert second.epoch > lease.epoch
    # c2 led only after c1 had stopped: its ack, or its deadline, whichever came first.
    assert seen_c2 >= min(acked, c1.deadline())
    # c1 is queued again behind c2 (DELETED does not end the campaign).
    c1.wait_for(
        lambda m: m.WhichOneof("response") == "queued" and m.queued.waiting_for == "c2",
        "c1 queued again behind c2",
    )
    kinds = c1.kinds()
    assert kinds.index("lost") < len(kinds) - 1 - kinds[::-1].index("queued")
    c1.close()
    c2.close()


def test_proclaim_reaches_a_watcher_on_a_third_node_with_the_same_epoch(
    nodes: NodeFactory,
) -> None:
    n1, _n2, n3 = start_nodes(nodes, "n1", "n2", "n3")
    election = election_name()
    c1 = Candidate(n1, election, "c1", value=b"first")
    c1.keep_pinging()
    lease, _ = c1.granted()
    watch = Watch(n3, election)
    _, seen = watch.wait_for(lambda m: m.state == pb.LEADER_STATE_ELECTED, "elected")
    assert (seen.leader.epoch, seen.leader.node.value, seen.leader.node.value_revision) == (
        lease.epoch,
        b"first",
        0,
    )

    c1.proclaim(lease.epoch, b"second")
    _, done = c1.wait_for(lambda m: m.WhichOneof("response") == "proclaimed", "proclaimed")
    assert (done.proclaimed.epoch, done.proclaimed.value_revision) == (lease.epoch, 1)
    _, seen = watch.wait_for(lambda m: m.leader.node.value_revision == 1, "revision 1")
    assert (seen.leader.epoch, seen.leader.node.value) == (lease.epoch, b"second")
    got = stub(n3).GetLeader(pb.GetLeaderRequest(election=election), timeout=5).leader
    assert (got.epoch, got.node.value, got.node.value_revision) == (lease.epoch, b"second", 1)

    c1.proclaim(lease.epoch + 1, b"third")
    _, refused = c1.wait_for(lambda m: m.WhichOneof("response") == "refused", "refused")
    assert refused.refused.request == "proclaim"
    assert str(lease.epoch + 1) in refused.refused.reason
    c1.proclaim(lease.epoch, b"y" * 16385)
    err = c1.finished()
    assert err is not None and err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (err.details() or "").startswith("proclaim.value: "), err.details()
    watch.close()


def test_an_empty_election_is_vacant_and_becomes_elected(nodes: NodeFactory) -> None:
    n1, n2 = start_nodes(nodes, "n1", "n2")
    election = election_name()
    watch = Watch(n2, election)
    _, first = watch.wait_for(lambda m: True, "the first message")
    assert first.state == pb.LEADER_STATE_VACANT and not first.HasField("leader"), first
    err = rpc_error(lambda: stub(n2).GetLeader(pb.GetLeaderRequest(election=election)))
    assert err.code() == grpc.StatusCode.NOT_FOUND, err
    assert election in (err.details() or "")
    listed = stub(n2).ListNodes(pb.ListNodesRequest(election=election), timeout=5)
    assert list(listed.nodes) == [] and listed.epoch == 0

    c1 = Candidate(n1, election, "c1")
    c1.keep_pinging()
    _, lead = c1.leading()
    watch.wait_for(
        lambda m: m.state == pb.LEADER_STATE_ELECTED and m.leader.epoch == lead.epoch, "elected"
    )
    c1.resign()
    assert c1.finished() is None
    watch.wait_for(
        lambda m: m.state == pb.LEADER_STATE_VACANT and len(watch.seen) > 2, "vacant again"
    )
    states = [m.state for _, m in watch.seen]
    assert states[0] == pb.LEADER_STATE_VACANT and pb.LEADER_STATE_ELECTED in states
    watch.close()


def test_list_elections_counts_candidates_by_name(nodes: NodeFactory) -> None:
    n1, n2 = start_nodes(nodes, "n1", "n2")
    a, b = sorted((election_name(), election_name()))
    held = [
        Candidate(n1, a, "c1"),
        Candidate(n2, b, "c1"),
        Candidate(n1, b, "c2", never_lead=True),
    ]
    for c in held:
        c.keep_pinging()
    _, member = held[2].wait_for(lambda m: m.WhichOneof("response") == "queued", "member")
    assert member.queued.never_lead

    def listed() -> list[tuple[str, int]] | None:
        got = stub(n2).ListElections(pb.ListElectionsRequest(), timeout=5)
        pairs = [(e.name, e.candidates) for e in got.elections]
        return pairs if pairs == [(a, 1), (b, 2)] else None

    assert wait_until(listed, 20, "both elections listed") == [(a, 1), (b, 2)]
    members = stub(n1).ListNodes(pb.ListNodesRequest(election=b), timeout=5).nodes
    assert {(n.id, n.never_lead) for n in members} == {("c1", False), ("c2", True)}
    for c in held:
        c.close()


def test_a_silent_candidate_is_ended_by_the_candidate_timeout(nodes: NodeFactory) -> None:
    n1, n2 = start_nodes(nodes, "n1", "n2", extra=("--candidate-timeout", "1"))
    election = election_name()
    silent = Candidate(n1, election, "silent")
    silent.leading()
    err = silent.finished()
    assert err is not None and err.code() == grpc.StatusCode.DEADLINE_EXCEEDED, err
    assert "--candidate-timeout" in (err.details() or "")
    # It never pinged, so it was granted nothing: its entry went at once, the next one leads.
    c2 = Candidate(n2, election, "c2")
    c2.keep_pinging()
    c2.leading()
    listed = stub(n1).ListNodes(pb.ListNodesRequest(election=election), timeout=5)
    assert [n.id for n in listed.nodes] == ["c2"]
    c2.close()


def test_max_candidates_is_resource_exhausted(nodes: NodeFactory) -> None:
    (n1,) = start_nodes(nodes, "n1", extra=("--max-candidates", "1"))
    c1 = Candidate(n1, election_name(), "c1")
    c1.keep_pinging()
    c1.leading()
    c2 = Candidate(n1, election_name(), "c2")
    err = c2.finished()
    assert err is not None and err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err
    assert "--max-candidates" in (err.details() or "")
    c1.close()


def test_node_shutdown_tells_its_candidates_and_the_next_leads_elsewhere(
    nodes: NodeFactory,
) -> None:
    n1, n2 = start_nodes(nodes, "n1", "n2")
    election = election_name()
    c1 = Candidate(n1, election, "c1")
    c1.keep_pinging()
    lease, _ = c1.granted()
    c2 = Candidate(n2, election, "c2")
    c2.keep_pinging()
    c2.wait_for(lambda m: m.WhichOneof("response") == "queued", "queued")

    def ack_lost() -> None:
        _, lost = c1.wait_for(lambda m: m.WhichOneof("response") == "lost", "Lost", 30)
        c1.ack(lost.lost.epoch)

    acker = threading.Thread(target=ack_lost, daemon=True)
    acker.start()
    n1.signal(signal.SIGTERM)
    err = c1.finished(30)
    assert err is not None and err.code() == grpc.StatusCode.UNAVAILABLE, err
    lost = [m.lost for _, m in c1.messages() if m.WhichOneof("response") == "lost"]
    assert [(x.epoch, x.reason) for x in lost] == [(lease.epoch, pb.LOSS_REASON_SHUTDOWN)]
    assert c1.kinds()[-1] == "lost"
    _, second = c2.leading(after=lease.epoch, timeout=30)
    assert second.epoch > lease.epoch
    assert n1.wait(20) == 0
    wait_until(lambda: leader_id(n2) == "n2", 20, "n2 leads the node election")
    c2.close()


def test_metrics_count_candidates_grants_and_losses(nodes: NodeFactory) -> None:
    from electd.devcluster.zookeeper import free_port
    from tests.e2e.test_ops import metrics

    port = free_port()
    (n1,) = start_nodes(nodes, "n1", extra=("--http-listen", f"127.0.0.1:{port}"))
    election = election_name()
    c1 = Candidate(n1, election, "c1")
    c1.keep_pinging()
    lease, _ = c1.granted()
    c2 = Candidate(n1, election, "c2")
    c2.keep_pinging()
    c2.wait_for(lambda m: m.WhichOneof("response") == "queued", "queued")
    seen = metrics(port)
    assert seen["electd_candidates{}"] == 2
    assert seen["electd_candidate_grants_total{}"] >= 1
    resigned = stub(n1).Resign(pb.ResignRequest(election=election, epoch=lease.epoch))
    assert resigned.leader.epoch == lease.epoch
    c1.wait_for(lambda m: m.WhichOneof("response") == "lost", "Lost")
    c1.ack(lease.epoch)
    c2.leading(after=lease.epoch)
    c2.resign()
    assert c2.finished() is None
    seen = wait_until(
        lambda: (m := metrics(port))["electd_candidates{}"] == 1 and m, 20, "c2's candidacy gone"
    )
    assert seen["electd_candidate_losses_total{reason=deleted}"] == 1
    assert seen["electd_candidate_losses_total{reason=resigned}"] == 1
    assert seen["electd_candidate_losses_total{reason=shutdown}"] == 0
    c1.close()


# ----- the write right ----------------------------------------------------------------------


def test_campaign_and_resign_need_the_write_right(nodes: NodeFactory, tmp_path: Path) -> None:
    from tests.e2e.test_tls import Pki, wait_serving

    reader, writer = "spiffe://electd.test/reader", "spiffe://electd.test/writer"
    pki = Pki(tmp_path / "pki")
    flags = pki.serve_flags(
        "n1", "--allow-read", reader, "--allow-read", writer, "--allow-write", writer
    )
    n1 = nodes.start("n1", extra=("--elections-root", elections_root(nodes), *flags))
    wait_serving(n1, pki.tls(reader))
    election = election_name()

    read_channel = grpc.secure_channel(n1.address, pki.credentials(reader))
    denied = Candidate(n1, election, "c1", channel=read_channel)
    err = denied.finished()
    assert err is not None and err.code() == grpc.StatusCode.PERMISSION_DENIED, err
    assert reader in (err.details() or "") and "write right" in (err.details() or "")
    read_stub = pb_grpc.ElectionServiceStub(read_channel)
    err = rpc_error(lambda: read_stub.Resign(pb.ResignRequest(election=election, epoch=1)))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED, err
    assert list(read_stub.ListElections(pb.ListElectionsRequest(), timeout=5).elections) == []

    write_channel = grpc.secure_channel(n1.address, pki.credentials(writer))
    allowed = Candidate(n1, election, "c1", channel=write_channel)
    allowed.keep_pinging()
    allowed.leading()
    got = read_stub.GetLeader(pb.GetLeaderRequest(election=election), timeout=5).leader
    assert got.node.id == "c1"
    allowed.close()
    read_channel.close()
