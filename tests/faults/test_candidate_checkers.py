"""Both checkers (checker.check_candidates and Porcupine, linearize.py) on small made-up
histories of a named election's candidates, and candidate.py's choice of claims driven by
made-up Campaign responses. Fast: no ZooKeeper, no electd process (the fenced resource is the
real one, in this process); it builds the Go command (scripts/build-linearize.sh, skipped when
up to date)."""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from electd.v1 import election_service_pb2 as pb
from tests.faults import linearize
from tests.faults.candidate import Candidate
from tests.faults.checker import Bounds, Report, check, check_candidates, exact_terms
from tests.faults.fence import FencedStore
from tests.faults.history import Event, History

T = 1_800_000_000.0  # a time of the kind the harness records
ELECTION = "jobs"
BOUNDS = Bounds(2.0)


def claim(cid: str, epoch: int, asked: float, answered: float, source: str) -> Event:
    data = {
        "election": ELECTION,
        "epoch": epoch,
        "asked": asked,
        "answered": answered,
        "source": source,
    }
    return Event(answered + 0.001, "claim", cid, data)


def write(cid: str, epoch: int, at: float) -> Event:
    data = {"election": ELECTION, "epoch": epoch, "asked": at, "checked": at, "accepted": True}
    return Event(at + 0.001, "write", cid, data)


def term(
    cid: str, epoch: int, leading: float, last_write: float, end: float, why: str = "deadline"
) -> list[Event]:
    """A candidate's term: `leading` received (pinged 50 ms before), writes every 100 ms from
    then to `last_write`, and the end of its belief at `end`."""
    events = [claim(cid, epoch, leading - 0.05, leading, "leading")]
    at = leading + 0.02
    while at <= last_write + 1e-9:
        events.append(write(cid, epoch, at))
        at += 0.1
    events.append(claim(cid, epoch, end, end, why))
    return events


def both(events: list[Event], workdir: Path) -> tuple[Report, linearize.Verdict]:
    report = check_candidates(events, BOUNDS)
    verdict = linearize.judge(events, {}, workdir)
    print(report.summary())
    print(linearize.verdicts(report, verdict))
    return report, verdict


# ----- made-up candidate histories --------------------------------------------------------


def test_a_deadline_after_the_successors_first_leading_is_caught_by_both(tmp_path: Path) -> None:
    # c1's writes stop at T+2.72, but its deadline runs to T+3.0; c2 has led since T+2.8.
    events = term("c1", 5, T + 1.0, T + 2.72, T + 3.0)
    events += term("c2", 9, T + 2.8, T + 4.0, T + 4.5, "resign")
    report, verdict = both(events, tmp_path)
    assert report.violations == [
        f"rule 1: c1 still vouched for itself with epoch 5 at {T + 3.0:.3f}, 0.200s after c2 "
        f"had begun leading with epoch 9 at {T + 2.8:.3f} (exact evidence, bound 0)"
    ], report.summary()
    assert report.figures["candidates' claims"] == {"deadline": 1, "leading": 2, "resign": 1}
    assert verdict.ok is False, verdict.summary
    assert verdict.summary.startswith("not linearizable: 4 claims, 2 terms; c1's claim of epoch 5")
    assert "epoch 9: c2" in verdict.summary
    assert linearize.disagreement(report, verdict) is None
    (failure,) = linearize.compare(report, verdict)
    assert failure.startswith("outside checker (Porcupine): not linearizable")


def test_without_the_claims_the_same_writes_show_no_overlap(tmp_path: Path) -> None:
    # What the claims add: the writes alone (the fence's view) cannot see the overlap above.
    events = term("c1", 5, T + 1.0, T + 2.72, T + 3.0)
    events += term("c2", 9, T + 2.8, T + 4.0, T + 4.5, "resign")
    writes = [e for e in events if e.kind == "write"]
    report, verdict = both(writes, tmp_path)
    assert not report.violations and verdict.ok is True, report.summary()


def test_a_handover_after_the_deadline_is_accepted_by_both(tmp_path: Path) -> None:
    events = term("c1", 5, T + 1.0, T + 2.85, T + 3.0)
    events += term("c2", 9, T + 3.01, T + 4.0, T + 4.5, "resign")
    report, verdict = both(events, tmp_path)
    assert not report.violations, report.summary()
    assert report.figures["candidate terms"] == 2 and report.figures["handovers"] == 1
    assert report.figures["narrowest gap between terms (s)"] == 0.01
    assert verdict.ok is True, verdict.summary
    assert verdict.summary == "linearizable: 4 claims, 2 terms"
    assert linearize.compare(report, verdict) == []


def test_a_candidate_that_stopped_on_lost_believes_no_longer(tmp_path: Path) -> None:
    # c1 got `lost` at T+2.0 (its last lease ran to T+3.0): c2 may lead at once after its ack.
    events = term("c1", 5, T + 1.0, T + 1.95, T + 2.0, "lost")
    events += term("c2", 9, T + 2.05, T + 4.0, T + 4.5, "resign")
    report, verdict = both(events, tmp_path)
    assert not report.violations and verdict.ok is True, report.summary()
    # The same with c2 leading before c1 stopped: both flag it.
    late = term("c1", 5, T + 1.0, T + 1.95, T + 2.1, "lost")
    late += term("c2", 9, T + 2.05, T + 4.0, T + 4.5, "resign")
    report, verdict = both(late, tmp_path / "late")
    assert [v.split(" still vouched")[0] for v in report.violations] == ["rule 1: c1"]
    assert verdict.ok is False, verdict.summary


