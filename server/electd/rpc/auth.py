"""Who is calling, what they may do, and how many streams they may hold: the node's
authorization policy and per-peer stream cap, as one grpc.aio server interceptor.

* The peer's **identities** come from its verified client certificate (mutual TLS): every URI
  and DNS subject alternative name, or, when the certificate has none of those, its common
  name. Without a verified certificate (plaintext, or TLS without --tls-client-ca) a peer has
  no identity and is known by its IP address only.
* Every method needs a **right**: `read` for GetLeader, ListNodes, WatchLeader,
  ListElections, health and reflection; `write` for every other method of electd's services
  (Campaign and Resign today), so that a method added later is a write until it is listed
  here as a read. A right with no patterns is open to every peer the transport admits; write with no
  patterns follows read's patterns (restricting readers never leaves writes open).
* A denied call: UNAUTHENTICATED when the right needs an identity and the peer has none,
  PERMISSION_DENIED naming the identity and the missing right otherwise.
* Streaming calls (WatchLeader, Campaign, health Watch, reflection) count against the peer's cap
  (its identity, else its IP): RESOURCE_EXHAUSTED beyond, so that one client cannot take every
  slot of the node's global --max-streams from the others.

Runs on the loop thread (interceptors and handlers of grpc.aio); knows nothing of znodes.
"""

from __future__ import annotations

import enum
import inspect
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import grpc

logger = logging.getLogger(__name__)


class Right(enum.Enum):
    READ = "read"
    WRITE = "write"


#: Methods that only read. Every other method of an electd service needs WRITE.
READ_METHODS = frozenset(
    {
        "/electd.v1.ElectionService/GetLeader",
        "/electd.v1.ElectionService/ListNodes",
        "/electd.v1.ElectionService/WatchLeader",
        "/electd.v1.ElectionService/ListElections",
    }
)
#: Services whose every method only reads.
READ_SERVICES = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)


def right_of(method: str) -> Right:
    """The right `method` ("/package.Service/Method") needs."""
    service = method.lstrip("/").rsplit("/", 1)[0]
    if method in READ_METHODS or service in READ_SERVICES:
        return Right.READ
    return Right.WRITE


