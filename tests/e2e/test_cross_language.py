"""The Election API from five languages against one real 3-node cluster: every client's
`leader` and `nodes` agree, and through a SIGTERM of the leader and a SIGKILL of its successor
every client's `watch` reports the same leaders, once each, with strictly increasing epochs.

The clients are built by `make clients` (scripts/build-clients.sh) before the tests run."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest

from electd.devcluster.cluster import wait_until
from tests.conftest import NodeFactory
from tests.e2e.helpers import wait_joined
from tests.e2e.programs import LANGUAGES, ROOT, ExampleProgram, watch


def ids(w: ExampleProgram) -> list[str]:
    return [doc["id"] for doc in w.lines]


def run(lang: str, *args: str, timeout: float = 60) -> list[dict]:
    proc = subprocess.run(
        [str(ROOT / "clients" / lang / "run"), "--json", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"{lang} {args}: exit {proc.returncode}\n{proc.stderr}"
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


@pytest.mark.timeout(300)
def test_every_client_agrees_through_failover(nodes: NodeFactory) -> None:
    procs = []
    for name in ("n1", "n2", "n3"):
        proc = nodes.start(name, session_timeout=2.0)
        wait_joined(proc)
        procs.append(proc)
    n1, n2, n3 = procs
    addresses = [p.address for p in procs]

    leaders = {lang: run(lang, "leader", *addresses) for lang in LANGUAGES}
    for lang, out in leaders.items():
        assert len(out) == 1 and out[0]["id"] == "n1" and out[0]["address"] == n1.address, lang
    assert len({json.dumps(o) for o in leaders.values()}) == 1, leaders

    listed = {lang: run(lang, "nodes", *reversed(addresses)) for lang in LANGUAGES}
    reference = listed["python"]
    assert [r["id"] for r in reference] == ["n1", "n2", "n3"]
    assert [r["is_leader"] for r in reference] == [True, False, False]
    assert reference[2]["watches"] and reference[1]["watches"]
    for lang, out in listed.items():
        assert out == reference, f"{lang} disagrees:\n{out}\n{reference}"

    watchers = [watch(lang, *addresses) for lang in LANGUAGES]
    try:
        wait_until(lambda: all(ids(w) == ["n1"] for w in watchers), 60, "every watch reports n1")
        n1.signal(signal.SIGTERM)
        wait_until(lambda: all(ids(w) == ["n1", "n2"] for w in watchers), 30, "every watch: n2")
        assert n1.wait(15) == 0
        n2.kill()
        wait_until(
            lambda: all(ids(w) == ["n1", "n2", "n3"] for w in watchers), 30, "every watch: n3"
        )
    finally:
        results = {w.lang: w.stop() for w in watchers}
    for w in watchers:
        code, err = results[w.lang]
        assert code == 0, f"{w.lang} watch exited {code}: {err}"
        epochs = [doc["epoch"] for doc in w.lines]
        assert epochs == sorted(set(epochs)), f"{w.lang}: epochs must strictly increase {epochs}"
        print(
            f"\n{w.lang:>6} watch: "
            + "  ".join(json.dumps(d, separators=(",", ":")) for d in w.lines)
        )
    sequences = {json.dumps(w.lines) for w in watchers}
    assert len(sequences) == 1, "every client reports the same leaders with the same epochs"
    assert all(doc["id"] == "n3" for doc in run("go", "leader", n3.address))
