#!/bin/sh
# Nothing to compile: the Python client is `electd.client` in the electd package, and its
# generated code is server/electd/v1 (scripts/gen-proto.sh). This only checks it imports.
here=$(cd "$(dirname "$0")" && pwd)
exec "$here/../../.venv/bin/python" -c "import electd.client, electd.v1.election_service_pb2"
