"""One-shot ZooKeeper operations for the command line (`electd identity`): read and write the
election path's own data, where the cluster identity lives (engine/identity.py), and lock an
existing path down (`apply_acl`: the ACL of zk/security.py on the path and its children). A
short-lived kazoo client of its own, with the node's TLS and credentials (`client_options`);
errors become ZkAdminError with a message for the operator.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import (
    BadVersionError,
    KazooException,
    NoAuthError,
    NodeExistsError,
    NoNodeError,
)
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.security import ACL

from electd.zk import paths


class ZkAdminError(Exception):
    """The operation failed; the message says why."""


@dataclass
class AclReport:
    """What `apply_acl` did: `acl` is set on `path`; its children by outcome."""

    path: str
    acl: list[ACL]
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # NoAuth: another identity's ACL

    def doc(self) -> dict[str, Any]:
        """For the operator, as JSON; digest ids without their hash."""
        return {
            "path": self.path,
            "acl": [
                f"{a.id.scheme}:{a.id.id.split(':', 1)[0]}={','.join(a.acl_list)}" for a in self.acl
            ],
            "children_changed": len(self.changed),
            "children_unchanged": len(self.unchanged),
            "children_refused": self.refused,
        }


class ZkAdmin:
    def __init__(
        self,
        hosts: str,
        path: str,
        timeout: float,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._path = path
        self._timeout = timeout
        self._client = KazooClient(hosts=hosts, timeout=timeout, **(client_options or {}))
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

    def apply_acl(self, acl: Sequence[ACL]) -> AclReport:
        """Set `acl` on the election path and on every znode under it (ZooKeeper ACLs are per
        znode). Refuses, changing nothing, while an entry of a live session lacks every digest
        identity of `acl`: its node runs without these credentials, and once the path is locked
        it could neither register again nor leave. Entries made with the credentials have the
        ACL already; the others (and anything foreign) get it here."""
        wanted = list(acl)
        ours = {a.id for a in wanted if a.id.scheme == "digest"}
        try:
            children = self._client.get_children_async(self._path).get(timeout=self._timeout)
            current: dict[str, tuple[list[ACL], Any]] = {}
            for name in sorted(children):
                try:
                    current[name] = self._client.get_acls_async(paths.join(self._path, name)).get(
                        timeout=self._timeout
                    )
                except NoNodeError:
                    continue
            if ours:
                strangers = [
                    name
                    for name, (found, stat) in current.items()
                    if paths.parse_name(name) is not None
                    and int(stat.ephemeralOwner) != 0
                    and not ours & {a.id for a in found}
                ]
                if strangers:
                    raise ZkAdminError(
                        f"{len(strangers)} entries under {self._path} belong to nodes running "
                        f"without these credentials ({', '.join(strangers[:5])}"
                        f"{', ...' if len(strangers) > 5 else ''}): restart every node with "
                        "--zk-auth-file first (a rolling restart), then run this again"
                    )
            report = AclReport(self._path, wanted)
            for name, (found, _) in current.items():
                if sorted(found) == sorted(wanted):
                    report.unchanged.append(name)
                    continue
                try:
                    self._client.set_acls_async(paths.join(self._path, name), wanted).get(
                        timeout=self._timeout
                    )
                    report.changed.append(name)
                except NoAuthError:
                    report.refused.append(name)
                except NoNodeError:
                    continue
            self._client.set_acls_async(self._path, wanted).get(timeout=self._timeout)
        except NoNodeError:
            raise ZkAdminError(f"{self._path} does not exist") from None
        except NoAuthError:
            raise ZkAdminError(
                f"not allowed to change the ACL of {self._path}: its ACL gives ADMIN to other "
                "identities than these credentials"
            ) from None
        except (KazooException, KazooTimeoutError) as exc:
            raise ZkAdminError(f"cannot set the ACL of {self._path}: {exc!r}") from None
        return report
