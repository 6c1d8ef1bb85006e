"""The suite's network: every link that a fault can cut is a fault-injecting TCP proxy.

Owns one `tests.support.tcpproxy.TcpProxy` per directed link and kind:
  * ZooKeeper server i -> server j, for the quorum port and the election port (the ensemble is
    started with `ZooKeeperCluster.route` pointing at these proxies), and
  * electd node n -> ZooKeeper server j, for the client port (the node's connect string lists its
    three proxies).
Endpoints are named "zk1".."zk3" and by node id. `cut(a, b)` blocks every link between two
endpoints, both ways: bytes are silently held, nothing is reset, new connections hang, exactly
like packets dropped by a firewall; `heal` lets them flow again. `divert(address)` points every
node's client links at another ZooKeeper (one server address) instead, as if --zk now resolved to
a different ensemble; `divert(None)` points them home again.

Why proxies and not network namespaces: a namespace partition needs a silent drop between
veths (iptables/nftables or tc netem), which a fresh CI machine does not have (here: no
iptables, no nft), while `ip link set down` fails fast instead of dropping; and namespaces
need non-loopback addresses and leak on a crash of the test process. The proxies stay on
127.0.0.1, cut any single directed link, and die with the process.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterable

from electd.devcluster.zookeeper import ZooKeeperCluster
from tests.support.tcpproxy import TcpProxy


class RawProxy(TcpProxy):
    """A TcpProxy for links between ZooKeeper servers. Two differences:
    * bytes are forwarded as they come both ways (TcpProxy reads the client -> server
      direction as ZooKeeper client frames, for `cut_after`; the servers' quorum and
      election protocols are framed differently);
    * the upstream connect is retried for up to CONNECT_RETRY. The proxy accepts a
      connection before it can know whether the server listens; a newly elected ZooKeeper
      leader opens its quorum port a few milliseconds after it decides, and a follower that
      is accepted and then reset gives up following, while over a real network it is
      refused and simply retries (otherwise the leader waits out initLimit ticks)."""

    CONNECT_RETRY = 1.0

    def _pump_requests(
        self, src: socket.socket, dst: socket.socket, state: dict[str, bool]
    ) -> None:
        self._pump(src, dst, state)

    def _serve(self, client: socket.socket) -> None:
        self._gate.wait()
        deadline = time.monotonic() + self.CONNECT_RETRY
        while True:
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline:
                    client.close()
                    return
                time.sleep(0.01)  # retry pacing, like a SYN retransmit
        server.settimeout(None)
        for sock in (client, server):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._conns.append((client, server))
            self.connections += 1
        state = {"cut": False}
        for src, dst in ((client, server), (server, client)):
            threading.Thread(target=self._pump, args=(src, dst, state), daemon=True).start()


class Network:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._links: dict[tuple[str, str, str], TcpProxy] = {}
        self._home: dict[tuple[str, str, str], int] = {}  # the port each link was built for
        self._cut: set[frozenset[str]] = set()
        self._diverted: tuple[str, int] | None = None

    # ----- building ------------------------------------------------------------------------

    def _link(self, src: str, dst: str, kind: str, port: int) -> TcpProxy:
        with self._lock:
            key = (src, dst, kind)
            proxy = self._links.get(key)
            if proxy is None or self._home.get(key) != port:
                if proxy is not None:
                    proxy.close()
                proxy = (TcpProxy if kind == "client" else RawProxy)("127.0.0.1", port)
                self._links[key], self._home[key] = proxy, port
                if kind == "client" and self._diverted is not None:
                    proxy.retarget(*self._diverted)
            if frozenset((src, dst)) in self._cut:
                proxy.block()
            return proxy

    def zk_route(self, src: int, dst: int, kind: str, port: int) -> int:
        """`ZooKeeperCluster.route`: server `src` dials server `dst` through a proxy."""
        return self._link(f"zk{src}", f"zk{dst}", kind, port).port

    def client_hosts(self, node_id: str, zk: ZooKeeperCluster) -> str:
        """The connect string for `node_id`: one proxy per ZooKeeper server."""
        return ",".join(
            self._link(node_id, f"zk{s.myid}", "client", s.client_port).address for s in zk.servers
        )

    # ----- faults ---------------------------------------------------------------------------

    def cut(self, a: str, b: str) -> None:
        pair = frozenset((a, b))
        with self._lock:
            self._cut.add(pair)
            links = [p for (s, d, _), p in self._links.items() if frozenset((s, d)) == pair]
        for proxy in links:
            proxy.block()

    def heal(self, a: str, b: str) -> None:
        pair = frozenset((a, b))
        with self._lock:
            self._cut.discard(pair)
            links = [p for (s, d, _), p in self._links.items() if frozenset((s, d)) == pair]
        for proxy in links:
            proxy.unblock()

    def isolate(self, name: str, others: Iterable[str]) -> None:
        for other in others:
            if other != name:
                self.cut(name, other)

    def rejoin(self, name: str, others: Iterable[str]) -> None:
        for other in others:
            if other != name:
                self.heal(name, other)

    def heal_all(self) -> None:
        with self._lock:
            self._cut.clear()
            links = list(self._links.values())
        for proxy in links:
            proxy.unblock()

    def divert(self, address: tuple[str, int] | None) -> None:
        """Point every node's client links at `address` (host, port): new connections go there
        and the open ones are reset. None: back to each link's own ZooKeeper server."""
        with self._lock:
            self._diverted = address
            links = [(k, p) for k, p in self._links.items() if k[2] == "client"]
        # Every link points elsewhere before any connection is reset: a node whose connection
        # is reset must not reconnect through a link that still leads to the old ensemble.
        for key, proxy in links:
            proxy.retarget(*(address or ("127.0.0.1", self._home[key])), drop=False)
        for _, proxy in links:
            proxy.drop()

    def cuts(self) -> list[tuple[str, str]]:
        with self._lock:
            return sorted(tuple(sorted(p)) for p in self._cut)  # type: ignore[misc]

    def forget(self, endpoint: str) -> None:
        """Close the links of an endpoint that is gone for good (a node that left)."""
        with self._lock:
            keys = [k for k in self._links if endpoint in (k[0], k[1])]
            links = [self._links.pop(k) for k in keys]
            for k in keys:
                self._home.pop(k, None)
        for proxy in links:
            proxy.close()

    def close(self) -> None:
        with self._lock:
            links, self._links = list(self._links.values()), {}
            self._home.clear()
        for proxy in links:
            proxy.close()
