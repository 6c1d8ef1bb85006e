"""`electd top`: a live view of the cluster in the terminal (rich), a client of the public API
only (electd.client: ListNodes, GetLeader on every member, WatchLeader, grpc.health.v1)."""
