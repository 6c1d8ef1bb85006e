"""ZooKeeper backend: the only package that imports kazoo. Knows nothing about gRPC."""

from electd.zk.store import ZkStore

__all__ = ["ZkStore"]
