"""Our errors -> gRPC status codes: the one mapping table, applied at the servicer boundary.

An exception that is not in the table is a bug: it is logged with its traceback once and
answered with INTERNAL (never the UNKNOWN that grpc would send by itself).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

from electd.engine import CoordinatorUnavailable

logger = logging.getLogger(__name__)


class InvalidArgument(Exception):
    """A request field is invalid; the message names the field."""


class NotVouching(Exception):
    """The node cannot vouch for a leader right now (no session, lease expired, not joined)."""


class TooManyStreams(Exception):
    """The node's cap on concurrent WatchLeader streams is reached."""


STATUS_CODES: list[tuple[type[BaseException], grpc.StatusCode]] = [
    (InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (NotVouching, grpc.StatusCode.UNAVAILABLE),
    (CoordinatorUnavailable, grpc.StatusCode.UNAVAILABLE),
    (TooManyStreams, grpc.StatusCode.RESOURCE_EXHAUSTED),
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
    fn: Callable[[_Self, _Req, Any], AsyncIterator[_Resp]],
) -> Callable[[_Self, _Req, Any], AsyncIterator[_Resp]]:
    @functools.wraps(fn)
    async def wrapper(self: _Self, request: _Req, context: Any) -> AsyncIterator[_Resp]:
        try:
            async for item in fn(self, request, context):
                yield item
        except Exception as exc:  # noqa: BLE001 - the servicer boundary: every error gets its code
            await _abort(context, exc, fn.__name__)

    return wrapper