class Pattern:
    """An identity pattern: the identity itself, or with `*` standing for any characters
    (`spiffe://example.org/ns/prod/*`, `*.clients.example.com`); `*` alone: any identity."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._re = re.compile("".join(".*" if p == "*" else re.escape(p) for p in _split(text)))

    def matches(self, identity: str) -> bool:
        return self._re.fullmatch(identity) is not None


def _split(text: str) -> list[str]:
    return [part for part in re.split(r"(\*)", text) if part]


@dataclass(frozen=True)
class Peer:
    """A caller: its verified identities (empty without a verified client certificate) and its
    address as grpc reports it (`ipv4:127.0.0.1:5123`)."""

    identities: tuple[str, ...]
    address: str

    @property
    def name(self) -> str:
        """The identity that messages name (the first URI SAN, else DNS SAN, else CN)."""
        return self.identities[0] if self.identities else ""

    @property
    def key(self) -> str:
        """What the per-peer stream cap counts by: the identity, else the IP address."""
        return f"id:{self.name}" if self.identities else f"ip:{host_of(self.address)}"

    def describe(self) -> str:
        return repr(self.name) if self.identities else f"unauthenticated {host_of(self.address)}"


def host_of(peer: str) -> str:
    """`ipv4:1.2.3.4:5` -> `1.2.3.4`, `ipv6:[::1]:5` -> `::1`; anything else as it is."""
    kind, _, rest = peer.partition(":")
    if kind not in ("ipv4", "ipv6"):
        return peer
    host = rest.rsplit(":", 1)[0]
    return host.strip("[]")


def peer_of(context: Any) -> Peer:
    """The peer of a call, from grpc's auth context. Only a verified certificate yields
    identities: grpc fills the x509 properties only after verifying the chain against
    --tls-client-ca."""
    auth = context.auth_context() or {}

    def values(prop: str) -> list[str]:
        return [v.decode("utf-8", "replace") for v in auth.get(prop, ()) if v]

    identities = values("peer_uri") + values("peer_dns") or values("x509_common_name")
    return Peer(tuple(dict.fromkeys(identities)), str(context.peer() or ""))


@dataclass(frozen=True)
class Policy:
    """Which identities hold which right. An empty `read` opens reading to every peer; an
    empty `write` means "as read"."""

    read: tuple[Pattern, ...] = ()
    write: tuple[Pattern, ...] = ()

    @classmethod
    def of(cls, read: Iterable[str], write: Iterable[str]) -> Policy:
        return cls(tuple(Pattern(p) for p in read), tuple(Pattern(p) for p in write))

    def patterns(self, right: Right) -> tuple[Pattern, ...]:
        if right is Right.WRITE and self.write:
            return self.write
        return self.read

    def check(self, peer: Peer, right: Right, method: str) -> tuple[grpc.StatusCode, str] | None:
        """None when `peer` may call `method`, else the status and message to answer with."""
        patterns = self.patterns(right)
        if not patterns:
            return None
        if not peer.identities:
            return (
                grpc.StatusCode.UNAUTHENTICATED,
                f"{method} needs the {right.value} right, which only verified client "
                f"identities can hold; {peer.describe()} presented no client certificate",
            )
        if any(p.matches(i) for p in patterns for i in peer.identities):
            return None
        flag = "--allow-write" if right is Right.WRITE and self.write else "--allow-read"
        return (
            grpc.StatusCode.PERMISSION_DENIED,
            f"client {peer.describe()} lacks the {right.value} right for {method} "
            f"(not matched by {flag})",
        )


_Handler = Callable[..., Any]


class GuardInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Checks every call against the policy, and counts each peer's open streams."""

    def __init__(self, policy: Policy, max_streams_per_peer: int) -> None:
        self._policy = policy
        self._cap = max_streams_per_peer
        self._streams: dict[str, int] = {}

    def open_streams(self, key: str) -> int:
        return self._streams.get(key, 0)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler  # UNIMPLEMENTED, as without the interceptor
        method = str(details.method)
        right = right_of(method)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._guard_unary(handler.unary_unary, method, right),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                self._guard_unary(handler.stream_unary, method, right),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._guard_stream(handler.unary_stream, method, right),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return grpc.stream_stream_rpc_method_handler(
            self._guard_stream(handler.stream_stream, method, right),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    async def _admit(self, context: Any, method: str, right: Right) -> Peer:
        peer = peer_of(context)
        denied = self._policy.check(peer, right, method)
        if denied is not None:
            logger.info("%s: %s", denied[0].name, denied[1])
            await context.abort(*denied)
        return peer

    def _guard_unary(self, inner: _Handler, method: str, right: Right) -> _Handler:
        async def unary(request: Any, context: Any) -> Any:
            await self._admit(context, method, right)
            return await inner(request, context)

        return unary

    def _guard_stream(self, inner: _Handler, method: str, right: Right) -> _Handler:
        """Streams: admitted, then counted against the peer's cap while they are open. The
        wrapper has the shape of `inner` (an async generator, or a coroutine that writes with
        `context.write`, like health's Watch): grpc.aio refuses to mix the two."""

        async def enter(context: Any) -> str:
            peer = await self._admit(context, method, right)
            key = peer.key
            held = self._streams.get(key, 0)
            if held >= self._cap:
                await context.abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"client {peer.describe()} already holds {held} streams on this node "
                    f"(--max-streams-per-peer); close some or ask another node",
                )
            self._streams[key] = held + 1
            return key

        def leave(key: str) -> None:
            left = self._streams[key] - 1
            if left:
                self._streams[key] = left
            else:
                del self._streams[key]

        if inspect.isasyncgenfunction(inner):

            async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
                key = await enter(context)
                try:
                    async for message in inner(request, context):
                        yield message
                finally:
                    leave(key)

            return stream

        async def writing(request: Any, context: Any) -> Any:
            key = await enter(context)
            try:
                return await inner(request, context)
            finally:
                leave(key)

        return writing
