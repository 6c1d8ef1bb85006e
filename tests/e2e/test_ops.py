"""The HTTP listener of real node processes: probes that answer as load balancers expect
(/leader 200 only on the leader, GET and HEAD), readiness that follows the session, the JSON
view, Prometheus metrics that `promtool check metrics` accepts and that follow failover, and
the README's HAProxy configuration routing gRPC to the leader through a real haproxy."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc
from prometheus_client.parser import text_string_to_metric_families

from electd.devcluster.cluster import NodeProcess, wait_until
from electd.devcluster.zookeeper import free_port
from electd.v1 import election_service_pb2 as pb
from electd.v1 import election_service_pb2_grpc as pb_grpc
from tests.conftest import NodeFactory
from tests.e2e.helpers import stub, wait_joined

ROOT = Path(__file__).resolve().parents[2]


def http(port: int, path: str, method: str = "GET") -> tuple[int, str]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def start(nodes: NodeFactory, node_id: str) -> tuple[NodeProcess, int]:
    port = free_port()
    proc = nodes.start(node_id, extra=("--http-listen", f"127.0.0.1:{port}"))
    wait_joined(proc)
    return proc, port


def metrics(port: int) -> dict[str, float]:
    status, text = http(port, "/metrics")
    assert status == 200
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}"] = sample.value
    return out


def test_probes_follow_the_election(nodes: NodeFactory) -> None:
    (n1, p1), (n2, p2) = start(nodes, "n1"), start(nodes, "n2")
    code, body = http(p1, "/leader")
    assert code == 200 and json.loads(body)["is_leader"] is True
    code, body = http(p2, "/leader")
    doc = json.loads(body)
    assert code == 503 and doc["leader"]["id"] == "n1" and doc["epoch"] > 0
    assert http(p1, "/leader", "HEAD") == (200, "") and http(p2, "/leader", "HEAD")[0] == 503
    for port in (p1, p2):
        assert http(port, "/healthz")[0] == 200 and http(port, "/readyz")[0] == 200
    cluster = json.loads(http(p2, "/cluster")[1])
    assert [m["id"] for m in cluster["members"]] == ["n1", "n2"]
    assert cluster["members"][1]["watches"] == cluster["members"][0]["znode"]
    assert http(p1, "/nope")[0] == 404 and http(p1, "/leader", "POST")[0] == 405
    n1.signal(signal.SIGTERM)
    wait_until(lambda: http(p2, "/leader")[0] == 200, 15, "n2's /leader answers 200")
    n2.signal(signal.SIGSTOP)  # frozen: the probes cannot answer at all
    try:
        try:
            http(p2, "/readyz")
            raise AssertionError("a frozen node answered")
        except (TimeoutError, urllib.error.URLError):
            pass
    finally:
        n2.signal(signal.SIGCONT)


def test_metrics_follow_failover_and_pass_promtool(nodes: NodeFactory) -> None:
    (n1, p1), (n2, p2) = start(nodes, "n1"), start(nodes, "n2")
    stub(n2).GetLeader(pb.GetLeaderRequest(), timeout=2)
    try:
        stub(n2).ListNodes(pb.ListNodesRequest(label_selector={"bad key": "x"}), timeout=2)
        raise AssertionError("a bad selector was accepted")
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
    m1, m2 = metrics(p1), metrics(p2)
    assert m1["electd_is_leader{election=node}"] == 1 and m2["electd_is_leader{election=node}"] == 0
    assert m2["electd_has_leader{election=node}"] == 1 and m2["electd_members{election=node}"] == 2
    assert m2["electd_leader_epoch{election=node}"] == m1["electd_leader_epoch{election=node}"]
    assert m2["electd_grpc_requests_total{code=OK,method=GetLeader}"] >= 1
    assert m2["electd_grpc_requests_total{code=INVALID_ARGUMENT,method=ListNodes}"] == 1
    assert m2["electd_grpc_request_duration_seconds_count{method=GetLeader}"] >= 1
    _, text = http(p2, "/metrics")
    check = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert check.returncode == 0, check.stdout + check.stderr
    epoch = m1["electd_leader_epoch{election=node}"]
    n1.signal(signal.SIGTERM)
    wait_until(lambda: metrics(p2)["electd_is_leader{election=node}"] == 1, 15, "n2 leads")
    after = metrics(p2)
    assert after["electd_leader_epoch{election=node}"] > epoch
    assert after["electd_leader_changes_seen_total{election=node}"] >= 2


def test_the_readme_haproxy_config_routes_grpc_to_the_leader(nodes: NodeFactory, tmp_path) -> None:
    """The HAProxy snippet of README.md, filled in with the nodes' ports: a client that only
    knows HAProxy's address always reaches the leader, also after a failover."""
    started = [start(nodes, f"n{i}") for i in (1, 2, 3)]
    front = free_port()
    servers = "\n".join(
        f"    server {p.node_id} {p.address} check port {port} inter 200ms fall 2 rise 1"
        for p, port in started
    )
    readme = (ROOT / "README.md").read_text()
    snippet = readme.split("```haproxy\n", 1)[1].split("```", 1)[0]
    config = snippet.replace("127.0.0.1:7000", f"127.0.0.1:{front}").replace(
        "    # server lines, one per node (see below)\n", servers + "\n"
    )
    assert servers in config, "the README's snippet has the placeholder the test fills in"
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(config)
    check = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    proxy = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stderr=subprocess.PIPE)
    try:

        def responder() -> str | None:
            try:
                with grpc.insecure_channel(f"127.0.0.1:{front}") as ch:
                    resp = pb_grpc.ElectionServiceStub(ch).GetLeader(
                        pb.GetLeaderRequest(), timeout=2
                    )
                    return resp.responder_id
            except grpc.RpcError:
                return None

        wait_until(lambda: responder() == "n1", 20, "haproxy routes to n1")
        started[0][0].signal(signal.SIGTERM)
        wait_until(lambda: responder() == "n2", 20, "haproxy routes to n2 after failover")
    finally:
        proxy.terminate()
        proxy.wait(10)


