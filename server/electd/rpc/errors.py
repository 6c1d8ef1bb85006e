"""Our errors -> gRPC status codes: the one mapping table, applied at the servicer boundary.

An exception that is not in the table is a bug: it is logged with its traceback once and
answered with INTERNAL (never the UNKNOWN that grpc would send by itself).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

from electd.elections import (
    AlreadyCampaigning,
    BadName,
    NoLeader,
    StaleEpoch,
    TooManyCandidates,
)
from electd.engine import CoordinatorUnavailable

logger = logging.getLogger(__name__)


class InvalidArgument(Exception):
    """A request field is invalid; the message names the field."""


class NotVouching(Exception):
    """The node cannot vouch for a leader right now (no session, lease expired, not joined)."""


class TooManyStreams(Exception):
    """The node's cap on concurrent WatchLeader streams is reached."""


class NoSuchLeader(Exception):
    """A named election has no leader now (GetLeader of a vacant election)."""


class ShuttingDown(Exception):
    """The node is shutting down: campaign (or ask) through another node."""


class CandidateTimeout(Exception):
    """A candidate sent no request for --candidate-timeout."""


class CandidateNotReading(Exception):
    """A candidate leaves its responses unread while more keep coming."""


STATUS_CODES: list[tuple[type[BaseException], grpc.StatusCode]] = [
    (InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (BadName, grpc.StatusCode.INVALID_ARGUMENT),
    (NotVouching, grpc.StatusCode.UNAVAILABLE),
    (ShuttingDown, grpc.StatusCode.UNAVAILABLE),
    (CoordinatorUnavailable, grpc.StatusCode.UNAVAILABLE),
    (TooManyStreams, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (TooManyCandidates, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (CandidateNotReading, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (AlreadyCampaigning, grpc.StatusCode.ALREADY_EXISTS),
    (NoLeader, grpc.StatusCode.NOT_FOUND),
    (NoSuchLeader, grpc.StatusCode.NOT_FOUND),
    (StaleEpoch, grpc.StatusCode.FAILED_PRECONDITION),
    (CandidateTimeout, grpc.StatusCode.DEADLINE_EXCEEDED),
    # A ZooKeeper read on a worker thread that did not finish in time (asyncio.wait_for).
    (TimeoutError, grpc.StatusCode.UNAVAILABLE),
]


def status_for(exc: BaseException) -> grpc.StatusCode | None:
    for kind, code in STATUS_CODES:
        if isinstance(exc, kind):
            return code
    return None


async def _abort(context: grpc.aio.ServicerContext[Any, Any], exc: Exception, rpc: str) -> None:
    code = status_for(exc)
    if code is None:
        logger.exception("bug: unhandled error in %s", rpc)
        await context.abort(grpc.StatusCode.INTERNAL, f"internal error in {rpc}: {exc!r}")
        return
    logger.debug("%s -> %s: %s", rpc, code.name, exc)
    await context.abort(code, str(exc))


_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")
_Self = TypeVar("_Self")


def unary_boundary(
    fn: Callable[[_Self, _Req, Any], Awaitable[_Resp]],
) -> Callable[[_Self, _Req, Any], Awaitable[_Resp]]:
    @functools.wraps(fn)
    async def wrapper(self: _Self, request: _Req, context: Any) -> _Resp:
        try:
            return await fn(self, request, context)
        except Exception as exc:  # the servicer boundary: every error gets its status code
            await _abort(context, exc, fn.__name__)
            raise AssertionError("unreachable: abort raises") from exc

    return wrapper


def stream_boundary(
    fn: Callable[[_Self, _Req, Any], AsyncGenerator[_Resp]],
) -> Callable[[_Self, _Req, Any], AsyncGenerator[_Resp]]:
    @functools.wraps(fn)
    async def wrapper(self: _Self, request: _Req, context: Any) -> AsyncGenerator[_Resp]:
        try:
            # Closed with the wrapper (a cancelled call): the stream's own cleanup runs now.
            async with contextlib.aclosing(fn(self, request, context)) as items:
                async for item in items:
                    yield item
        except Exception as exc:  # noqa: BLE001 - the servicer boundary: every error gets its code
            await _abort(context, exc, fn.__name__)

    return wrapper
