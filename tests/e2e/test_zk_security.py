"""ZooKeeper TLS, digest authentication and ACLs, against real processes: a ZooKeeper 3.9.5
server (scripts/install-zookeeper-tls.sh) that serves TLS with client certificates required,
plus a plaintext port to show what the ACLs protect by themselves; real `electd serve` and
`electd identity` processes; foreign kazoo clients (plaintext, TLS without credentials, TLS with
a wrong password).

The invariants: with credentials, the election path, its identity and every entry and companion
carry electd's ACL, so a client without the credentials cannot create, delete or rewrite
anything there (NoAuth) and the election goes on untouched; the supervisor still closes a dead
node's session over TLS; the password is in no process's argv or environment and in no log; an
open path is locked down by `electd identity --apply-acl` once every node has the credentials
(and not before), after which foreign writes fail too."""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import OPEN_ACL_UNSAFE, make_acl, make_digest_acl

from electd.client import ElectdError, ElectionClient
from electd.config import serve_argv
from electd.devcluster import secure
from electd.devcluster.cluster import NodeProcess, wait_until
from electd.devcluster.zookeeper import ZooKeeperCluster, free_port
from tests.conftest import _failed

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> secure.SecureMaterial:
    return secure.create(tmp_path_factory.mktemp("secure"))


@pytest.fixture(scope="module")
def tls_zk(
    material: secure.SecureMaterial, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ZooKeeperCluster]:
    tls = dataclasses.replace(material.zk_server, plaintext_port=True)
    cluster = ZooKeeperCluster(tmp_path_factory.mktemp("zk-tls"), size=1, tls=tls)
    cluster.start()
    yield cluster
    cluster.stop()


class Harness:
    """Secure node processes and kazoo clients of one test, cleaned up (logs on failure)."""

    def __init__(self, zk: ZooKeeperCluster, m: secure.SecureMaterial, workdir: Path) -> None:
        self.zk, self.m, self.workdir = zk, m, workdir
        self.path = f"/t-{uuid.uuid4().hex[:8]}/election"
        self.procs: list[NodeProcess] = []
        self.clients: list[KazooClient] = []

    def node(self, node_id: str, *extra: str, credentials: bool = True) -> NodeProcess:
        flags = [*serve_argv(**self.m.node_settings()), *extra]
        if credentials:
            flags += serve_argv(**self.m.zk_settings())
        proc = NodeProcess(
            self.zk.connect_string if credentials else self.zk.plain_connect_string,
            free_port(),
            self.workdir,
            node_id=node_id,
            election_path=self.path,
            session_timeout=2.0,
            extra_args=flags,
        )
        proc.start()
        self.procs.append(proc)
        return proc

    def client(self) -> ElectionClient:
        return ElectionClient(
            [p.address for p in self.procs], call_timeout=1.0, **self.m.cli_settings()
        )

    def leader(self) -> tuple[str, int] | None:
        try:
            with self.client() as client:
                got = client.get_leader().leader
        except ElectdError:
            return None
        return got.node.id, got.epoch

    def wait_leader(self, node_id: str, above: int = 0) -> int:
        found = wait_until(
            lambda: (got := self.leader()) and got[0] == node_id and got[1] > above and got,
            30,
            f"{node_id} to lead",
        )
        return int(found[1])

    def kazoo(self, tls: bool = True, auth: str | None = None, cert: Any = None) -> KazooClient:
        """A kazoo client: over TLS (with `cert`, default the CLI's certificate) or on the
        plaintext port, authenticated with digest `auth` or not at all."""
        options: dict[str, Any] = {}
        if tls:
            cert = cert or self.m.cli
            options = dict(
                use_ssl=True, ca=str(self.m.ca), certfile=str(cert.cert), keyfile=str(cert.key)
            )
        client = KazooClient(
            hosts=self.zk.connect_string if tls else self.zk.plain_connect_string,
            auth_data=[("digest", auth)] if auth else None,
            **options,
        )
        client.start(timeout=15)
        self.clients.append(client)
        return client

    def electd(self) -> KazooClient:
        """A client with electd's own credentials and certificate."""
        return self.kazoo(auth=f"{self.m.user}:{self.m.password}", cert=self.m.zk_client)

    def identity(self, *extra: str) -> subprocess.CompletedProcess[str]:
        flags = serve_argv(**self.m.zk_settings())
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "electd",
                "identity",
                "--zk",
                self.zk.connect_string,
                "--election-path",
                self.path,
                *flags,
                *extra,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )

    def close(self, failed: bool) -> None:
        for client in self.clients:
            client.stop()
            client.close()
        for proc in self.procs:
            proc.stop()
        if failed:
            for proc in self.procs:
                print(f"\n----- log of node {proc.node_id} -----\n{proc.log_text()}")
            print(f"\n----- ZooKeeper -----\n{self.zk.logs()}")


