"""The server's name for the Python client library: a thin re-export of `electd_client` (the
client-only distribution in clients/python, installed with the server), so that
`electd leader|nodes|watch|top`, `electd dev`, tests and benchmarks keep `electd.client`.

The library itself, its contract and its asyncio twin (`electd_client.aio`) live in
clients/python/electd_client; see clients/python/README.md.
"""

from __future__ import annotations

from electd_client import *  # noqa: F403
from electd_client import (
    CALL_TIMEOUT,
    CONNECT_TIMEOUT,
    FAILOVER_CODES,
    FIRST_MESSAGE_TIMEOUT,
    KEEPALIVE_TIME,
    KEEPALIVE_TIMEOUT,
    Backoff,
    ElectdError,
    ElectionClient,
    FailoverHook,
    LeaderWatch,
    channel_options,
    pb,
    probe,
    validate_address,
    wait_for_leader,
)

__all__ = [
    "CALL_TIMEOUT",
    "CONNECT_TIMEOUT",
    "FAILOVER_CODES",
    "FIRST_MESSAGE_TIMEOUT",
    "KEEPALIVE_TIME",
    "KEEPALIVE_TIMEOUT",
    "Backoff",
    "ElectdError",
    "ElectionClient",
    "FailoverHook",
    "LeaderWatch",
    "channel_options",
    "pb",
    "probe",
    "validate_address",
    "wait_for_leader",
]
