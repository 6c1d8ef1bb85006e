#!/bin/sh
# Nothing to compile: the Python client is the electd-client distribution in this folder
# (import electd_client), installed editable into the project virtualenv by `make bootstrap`;
# its generated code electd_client/v1 comes from scripts/gen-proto.sh. This checks it imports.
set -e
here=$(cd "$(dirname "$0")" && pwd)
exec "$here/../../.venv/bin/python" -c "import electd_client, electd_client.aio, electd_client.v1.election_service_pb2"
