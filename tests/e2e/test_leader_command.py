"""`--leader-command`: the operator's command runs only while its node leads, gets the epoch,
and is stopped as soon as the node stops leading; terms never overlap."""

from __future__ import annotations

import shlex
import signal
from pathlib import Path

from electd.devcluster.cluster import wait_until
from tests.conftest import NodeFactory
from tests.e2e.helpers import leader_id, wait_joined
from tests.support.tcpproxy import TcpProxy


def command(log: Path) -> str:
    # Appends "<node> start|stop <epoch> <unix time>" lines; stops cleanly on SIGTERM. bash's
    # $EPOCHREALTIME, not $(date): the supervisor signals every process of the command, and a
    # `date` child caught by the SIGTERM would leave a line without its time.
    line = f'echo "$ELECTD_NODE_ID %s $ELECTD_EPOCH $EPOCHREALTIME" >> {log}'
    script = f"{line % 'start'}; trap '{line % 'stop'}; exit 0' TERM; while :; do sleep 0.05; done"
    return "exec bash -c " + shlex.quote(script)


def terms(log: Path) -> list[tuple[str, str, int, float]]:
    if not log.exists():
        return []
    rows = [ln.split() for ln in log.read_text().splitlines() if ln.strip()]
    return [(r[0], r[1], int(r[2]), float(r[3])) for r in rows]


def assert_terms_never_overlap(rows: list[tuple[str, str, int, float]]) -> None:
    running: str | None = None
    epochs = []
    for node, what, epoch, _ in sorted(rows, key=lambda r: r[3]):
        if what == "start":
            assert running is None, f"{node} started while {running} still ran: {rows}"
            running = node
            epochs.append(epoch)
        else:
            assert running == node, rows
            running = None
    assert epochs == sorted(set(epochs)), f"epochs must strictly increase: {epochs}"


def test_leader_command_follows_leadership_on_graceful_handover(
    nodes: NodeFactory, tmp_path: Path
) -> None:
    log = tmp_path / "terms.log"
    n1 = nodes.start("n1", extra=("--leader-command", command(log)))
    wait_joined(n1)
    n2 = nodes.start("n2", extra=("--leader-command", command(log)))
    wait_joined(n2)
    wait_until(lambda: [r[:2] for r in terms(log)] == [("n1", "start")], 15, "n1's command runs")
    n1.signal(signal.SIGTERM)
    assert n1.wait(15) == 0
    wait_until(
        lambda: [r[:2] for r in terms(log)] == [("n1", "start"), ("n1", "stop"), ("n2", "start")],
        15,
        "n2's command runs",
    )
    rows = terms(log)
    assert_terms_never_overlap(rows)
    assert rows[2][2] > rows[0][2]


def test_leader_command_stops_when_the_leader_is_cut_off(
    nodes: NodeFactory, tmp_path: Path, zk
) -> None:
    log = tmp_path / "terms.log"
    server = zk.servers[0]
    proxy = TcpProxy(server.host, server.client_port)
    try:
        n1 = nodes.start(
            "n1", zk=proxy.address, session_timeout=1.5, extra=("--leader-command", command(log))
        )
        wait_joined(n1)
        n2 = nodes.start("n2", session_timeout=1.5, extra=("--leader-command", command(log)))
        wait_joined(n2)
        wait_until(lambda: len(terms(log)) == 1, 15, "n1's command runs")
        proxy.block()  # n1 loses ZooKeeper: its command must stop before n2's starts
        wait_until(lambda: leader_id(n2) == "n2", 15, "n2 leads")
        wait_until(lambda: len(terms(log)) >= 3, 10, "n2's command runs")
        assert_terms_never_overlap(terms(log))
        proxy.unblock()
        wait_until(lambda: leader_id(n1) == "n2", 20, "n1 follows n2")
        assert [r[:2] for r in terms(log)] == [("n1", "start"), ("n1", "stop"), ("n2", "start")]
    finally:
        proxy.close()