@pytest.fixture
def h(
    tls_zk: ZooKeeperCluster,
    material: secure.SecureMaterial,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Harness]:
    harness = Harness(tls_zk, material, tmp_path / "nodes")
    yield harness
    harness.close(_failed(request))


def locked_acl(m: secure.SecureMaterial) -> list[Any]:
    return [make_digest_acl(m.user, m.password, all=True), make_acl("world", "anyone", read=True)]


def foreign_writes(client: KazooClient, path: str, entry: str) -> list[str]:
    """Every write a foreign client could use against the election; what was allowed."""
    attempts = {
        "create a forged entry": lambda: client.create(
            f"{path}/electd-{uuid.uuid4().hex}-", b"{}", ephemeral=True, sequence=True
        ),
        "create a foreign znode": lambda: client.create(f"{path}/junk", b""),
        "delete the leader's entry": lambda: client.delete(f"{path}/{entry}"),
        "delete its companion": lambda: client.delete(f"{path}/{entry}.alive"),
        "rewrite the leader's entry": lambda: client.set(f"{path}/{entry}", b"forged"),
        "rewrite the identity": lambda: client.set(path, b"forged"),
        "open the path's ACL": lambda: client.set_acls(path, OPEN_ACL_UNSAFE),
        "open the entry's ACL": lambda: client.set_acls(f"{path}/{entry}", OPEN_ACL_UNSAFE),
    }
    allowed = []
    for what, attempt in attempts.items():
        try:
            attempt()
            allowed.append(what)
        except NoAuthError:
            pass
    return allowed


def test_clients_without_electds_credentials_cannot_touch_the_election(h: Harness) -> None:
    """Nodes over TLS with digest auth elect a leader; every znode under the path carries the
    ACL; plaintext, TLS-but-unauthenticated and wrong-password clients get NoAuth on every
    write, and the leader, its epoch and every entry stay as they were; then a crash still
    hands over (the supervisor closes the dead session over TLS). The password appears in no
    argv, environment or log, a debug log included."""
    n1 = h.node("n1", "--log-level", "debug")
    epoch = h.wait_leader("n1")
    n2 = h.node("n2")
    zk = h.electd()
    wait_until(lambda: len(zk.get_children(h.path)) == 4, 30, "n2's entry and companion")

    acl = sorted(locked_acl(h.m))
    assert sorted(zk.get_acls(h.path)[0]) == acl
    before = {name: zk.get(f"{h.path}/{name}")[1] for name in zk.get_children(h.path)}
    for name in before:
        assert sorted(zk.get_acls(f"{h.path}/{name}")[0]) == acl, name
    entry = min((n for n in before if not n.endswith(".alive")), key=lambda n: before[n].czxid)

    strangers = {
        "plaintext": h.kazoo(tls=False),
        "TLS, no credentials": h.kazoo(),
        "TLS, wrong password": h.kazoo(auth=f"{h.m.user}:not-the-password-at-all"),
    }
    for kind, stranger in strangers.items():
        assert foreign_writes(stranger, h.path, entry) == [], kind
        # world-read: it may read the election, but the ACL's password hash is hidden from it
        assert stranger.get(f"{h.path}/{entry}")[1].version == 0
        assert {a.id.id for a in stranger.get_acls(h.path)[0]} == {f"{h.m.user}:x", "anyone"}

    after = {name: zk.get(f"{h.path}/{name}")[1] for name in zk.get_children(h.path)}
    assert {n: (s.czxid, s.version) for n, s in after.items()} == {
        n: (s.czxid, s.version) for n, s in before.items()
    }
    assert h.leader() == ("n1", epoch)

    killed = n1.signal_node(signal.SIGKILL)
    assert killed is not None
    h.wait_leader("n2", above=epoch)
    wait_until(
        lambda: "closed the dead node's ZooKeeper session" in n1.log_text(400),
        30,
        "the supervisor to close n1's session over TLS",
    )

    secret = h.m.password.encode()
    for proc in (n1, n2):
        node_pid = wait_until(proc.node_pid, 30, f"{proc.node_id}'s node process")
        for pid in (proc.pid, node_pid):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            assert b"--zk-auth-file" in cmdline and secret not in cmdline
            assert secret not in Path(f"/proc/{pid}/environ").read_bytes()
        log = proc.log_path.read_bytes()
        assert b"ZooKeeper: TLS on, authenticated as electd" in log
        assert secret not in log
    assert secret not in h.zk.servers[0].log_path.read_bytes()
    assert (
        b"Auth(auth_type=0, scheme='digest', auth='electd:<redacted>')" in n1.log_path.read_bytes()
    )


