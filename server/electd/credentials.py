"""electd's ZooKeeper credentials file (`--zk-auth-file`): the one parser, shared by config/ (at
start, so a bad file is one line and exit code 2) and zk/security.py (each time a ZooKeeper
client is made). Imports nothing of electd.

The file holds one `USER:PASSWORD` per line for ZooKeeper's digest scheme; blank lines and
lines starting with `#` are ignored. More than one line is for rotation: a client authenticates
with every one, and every znode it creates names every one in its ACL. Passwords never appear
in an error message, a repr or a log line; they must have at least 16 characters, because
ZooKeeper keeps an unsalted SHA-1 of `USER:PASSWORD` in each ACL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: Users: what a digest id may hold before its ':' (and readable in an ACL).
_USER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD = 16
MAX_LINES = 4
MAX_BYTES = 64 * 1024


class CredentialsError(ValueError):
    """The file cannot be used; the message names the file and the line, never a secret."""


@dataclass(frozen=True)
class Credential:
    """One digest identity. The password is left out of repr and comparisons' output."""

    user: str
    password: str = field(repr=False)

    @property
    def auth(self) -> str:
        """kazoo's `auth_data` credential for the digest scheme."""
        return f"{self.user}:{self.password}"


def parse(text: str, where: str) -> tuple[Credential, ...]:
    """The credentials in `text` (the contents of `where`, for messages)."""
    found: list[Credential] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, password = line.partition(":")
        if not sep or not _USER.fullmatch(user):
            raise CredentialsError(
                f"{where}, line {number}: not USER:PASSWORD (USER: letters, digits, '.', '_', "
                "'@' or '-', at most 64)"
            )
        if len(password) < MIN_PASSWORD:
            raise CredentialsError(
                f"{where}, line {number}: the password of {user!r} is shorter than "
                f"{MIN_PASSWORD} characters (ZooKeeper keeps an unsalted hash of it in every ACL)"
            )
        if any(c.user == user for c in found):
            raise CredentialsError(f"{where}, line {number}: {user!r} is there twice")
        found.append(Credential(user, password))
    if not found:
        raise CredentialsError(f"{where}: no USER:PASSWORD line")
    if len(found) > MAX_LINES:
        raise CredentialsError(f"{where}: more than {MAX_LINES} credentials")
    return tuple(found)


def read(path: str) -> tuple[Credential, ...]:
    """The credentials of the file at `path`. Raises CredentialsError."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise CredentialsError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        raise CredentialsError(f"{path}: larger than {MAX_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise CredentialsError(f"{path}: not UTF-8 text") from None
    return parse(text, path)
