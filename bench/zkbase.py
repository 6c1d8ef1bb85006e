"""The ZooKeeper baselines, measured with raw kazoo sessions in this process:

  floor     session A deletes an ephemeral znode -> session B's watch on it fires;
  election  kazoo's own `Election` recipe: the leader's session is closed -> the next
            contender's function runs.

Both are the same measurement the anchors describe (/work/shared/anchors.md), repeated in the
same run as electd so that ratios compare like with like.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException

from electd.devcluster.cluster import wait_until

Step = Callable[[], None]


def client(hosts: str, timeout: float = 10.0) -> KazooClient:
    kz = KazooClient(hosts=hosts, timeout=timeout)
    kz.start(15)
    return kz


def close(kz: KazooClient) -> None:
    with contextlib.suppress(KazooException, OSError):
        kz.stop()
    with contextlib.suppress(KazooException, OSError):
        kz.close()


def floor(hosts: str, path: str, trials: int, step: Step, warmup: int = 3) -> list[float]:
    """ms from A's delete call to B's watch callback, `trials` times."""
    a, b = client(hosts), client(hosts)
    try:
        a.ensure_path(path)
        fired = threading.Event()
        stamp = [0.0]

        def on_event(event: object) -> None:
            stamp[0] = time.perf_counter()
            fired.set()

        samples: list[float] = []
        for i in range(trials + warmup):
            node = a.create(f"{path}/floor-", b"x", ephemeral=True, sequence=True)
            b.get(node, watch=on_event)
            fired.clear()
            time.sleep(0.01)
            t0 = time.perf_counter()
            a.delete(node)
            if not fired.wait(10):
                raise TimeoutError("the floor watch never fired")
            if i >= warmup:
                samples.append((stamp[0] - t0) * 1000)
                step()
        return samples
    finally:
        close(a)
        close(b)


class _Contender:
    """One kazoo `Election` contender with its own session, running in a thread."""

    def __init__(self, hosts: str, path: str, ident: str, on_lead: Callable[[str], None]) -> None:
        self.ident = ident
        self.kz = client(hosts)
        self.release = threading.Event()
        self._on_lead = on_lead
        # kazoo is untyped and typings/kazoo does not declare its recipes (KazooClient.Election).
        self.election = self.kz.Election(path, ident)  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self._run, name=f"kazoo-election-{ident}")
        self.thread.daemon = True
        self.thread.start()

    def _lead(self) -> None:
        self._on_lead(self.ident)
        self.release.wait(60)

    def _run(self) -> None:
        with contextlib.suppress(KazooException, OSError):
            self.election.run(self._lead)

    def close(self) -> None:
        """Close the session (its lock znode goes with it), then let the thread end."""
        close(self.kz)
        self.release.set()


def kazoo_election(
    hosts: str, path: str, trials: int, step: Step, contenders: int = 3, warmup: int = 3
) -> list[float]:
    """ms from closing the leader's session to the next contender's function running."""
    led: dict[str, float] = {}
    lock = threading.Lock()

    def on_lead(ident: str) -> None:
        now = time.perf_counter()
        with lock:
            led[ident] = now

    pool: list[_Contender] = []
    counter = 0

    def add() -> None:
        nonlocal counter
        counter += 1
        pool.append(_Contender(hosts, path, f"c{counter}", on_lead))

    admin = client(hosts)
    try:
        admin.ensure_path(path)
        for _ in range(contenders):
            add()
            n = len(pool)
            wait_until(
                lambda n=n: len(admin.get_children(path)) >= n,
                15,
                "contender to join",
                interval=0.01,
            )
        samples: list[float] = []
        for i in range(trials + warmup):
            leader = wait_until(
                lambda: next((c for c in pool if c.ident in led), None), 15, "leader", interval=0.01
            )
            successor = pool[pool.index(leader) + 1]
            time.sleep(0.02)
            t0 = time.perf_counter()
            leader.close()
            wait_until(lambda s=successor: s.ident in led, 10, "successor to run", interval=0.0005)
            if i >= warmup:
                samples.append((led[successor.ident] - t0) * 1000)
                step()
            pool.remove(leader)
            add()
            wait_until(
                lambda: len(admin.get_children(path)) >= contenders,
                15,
                "contender to join",
                interval=0.01,
            )
            time.sleep(0.02)
        return samples
    finally:
        for c in pool:
            c.close()
        close(admin)


def warm_up(hosts: str, path: str, rounds: int = 400) -> None:
    """Exercise a fresh ZooKeeper (create, watch, delete, list) so that its JIT has compiled
    the request path before anything is measured; a cold server is several times slower."""
    floor(hosts, path, rounds, lambda: None, warmup=0)
    kz = client(hosts)
    try:
        for _ in range(rounds):
            kz.get_children(path)
            kz.exists(path)
    finally:
        close(kz)


CRASH_CHILD = """
import sys, time
from kazoo.client import KazooClient
kz = KazooClient(hosts=sys.argv[1], timeout=float(sys.argv[3]))
kz.start(15)
kz.create(sys.argv[2], b"x", ephemeral=True, makepath=True)
print("ready", flush=True)
time.sleep(600)
"""


def crash_floor(hosts: str, path: str, session_timeout: float, python: str) -> float:
    """One trial: a raw kazoo session in a child process owns an ephemeral znode and is
    SIGKILLed; seconds until another session's watch on the znode fires."""
    import subprocess

    from bench import procs

    kz = client(hosts)
    child = subprocess.Popen(
        [python, "-c", CRASH_CHILD, hosts, path, str(session_timeout)],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        assert child.stdout is not None
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError("the crash-floor child did not start")
        fired = threading.Event()
        stamp = [0.0]

        def on_event(event: object) -> None:
            stamp[0] = time.time()
            fired.set()

        kz.get(path, watch=on_event)
        time.sleep(0.2 + session_timeout / 3 * (time.time() % 1))  # vary the heartbeat phase
        t0 = time.time()
        procs.kill(child)
        if not fired.wait(session_timeout * 3 + 5):
            raise TimeoutError("the crashed session's znode never went away")
        return stamp[0] - t0
    finally:
        procs.kill(child)
        if child.stdout is not None:
            child.stdout.close()
        close(kz)
