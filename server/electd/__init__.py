"""electd: leader election and cluster membership over Apache ZooKeeper, served over gRPC.

Layout (each package's top comment says what it owns):
  engine/      the election state machine; imports neither kazoo nor grpc
  zk/          the only importer of kazoo: the ZooKeeper-backed store
  rpc/         the only server-side importer of grpc: servicers, health, reflection
  client/      the Python client library (grpc, generated code; nothing of the server)
  devcluster/  local ZooKeeper servers and node processes for `electd dev` and tests
  config.py    validated, frozen configuration
  app.py       wires ZooKeeper -> engine -> gRPC for one node
  cli.py       the command line; the only reader of argv and env
"""

__version__ = "0.1.0"