def test_two_candidates_with_one_epoch_are_flagged_by_both(tmp_path: Path) -> None:
    events = term("c1", 5, T + 1.0, T + 1.5, T + 2.0) + term("c2", 5, T + 3.0, T + 3.5, T + 4.0)
    report, verdict = both(events, tmp_path)
    # One for each of c2's pieces of evidence: its 5 writes and its 2 claims.
    assert report.violations[0] == "rule 2: epoch 5 names both c1 and c2 (a write)"
    assert report.violations[-1] == "rule 2: epoch 5 names both c1 and c2 (a claim (deadline))"
    assert linearize.two_leaders(report) == len(report.violations) == 7
    assert verdict.ok is False and "c2's claim of epoch 5" in verdict.summary, verdict.summary


def test_a_candidate_history_holds_one_election_and_no_nodes() -> None:
    events = term("c1", 5, T + 1.0, T + 1.5, T + 2.0)
    other = Event(T + 3.0, "claim", "c2", {**events[0].data, "election": "other", "epoch": 9})
    with pytest.raises(ValueError, match="one election"):
        check_candidates([*events, other], BOUNDS)
    node = Event(T, "node", "n1", {"action": "start"})
    with pytest.raises(ValueError, match=r"node events \(node\)"):
        check_candidates([*events, node], BOUNDS)


def test_a_saved_candidate_run_is_judged_by_both_checkers(tmp_path: Path) -> None:
    events = term("c1", 5, T + 1.0, T + 2.72, T + 3.0)
    events += term("c2", 9, T + 2.8, T + 4.0, T + 4.5, "resign")
    run = tmp_path / "run.json"
    linearize.save_run(run, events, {}, BOUNDS, "made up")
    loaded, logs, _, _ = linearize.load_run(run)
    assert sorted(loaded, key=lambda e: e.t) == sorted(events, key=lambda e: e.t)
    assert [(t.node, t.epoch, len(t.claims)) for t in exact_terms(loaded, logs)] == [
        ("c1", 5, 20),  # leading, 18 writes, deadline
        ("c2", 9, 14),
    ]
    assert linearize.main([str(run), "--out", str(tmp_path / "out")]) == 1


# ----- candidate.py's claims --------------------------------------------------------------


@pytest.fixture
def candidate() -> Iterator[tuple[Candidate, FencedStore]]:
    store = FencedStore(History())
    args = argparse.Namespace(
        addr="unused", election=ELECTION, id="c1", fence=store.address, stop_reading_after=0
    )
    made = Candidate(args)  # no stream: the test hands it the responses
    yield made, store
    made.done.set()
    store.close()


def leading(c: Candidate, nonce: int, lease_ms: int, ago: float = 0.0) -> float:
    """Hand the candidate a `leading` for epoch 7 answering ping `nonce`, sent `ago` seconds
    back; the ping's send time (the history's clock: time.monotonic())."""
    sent = time.monotonic() - ago
    c.sent[nonce] = sent
    c.handle(
        pb.CampaignResponse(leading=pb.CampaignLeading(epoch=7, nonce=nonce, lease_ms=lease_ms))
    )
    return sent


def claims(store: FencedStore) -> list[tuple[str, float, float]]:
    return [
        (str(e.get("source")), float(e.get("asked")), float(e.get("answered")))
        for e in store._history.events("claim")
    ]


def test_lost_ends_the_belief_where_it_stopped_not_at_the_deadline(
    candidate: tuple[Candidate, FencedStore],
) -> None:
    c, store = candidate
    sent = leading(c, 1, 5000)
    leading(c, 2, 5000)  # a renewal: no new claim
    before = time.monotonic()
    c.handle(pb.CampaignResponse(lost=pb.CampaignLost(epoch=7, reason=pb.LOSS_REASON_DELETED)))
    (first, end) = claims(store)
    assert first[0] == "leading" and first[1] == sent and sent <= first[2] <= before
    assert end[0] == "lost" and end[1] == end[2] and before <= end[1] < sent + 5.0
    assert [e.get("election") for e in store._history.events("claim")] == [ELECTION] * 2


def test_a_lapsed_lease_ends_the_belief_at_its_deadline(
    candidate: tuple[Candidate, FencedStore],
) -> None:
    c, store = candidate
    threading.Thread(target=c.deadlines, daemon=True).start()
    leading(c, 1, 200)
    sent = leading(c, 2, 300)  # the later deadline counts, from its ping's send time
    time.sleep(0.5)
    assert [s for s, _, _ in claims(store)] == ["leading", "deadline"]
    assert claims(store)[1][1:] == (sent + 0.3, sent + 0.3)
    # A `leading` whose lease ran out on the way opens no belief; a fresh one does.
    leading(c, 3, 200, ago=0.5)
    assert len(claims(store)) == 2
    leading(c, 4, 5000)
    c.resign()
    assert [s for s, _, _ in claims(store)] == ["leading", "deadline", "leading", "resign"]


def test_a_nodes_log_of_its_candidates_terms_is_not_node_evidence() -> None:
    # A node hosting candidates logs their terms in the node election's words (node=<candidate>):
    # in a randomized mix with candidates these made epochs "go down" in the node's log.
    own = {"ts": T + 1, "msg": "I am a new leader: node=n1 epoch=5 znode=x (JOINING -> LEADER)"}
    hosted = [
        {"ts": T + 2, "msg": "I am a new leader: node=c1 epoch=90 znode=y (JOINING -> LEADER)"},
        {"ts": T + 3, "msg": "node=c2 epoch=90 JOINING -> FOLLOWER leader=c1 watching=y"},
    ]
    logs = {"n1": [{"ts": T, "msg": "node=n1 serving gRPC on 127.0.0.1:7001"}, *hosted, own]}
    assert [(t.node, t.epoch) for t in exact_terms([], logs)] == [("n1", 5)]
    assert not check([], logs, BOUNDS).violations
