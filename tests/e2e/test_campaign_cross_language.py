"""Campaigning from five languages in one election on a real 3-node cluster: the five example
programs' `campaign` commands (each client library's campaign helper) take turns leading
through resignations (SIGTERM: the helper cancels its work, then resigns) and through a SIGKILL
of the node that holds the leading candidate's entry; every language leads at least once, the
epochs of successive terms strictly increase, and the work of two terms never interleaves in
the shared log the candidates append to while they lead ("E id" every 100 ms).

The clients are built by `make clients` (scripts/build-clients.sh) before the tests run."""

from __future__ import annotations

import re
import signal
import uuid
from pathlib import Path

import pytest

from electd.devcluster.cluster import NodeProcess, wait_until
from electd.v1 import election_service_pb2 as pb
from tests.conftest import NodeFactory
from tests.e2e.helpers import stub, wait_joined
from tests.e2e.programs import LANGUAGES, ExampleProgram

LEADING = re.compile(r"^leading epoch=(\d+)")


class Candidate(ExampleProgram):
    """`run campaign ELECTION cand-<lang> ADDR...`: one line per event."""

    def __init__(self, lang: str, election: str, addresses: list[str], log: Path) -> None:
        self.id = f"cand-{lang}"
        env = {"ELECTD_CAMPAIGN_LOG": str(log)}
        super().__init__(lang, "campaign", election, self.id, *addresses, env=env)

    def epochs(self) -> list[int]:
        return [int(m.group(1)) for line in self.lines if (m := LEADING.match(line))]


def leader_of(election: str, nodes: list[NodeProcess]) -> pb.Leader | None:
    for node in nodes:
        try:
            return stub(node).GetLeader(pb.GetLeaderRequest(election=election), timeout=2).leader
        except Exception:  # noqa: BLE001 - a dead or vacant node: ask the next
            continue
    return None


@pytest.mark.timeout(420)
def test_five_languages_take_turns_leading_one_election(nodes: NodeFactory, tmp_path: Path) -> None:
    procs = []
    for name in ("n1", "n2", "n3"):
        proc = nodes.start(name, session_timeout=2.0, extra=("--candidate-lease", "1"))
        wait_joined(proc)
        procs.append(proc)
    addresses = [p.address for p in procs]
    election = f"xl-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "work.log"
    candidates = {
        lang: Candidate(lang, election, addresses[i % 3 :] + addresses[: i % 3], log)
        for i, lang in enumerate(LANGUAGES)
    }
    terms: list[tuple[int, str]] = []  # (epoch, language) in the order they led
    node_killed = False
    try:
        while {lang for _, lang in terms} != set(LANGUAGES) and len(terms) < 12:
            last = terms[-1][0] if terms else 0

            def new_leader(last: int = last) -> str | None:
                fresh = [
                    lang for lang, c in candidates.items() if any(e > last for e in c.epochs())
                ]
                return fresh[0] if len(fresh) == 1 else None

            lang = wait_until(new_leader, 60, f"a new term after epoch {last}")
            epoch = max(candidates[lang].epochs())
            terms.append((epoch, lang))
            mark = f"{epoch} cand-{lang}"
            wait_until(lambda m=mark: m in _text(log), 20, f"{lang}'s work")
            # The nodes' observers learn of a new term a moment after its candidate does.
            leader = wait_until(
                lambda e=epoch: (got := leader_of(election, procs)) and got.epoch >= e and got,
                20,
                f"GetLeader names epoch {epoch}",
            )
            assert leader.epoch > epoch or leader.node.id == f"cand-{lang}", leader
            if len(terms) == 2 and not node_killed:
                # SIGKILL of the node process that holds the leader's entry: the supervisor
                # closes its session once the candidate's lease ran out; the candidate loses
                # its stream and campaigns again through another node.
                host = next(p for p in procs if p.node_id == leader.node.host_id)
                assert host.signal_node(signal.SIGKILL) is not None
                node_killed = True
                continue
            candidates[lang].proc.send_signal(signal.SIGTERM)  # resign
            assert candidates[lang].proc.wait(20) == 0, candidates[lang].lines
            assert candidates[lang].lines[-1] == "stopped", candidates[lang].lines
    finally:
        errors = {lang: c.stop(signal.SIGKILL)[1] for lang, c in candidates.items()}
        for lang, c in candidates.items():
            print(f"\n{lang:>6}: {' | '.join(c.lines)}\n{errors[lang][-1500:]}")
    print("terms:", terms)
    epochs = [e for e, _ in terms]
    assert epochs == sorted(set(epochs)), f"terms' epochs must strictly increase: {terms}"
    assert node_killed
    # The shared work log: one writer per epoch, and epochs never go back (no interleaving).
    written = [line.split() for line in _text(log).splitlines() if line.strip()]
    by_epoch: dict[int, set[str]] = {}
    for e, who in written:
        by_epoch.setdefault(int(e), set()).add(who)
    assert all(len(who) == 1 for who in by_epoch.values()), by_epoch
    order = [int(e) for e, _ in written]
    assert order == sorted(order), "two terms' work interleaved in the log"


def _text(path: Path) -> str:
    return path.read_text() if path.exists() else ""
