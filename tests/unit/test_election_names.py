"""The election name rule (names.election_problem), candidate records (engine/model.py: old
records still decode, a node's record is byte for byte what it was, the candidate keys round
trip and are validated), and the znode names of values and never_lead members (zk/paths.py)."""

from __future__ import annotations

import json

import pytest

from electd import names
from electd.engine.model import MAX_VALUE_BYTES, NodeRecord, RecordError
from electd.zk import paths


@pytest.mark.parametrize("name", ["a", "A.b_c-d", "0", "x" * 128, "orders-eu.1"])
def test_election_names_that_are_accepted(name: str) -> None:
    assert names.election_problem(name) is None


@pytest.mark.parametrize(
    "name", ["", ".", "..", ".hidden", "-x", "_x", "a/b", "a b", "x" * 129, "é", "a\n", "a:b"]
)
def test_election_names_that_are_refused(name: str) -> None:
    problem = names.election_problem(name)
    assert problem is not None and ("empty" in problem or names.ELECTION_RULE in problem)


def test_a_node_record_encodes_exactly_as_before() -> None:
    record = NodeRecord("n1", "10.0.0.1:7000", {"zone": "a"}, "0.1.0")
    assert record.encode() == (
        b'{"address":"10.0.0.1:7000","id":"n1","labels":{"zone":"a"},"v":1,"version":"0.1.0"}'
    )


def test_an_old_record_decodes_with_the_candidate_defaults() -> None:
    old = b'{"v":1,"id":"n1","address":"h:1","labels":{},"version":"0.0.9"}'
    record = NodeRecord.decode(old)
    assert (record.value, record.priority, record.never_lead, record.host_id) == (b"", 0, False, "")


def test_a_candidate_record_round_trips() -> None:
    value = bytes(range(256)) * (MAX_VALUE_BYTES // 256)
    record = NodeRecord("cand-1", "", {"k": "v"}, "0.1.0", value, -7, True, "node-a")
    doc = json.loads(record.encode())
    assert doc["address"] == "" and doc["host_id"] == "node-a" and doc["priority"] == -7
    assert NodeRecord.decode(record.encode()) == record


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        ({"value": "!!"}, "base64"),
        ({"value": 5}, "value"),
        ({"priority": 2**31}, "priority"),
        ({"priority": True}, "priority"),
        ({"never_lead": 1}, "never_lead"),
        ({"host_id": ""}, "address"),  # an empty address needs a host id
        ({"host_id": "bad id"}, "must be"),
    ],
)
def test_bad_candidate_fields_are_record_errors(extra: dict[str, object], why: str) -> None:
    doc = {"v": 1, "id": "c", "address": "", "labels": {}, "version": "", "host_id": "n"}
    doc.update(extra)
    with pytest.raises(RecordError, match=why):
        NodeRecord.decode(json.dumps(doc).encode())


def test_a_value_over_the_limit_is_a_record_error() -> None:
    record = NodeRecord("c", "", {}, "", b"x" * (MAX_VALUE_BYTES + 1), host_id="n")
    with pytest.raises(RecordError, match="more than"):
        NodeRecord.decode(record.encode())


def test_value_and_member_names_are_ours_but_neither_entries_nor_companions() -> None:
    entry = f"electd-{'a' * 32}-0000000007"
    value = paths.value_name(entry)
    member = paths.member_name("b" * 32)
    assert paths.value_of(value) == entry and paths.value_of(entry) is None
    assert paths.is_member(member) and not paths.is_member("member-xyz")
    for name in (value, member):
        assert paths.parse_name(name) is None and paths.companion_of(name) is None
