"""Linux process plumbing of the supervisor: prctl, the process tree, and the pid namespace a
leader command runs in.

  * `set_child_subreaper`: orphaned descendants of the supervisor (a command's grandchild
    whose parent exited) are reparented to the supervisor instead of init, so they stay
    reachable, and are reaped by it.
  * `die_with_parent`: a child's parent-death signal (SIGKILL), set between fork and exec.
  * `descendants`: every process below a pid, read from /proc (a grandchild that left the
    command's process group is still found: parenthood cannot be escaped, only orphanhood,
    which the subreaper catches).
  * `isolation_prefix`: `unshare --pid --fork --kill-child tini -g --`, where it works here
    (root, or unprivileged user namespaces, and tini installed): in a pid namespace of its own
    the command's whole tree dies when the namespace's first process does, which dies with the
    supervisor: nothing of the command outlives a SIGKILLed supervisor.

Imports only the standard library; used on the supervisor's one thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import signal
import subprocess
from collections.abc import Iterable

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _prctl(option: int, value: int) -> None:
    if _libc.prctl(option, value, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def set_child_subreaper() -> None:
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def die_with_parent() -> None:
    """For preexec_fn: SIGKILL this child when its parent (the supervisor) dies. Checks that
    the parent did not die before the prctl took effect."""
    parent = os.getppid()
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(137)


def _parents() -> dict[int, int]:
    """pid -> parent pid of every live (not yet exited: zombies are left out) process visible
    in /proc. Raises OSError when /proc cannot be read (for example out of file descriptors):
    the caller must then assume that anything may still be alive."""
    out: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except (FileNotFoundError, ProcessLookupError):
            continue  # gone meanwhile
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        fields = stat[stat.rfind(b")") + 2 :].split()
        with contextlib.suppress(IndexError, ValueError):
            if fields[0] not in (b"Z", b"X"):
                out[int(name)] = int(fields[1])
    return out


def descendants(roots: Iterable[int]) -> list[int]:
    """Every live process below (and including) `roots`, parents before children."""
    parents = _parents()
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    out: list[int] = []
    todo = list(roots)
    seen: set[int] = set()
    while todo:
        pid = todo.pop(0)
        if pid in seen:
            continue
        seen.add(pid)
        if pid in parents:
            out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def children(pid: int) -> list[int]:
    """The live direct children of `pid`."""
    return [p for p, parent in _parents().items() if parent == pid]


def signal_all(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def isolation_prefix() -> list[str] | None:
    """The argv prefix that runs a command in a new pid namespace, under tini as the
    namespace's first process; or None where that is not possible here.

    The kernel ends everything in a pid namespace when its first process dies, and that one
    (unshare's child, `--kill-child`) dies with unshare, which dies with the supervisor
    (parent-death signal): nothing of the command outlives the supervisor. tini is that first
    process because a namespace's first process ignores every signal it has no handler for
    (a plain command would ignore SIGTERM); tini forwards signals to the command's process
    group, reaps orphans, and exits with the command's code (128+N when killed by signal N).
    Needs root or unprivileged user namespaces."""
    unshare, tini = shutil.which("unshare"), shutil.which("tini")
    if unshare is None or tini is None:
        return None
    prefix = [unshare, "--pid", "--fork", "--kill-child=SIGKILL"]
    if os.geteuid() != 0:
        prefix[1:1] = ["--user", "--map-current-user"]
    prefix += [tini, "-g", "--"]
    try:
        done = subprocess.run([*prefix, "true"], capture_output=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return prefix if done.returncode == 0 else None
