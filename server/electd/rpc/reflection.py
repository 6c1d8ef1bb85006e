"""Server reflection that serves electd's .proto files with their comments.

protoc's Python output embeds descriptors without SourceCodeInfo, so the stock reflection
service would show grpcurl bare signatures. scripts/gen-proto.sh also writes
electd/v1/descriptors.binpb, a descriptor set that keeps the comments; for the files in it we
serve those bytes, for any other file (google/protobuf/*, health, reflection) the stock answer.
Relies on grpcio-reflection's servicer hooks `_file_by_filename` / `_file_containing_symbol`;
tests/e2e/test_tools.py checks that `grpcurl describe` shows the comments.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources
from typing import Any

import grpc
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection, reflection_pb2
from grpc_reflection.v1alpha._async import ReflectionServicer
from grpc_reflection.v1alpha.reflection_pb2_grpc import add_ServerReflectionServicer_to_server


def documented_files() -> dict[str, bytes]:
    """File name -> serialized FileDescriptorProto with source info."""
    data = resources.files("electd.v1").joinpath("descriptors.binpb").read_bytes()
    fds = descriptor_pb2.FileDescriptorSet.FromString(data)
    return {f.name: f.SerializeToString() for f in fds.file}


class DocumentedReflectionServicer(ReflectionServicer):  # type: ignore[misc]
    def __init__(self, service_names: Iterable[str], documented: dict[str, bytes]) -> None:
        super().__init__(service_names)
        self._documented = documented

    def _file_by_filename(self, request: Any, filename: str) -> Any:
        try:
            return self._respond(self._pool.FindFileByName(filename), request)
        except KeyError:
            return super()._file_by_filename(request, filename)

    def _file_containing_symbol(self, request: Any, symbol: str) -> Any:
        try:
            return self._respond(self._pool.FindFileContainingSymbol(symbol), request)
        except KeyError:
            return super()._file_containing_symbol(request, symbol)

    def _respond(self, descriptor: Any, request: Any) -> Any:
        files: dict[str, Any] = {}
        stack = [descriptor]
        while stack:  # the file and everything it imports, transitively
            fd = stack.pop()
            if fd.name not in files:
                files[fd.name] = fd
                stack.extend(fd.dependencies)
        blobs = []
        for name, fd in files.items():
            blob = self._documented.get(name)
            if blob is None:
                proto = descriptor_pb2.FileDescriptorProto()
                fd.CopyToProto(proto)
                blob = proto.SerializeToString()
            blobs.append(blob)
        return reflection_pb2.ServerReflectionResponse(
            file_descriptor_response=reflection_pb2.FileDescriptorResponse(
                file_descriptor_proto=blobs
            ),
            original_request=request,
        )


def enable(server: grpc.aio.Server, service_names: Iterable[str]) -> None:
    names = (*service_names, reflection.SERVICE_NAME)
    add_ServerReflectionServicer_to_server(
        DocumentedReflectionServicer(names, documented_files()), server
    )
