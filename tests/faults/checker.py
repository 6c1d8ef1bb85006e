"""The checker: judges a recorded History (and the nodes' JSON logs) against electd's promises.

"Node N believes it leads with epoch E at time t" means: N would answer GetLeader at t naming
itself with E. Evidence, all on the machine's one clock:
  exact   N logged "I am a new leader: node=N epoch=E" (the engine's decision, log `ts`); N
          answered a GetLeader naming itself with E, asked at `asked`, answered by `answered`
          (the harness's probes, and its writer's check before every write): it believed at
          some instant in between, so `asked` counts as its latest and `answered` as its
          earliest moment;
  streams N's own WatchLeader stream named N with E, from the receipt of that message until
          the next one or the end of the stream (late by the delivery time), except while N was
          SIGSTOPped and RESUME_GRACE after its SIGCONT: a frozen process acts on nothing and,
          when it thaws, checks its lease before it answers anything (what it answers then is
          exact evidence).
Evidence counts for the incarnation (process run) of N that decided the term: a node restarted
while its dead predecessor's znode still leads truthfully names "N" as leader, but that process
is a follower, not the believer. A term (N, E) believes from its first evidence to its last.
A candidate of a named election (candidate.py) is exact evidence of its own: its "claim" events
(the `leading` that began its belief, [ping sent, answer received]; the instant it ended: its
deadline, or the moment it stopped on `lost` or resign) and its fenced writes, with N its
candidate id. Epochs are per election (a named election's are its entries' czxids), so a
history holds one election: `check` judges the node election's (which has no claims), and
`check_candidates` one named election's, a history of candidates' writes and claims alone.
The rules:
  1. one leader: for epochs E < E', the last exact evidence of E is not after the first exact
     evidence of E' (no tolerance), and with stream evidence too, at most `overlap` after;
  2. epochs: on every stream and every observer the ELECTED epochs never go down; each epoch
     names one node; in every node incarnation's log they never go down either,
  3. fencing: the resource's accepted epochs never go down, and no write attempt (accepted or
     not) was checked with the node after the resource had accepted a higher epoch,
  4. a new leader within `failover` of a fault that deposed the leader, and a leader within
     `heal` of every fault's healing,
  5. every live node listed by every live node, and nothing else, within `members` of healing,
  6. every live node's stream on the same leader and epoch within `members` of healing.
`check_candidates` applies rules 1-3, which are about terms and the resource; rules 4-6 are about
nodes, their streams and the harness's faults, none of which a candidate history holds.
"Healing" in rules 4-6 is the later of the fault's end and ZooKeeper serving again (one of its
servers reports itself leader, which it does only once a quorum has synced with it): electd can
do nothing without a ZooKeeper quorum. How long ZooKeeper's own recovery took is reported as a
figure, not judged: it is ZooKeeper's election and sync (bounded by its initLimit and syncLimit),
and once it lost a NEWLEADER ACK to an epoch mismatch and took 9.1 s after a quorum loss.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from tests.faults.history import Event

RESUME_GRACE = 1.0
_NEW_LEADER = re.compile(r"^I am a new leader: node=(\S+) epoch=(\d+)")
_TRANSITION = re.compile(r"^node=(\S+) epoch=(\d+) \S+ -> \S+ leader=(\S+)")
_SERVING = re.compile(r"serving gRPC on")


@dataclass(frozen=True)
class Bounds:
    """The bounds the design promises, from the session timeout T and ZooKeeper's tick and
    syncLimit, plus `slack` for scheduling on a loaded 2-core machine (see RELIABILITY.md)."""

    session_timeout: float
    tick: float = 0.2
    sync_limit: int = 10
    slack: float = 1.0
    observe: float = 0.1  # receipt latency of a stream message, for rule 1

    @property
    def overlap(self) -> float:
        # Design: 0. A node stops vouching 2T/3 after its last successful round trip, or at
        # once on disconnection; its session cannot expire before T after that round trip.
        # Stream evidence arrives late by its delivery time, hence `observe` for it only.
        return self.observe

    @property
    def failover(self) -> float:
        # The session expires at most T + one tick after the last ping reached ZooKeeper.
        return self.session_timeout + 2 * self.tick + self.slack

    @property
    def heal(self) -> float:
        # ZooKeeper's own recovery (a follower notices a dead leader within syncLimit ticks,
        # re-elects within ~1 s), then a session expiry at worst.
        return self.session_timeout + self.sync_limit * self.tick + 1.0 + self.slack

    @property
    def members(self) -> float:
        # A healed node reconnects (client backoff <= 1 s), learns its session expired and
        # re-registers; a dead node's znode goes within T + one tick.
        return self.session_timeout + self.sync_limit * self.tick + 1.0 + self.slack


@dataclass
class Term:
    node: str
    epoch: int
    start: float = float("inf")  # all evidence
    end: float = float("-inf")
    xstart: float = float("inf")  # exact evidence only
    xend: float = float("-inf")
    writes: int = 0

    def see(self, start: float, end: float | None = None) -> None:
        self.start = min(self.start, start)
        self.end = max(self.end, start if end is None else end)

    def exact(self, latest: float, earliest: float) -> None:
        """Exact evidence: believed at some instant in [latest, earliest]."""
        self.xstart = min(self.xstart, earliest)
        self.xend = max(self.xend, latest)
        self.see(latest, earliest)


@dataclass
class Report:
    bounds: Bounds
    violations: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def fail(self, rule: int, text: str) -> None:
        self.violations.append(f"rule {rule}: {text}")

    def summary(self) -> str:
        lines = [f"{k}: {v}" for k, v in self.figures.items()]
        lines.append(f"violations: {len(self.violations)}")
        lines += [f"  VIOLATION {v}" for v in self.violations[:50]]
        return "\n".join(lines)


@dataclass(frozen=True)
class Claim:
    """One piece of exact evidence that `node` believed it led with `epoch`, at some instant in
    [asked, answered]: a log line (asked == answered == its `ts`), a probe or a writer's check
    ("probe", "write", "log" in `source`); or a candidate's own claim (the claim event's
    source: "leading", "deadline", "lost", "resign", "superseded") or its write ("write")."""

    node: str
    epoch: int
    asked: float
    answered: float
    source: str


@dataclass(frozen=True)
class ExactTerm:
    """The exact evidence of one term (node, epoch), as rule 1 reads it: the term believes from
    its first evidence (`first.answered`, Term.xstart) to its last (`last.asked`, Term.xend)."""

    node: str
    epoch: int
    first: Claim  # the claim with the earliest `answered`
    last: Claim  # the claim with the latest `asked`
    claims: tuple[Claim, ...]  # all of them


def record_time(rec: dict[str, Any]) -> float:
    """When a node wrote a log line, on the history's clock: its `mono`. A run saved before
    nodes logged `mono` has only `ts`, and its events are on the wall clock as well."""
    return float(rec["mono"] if "mono" in rec else rec.get("ts", 0.0))


def log_events(node: str, records: list[dict[str, Any]]) -> list[tuple[int, float, str, int]]:
    """(incarnation, ts, leader id, epoch) for every leader decision in a node's log, and
    (incarnation, ts, '!backwards', 0) for the engine's epoch-went-backwards error.
    A node that holds candidates of named elections logs their terms too, as "candidate leads
    election E: node=<candidate id> ..." and "candidate=<id> election=E ..." (with the
    election's name in the record's "election" field): neither pattern matches, and a line
    naming another id than the node's is left out anyway. The node election's lines name the
    node itself."""
    out: list[tuple[int, float, str, int]] = []
    incarnation = 0
    for rec in records:
        msg = str(rec.get("msg", ""))
        ts = record_time(rec)
        if _SERVING.search(msg):
            incarnation += 1
        elif (m := _NEW_LEADER.match(msg)) and m.group(1) == node:
            out.append((incarnation, ts, m.group(1), int(m.group(2))))
        elif (m := _TRANSITION.match(msg)) and m.group(1) == node:
            out.append((incarnation, ts, m.group(3), int(m.group(2))))
        elif "leader epoch went backwards" in msg:
            out.append((incarnation, ts, "!backwards", 0))
    return out


@dataclass
class _Evidence:
    terms: dict[int, Term]
    claims: list[Claim]
    messages: int
    accepted: int
    rejected: int
    probes: int
    own_claims: dict[str, int]  # candidates' claim events, by source


def exact_terms(events: list[Event], logs: dict[str, list[dict[str, Any]]]) -> list[ExactTerm]:
    """Every term's exact evidence, per (node, epoch), by epoch then node: the very claims that
    `check` reads (rule 1 compares their first and last). Two nodes with one epoch (which
    `check` reports under rule 2, merged into one Term) are two entries here."""
    evidence = _evidence(sorted(events, key=lambda e: e.t), logs, Report(Bounds(1.0)))
    by_term: dict[tuple[int, str], list[Claim]] = defaultdict(list)
    for c in evidence.claims:
        by_term[(c.epoch, c.node)].append(c)
    return [
        ExactTerm(
            node,
            epoch,
            min(claims, key=lambda c: c.answered),
            max(claims, key=lambda c: c.asked),
            tuple(claims),
        )
        for (epoch, node), claims in sorted(by_term.items())
    ]


def _evidence(
    events: list[Event], logs: dict[str, list[dict[str, Any]]], report: Report
) -> _Evidence:
    """Every term's evidence from the (time-ordered) events and the logs, checking rules 2 and 3
    on the way; every piece of exact evidence also as a Claim."""
    end_of_run = events[-1].t if events else 0.0
    terms: dict[int, Term] = {}
    owner: dict[int, str] = {}
    starts: dict[str, list[float]] = defaultdict(list)
    for e in events:
        if e.kind == "node" and e.get("action") == "start":
            starts[e.node].append(e.t)

    def run_of(node: str, t: float) -> int:
        """Which incarnation of `node` was running at t (the harness started it)."""
        return bisect.bisect_right(starts[node], t)

    decided_by: dict[int, int] = {}  # epoch -> incarnation of its leader that decided it
    claims: list[Claim] = []

    def by_owner(node: str, epoch: int, t: float) -> bool:
        return decided_by.get(epoch, run_of(node, t)) == run_of(node, t)

    def term(node: str, epoch: int, where: str) -> Term:
        if owner.setdefault(epoch, node) != node:
            report.fail(2, f"epoch {epoch} names both {owner[epoch]} and {node} ({where})")
        return terms.setdefault(epoch, Term(node, epoch))

    # ----- node logs: decisions, per incarnation ------------------------------------------------
    for node, records in logs.items():
        last: dict[int, int] = {}
        for inc, ts, leader, epoch in log_events(node, records):
            if leader == "!backwards":
                report.fail(2, f"{node} logged that the leader epoch went backwards at {ts:.3f}")
                continue
            if epoch < last.get(inc, 0):
                report.fail(2, f"{node} (run {inc}) saw epoch {epoch} after {last[inc]}")
            last[inc] = max(last.get(inc, 0), epoch)
            t = term(leader, epoch, f"log of {node}")
            if leader == node:
                decided_by.setdefault(epoch, run_of(node, ts))
                if by_owner(node, epoch, ts):
                    t.exact(ts, ts)
                    claims.append(Claim(node, epoch, ts, ts, "log"))

    # ----- streams: epochs per stream and per observer; own streams as belief -----------------
    pauses: dict[str, list[tuple[float, float]]] = defaultdict(list)
    paused_at: dict[str, float] = {}
    for e in events:
        if e.kind == "node" and e.get("action") == "pause":
            paused_at[e.node] = e.t
        elif e.kind == "node" and e.get("action") in ("resume", "kill") and e.node in paused_at:
            pauses[e.node].append((paused_at.pop(e.node), e.t + RESUME_GRACE))
    for node, t0 in paused_at.items():
        pauses[node].append((t0, float("inf")))

    open_self: dict[tuple[str, int], tuple[float, int]] = {}  # (node, stream) -> (since, epoch)
    per_stream: dict[tuple[str, int], int] = {}
    per_observer: dict[str, int] = {}
    messages = 0

    def close_self(key: tuple[str, int], t_end: float) -> None:
        if key in open_self:
            since, epoch = open_self.pop(key)
            for a, b in _clip(since, t_end, pauses.get(key[0], [])):
                terms[epoch].see(a, b)

    for e in events:
        if e.kind == "stream":
            messages += 1
            key = (e.node, int(e.get("stream")))
            close_self(key, e.t)
            if e.get("state") != "ELECTED":
                continue
            epoch, leader = int(e.get("epoch")), str(e.get("leader"))
            term(leader, epoch, f"stream of {e.node}")
            if epoch < per_stream.get(key, 0):
                report.fail(2, f"stream {key} went from epoch {per_stream[key]} to {epoch}")
            if epoch < per_observer.get(e.node, 0):
                report.fail(2, f"observer of {e.node} went from {per_observer[e.node]} to {epoch}")
            per_stream[key] = max(per_stream.get(key, 0), epoch)
            per_observer[e.node] = max(per_observer.get(e.node, 0), epoch)
            if leader == e.node and by_owner(leader, epoch, e.t):
                open_self[key] = (e.t, epoch)
        elif e.kind == "stream-end":
            close_self((e.node, int(e.get("stream"))), e.t)
    for key in list(open_self):
        close_self(key, end_of_run)

    # ----- the fenced resource ----------------------------------------------------------------
    highest, highest_at = 0, 0.0
    accepted = rejected = stale_checks = 0
    first_write: dict[int, float] = {}
    for e in events:
        if e.kind != "write":
            continue
        epoch, checked = int(e.get("epoch")), float(e.get("checked"))
        asked = float(e.get("asked", checked))
        t = term(e.node, epoch, "a write")
        t.exact(asked, checked)
        claims.append(Claim(e.node, epoch, asked, checked, "write"))
        t.writes += 1
        if e.get("accepted"):
            accepted += 1
            first_write.setdefault(epoch, e.t)
            if epoch < highest:
                report.fail(3, f"accepted {e.node}'s epoch {epoch} after epoch {highest}")
            elif epoch > highest:
                highest, highest_at = epoch, e.t
        else:
            rejected += 1
        if epoch < highest and asked > highest_at:
            stale_checks += 1
            report.fail(
                3,
                f"{e.node} was asked at {asked:.3f} and still vouched for its epoch {epoch}, "
                f"after the resource had accepted epoch {highest} at {highest_at:.3f}",
            )
    probes = 0
    for e in events:
        if e.kind == "probe":
            probes += 1
            epoch, asked = int(e.get("epoch")), float(e.get("asked"))
            t = term(e.node, epoch, "a probe")
            if by_owner(e.node, epoch, asked):
                t.exact(asked, float(e.get("answered")))
                claims.append(Claim(e.node, epoch, asked, float(e.get("answered")), "probe"))

    # ----- candidates' own claims (a candidate is one process: no incarnations) -------------
    own_claims: dict[str, int] = defaultdict(int)
    for e in events:
        if e.kind == "claim":
            epoch, source = int(e.get("epoch")), str(e.get("source"))
            asked, answered = float(e.get("asked")), float(e.get("answered"))
            own_claims[source] += 1
            term(e.node, epoch, f"a claim ({source})").exact(asked, answered)
            claims.append(Claim(e.node, epoch, asked, answered, source))
    return _Evidence(terms, claims, messages, accepted, rejected, probes, dict(own_claims))


def check(events: list[Event], logs: dict[str, list[dict[str, Any]]], bounds: Bounds) -> Report:
    report = Report(bounds)
    events = sorted(events, key=lambda e: e.t)
    evidence = _evidence(events, logs, report)
    terms = evidence.terms
    messages, accepted, rejected = evidence.messages, evidence.accepted, evidence.rejected
    probes = evidence.probes

    ordered, worst_exact, worst_overlap, gaps = _one_leader(terms, bounds, report)

    # ----- rules 4-6: failover and convergence --------------------------------------------------
    failovers: dict[str, list[float]] = defaultdict(list)
    faults = 0
    for e in events:
        if e.kind != "fault" or e.get("phase") != "inject":
            continue
        faults += 1
        if not e.get("deposes"):
            continue
        after = [t.start for t in ordered if t.epoch > int(e.get("epoch")) and t.start >= e.t]
        name = str(e.get("name"))
        if not after:
            report.fail(4, f"no new leader after {name} at {e.t:.3f}")
            continue
        took = min(after) - e.t
        failovers[name].append(took)
        if took > bounds.failover:
            report.fail(4, f"{name} at {e.t:.3f}: new leader after {took:.2f}s")
    settles: dict[str, dict[str, float]] = defaultdict(dict)
    zk_recovery: dict[str, float] = {}
    for e in events:
        if e.kind != "settled":
            continue
        label = str(e.get("label"))
        zk_s = e.get("zk_s")
        if zk_s:
            zk_recovery[label] = round(max(zk_recovery.get(label, 0.0), float(zk_s)), 3)
        for key, rule, bound in (
            ("leader_s", 4, bounds.heal),
            ("members_s", 5, bounds.members),
            ("streams_s", 6, bounds.members),
        ):
            took = e.get(key)
            if took is None or took > bound:
                what = "never" if took is None else f"after {took:.2f}s"
                report.fail(rule, f"{label}: {key[:-2]} converged {what} (bound {bound:.2f}s)")
            else:
                prev = settles[label].get(key, 0.0)
                settles[label][key] = round(max(prev, took), 3)

    report.figures = {
        "faults injected": faults,
        "leader terms": len(ordered),
        "leader changes": max(0, len(ordered) - 1),
        "stream messages": messages,
        "writes accepted": accepted,
        "stale writes rejected by fencing": rejected,
        "leader probes answered": probes,
        "worst overlap, exact evidence (s)": round(worst_exact, 3) if gaps else None,
        "worst overlap, with streams (s)": round(worst_overlap, 3) if gaps else None,
        "narrowest gap between terms (s)": round(min(gaps), 3) if gaps else None,
        "worst failover (s)": {k: round(max(v), 3) for k, v in sorted(failovers.items())},
        "worst convergence after healing (s)": dict(sorted(settles.items())),
        "ZooKeeper serving again after healing, worst (s)": dict(sorted(zk_recovery.items())),
        "bounds (s)": {
            "overlap": bounds.overlap,
            "failover": round(bounds.failover, 3),
            "heal": round(bounds.heal, 3),
            "members/streams": round(bounds.members, 3),
        },
    }
    return report


# Event kinds only a node election's history holds (nodes, their streams, probes, the faults).
NODE_KINDS = ("node", "stream", "stream-end", "probe", "fault", "settled", "writer", "zk")


def is_candidate_history(events: list[Event], logs: dict[str, list[dict[str, Any]]]) -> bool:
    """A history of one named election's candidates: their claims and writes, nothing else."""
    return not logs and any(e.kind == "claim" for e in events)


