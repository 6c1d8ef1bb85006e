"""`electd run [flags] -- CMD ARGS...`: one command, run only while this process leads, with
documented exit codes; bad usage fails before anything starts. Real ZooKeeper, real processes."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from electd.devcluster.cluster import wait_until
from electd.devcluster.zookeeper import ZooKeeperCluster
from tests.conftest import NodeFactory
from tests.e2e.helpers import wait_joined


def electd_run(zk: ZooKeeperCluster, path: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "electd",
            "run",
            "--zk",
            zk.connect_string,
            "--election-path",
            path,
            "--session-timeout",
            "2",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 30) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def test_electd_run_exits_with_the_code_of_a_command_that_exits_on_its_own(
    zk: ZooKeeperCluster, election_path: str, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    code, out = finish(
        electd_run(zk, election_path, "--", "sh", "-c", f'echo "$ELECTD_EPOCH" > {marker}; exit 3')
    )
    assert code == 3, out
    assert int(marker.read_text()) > 0, "CMD got its fencing epoch"
    assert "the command exited (code 3): electd stops" in out


def test_electd_run_reports_a_command_killed_by_a_signal_as_128_plus_the_signal(
    zk: ZooKeeperCluster, election_path: str
) -> None:
    code, out = finish(electd_run(zk, election_path, "--shell", "--", "kill -9 $$"))
    assert code == 128 + 9, out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give the command after --"),
        (("--", "no-such-command-anywhere"), "command not found or not executable"),
        (("--shell", "--", "echo", "two"), "give the shell command as one argument"),
        (("--command-grace", "5", "--", "true"), "--command-grace: 5s is longer than the lease"),
    ],
)
def test_electd_run_refuses_bad_usage_with_exit_code_2(
    zk: ZooKeeperCluster, election_path: str, args: tuple[str, ...], message: str
) -> None:
    code, out = finish(electd_run(zk, election_path, *args))
    assert code == 2, out
    assert message in out


def test_sigterm_ends_the_command_first_and_sighup_is_forwarded_to_it(
    zk: ZooKeeperCluster, election_path: str, tmp_path: Path
) -> None:
    """SIGHUP reaches CMD; SIGTERM ends CMD (which records it) before electd run leaves the
    election and exits 0."""
    events = tmp_path / "events"
    script = (
        f"trap 'echo hup >> {events}' HUP; trap 'echo term >> {events}; exit 0' TERM; "
        f"echo start >> {events}; while :; do sleep 0.05; done"
    )
    proc = electd_run(zk, election_path, "--shell", "--", script)
    try:
        wait_until(lambda: events.exists() and "start" in events.read_text(), 20, "CMD runs")
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "hup" in events.read_text(), 10, "CMD got SIGHUP")
        proc.send_signal(signal.SIGTERM)
        code, out = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, out
    assert events.read_text().split() == ["start", "hup", "term"]
    assert out.index("leader command of epoch") < out.index("left the election"), out


def _starts(log: Path) -> list[tuple[str, int]]:
    if not log.exists():
        return []
    return [(r.split()[0], int(r.split()[1])) for r in log.read_text().splitlines() if r.strip()]


def test_a_command_that_exits_under_restart_is_started_again_in_the_same_term(
    nodes: NodeFactory, tmp_path: Path
) -> None:
    """--command-exit restart (serve's default): same term, started again with backoff."""
    log = tmp_path / "starts"
    cmd = f'echo "$ELECTD_NODE_ID $ELECTD_EPOCH" >> {log}; exit 0'
    n1 = nodes.start("n1", extra=("--leader-command", cmd))
    wait_joined(n1)
    wait_until(lambda: len(_starts(log)) >= 3, 20, "three starts")
    rows = _starts(log)
    assert {node for node, _ in rows} == {"n1"} and len({e for _, e in rows}) == 1, rows
    assert "policy: restart" in n1.log_text(100)


def test_a_command_that_exits_under_step_down_hands_leadership_on(
    nodes: NodeFactory, tmp_path: Path
) -> None:
    """--command-exit step-down: the leader leaves the election once its command exits, the
    next node leads and runs its own; epochs only grow."""
    log = tmp_path / "starts"
    cmd = f'echo "$ELECTD_NODE_ID $ELECTD_EPOCH" >> {log}; sleep 0.2; exit 0'
    extra = ("--leader-command", cmd, "--command-exit", "step-down")
    n1 = nodes.start("n1", extra=extra)
    wait_joined(n1)
    n2 = nodes.start("n2", extra=extra)
    wait_joined(n2)
    wait_until(lambda: {n for n, _ in _starts(log)} == {"n1", "n2"}, 30, "both nodes ran it")
    epochs = [e for _, e in _starts(log)]
    assert epochs == sorted(set(epochs)), epochs
    assert "stepping down" in n1.log_text(200)
