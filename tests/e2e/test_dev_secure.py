"""`electd dev --secure`: one command makes a throwaway CA, starts ZooKeeper 3.9.5 over TLS with
digest auth and nodes with mutual TLS, and prints commands that work against it as printed: the
CLI over mutual TLS, and `electd identity` over TLS with the credentials file. No secret is
printed, and Ctrl-C stops everything."""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
import threading

import pytest

from electd.devcluster.cluster import wait_until

pytestmark = pytest.mark.timeout(120)


def test_dev_secure_starts_and_its_printed_commands_work(tmp_path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "electd",
            "dev",
            "--secure",
            "--nodes",
            "2",
            "--base-port",
            "0",
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
        wait_until(lambda: any("watching leader changes" in ln for ln in lines), 90, "cluster up")
        text = "".join(lines)
        password = (tmp_path / "secure" / "zk-auth").read_text().splitlines()[-1].split(":", 1)[1]
        assert password not in text
        commands = [
            ln.split("try:", 1)[-1].strip()
            for ln in lines
            if ln.lstrip().startswith(("try:  electd leader", "electd identity"))
        ]
        assert len(commands) == 2, text
        for command in commands:
            argv = shlex.split(command)
            assert argv[0] == "electd"
            run = subprocess.run(
                [sys.executable, "-m", "electd", *argv[1:]],
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert run.returncode == 0, (command, run.stdout, run.stderr)
            if argv[1] == "leader":
                assert run.stdout.startswith("leader n1 at 127.0.0.1:"), run.stdout
            else:
                assert '"cluster"' in run.stdout, run.stdout
        # Without the client certificate the nodes refuse: the mutual TLS is real.
        target = shlex.split(commands[0])[3]
        bare = subprocess.run(
            [sys.executable, "-m", "electd", "leader", "--target", target, "--timeout", "1"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert bare.returncode != 0
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(60)
    assert code == 0, "".join(lines)
    assert "electd dev: stopped" in "".join(lines)
    leftovers = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True)
    assert leftovers.stdout.strip() == "", "processes left behind"
