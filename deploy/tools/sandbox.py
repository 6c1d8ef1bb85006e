"""Run a command inside the seccomp sandbox that a systemd unit's SystemCallFilter=,
SystemCallErrorNumber=, RestrictAddressFamilies= and MemoryDenyWriteExecute= describe, built
the way systemd builds it, for machines without systemd as PID 1 (tests/e2e/test_deploy.py runs
real electd nodes this way, to show that electd.service's sandbox lets a node work):

    /usr/bin/python3 deploy/tools/sandbox.py UNIT -- COMMAND [ARG...]

- SystemCallFilter=: the first setting without ~ is an allow list (with systemd's implicit
  execve, exit, exit_group, getrlimit, rt_sigreturn, sigreturn); each later ~ setting takes
  its calls out of it. Groups (@name) are expanded by `systemd-analyze syscall-filter`, so
  they are this machine's systemd's groups. Any other call fails with the error number.
- RestrictAddressFamilies=: socket() with any other family fails with EAFNOSUPPORT.
- MemoryDenyWriteExecute=yes: mmap() writable and executable, mprotect()/pkey_mprotect() to
  executable and shmat(SHM_EXEC) fail with EPERM (systemd's seccomp implementation).

Needs libseccomp's Python binding (Debian's python3-seccomp, for /usr/bin/python3). What is
not emulated: the user (DynamicUser=), the file-system and namespace settings (ProtectSystem=,
PrivateTmp=, ...), capabilities, and systemd's own start-up.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import subprocess
import sys
from pathlib import Path

import seccomp

IMPLICIT = {"execve", "exit", "exit_group", "getrlimit", "rt_sigreturn", "sigreturn"}
PROT_WRITE, PROT_EXEC, SHM_EXEC = 0x2, 0x4, 0o100000


def unit_settings(path: Path) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith(("#", ";")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def syscall_groups() -> dict[str, list[str]]:
    out = subprocess.run(
        ["systemd-analyze", "syscall-filter", "--no-pager"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    groups: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in out.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.strip(), [])
        elif current is not None and line.strip() and not line.strip().startswith("#"):
            current.append(line.strip())
    return groups


def expand(names: list[str], groups: dict[str, list[str]]) -> set[str]:
    out: set[str] = set()
    for name in names:
        if name.startswith("@"):
            if name not in groups:
                raise SystemExit(f"sandbox: unknown system call group {name}")
            out |= expand(groups[name], groups)
        else:
            out.add(name)
    return out


def resolvable(name: str) -> bool:
    try:
        seccomp.resolve_syscall(seccomp.Arch.NATIVE, name)
    except (ValueError, RuntimeError):
        return False
    return True


def build(settings: dict[str, list[str]]) -> list[seccomp.SyscallFilter]:
    filters = []
    error_name = (settings.get("SystemCallErrorNumber") or ["EPERM"])[-1]
    deny_errno = getattr(errno, error_name)
    entries = [v for v in settings.get("SystemCallFilter", []) if v]
    if entries:
        if entries[0].startswith("~"):
            raise SystemExit("sandbox: only an allow list first is implemented")
        groups = syscall_groups()
        allowed = IMPLICIT.copy()
        for entry in entries:
            names = entry.lstrip("~").split()
            if entry.startswith("~"):
                allowed -= expand(names, groups)
            else:
                allowed |= expand(names, groups)
        allow = seccomp.SyscallFilter(defaction=seccomp.ERRNO(deny_errno))
        for name in sorted(allowed):
            if resolvable(name):
                # a call of another architecture: libseccomp answers -EINVAL
                with contextlib.suppress(RuntimeError):
                    allow.add_rule(seccomp.ALLOW, name)
        filters.append(allow)

    # A second filter, as systemd installs one per setting: the kernel applies the strictest
    # answer of all of them.
    deny = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    families = " ".join(settings.get("RestrictAddressFamilies", [])).split()
    if families:
        if families[0].startswith("~"):
            raise SystemExit("sandbox: only an allow list of address families is implemented")
        keep = {int(getattr(socket, f)) for f in families}
        for family in range(0, 64):
            if family not in keep:
                deny.add_rule(
                    seccomp.ERRNO(errno.EAFNOSUPPORT), "socket", seccomp.Arg(0, seccomp.EQ, family)
                )
        deny.add_rule(seccomp.ERRNO(errno.EAFNOSUPPORT), "socket", seccomp.Arg(0, seccomp.GE, 64))
    mdwe = (settings.get("MemoryDenyWriteExecute") or ["no"])[-1].lower()
    if mdwe in ("yes", "true", "1", "on"):
        wx = PROT_WRITE | PROT_EXEC
        deny.add_rule(seccomp.ERRNO(errno.EPERM), "mmap", seccomp.Arg(2, seccomp.MASKED_EQ, wx, wx))
        for call in ("mprotect", "pkey_mprotect"):
            deny.add_rule(
                seccomp.ERRNO(errno.EPERM),
                call,
                seccomp.Arg(2, seccomp.MASKED_EQ, PROT_EXEC, PROT_EXEC),
            )
        deny.add_rule(
            seccomp.ERRNO(errno.EPERM),
            "shmat",
            seccomp.Arg(2, seccomp.MASKED_EQ, SHM_EXEC, SHM_EXEC),
        )
    filters.append(deny)
    return filters


def main(argv: list[str]) -> int:
    if "--" not in argv or len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    split = argv.index("--")
    options, command = argv[:split], argv[split + 1 :]
    if len(options) != 1 or not command:
        print(__doc__, file=sys.stderr)
        return 2
    filters = build(unit_settings(Path(options[0])))
    # The allow list last: it may not allow the seccomp() and prctl() calls of the others' load.
    for f in reversed(filters):
        f.load()  # sets no_new_privs first, as NoNewPrivileges= does
    os.execvp(command[0], command)
    return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
