#!/usr/bin/env bash
# The one command that regenerates the Python code for the API:
#   proto/electd/v1/*.proto  ->  server/electd/v1/*_pb2.py, *_pb2_grpc.py, *.pyi
#   and server/electd/v1/descriptors.binpb: the descriptor set *with* source info (comments),
#   which the server's reflection serves so that `grpcurl describe` shows the documentation;
#   and the same modules for the client-only distribution, clients/python/electd_client/v1/:
#   a copy whose absolute imports name `electd_client.v1` instead of `electd.v1`. The
#   serialized descriptors stay byte-identical (the .proto file is still electd/v1/...), so
#   with protobuf's upb backend both copies share one descriptor and the same message classes
#   in one process (tests/unit/test_client_gen.py checks it).
# Uses the pinned grpcio-tools and mypy-protobuf from the project venv.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-$root/.venv/bin/python}
out=$root/server
client=$root/clients/python/electd_client/v1
rm -f "$out"/electd/v1/*_pb2*.py "$out"/electd/v1/*_pb2*.pyi "$out"/electd/v1/*.binpb
"$py" -m grpc_tools.protoc \
  -I "$root/proto" \
  --python_out="$out" \
  --grpc_python_out="$out" \
  --plugin=protoc-gen-mypy="$(dirname "$py")/protoc-gen-mypy" \
  --mypy_out="$out" \
  --include_source_info \
  --descriptor_set_out="$out/electd/v1/descriptors.binpb" \
  "$root"/proto/electd/v1/*.proto
touch "$out/electd/v1/__init__.py"

# The client's copy: same files (not the reflection descriptor set), two rewrites only.
mkdir -p "$client"
rm -f "$client"/*_pb2*.py "$client"/*_pb2*.pyi
for src in "$out"/electd/v1/*_pb2*.py "$out"/electd/v1/*_pb2*.pyi; do
  sed -e 's/^from electd\.v1 import /from electd_client.v1 import /' \
    -e "s/^\(_builder\.BuildTopDescriptorsAndMessages(DESCRIPTOR, \)'electd\.v1\./\1'electd_client.v1./" \
    "$src" >"$client/$(basename "$src")"
done
touch "$client/__init__.py"
