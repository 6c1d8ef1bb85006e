"""The outside checker (linearize.py, Porcupine) beside checker.py, on recorded runs and on
small made-up histories. Fast: no ZooKeeper, no electd process; it builds the Go command
(scripts/build-linearize.sh, skipped when up to date).

fixtures/pause-then-cut-before-v4.json.gz: the named scenario pause-then-cut on the engine
before V4's fix (edcaccd, the parent of 4936ce5), run with today's harness: the old leader
vouched for its epoch after its successor had begun. fixtures/pause-then-cut-clean.json.gz: the
same scenario on today's engine."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from tests.faults import linearize
from tests.faults.checker import Bounds, Report, check, exact_terms
from tests.faults.history import Event

FIXTURES = Path(__file__).parent / "fixtures"
BEFORE_V4 = FIXTURES / "pause-then-cut-before-v4.json.gz"
CLEAN = FIXTURES / "pause-then-cut-clean.json.gz"
T = 1_800_000_000.0  # a time of the kind the harness records


def both(path: Path, workdir: Path) -> tuple[Report, linearize.Verdict]:
    events, logs, bounds, _ = linearize.load_run(path)
    return check(events, logs, bounds), linearize.judge(events, logs, workdir)


# ----- recorded runs ----------------------------------------------------------------------


def test_both_checkers_flag_the_history_before_v4s_fix(tmp_path: Path) -> None:
    report, verdict = both(BEFORE_V4, tmp_path)
    print(linearize.verdicts(report, verdict))
    rule1 = [v for v in report.violations if v.startswith("rule 1:")]
    # Two of the three rounds: n2 after n1 had begun, then n1 after n3 had begun.
    assert [v.split(" still vouched")[0] for v in rule1] == ["rule 1: n2", "rule 1: n1"], rule1
    assert all(v.endswith("(exact evidence, bound 0)") for v in rule1), rule1
    assert report.figures["worst overlap, exact evidence (s)"] > 1.0
    assert verdict.ok is False, verdict.summary
    assert verdict.summary.startswith("not linearizable: 8 claims, 4 terms; n2's claim of epoch")
    assert "cannot follow the term epoch" in verdict.summary
    assert verdict.html_path == tmp_path / "linearize.html"
    page = verdict.html_path.read_text()
    assert "<html" in page and "n2 leads, epoch" in page
    assert linearize.disagreement(report, verdict) is None
    failures = linearize.compare(report, verdict)
    assert len(failures) == 1 and failures[0].startswith("outside checker (Porcupine): not ")
    assert str(verdict.html_path) in failures[0]


def test_both_checkers_accept_the_history_on_todays_engine(tmp_path: Path) -> None:
    report, verdict = both(CLEAN, tmp_path)
    print(linearize.verdicts(report, verdict))
    assert report.figures["faults injected"] == 3
    assert report.figures["leader changes"] == 2  # one round, the session survived the cut
    assert not report.violations, report.summary()
    assert verdict.ok is True, verdict.summary
    assert verdict.summary == "linearizable: 6 claims, 3 terms"
    assert verdict.html_path is None and not (tmp_path / "linearize.html").exists()
    assert linearize.compare(report, verdict) == []


def test_the_first_and_last_claim_of_each_term_give_porcupine_every_claims_verdict(
    tmp_path: Path,
) -> None:
    for path, ok in ((BEFORE_V4, False), (CLEAN, True)):
        events, logs, _, _ = linearize.load_run(path)
        every = linearize.judge(events, logs, tmp_path / path.stem, every_claim=True)
        claims = sum(len(t.claims) for t in exact_terms(events, logs))
        assert every.ok is ok, every.summary
        assert every.summary.startswith(f"{'' if ok else 'not '}linearizable: {claims} claims")
        assert claims > 500
        assert linearize.judge(events, logs, tmp_path / path.stem).ok is ok


def test_a_saved_run_keeps_only_what_the_checkers_read(tmp_path: Path) -> None:
    events, logs, bounds, note = linearize.load_run(BEFORE_V4)
    assert "before V4's fix" in note
    assert {e.kind for e in events} <= set(linearize.CHECKED_KINDS)
    noise = [Event(T, "writer", "n1", {"phase": "start"}), Event(T, "zk", "zk1", {"a": 1})]
    heartbeat = {"ts": T, "msg": "a heartbeat", "level": "debug"}
    chatty = {node: [*records, heartbeat] for node, records in logs.items()}
    again = tmp_path / "run.json"
    linearize.save_run(again, [*events, *noise], chatty, bounds, note)
    events2, logs2, bounds2, note2 = linearize.load_run(again)
    assert (events2, logs2, bounds2, note2) == (events, logs, bounds, note)
    assert json.loads(again.read_text())["note"] == note
    zipped = tmp_path / "run.json.gz"
    linearize.save_run(zipped, events, logs, bounds, note)
    assert json.loads(gzip.decompress(zipped.read_bytes())) == json.loads(again.read_text())


# ----- made-up histories ------------------------------------------------------------------


def leader_log(node: str, epoch: int, ts: float) -> list[dict[str, Any]]:
    return [
        {"ts": ts - 1, "msg": f"node={node} serving gRPC on 127.0.0.1:7001"},
        {"ts": ts, "msg": f"I am a new leader: node={node} epoch={epoch} znode=x (a -> LEADER)"},
    ]


def probe(node: str, epoch: int, asked: float, answered: float) -> Event:
    return Event(answered, "probe", node, {"epoch": epoch, "asked": asked, "answered": answered})


def write(node: str, epoch: int, asked: float, checked: float) -> Event:
    data = {"epoch": epoch, "asked": asked, "checked": checked, "accepted": True}
    return Event(checked + 0.001, "write", node, data)


def test_a_term_goes_to_porcupine_as_its_first_and_last_claim() -> None:
    logs = {"n1": leader_log("n1", 5, T), "n2": leader_log("n2", 9, T + 10)}
    events = [
        probe("n1", 5, T + 1.0, T + 1.1),
        write("n1", 5, T + 2.0, T + 2.2),
        probe("n1", 5, T + 3.0, T + 3.1),
        probe("n2", 9, T + 11.0, T + 11.3),
    ]
    terms = exact_terms(events, logs)
    assert [(t.node, t.epoch, len(t.claims)) for t in terms] == [("n1", 5, 4), ("n2", 9, 2)]
    assert (terms[0].first.source, terms[0].first.answered) == ("log", T)
    assert (terms[0].last.source, terms[0].last.asked) == ("probe", T + 3.0)
    assert terms[1].last.asked == T + 11.0
    ops = linearize.operations(events, logs)
    assert [(o["node"], o["client"], o["source"]) for o in ops] == [
        ("n1", 0, "log"),
        ("n1", 0, "probe"),
        ("n2", 1, "log"),
        ("n2", 1, "probe"),
    ]
    assert ops[1]["call"] == round((T + 3.0) * 1e9) and ops[1]["return"] == round((T + 3.1) * 1e9)
    assert ops[0]["call"] == ops[0]["return"] == round(T * 1e9)


def test_only_exact_evidence_counts_and_only_of_the_deciding_incarnation() -> None:
    # n1's own stream and a restarted n1 (started after its decision) naming n1 are no claims.
    logs = {"n1": leader_log("n1", 5, T)}
    events = [
        Event(T - 2, "node", "n1", {"action": "start"}),
        Event(
            T + 0.5, "stream", "n1", {"stream": 1, "state": "ELECTED", "leader": "n1", "epoch": 5}
        ),
        Event(T + 1.0, "node", "n1", {"action": "kill"}),
        Event(T + 1.5, "node", "n1", {"action": "start"}),
        probe("n1", 5, T + 2.0, T + 2.1),
    ]
    assert [(t.node, t.epoch, len(t.claims)) for t in exact_terms(events, logs)] == [("n1", 5, 1)]
    assert len(linearize.operations(events, logs)) == 1


def test_an_overlap_inside_long_terms_is_caught_by_both(tmp_path: Path) -> None:
    # n1 leads from T and is still vouching at T+12, two seconds into n2's term.
    logs = {"n1": leader_log("n1", 5, T), "n2": leader_log("n2", 9, T + 10)}
    events = [probe("n1", 5, T + k, T + k + 0.01) for k in range(1, 13)]
    events += [probe("n2", 9, T + k, T + k + 0.01) for k in range(11, 20)]
    report = check(events, logs, Bounds(2.5))
    verdict = linearize.judge(events, logs, tmp_path)
    assert linearize.two_leaders(report) == 1, report.summary()
    assert "n1 still vouched for itself with epoch 5" in report.violations[0]
    assert verdict.ok is False, verdict.summary
    assert "n1's claim of epoch 5" in verdict.summary and "epoch 9: n2" in verdict.summary
    assert linearize.disagreement(report, verdict) is None


def test_a_handover_without_overlap_is_accepted_by_both(tmp_path: Path) -> None:
    logs = {"n1": leader_log("n1", 5, T), "n2": leader_log("n2", 9, T + 10)}
    events = [probe("n1", 5, T + k, T + k + 0.01) for k in range(1, 10)]
    events.append(probe("n1", 5, T + 9.99, T + 10.05))  # answered after n2's decision: concurrent
    events += [probe("n2", 9, T + k, T + k + 0.01) for k in range(11, 20)]
    report = check(events, logs, Bounds(2.5))
    verdict = linearize.judge(events, logs, tmp_path)
    assert not report.violations, report.summary()
    assert verdict.ok is True, verdict.summary
    assert verdict.summary == "linearizable: 4 claims, 2 terms"


def test_two_nodes_with_one_epoch_are_flagged_by_both(tmp_path: Path) -> None:
    logs = {"n1": leader_log("n1", 5, T)}
    events = [probe("n1", 5, T + 1, T + 1.01), probe("n2", 5, T + 5, T + 5.01)]
    report = check(events, logs, Bounds(2.5))
    verdict = linearize.judge(events, logs, tmp_path)
    assert any("epoch 5 names both n1 and n2" in v for v in report.violations), report.summary()
    assert linearize.two_leaders(report) == 1
    assert verdict.ok is False and "n2's claim of epoch 5" in verdict.summary, verdict.summary
    assert linearize.disagreement(report, verdict) is None


def test_a_disagreement_is_a_failure_of_its_own() -> None:
    flagged = Report(Bounds(2.5), violations=["rule 1: n1 still vouched for itself ..."])
    clean = Report(Bounds(2.5))
    ok = linearize.Verdict(True, "linearizable: 4 claims, 2 terms", None)
    bad = linearize.Verdict(False, "not linearizable: 4 claims, 2 terms; ...", Path("x.html"))
    unknown = linearize.Verdict(None, "unknown: no verdict within 60s (9 claims)", None)
    assert linearize.compare(clean, ok) == []
    expected = f"outside checker (Porcupine): {bad.summary} (visualisation: x.html)"
    assert linearize.compare(flagged, bad) == [expected]
    (one,) = linearize.compare(flagged, ok)
    assert one.startswith("the checkers disagree on rule 1: checker.py flags two leaders (1 ")
    assert one.endswith(f"Porcupine says {ok.summary!r}")
    (text,) = [f for f in linearize.compare(clean, bad) if "disagree" in f]
    assert "checker.py flags no two leaders" in text
    assert linearize.compare(clean, unknown) == [f"outside checker (Porcupine): {unknown.summary}"]