def check_candidates(events: list[Event], bounds: Bounds) -> Report:
    """Rules 1-3 on a named election's history: its candidates' claims and fenced writes (the
    candidate scenarios'). Rule 1's bound is 0: all of it is exact evidence. A history with
    node events, or with more than one election, is not one (ValueError): epochs are per
    election."""
    kinds = sorted({e.kind for e in events if e.kind in NODE_KINDS})
    if kinds:
        raise ValueError(f"not a candidate history: it holds node events ({', '.join(kinds)})")
    elections = sorted({str(e.get("election")) for e in events if e.kind in ("claim", "write")})
    if len(elections) > 1:
        raise ValueError(f"a candidate history holds one election, not {elections}")
    report = Report(bounds)
    evidence = _evidence(sorted(events, key=lambda e: e.t), {}, report)
    ordered, worst_exact, _, _ = _one_leader(evidence.terms, bounds, report)
    # All evidence is exact: a gap is from a term's last claim to the next one's first.
    gaps = [new.xstart - old.xend for old, new in itertools.pairwise(ordered)]
    report.figures = {
        "election": elections[0] if elections else None,
        "candidate terms": len(ordered),
        "handovers": max(0, len(ordered) - 1),
        "candidates' claims": dict(sorted(evidence.own_claims.items())),
        "writes accepted": evidence.accepted,
        "stale writes rejected by fencing": evidence.rejected,
        "worst overlap, exact evidence (s)": round(worst_exact, 3) if gaps else None,
        "narrowest gap between terms (s)": round(min(gaps), 3) if gaps else None,
    }
    return report