def test_every_state_transition_is_one_json_log_line(nodes: NodeFactory) -> None:
    """`--log-format json`: each transition carries node, election, epoch, from_role, to_role,
    reason and leader, so a log pipeline needs no parsing of the message. Every line has `ts`
    and `mono`, this machine's CLOCK_MONOTONIC, the same clock as this test's time.monotonic()
    (the fault suite orders node lines and its own events by it)."""
    n1 = nodes.start("n1")
    wait_joined(n1)  # before n2 starts: the first node on a path also writes its identity
    n2 = nodes.start("n2")
    wait_joined(n2)
    signalled = time.monotonic()
    n1.signal(signal.SIGTERM)
    assert n1.wait(15) == 0
    wait_until(lambda: "I am a new leader: node=n2" in n2.log_text(), 15, "n2 leads")
    led = time.monotonic()
    for proc in (n1, n2):
        records = [r for r in proc.log_records() if r["level"] != "RAW"]  # RAW: not JSON
        assert records and all({"ts", "mono"} <= r.keys() for r in records), records[:3]
    (new_leader,) = [r for r in n2.log_records() if "I am a new leader" in r["msg"]]
    assert signalled < new_leader["mono"] < led, (signalled, new_leader, led)

    def transitions(proc: NodeProcess) -> list[tuple[str, str, int]]:
        out = []
        for rec in proc.log_records():
            if rec.get("event") == "transition":
                assert rec["node"] == proc.node_id and rec["election"] == "node"
                assert {"epoch", "reason", "leader"} <= rec.keys()
                out.append((rec["from_role"], rec["to_role"], rec["epoch"]))
        return out

    t1, t2 = transitions(n1), transitions(n2)
    assert [(a, b) for a, b, _ in t1] == [("JOINING", "LEADER"), ("LEADER", "STOPPED")]
    assert t1[0][2] == t1[1][2] > 0  # the term's epoch on both lines
    assert [(a, b) for a, b, _ in t2] == [("JOINING", "FOLLOWER"), ("FOLLOWER", "LEADER")]
    assert t2[1][2] > t2[0][2] == t1[0][2]
