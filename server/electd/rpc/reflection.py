"""Server reflection that serves electd's .proto files with their comments.

protoc's Python output embeds descriptors without SourceCodeInfo, so the stock reflection
service would show grpcurl bare signatures. scripts/gen-proto.sh also writes
electd/v1/descriptors.binpb, a descriptor set that keeps the comments; for the files in it we
serve those bytes, for any other file (google/protobuf/*, health, reflection) the stock answer.
Relies on grpcio-reflection's servicer hooks `_file_by_filename` / `_file_containing_symbol`;
tests/e2e/test_tools.py checks that `grpcurl describe` shows the comments.

grpcio-reflection ships only `grpc.reflection.v1alpha`; newer tools ask
`grpc.reflection.v1.ServerReflection` first. The two protocols are the same messages under
another package name (same fields, same numbers, so the same bytes on the wire), so the one
servicer also answers on the v1 method, and a v1 copy of the descriptor (package renamed) is
added to the pool so that the v1 service can be described too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from importlib import resources
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
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


V1_SERVICE_NAME = "grpc.reflection.v1.ServerReflection"
_V1ALPHA_PACKAGE, _V1_PACKAGE = "grpc.reflection.v1alpha", "grpc.reflection.v1"


def _add_v1_descriptor() -> None:
    """Add grpc/reflection/v1/reflection.proto to the default pool: v1alpha's, renamed."""
    pool = descriptor_pool.Default()
    with contextlib.suppress(KeyError):
        pool.FindFileByName("grpc/reflection/v1/reflection.proto")
        return  # already there (another import, or a second server in this process)
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)
    proto.name = "grpc/reflection/v1/reflection.proto"
    proto.package = _V1_PACKAGE
    old, new = f".{_V1ALPHA_PACKAGE}.", f".{_V1_PACKAGE}."
    for message in proto.message_type:
        for f in message.field:
            if f.type_name.startswith(old):
                f.type_name = new + f.type_name[len(old) :]
    for service in proto.service:
        for method in service.method:
            method.input_type = new + method.input_type[len(old) :]
            method.output_type = new + method.output_type[len(old) :]
    pool.Add(proto)


def enable(server: grpc.aio.Server, service_names: Iterable[str]) -> None:
    """Serve reflection (v1 and v1alpha) for these services and for itself."""
    _add_v1_descriptor()
    names = (*service_names, reflection.SERVICE_NAME, V1_SERVICE_NAME)
    servicer = DocumentedReflectionServicer(names, documented_files())
    add_ServerReflectionServicer_to_server(servicer, server)
    v1 = grpc.method_handlers_generic_handler(
        V1_SERVICE_NAME,
        {
            "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
                servicer.ServerReflectionInfo,
                request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
                response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
            )
        },
    )
    server.add_generic_rpc_handlers((v1,))
