"""Operability: Prometheus metrics and the HTTP listener (probes, a JSON view, /metrics).

Reads the node's state through `NodeStatus` (callables app.py hands in: the engine's view, its
stats, the lease, the member listing, the stream count, the leader command), exactly as the gRPC
side does, and knows nothing about znodes. Imports neither kazoo nor grpc: RPC metrics arrive
through the callback `Metrics.observe_rpc`, which rpc/ calls from its interceptor.
"""
