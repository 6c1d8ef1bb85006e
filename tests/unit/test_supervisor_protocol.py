"""The supervisor's pipe: whatever arrives on it, malformed or of the wrong types, never starts
a leader command; a term counts only while the lease heard of is the entry owner's session."""

from __future__ import annotations

import pytest

from electd.supervisor import protocol
from electd.supervisor.command import Policy, Term
from electd.supervisor.supervisor import Plan, Supervisor


def supervisor() -> Supervisor:
    plan = Plan(
        node_argv=["true"],
        zk_hosts="127.0.0.1:1",
        command=None,
        grace=0.1,
        margin=0.05,
        policy=Policy.RESTART,
        shutdown_grace=1.0,
        session_timeout=2.0,
    )
    return Supervisor(plan)


GOOD = {
    "epoch": 7,
    "znode": "electd-00000000000000000000000000000000-0000000001",
    "term_session": 42,
    "until": 123.5,
    "lease_session": 42,
    "timeout": 2.0,
}


@pytest.mark.parametrize(
    "data",
    [b"", b"\xff\xfe", b"[1,2]", b'"t"', b'{"t": 5}', b"[" * 100_000, b'{"no-t": 1}', b"nul\x00"],
)
def test_garbage_on_the_pipe_is_no_message(data: bytes) -> None:
    assert protocol.decode(data) is None


def test_a_well_formed_state_names_the_term() -> None:
    sup = supervisor()
    sup._on_node_message("state", dict(GOOD))
    assert sup._want == Term(7, GOOD["znode"], 123.5)


@pytest.mark.parametrize(
    "change",
    [
        {"epoch": "7"},
        {"epoch": None},
        {"znode": 5},
        {"until": "soon"},
        {"term_session": 0},
        {"term_session": "42"},
        {"lease_session": 43},  # the lease renewed by a later session vouches for no earlier term
        {"lease_session": None},
    ],
)
def test_a_state_of_the_wrong_shape_or_another_session_runs_nothing(
    change: dict[str, object],
) -> None:
    sup = supervisor()
    sup._on_node_message("state", dict(GOOD))
    sup._on_node_message("state", {**GOOD, **change})
    assert sup._want is None


def test_unknown_messages_change_nothing() -> None:
    sup = supervisor()
    sup._on_node_message("state", dict(GOOD))
    sup._on_node_message("launch-missiles", {"epoch": 99})
    assert sup._want == Term(7, GOOD["znode"], 123.5)


def test_a_crashed_node_with_candidate_leases_is_closed_only_after_them() -> None:
    """C4: the dead session may not close while a lease granted to a remote candidate runs."""
    from electd.clock import now as lease_clock

    sup = supervisor()
    until = lease_clock() + 1.5
    sup._on_node_message("state", {**GOOD, "grants_until": until})
    assert sup._grants_end() == pytest.approx(until)
    sup._on_node_message("state", {**GOOD, "grants_until": lease_clock() - 1.0})
    assert sup._grants_end() == 0.0  # already over: close at once


@pytest.mark.parametrize("grants", ["soon", None, [1], 1e300])
def test_a_garbled_grant_never_keeps_a_dead_session_open_past_its_timeout(grants: object) -> None:
    from electd.clock import now as lease_clock

    sup = supervisor()
    sup._on_node_message("state", {**GOOD, "grants_until": grants})
    assert sup._grants_end() <= lease_clock() + 2.0
