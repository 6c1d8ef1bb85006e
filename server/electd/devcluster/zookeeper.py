"""Real Apache ZooKeeper servers as child processes: standalone or a 3-server ensemble.

Used by `electd dev`, the tests, the benchmarks and the fault suite; never a mock. Finds the
jars installed by scripts/bootstrap.sh (Debian's `zookeeper` package, /usr/share/java) or the
classpath in $ELECTD_ZK_CLASSPATH. Imports neither kazoo nor grpc: readiness is checked with
ZooKeeper's `srvr` four-letter command over a plain socket (over TLS for a TLS-only server).

A standalone server can serve TLS (`ServerTls`): a `secureClientPort` with the Netty connection
factory, PEM key and trust stores, client certificates required. That runs on the pinned
ZooKeeper 3.9.5 of scripts/install-zookeeper-tls.sh (`tls_classpath`), not on Debian's 3.8.0,
whose TLS hostname verification has an advisory (GHSA-7xrh-hqfc-g7qr, SECURITY.md).
Authentication needs nothing here: the digest scheme is built into every ZooKeeper server.

For fault injection an ensemble can route its servers' quorum and election traffic through
ports of the caller's choosing (`ZooKeeperCluster.route`, e.g. one fault-injecting TCP proxy per
directed link), so that servers can be partitioned from each other.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

DEBIAN_CLASSPATH = "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar"
STANDALONE_MAIN = "org.apache.zookeeper.server.ZooKeeperServerMain"
QUORUM_MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
#: Where scripts/install-zookeeper-tls.sh puts the pinned ZooKeeper 3.9.5 jars.
TLS_VERSION = "3.9.5"
TLS_LIB = Path(__file__).resolve().parents[3] / ".tools" / f"zookeeper-{TLS_VERSION}" / "lib"
NETTY_FACTORY = "org.apache.zookeeper.server.NettyServerCnxnFactory"


class ZooKeeperNotInstalled(RuntimeError):
    pass


def classpath() -> str:
    cp = os.environ.get("ELECTD_ZK_CLASSPATH", "")
    if cp:
        return cp
    if Path("/usr/share/java/zookeeper.jar").is_file():
        return DEBIAN_CLASSPATH
    raise ZooKeeperNotInstalled(
        "ZooKeeper is not installed: run scripts/bootstrap.sh (Debian's zookeeper package) "
        "or set ELECTD_ZK_CLASSPATH to the ZooKeeper jars"
    )


def tls_classpath() -> str:
    """The classpath of the ZooKeeper that serves TLS: $ELECTD_ZK_TLS_CLASSPATH, else the
    pinned 3.9.5 jars in .tools (scripts/install-zookeeper-tls.sh, run by bootstrap)."""
    cp = os.environ.get("ELECTD_ZK_TLS_CLASSPATH", "")
    if cp:
        return cp
    jars = sorted(TLS_LIB.glob("*.jar"))
    if not any(j.name == f"zookeeper-{TLS_VERSION}.jar" for j in jars):
        raise ZooKeeperNotInstalled(
            f"ZooKeeper {TLS_VERSION} (for TLS) is not installed: run "
            "scripts/install-zookeeper-tls.sh, or set ELECTD_ZK_TLS_CLASSPATH"
        )
    return ":".join(str(j) for j in jars)


@dataclass(frozen=True)
class ServerTls:
    """TLS of a standalone server's client port, all PEM. `keystore`: the server's private key
    and certificate chain in one file; `truststore`: the CAs whose client certificates it
    accepts (every client must present one: ssl.clientAuth=need). `probe_cert`/`probe_key`: a
    client certificate of that CA and `probe_ca` the CA of the server's certificate, for the
    readiness probe (`srvr` over TLS). `plaintext_port`: also serve a plaintext client port
    (tests use it to show what the ACLs alone protect)."""

    keystore: Path
    truststore: Path
    probe_ca: Path
    probe_cert: Path
    probe_key: Path
    plaintext_port: bool = False

    def probe_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.probe_ca))
        context.load_cert_chain(str(self.probe_cert), str(self.probe_key))
        return context


_handed_out: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def free_port(host: str = "127.0.0.1") -> int:
    """A port that is free now and that nothing else will be handed by the kernel.

    ZooKeeper cannot bind port 0 and report the port, and nodes restarted by the fault suite
    must get their old port back, so ports are chosen up front. They come from outside the
    kernel's ephemeral range: a port taken from inside it (bind to 0) can be given to any
    outgoing connection (a ZooKeeper client, a quorum link) before its owner binds it, which
    made CI fail with "Address already in use". Ports are never handed out twice per process.
    """
    low, high = _ephemeral_range()
    pool = (10_000, low - 1) if low - 10_000 >= 1024 else (high + 1, 65_535)
    rng = random.SystemRandom()
    for _ in range(1000):
        port = rng.randint(*pool)
        if port in _handed_out or not port_is_free(port, host):
            continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port found in {pool[0]}-{pool[1]} on {host}")


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on host:port now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Like the servers themselves: TIME_WAIT leftovers do not count, a listener does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def four_letter(
    host: str, port: int, word: str, timeout: float = 1.0, tls: ssl.SSLContext | None = None
) -> str:
    """Send a four-letter word (srvr, mntr, stat, ...) and return the reply ('' on failure);
    over TLS with the context `tls`."""
    try:
        with contextlib.ExitStack() as stack:
            sock = stack.enter_context(socket.create_connection((host, port), timeout=timeout))
            if tls is not None:
                sock = stack.enter_context(tls.wrap_socket(sock, server_hostname=host))
            sock.sendall(word.encode())
            chunks = []
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
            return b"".join(chunks).decode(errors="replace")
    except OSError:
        return ""


@dataclass
class ZooKeeperServer:
    """One ZooKeeper server process. `peers` (for an ensemble) lists every server's
    (client_port, quorum_port, election_port), this one at index `myid - 1`. `peer_routes`
    optionally maps another server's myid to the (quorum_port, election_port) this server dials
    to reach it instead of that server's own ports (a proxy); it binds its own ports as usual."""

    workdir: Path
    client_port: int
    myid: int = 0
    peers: Sequence[tuple[int, int, int]] = ()
    tick_ms: int = 200
    host: str = "127.0.0.1"
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    sync_limit: int = 10
    peer_routes: Mapping[int, tuple[int, int]] = field(default_factory=dict)
    jvm_flags: Sequence[str] = ()
    max_session_ms: int = 300_000
    #: With TLS, `client_port` is the secureClientPort (what `address` names) and
    #: `plain_port` the plaintext one, if `tls.plaintext_port` (0: none).
    tls: ServerTls | None = None
    plain_port: int = 0

    @property
    def address(self) -> str:
        return f"{self.host}:{self.client_port}"

    @property
    def plain_address(self) -> str:
        """host:port of the plaintext client port (the only one without TLS)."""
        return f"{self.host}:{self.plain_port if self.tls is not None else self.client_port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "zookeeper.log"

    def write_config(self) -> Path:
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        lines = [
            f"tickTime={self.tick_ms}",
            f"dataDir={data}",
            *self._port_lines(),
            "admin.enableServer=false",
            "4lw.commands.whitelist=*",
            # Sessions from 2 ticks up to 5 minutes by default (electd asks for what it was
            # configured with, and bases its lease on what the server grants).
            f"minSessionTimeout={2 * self.tick_ms}",
            f"maxSessionTimeout={self.max_session_ms}",
            "maxClientCnxns=0",
            "forceSync=no",
        ]
        if self.peers:
            lines += ["initLimit=50", f"syncLimit={self.sync_limit}"]
            for i, (_, quorum, election) in enumerate(self.peers, start=1):
                if i != self.myid and i in self.peer_routes:
                    quorum, election = self.peer_routes[i]
                lines.append(f"server.{i}={self.host}:{quorum}:{election}")
            (data / "myid").write_text(f"{self.myid}\n")
        cfg = self.workdir / "zoo.cfg"
        cfg.write_text("\n".join(lines) + "\n")
        return cfg

    def _port_lines(self) -> list[str]:
        if self.tls is None:
            return [f"clientPort={self.client_port}", f"clientPortAddress={self.host}"]
        if self.peers:
            raise ValueError("TLS is for a standalone server (quorum TLS is not set up here)")
        # Unknown zoo.cfg keys become `zookeeper.<key>` system properties, which is where the
        # connection factory and X509Util read them.
        lines = [
            f"secureClientPort={self.client_port}",
            f"secureClientPortAddress={self.host}",
            f"serverCnxnFactory={NETTY_FACTORY}",
            f"ssl.keyStore.location={self.tls.keystore}",
            "ssl.keyStore.type=PEM",
            f"ssl.trustStore.location={self.tls.truststore}",
            "ssl.trustStore.type=PEM",
            "ssl.clientAuth=need",
        ]
        if self.plain_port:
            lines += [f"clientPort={self.plain_port}", f"clientPortAddress={self.host}"]
        return lines

    def start(self) -> None:
        cfg = self.write_config()
        main = QUORUM_MAIN if self.peers else STANDALONE_MAIN
        java = shutil.which("java") or "java"
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                java,
                "-Xms64m",
                "-Xmx256m",
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
                *self.jvm_flags,
                "-cp",
                tls_classpath() if self.tls is not None else classpath(),
                main,
                str(cfg),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.workdir,
            start_new_session=True,
        )
        log.close()

    def mode(self) -> str:
        """'standalone', 'leader', 'follower' or '' when not serving."""
        tls = self.tls.probe_context() if self.tls is not None else None
        for line in four_letter(self.host, self.client_port, "srvr", tls=tls).splitlines():
            if line.startswith("Mode:"):
                return line.split(":", 1)[1].strip()
        return ""

    def wait_serving(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"ZooKeeper exited early; see {self.log_path}:\n{self.tail()}")
            if self.mode() in ("standalone", "leader", "follower"):
                return
            time.sleep(0.05)
        raise TimeoutError(f"ZooKeeper at {self.address} not serving after {timeout}s")

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None:
            self.signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class ZooKeeperCluster:
    """A standalone server (size 1) or an ensemble (size 3 or 5) in one work directory.

    `route(from_myid, to_myid, kind, port)`, when given, is asked once per directed link and
    kind ("quorum" or "election") for the port server `from_myid` should dial to reach that
    port of server `to_myid`; it returns `port` itself for a direct link."""

    workdir: Path
    size: int = 1
    tick_ms: int = 200
    servers: list[ZooKeeperServer] = field(default_factory=list)
    sync_limit: int = 10
    route: Callable[[int, int, str, int], int] | None = None
    jvm_flags: Sequence[str] = ()
    max_session_ms: int = 300_000
    tls: ServerTls | None = None

    @property
    def connect_string(self) -> str:
        return ",".join(s.address for s in self.servers)

    @property
    def plain_connect_string(self) -> str:
        """The plaintext ports (with TLS: only if `tls.plaintext_port`)."""
        return ",".join(s.plain_address for s in self.servers)

    def start(self, timeout: float = 60.0) -> None:
        if self.tls is not None and self.size != 1:
            raise ValueError("a TLS ZooKeeper is standalone here (size 1)")
        ports = [(free_port(), free_port(), free_port()) for _ in range(self.size)]
        peers = ports if self.size > 1 else ()
        for i, (client, _, _) in enumerate(ports, start=1):
            wd = self.workdir / f"zk{i}"
            wd.mkdir(parents=True, exist_ok=True)
            routes: dict[int, tuple[int, int]] = {}
            if self.route is not None and peers:
                for j, (_, quorum, election) in enumerate(peers, start=1):
                    if j != i:
                        routes[j] = (
                            self.route(i, j, "quorum", quorum),
                            self.route(i, j, "election", election),
                        )
            self.servers.append(
                ZooKeeperServer(
                    wd,
                    client,
                    myid=i,
                    peers=peers,
                    tick_ms=self.tick_ms,
                    sync_limit=self.sync_limit,
                    peer_routes=routes,
                    jvm_flags=tuple(self.jvm_flags),
                    max_session_ms=self.max_session_ms,
                    tls=self.tls,
                    plain_port=free_port() if self.tls and self.tls.plaintext_port else 0,
                )
            )
        for server in self.servers:
            server.start()
        try:
            for server in self.servers:
                server.wait_serving(timeout)
        except Exception:
            self.stop()
            raise

    def leader(self) -> ZooKeeperServer | None:
        return next((s for s in self.servers if s.mode() in ("leader", "standalone")), None)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {s.address} ---\n{s.tail()}" for s in self.servers)


@contextlib.contextmanager
def running(
    size: int = 1, tick_ms: int = 200, workdir: Path | None = None, tls: ServerTls | None = None
) -> Iterator[ZooKeeperCluster]:
    """Start ZooKeeper for the duration of a with-block; always stopped afterwards."""
    tmp = None
    if workdir is None:
        tmp = tempfile.mkdtemp(prefix="electd-zk-")
        workdir = Path(tmp)
    cluster = ZooKeeperCluster(workdir, size=size, tick_ms=tick_ms, tls=tls)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