def _one_leader(
    terms: dict[int, Term], bounds: Bounds, report: Report
) -> tuple[list[Term], float, float, list[float]]:
    """Rule 1: terms in epoch order, no overlap beyond the bound. The terms with evidence in
    epoch order, the worst overlaps (exact evidence, all evidence) and the gaps between terms."""
    ordered = [terms[k] for k in sorted(terms) if terms[k].start != float("inf")]
    worst_overlap = worst_exact = float("-inf")
    gaps = []
    for i, old in enumerate(ordered):
        for new in ordered[i + 1 :]:
            exact = old.xend - new.xstart
            worst_exact = max(worst_exact, exact)
            if exact > 0:
                report.fail(
                    1,
                    f"{old.node} still vouched for itself with epoch {old.epoch} at "
                    f"{old.xend:.3f}, {exact:.3f}s after {new.node} had begun leading with "
                    f"epoch {new.epoch} at {new.xstart:.3f} (exact evidence, bound 0)",
                )
            overlap = old.end - new.start
            worst_overlap = max(worst_overlap, overlap)
            if overlap > bounds.overlap and exact <= 0:
                report.fail(
                    1,
                    f"{old.node}'s stream showed it leading with epoch {old.epoch} until "
                    f"{old.end:.3f}, {overlap:.3f}s after {new.node} began leading with epoch "
                    f"{new.epoch} at {new.start:.3f} (bound {bounds.overlap:.3f}s)",
                )
        if i + 1 < len(ordered):
            gaps.append(ordered[i + 1].start - old.end)
    return ordered, worst_exact, worst_overlap, gaps


def _clip(a: float, b: float, windows: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """[a, b] minus the windows."""
    parts = [(a, b)]
    for wa, wb in windows:
        nxt = []
        for pa, pb in parts:
            if wb <= pa or wa >= pb:
                nxt.append((pa, pb))
                continue
            if pa < wa:
                nxt.append((pa, wa))
            if wb < pb:
                nxt.append((wb, pb))
        parts = nxt
    return parts
