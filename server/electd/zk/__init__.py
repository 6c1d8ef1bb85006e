"""ZooKeeper backend: the only package that imports kazoo. Knows nothing about gRPC.

`ZkStore` (store.py) is the engine's store; `session.py` serves the supervisor, which must not
load the engine: so `ZkStore` is imported on first use, not with the package."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from electd.zk.store import ZkStore

__all__ = ["ZkStore"]


def __getattr__(name: str) -> Any:
    if name == "ZkStore":
        from electd.zk.store import ZkStore

        return ZkStore
    raise AttributeError(name)
