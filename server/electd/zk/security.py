"""How electd's kazoo clients talk to ZooKeeper securely: TLS options, digest authentication and
the ACL of every znode electd creates, built from the settings (config/security.py's
`ZkSecurityConfig`, seen here through the `ZkSecuritySettings` Protocol: zk/ never imports
config/). The one place for it: ZkSession (the node's session, zk/session_client.py),
zk/admin.py (`electd identity`) and zk/session.py (the supervisor closing a dead node's
session) all call `client_options`.

ACL layout (ZooKeeper ACLs are per znode and not inherited): the election path, its identity
(the path's own data) and every entry and companion get the same list, set through kazoo's
`default_acl` on every create, including the parents `ensure_path` creates. With credentials:
each digest identity of the credentials file has every right (CREATE and DELETE on the path are
what govern its children); `world-read` adds READ for anyone, `private` nothing; `open` (and no
credentials at all) is ZooKeeper's OPEN_ACL_UNSAFE. `lock_acl` is what `electd identity
--apply-acl` sets on a path that exists already.

The credentials file is read each time a client is made (a rotated password reaches the node at
its next restart); the TLS files are read by kazoo at each new connection. Nothing secret is
logged: kazoo logs every request it sends at DEBUG, its Auth packet (the password) included, so
a filter on kazoo's logger blanks every password this process uses. Called on whichever thread
makes the client.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any, Protocol

from kazoo.security import ACL, OPEN_ACL_UNSAFE, make_acl, make_digest_acl

from electd.credentials import Credential, read

logger = logging.getLogger(__name__)

_said = threading.Lock()
_said_already: set[str] = set()


class ZkSecuritySettings(Protocol):
    """What this module reads of the config (config/security.py's ZkSecurityConfig)."""

    @property
    def zk_tls_ca(self) -> str | None: ...
    @property
    def zk_tls_cert(self) -> str | None: ...
    @property
    def zk_tls_key(self) -> str | None: ...
    @property
    def zk_auth_file(self) -> str | None: ...
    @property
    def zk_acl_mode(self) -> str: ...


def credentials(settings: ZkSecuritySettings | None) -> tuple[Credential, ...]:
    """electd's digest identities (none without --zk-auth-file). Raises CredentialsError."""
    if settings is None or settings.zk_auth_file is None:
        return ()
    return read(settings.zk_auth_file)


def acl_for(creds: tuple[Credential, ...], mode: str) -> list[ACL]:
    """The ACL of every znode electd creates, for these identities and --zk-acl mode."""
    if not creds or mode == "open":
        return list(OPEN_ACL_UNSAFE)
    acl = [make_digest_acl(c.user, c.password, all=True) for c in creds]
    if mode == "world-read":
        acl.append(make_acl("world", "anyone", read=True))
    return acl


def lock_acl(settings: ZkSecuritySettings) -> list[ACL]:
    """The ACL `electd identity --apply-acl` sets (the same as `client_options` creates with)."""
    return acl_for(credentials(settings), settings.zk_acl_mode)


def client_options(settings: ZkSecuritySettings | None) -> dict[str, Any]:
    """KazooClient keyword arguments for these settings: TLS (server certificate and name
    verified: kazoo's check_hostname is off by default), digest `auth_data`, `default_acl`."""
    if settings is None:
        return {}
    options: dict[str, Any] = {}
    tls = settings.zk_tls_ca is not None
    if tls:
        options.update(
            use_ssl=True,
            ca=settings.zk_tls_ca,
            verify_certs=True,
            check_hostname=True,
        )
        if settings.zk_tls_cert is not None and settings.zk_tls_key is not None:
            options.update(certfile=settings.zk_tls_cert, keyfile=settings.zk_tls_key)
    creds = credentials(settings)
    mode = settings.zk_acl_mode
    if creds:
        _REDACT.keep_out(c.password for c in creds)
        options["auth_data"] = [("digest", c.auth) for c in creds]
    options["default_acl"] = acl_for(creds, mode)
    users = ",".join(c.user for c in creds) or "-"
    _once(
        f"zk tls={tls} users={users} acl={mode}",
        logging.INFO,
        "ZooKeeper: TLS %s, authenticated as %s (digest), ACL of new znodes: %s",
        "on" if tls else "off",
        users if creds else "nobody",
        mode,
    )
    if creds and not tls:
        _once(
            "zk cleartext",
            logging.WARNING,
            "ZooKeeper credentials are sent in clear text (digest scheme without TLS): "
            "add --zk-tls-ca (SECURITY.md)",
        )
    return options


class _Redact(logging.Filter):
    """Blanks the passwords in kazoo's log records (its DEBUG "Sending request ... Auth(...)")."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: frozenset[str] = frozenset()
        self._installed = False

    def keep_out(self, secrets: Iterable[str]) -> None:
        with _said:
            self._secrets = self._secrets | frozenset(secrets)
            if not self._installed:
                self._installed = True
                # Every kazoo client here logs through this logger (kazoo's default, and the
                # one ZkSession and session.py pass), its connection handler included.
                logging.getLogger("kazoo.client").addFilter(self)

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = self._secrets
        if not secrets:
            return True
        text = record.getMessage()
        if any(secret in text for secret in secrets):
            for secret in secrets:
                text = text.replace(secret, "<redacted>")
            record.msg, record.args = text, None
        return True


_REDACT = _Redact()


def _once(key: str, level: int, msg: str, *args: object) -> None:
    """Log once per process (a node makes one client, the supervisor one per crash)."""
    with _said:
        if key in _said_already:
            return
        _said_already.add(key)
    logger.log(level, msg, *args)
