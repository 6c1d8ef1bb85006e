#!/usr/bin/env bash
# The one command that regenerates the Python code for the API:
#   proto/electd/v1/*.proto  ->  server/electd/v1/*_pb2.py, *_pb2_grpc.py, *.pyi
#   and server/electd/v1/descriptors.binpb: the descriptor set *with* source info (comments),
#   which the server's reflection serves so that `grpcurl describe` shows the documentation.
# Uses the pinned grpcio-tools and mypy-protobuf from the project venv.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-$root/.venv/bin/python}
out=$root/server
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