def test_an_open_path_is_locked_down_once_every_node_has_the_credentials(h: Harness) -> None:
    """The migration: nodes that ran without credentials made an open path. Locking it while
    such a node runs is refused (it could neither register again nor leave); after a restart
    with --zk-auth-file its entries carry the ACL but the path is still open (a foreign create
    succeeds); `electd identity --apply-acl` then locks the path and everything under it, and
    foreign writes fail while the election goes on."""
    old = h.node("n1", credentials=False)
    h.wait_leader("n1")
    refused = h.identity("--apply-acl")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "without these credentials" in refused.stderr and "rolling restart" in refused.stderr

    old.stop()
    h.procs.remove(old)
    h.node("n1")
    epoch = h.wait_leader("n1")
    stranger = h.kazoo(tls=False)
    stranger.create(f"{h.path}/left-behind", b"")  # the path itself is still open
    zk = h.electd()
    assert zk.get_acls(h.path)[0] == OPEN_ACL_UNSAFE

    locked = h.identity("--apply-acl")
    assert locked.returncode == 0, locked.stdout + locked.stderr
    assert '"children_changed":1' in locked.stdout and '"children_refused":[]' in locked.stdout
    assert h.m.password not in locked.stdout + locked.stderr
    acl = sorted(locked_acl(h.m))
    for path in [h.path, *(f"{h.path}/{n}" for n in zk.get_children(h.path))]:
        assert sorted(zk.get_acls(path)[0]) == acl, path

    entry = next(n for n in zk.get_children(h.path) if n.startswith("electd-") and "." not in n)
    assert foreign_writes(stranger, h.path, entry) == []
    assert h.leader() == ("n1", epoch)
    shown = h.identity()  # and electd identity reads it with the same settings
    assert shown.returncode == 0 and '"cluster"' in shown.stdout, shown.stderr


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot read"),
        ("electd\n", "line 1: not USER:PASSWORD"),
        ("electd:short-pw\n", "shorter than 16 characters"),
        ("# only a comment\n", "no USER:PASSWORD line"),
    ],
)
def test_a_bad_credentials_file_fails_at_start_with_exit_2(
    tmp_path: Path, content: str | None, expected: str
) -> None:
    """The file is checked before anything starts; the message never shows a password."""
    auth = tmp_path / "zk-auth"
    if content is not None:
        auth.write_text(content)
    proc = subprocess.run(
        [sys.executable, "-m", "electd", "serve", "--zk-auth-file", str(auth)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2, proc.stderr
    assert "--zk-auth-file" in proc.stderr and expected in proc.stderr
    assert "short-pw" not in proc.stderr
