"""`electd dev`: one command starts a real ZooKeeper and N nodes, prints where they are and
the leader, streams leader changes, and on Ctrl-C stops everything, leaving no process or port
behind."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading

from electd.devcluster.cluster import wait_until
from electd.devcluster.zookeeper import free_port
from electd.devcluster.zookeeper import port_is_free as port_free


def test_dev_cluster_starts_reports_and_stops_cleanly(tmp_path) -> None:
    base = free_port()
    while not all(port_free(p) for p in range(base, base + 3)):
        base = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "electd",
            "dev",
            "--nodes",
            "3",
            "--base-port",
            str(base),
            "--workdir",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        lines.extend(iter(proc.stdout.readline, ""))

    threading.Thread(target=read, daemon=True).start()
    try:
        wait_until(lambda: any("watching leader changes" in ln for ln in lines), 60, "cluster up")
        text = "".join(lines)
        assert re.search(rf"leader: n1 at 127\.0\.0\.1:{base} \(epoch \d+\)", text), text
        zk_port = int(re.search(r"zookeeper\s+127\.0\.0\.1:(\d+)", text).group(1))
        for i in range(3):
            assert f"node n{i + 1}    127.0.0.1:{base + i}" in text
        # Stop the leader's process by hand: the dev cluster reports the new leader.
        pid = int(
            subprocess.run(
                ["pgrep", "-f", "--", f"--listen 127.0.0.1:{base} "], capture_output=True, text=True
            ).stdout.split()[0]
        )
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: any("new leader: n2" in ln for ln in lines), 30, "new leader reported")
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(60)
    assert code == 0, "".join(lines)
    assert "electd dev: stopped" in "".join(lines)
    for port in (zk_port, base, base + 1, base + 2):
        assert port_free(port), f"port {port} still in use"
    leftovers = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True)
    assert leftovers.stdout.strip() == "", "processes left behind"


def test_a_second_dev_cluster_on_taken_ports_says_which_and_exits_1(tmp_path) -> None:
    """A second `electd dev` while one runs must not report the first cluster's leader as its
    own: it names the taken port and exits 1 before starting anything."""
    base = free_port()
    while not all(port_free(p) for p in range(base, base + 3)):
        base = free_port()
    with socket.socket() as taken:  # the first cluster's second node, say
        taken.bind(("127.0.0.1", base + 1))
        taken.listen()
        proc = subprocess.run(
            [sys.executable, "-m", "electd", "dev", "--nodes", "3", "--base-port", str(base)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"port {base + 1} is already in use" in proc.stderr and "--base-port 0" in proc.stderr
    assert "leader:" not in proc.stdout and "starting ZooKeeper" not in proc.stdout
