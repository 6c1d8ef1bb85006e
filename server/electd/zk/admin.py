"""One-shot ZooKeeper operations for the command line (`electd identity`): read and write the
election path's own data, where the cluster identity lives (engine/identity.py). A short-lived
kazoo client of its own; errors become ZkAdminError with a message for the operator.
"""

from __future__ import annotations

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, KazooException, NodeExistsError, NoNodeError
from kazoo.handlers.threading import KazooTimeoutError


class ZkAdminError(Exception):
    """The operation failed; the message says why."""


class ZkAdmin:
    def __init__(self, hosts: str, path: str, timeout: float) -> None:
        self._path = path
        self._timeout = timeout
        self._client = KazooClient(hosts=hosts, timeout=timeout)
        try:
            self._client.start(timeout=timeout)
        except KazooTimeoutError:
            self._client.close()
            raise ZkAdminError(f"no ZooKeeper server reachable at {hosts!r}") from None

    def __enter__(self) -> ZkAdmin:
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.stop()
        self._client.close()

    def read(self) -> tuple[bytes, int] | None:
        """The election path's data and data version, or None if the path does not exist."""
        try:
            data, stat = self._client.get_async(self._path).get(timeout=self._timeout)
        except NoNodeError:
            return None
        except (KazooException, KazooTimeoutError) as exc:
            raise ZkAdminError(f"cannot read {self._path}: {exc!r}") from None
        return data or b"", int(stat.version)

    def write(self, data: bytes, version: int | None) -> None:
        """Set the path's data if its data version is still `version` (None: create the path
        with it). Raises ZkAdminError if someone changed it meanwhile."""
        try:
            if version is None:
                self._client.create_async(self._path, data, makepath=True).get(
                    timeout=self._timeout
                )
            else:
                self._client.set_async(self._path, data, version).get(timeout=self._timeout)
        except (BadVersionError, NodeExistsError):
            raise ZkAdminError(f"{self._path} changed meanwhile; run the command again") from None
        except (KazooException, KazooTimeoutError) as exc:
            raise ZkAdminError(f"cannot write {self._path}: {exc!r}") from None
