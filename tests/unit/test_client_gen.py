"""The generated code exists twice, made by one command (scripts/gen-proto.sh): the server's
electd.v1 and the client distribution's electd_client.v1. The copy differs only in naming its
own package; the descriptors are byte-identical, so in one process (protobuf's upb backend)
both share one descriptor and the very same message classes: a message made by the server's
code is an instance of the client's class and the other way round."""

from __future__ import annotations

from pathlib import Path

from google.protobuf.internal import api_implementation

import electd.v1.election_service_pb2 as server_pb
import electd_client.v1.election_service_pb2 as client_pb
import electd_client.v1.election_service_pb2_grpc as client_pb_grpc

ROOT = Path(__file__).resolve().parents[2]
SERVER_V1 = ROOT / "server" / "electd" / "v1"
CLIENT_V1 = ROOT / "clients" / "python" / "electd_client" / "v1"


def test_upb_backend() -> None:
    assert api_implementation.Type() == "upb"


def test_one_descriptor_and_the_same_message_classes() -> None:
    assert client_pb.DESCRIPTOR is server_pb.DESCRIPTOR
    assert client_pb.DESCRIPTOR.serialized_pb == server_pb.DESCRIPTOR.serialized_pb
    for name in client_pb.DESCRIPTOR.message_types_by_name:
        assert getattr(client_pb, name) is getattr(server_pb, name), name
    msg = server_pb.WatchLeaderResponse(state=server_pb.LEADER_STATE_ELECTED)
    assert isinstance(msg, client_pb.WatchLeaderResponse)
    assert client_pb.LEADER_STATE_ELECTED == server_pb.LEADER_STATE_ELECTED


def test_the_client_grpc_module_imports_the_client_copy() -> None:
    assert client_pb_grpc.electd_dot_v1_dot_election__service__pb2 is client_pb
    text = (CLIENT_V1 / "election_service_pb2_grpc.py").read_text()
    assert "from electd_client.v1 import election_service_pb2" in text
    assert "from electd.v1 import" not in text


def test_the_copy_differs_only_in_its_package_name() -> None:
    names = sorted(p.name for p in SERVER_V1.glob("*_pb2*.py*"))
    assert names == sorted(p.name for p in CLIENT_V1.glob("*_pb2*.py*")) and names
    for name in names:
        server = (SERVER_V1 / name).read_text().splitlines()
        client = (CLIENT_V1 / name).read_text().splitlines()
        assert len(server) == len(client), name
        for s, c in zip(server, client, strict=True):
            if s != c:
                assert s.replace("electd.v1", "electd_client.v1", 1) == c, (name, s, c)
