"""A grpc.aio server interceptor that reports every finished call (method, status code, and
for unary calls the time taken) to a callback: how the node's Prometheus metrics (ops/) see
the RPCs without ops/ importing grpc. Runs on the loop thread."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

Observer = Callable[[str, str, float | None], None]


class ObservingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, observe: Observer) -> None:
        self._observe = observe

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        method = str(details.method).rsplit("/", 1)[-1]
        observe = self._observe
        if handler.unary_unary is not None:
            inner_unary = handler.unary_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                start = time.perf_counter()
                code = "UNKNOWN"
                try:
                    response = await inner_unary(request, context)
                    code = _code(context, "OK")
                    return response
                except BaseException:
                    code = _code(context, "UNKNOWN")
                    raise
                finally:
                    observe(method, code, time.perf_counter() - start)

            return grpc.unary_unary_rpc_method_handler(
                unary,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None and inspect.isasyncgenfunction(handler.unary_stream):
            # (health's Watch is a coroutine that writes with context.write: not observed)
            inner_stream = handler.unary_stream

            async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                code = "UNKNOWN"
                try:
                    async for message in inner_stream(request, context):
                        yield message
                    code = _code(context, "OK")
                except BaseException as exc:
                    cancelled = isinstance(exc, GeneratorExit | asyncio.CancelledError)
                    code = "CANCELLED" if cancelled else _code(context, "UNKNOWN")
                    raise
                finally:
                    observe(method, code, None)

            return grpc.unary_stream_rpc_method_handler(
                stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler  # other shapes (health's, reflection's) are not observed


def _code(context: grpc.aio.ServicerContext, default: str) -> str:
    """The status the handler set (abort or set_code), else `default`."""
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    if isinstance(code, int) and code != 0:  # grpc.aio reports the number
        return next((c.name for c in grpc.StatusCode if c.value[0] == code), default)
    return default
