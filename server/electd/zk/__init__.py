"""ZooKeeper backend: the only package that imports kazoo. Knows nothing about gRPC.

`ZkSession` (session_client.py) is one session of this process, shared by every election on
it; `ZkStore` (store.py) is the engine's store for one election path on a session. `session.py`
serves the supervisor, which must not load the engine: so both are imported on first use, not
with the package."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from electd.zk.session_client import ZkSession
    from electd.zk.store import ZkStore

__all__ = ["ZkSession", "ZkStore"]


def __getattr__(name: str) -> Any:
    if name == "ZkStore":
        from electd.zk.store import ZkStore

        return ZkStore
    if name == "ZkSession":
        from electd.zk.session_client import ZkSession

        return ZkSession
    raise AttributeError(name)
