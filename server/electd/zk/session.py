"""Ending another process's ZooKeeper session: the supervisor's crash failover.

When a node process dies, its session would live on until ZooKeeper expires it (the session
timeout), and with it the dead node's ephemeral entry. The supervisor, which holds the dead
process's session id and password in memory (never on disk, in argv or in a log), resumes that
session from a new connection and closes it: ZooKeeper deletes its ephemeral znodes in the close
transaction, and the successor leads in milliseconds. Safe only once the process that owned the
session cannot act any more (it was reaped) and the leader command is dead: the caller's duty.

Imports kazoo (this package is the only one that does); called on the supervisor's thread.
"""

from __future__ import annotations

import logging

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.retry import KazooRetry

from electd.credentials import CredentialsError
from electd.zk.security import ZkSecuritySettings, client_options

logger = logging.getLogger(__name__)


def close_session(
    hosts: str,
    session_id: int,
    password: bytes,
    timeout: float,
    security: ZkSecuritySettings | None = None,
) -> bool:
    """Resume session `session_id` and close it; True once ZooKeeper has closed it (or it had
    expired already), False when no server answered within `timeout` (the session then ends
    by ZooKeeper's own expiry, as if the supervisor were not there). `security`: the node's
    ZooKeeper settings (TLS; closing a session needs no ACL, but the secure port needs TLS)."""
    try:
        options = client_options(security)
    except CredentialsError as exc:
        logger.warning("cannot close session 0x%x: %s", session_id, exc)
        return False
    options.pop("default_acl", None)  # creates nothing
    client = KazooClient(
        hosts=hosts,
        client_id=(session_id, password),
        timeout=timeout,
        connection_retry=KazooRetry(max_tries=3, delay=0.02, backoff=2, max_delay=0.2),
        logger=logging.getLogger("kazoo.client"),
        **options,
    )
    try:
        client.start(timeout=timeout)
    except (KazooTimeoutError, KazooException) as exc:
        logger.warning("could not reach ZooKeeper to close session 0x%x: %s", session_id, exc)
        client.close()
        return False
    try:
        resumed = client.client_id is not None and int(client.client_id[0]) == session_id
        client.stop()  # sends closeSession: ZooKeeper deletes the session's ephemeral znodes
        if not resumed:
            logger.info("session 0x%x had expired already", session_id)
        return True
    finally:
        client.close()
