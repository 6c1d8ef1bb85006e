"""The security settings, as two mixins of the settings table (config/table.py):

* `ServerSecurityConfig`, inherited by NodeConfig (`electd serve`): TLS and mutual TLS of the
  gRPC API, the authorization policy (`--allow-read`, `--allow-write`), reflection on or off,
  and the transport limits that harden the server by default.
* `ClientTlsConfig`, inherited by the query commands' config (`electd leader|nodes|watch|top`):
  the client side of TLS, with the names of clients/README.md's naming contract.
* `ZkSecurityConfig`, inherited by ZkConfig (every command that talks to ZooKeeper): TLS to
  ZooKeeper, the credentials file (credentials.py) and the ACL mode (zk/security.py).

Each mixin's `check` runs at load (table.load calls every class's own `check`), so a missing
half of a pair, an unreadable PEM file or a key that does not belong to its certificate fails
at start with one message naming the setting. Imports neither kazoo nor grpc.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from electd.config.table import setting
from electd.config.values import ConfigError, integer, optional, parse_text, seconds

#: What an identity pattern may contain: no blanks or control characters, no commas (the
#: environment variable's separator).
_PATTERN = re.compile(r"^[^\s,\x00-\x1f\x7f]{1,1024}$")


def parse_patterns(values: list[str], what: str) -> tuple[str, ...]:
    out: list[str] = []
    for value in values:
        text = value.strip()
        if not _PATTERN.fullmatch(text):
            raise ConfigError(
                f"{what}: {value!r} is not an identity pattern (1-1024 characters, no blanks "
                "or commas; '*' stands for any characters)"
            )
        if text not in out:
            out.append(text)
    return tuple(out)


def _file(value: str, what: str) -> str | None:
    return optional(parse_text)(value, what) or None


def _seconds_or_off(value: str, what: str) -> float:
    return seconds(0, 30 * 86_400)(value, what)


@dataclass(frozen=True)
class ServerSecurityConfig:
    """TLS, authorization and transport limits of a node's gRPC API."""

    tls_cert: str | None = setting(
        "--tls-cert",
        parse=_file,
        default="",
        metavar="FILE",
        env=True,
        shown_default="plaintext",
        help="PEM certificate chain to serve gRPC with over TLS (with --tls-key); the files are "
        "re-read when they change, at the next new connection",
    )
    tls_key: str | None = setting(
        "--tls-key",
        parse=_file,
        default="",
        metavar="FILE",
        env=True,
        help="PEM private key of --tls-cert (unencrypted)",
    )
    tls_client_ca: str | None = setting(
        "--tls-client-ca",
        parse=_file,
        default="",
        metavar="FILE",
        env=True,
        shown_default="no client certificates",
        help="PEM CA certificates that sign client certificates: every client must then "
        "present one (mutual TLS), and its identity (URI or DNS SAN, else CN) is what "
        "--allow-read and --allow-write match; re-read like --tls-cert",
    )
    allow_read: tuple[str, ...] = setting(
        "--allow-read",
        parse=parse_patterns,
        default=(),
        metavar="ID",
        env=True,
        repeatable=True,
        shown_default="every client the transport admits",
        help="client identity (or pattern, '*' for any characters) that may read: GetLeader, "
        "ListNodes, WatchLeader, ListElections, health, reflection; needs --tls-client-ca; "
        "repeatable",
    )
    allow_write: tuple[str, ...] = setting(
        "--allow-write",
        parse=parse_patterns,
        default=(),
        metavar="ID",
        env=True,
        repeatable=True,
        shown_default="as --allow-read",
        help="client identity (or pattern) that may call the mutating RPCs (every other "
        "method of electd's services); needs --tls-client-ca; repeatable",
    )
    reflection: str = setting(
        "--reflection",
        parse=parse_text,
        default="on",
        choices=("on", "off"),
        env=True,
        help="serve gRPC server reflection (for grpcurl); it needs the read right like the rest",
    )
    max_recv_message_bytes: int = setting(
        "--max-recv-message-bytes",
        parse=integer(1_024, 4 * 1024 * 1024),
        default="65536",
        metavar="BYTES",
        env=True,
        help="largest request message accepted (RESOURCE_EXHAUSTED beyond); the largest valid "
        "request, ListNodes with 64 maximal labels, is about 21 KB",
    )
    max_streams_per_peer: int = setting(
        "--max-streams-per-peer",
        parse=integer(1, 10_000_000),
        default="1000",
        metavar="N",
        env=True,
        help="cap on the open streams (WatchLeader, health Watch, reflection) of one client "
        "identity, or of one IP address without one (RESOURCE_EXHAUSTED beyond), within "
        "--max-streams",
    )
    max_streams_per_connection: int = setting(
        "--max-streams-per-connection",
        parse=integer(1, 1_000_000),
        default="2000",
        metavar="N",
        env=True,
        help="HTTP/2 concurrent streams (calls) per connection (SETTINGS_MAX_CONCURRENT_STREAMS): "
        "calls beyond wait in the client, so keep it above --max-streams-per-peer, whose "
        "RESOURCE_EXHAUSTED a client sees at once",
    )
    min_ping_interval: float = setting(
        "--min-ping-interval",
        parse=seconds(0.1, 300),
        default="1",
        metavar="SECONDS",
        env=True,
        help="a client ping sooner than this after the previous one, while the node sends "
        "nothing, is a strike (the clients' keepalive pings every 3 s)",
    )
    max_ping_strikes: int = setting(
        "--max-ping-strikes",
        parse=integer(0, 1_000),
        default="2",
        metavar="N",
        env=True,
        help="strikes a connection may have before GOAWAY (too_many_pings); 0: no limit",
    )
    max_connection_idle: float = setting(
        "--max-connection-idle",
        parse=_seconds_or_off,
        default="300",
        metavar="SECONDS",
        env=True,
        help="close (GOAWAY) a connection that has had no call open for this long; 0: never",
    )
    max_connection_age: float = setting(
        "--max-connection-age",
        parse=_seconds_or_off,
        default="3600",
        metavar="SECONDS",
        env=True,
        help="GOAWAY every connection at about this age, so that each one handshakes again with "
        "the certificates of the day; 0: never",
    )
    max_connection_age_grace: float = setting(
        "--max-connection-age-grace",
        parse=_seconds_or_off,
        default="30",
        metavar="SECONDS",
        env=True,
        help="then close it after this: open WatchLeader streams end with UNAVAILABLE and the "
        "clients resume them (on the next address, from the last epoch they reported)",
    )

    @property
    def reflection_enabled(self) -> bool:
        return self.reflection == "on"

    def check(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            missing, given = (
                ("--tls-key", "--tls-cert") if self.tls_key is None else ("--tls-cert", "--tls-key")
            )
            raise ConfigError(f"{given}: needs {missing} too")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ConfigError("--tls-client-ca: needs --tls-cert and --tls-key (mutual TLS is TLS)")
        for flag, patterns in (
            ("--allow-read", self.allow_read),
            ("--allow-write", self.allow_write),
        ):
            if patterns and self.tls_client_ca is None:
                raise ConfigError(
                    f"{flag}: client identities come from verified client certificates: "
                    "needs --tls-client-ca"
                )
        if self.tls_cert is not None and self.tls_key is not None:
            # Imported here: loading a config without TLS needs no cryptography (the deploy
            # kit's validator parses settings in a virtualenv of its own).
            from electd.tlsfiles import PemError, certificates, key_pair

            try:
                key_pair(self.tls_cert, self.tls_key, "--tls-cert", "--tls-key")
                if self.tls_client_ca is not None:
                    certificates(self.tls_client_ca, "--tls-client-ca")
            except PemError as exc:
                raise ConfigError(str(exc)) from None


@dataclass(frozen=True)
class ClientTlsConfig:
    """The client side of TLS (clients/README.md, "TLS"): any of these turns TLS on."""

    tls_ca: str | None = setting(
        "--tls-ca",
        parse=_file,
        default="",
        metavar="FILE",
        env=True,
        shown_default="plaintext; with TLS: the system's roots",
        help="PEM CA certificates to verify the nodes' certificates with; turns TLS on",
    )
    tls_cert: str | None = setting(
        "--tls-cert",
        parse=_file,
        default="",
        metavar="FILE",
        env=True,
        help="PEM client certificate chain for mutual TLS (with --tls-key); turns TLS on",
    )
    tls_key: str | None = setting(
        "--tls-key",
        parse=_file,
        default="",
        metavar="FILE",
        env=True,
        help="PEM private key of --tls-cert",
    )
    tls_server_name: str | None = setting(
        "--tls-server-name",
        parse=_file,
        default="",
        metavar="NAME",
        env=True,
        shown_default="the host of each --target",
        help="name to verify the nodes' certificates against (and to send as SNI); turns TLS on",
    )

    def check(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            missing, given = (
                ("--tls-key", "--tls-cert") if self.tls_key is None else ("--tls-cert", "--tls-key")
            )
            raise ConfigError(f"{given}: needs {missing} too")

    def tls_options(self) -> dict[str, Any]:
        """The client library's keyword arguments (clients/README.md: the same names)."""
        return {
            "tls_ca": self.tls_ca,
            "tls_cert": self.tls_cert,
            "tls_key": self.tls_key,
            "tls_server_name": self.tls_server_name,
        }


#: --zk-acl's values (zk/security.py turns them into ACLs).
ZK_ACL_MODES = ("world-read", "private", "open")


def _zk_acl(value: str, what: str) -> str | None:
    text = value.strip().lower()
    if not text:
        return None
    if text not in ZK_ACL_MODES:
        raise ConfigError(f"{what}: {value!r} is not one of {', '.join(ZK_ACL_MODES)}")
    return text


@dataclass(frozen=True)
class ZkSecurityConfig:
    """TLS to ZooKeeper, electd's ZooKeeper identity (digest) and the ACL of what it creates:
    a mixin of ZkConfig (config/commands.py), so every command that talks to ZooKeeper (serve,
    run, identity) takes the same settings. The credentials file is read and checked here at
    start (and again by zk/security.py for each client); its secret never enters the config."""

    zk_tls_ca: str | None = setting(
        "--zk-tls-ca",
        parse=_file,
        default="",
        metavar="FILE",
        env=True,
        shown_default="plaintext",
        help="PEM CA certificates to verify the ZooKeeper servers' certificates with (and "
        "their names, against each host of --zk): turns TLS to ZooKeeper on (its "
        "secureClientPort); re-read at each new connection",
    )
    zk_tls_cert: str | None = setting(
        "--zk-tls-cert",
        parse=_file,
        default="",
        metavar="FILE",
        env=True,
        shown_default="none",
        help="PEM client certificate chain to present to ZooKeeper (with --zk-tls-key; for "
        "ssl.clientAuth=need); needs --zk-tls-ca",
    )
    zk_tls_key: str | None = setting(
        "--zk-tls-key",
        parse=_file,
        default="",
        metavar="FILE",
        env=True,
        help="PEM private key of --zk-tls-cert (unencrypted)",
    )
    zk_auth_file: str | None = setting(
        "--zk-auth-file",
        parse=_file,
        default="",
        metavar="FILE",
        env=True,
        shown_default="unauthenticated, open znodes",
        help="file with electd's ZooKeeper credentials, USER:PASSWORD (digest scheme; more "
        "lines: more identities, for rotation); the password is never taken from the command "
        "line or the environment. electd authenticates with them and gives what it creates "
        "the ACL of --zk-acl",
    )
    zk_acl: str | None = setting(
        "--zk-acl",
        parse=_zk_acl,
        default="",
        metavar="MODE",
        env=True,
        shown_default="world-read with --zk-auth-file, else open",
        help="ACL of the election path and of every znode electd creates: world-read "
        "(electd's identities may do everything, anyone else only read), private (only "
        "electd's identities, even to read) or open (anyone anything, as without credentials); "
        "world-read and private need --zk-auth-file",
    )

    @property
    def zk_acl_mode(self) -> str:
        """--zk-acl with its default filled in."""
        if self.zk_acl is not None:
            return self.zk_acl
        return "world-read" if self.zk_auth_file is not None else "open"

    def check(self) -> None:
        if (self.zk_tls_cert is None) != (self.zk_tls_key is None):
            missing, given = (
                ("--zk-tls-key", "--zk-tls-cert")
                if self.zk_tls_key is None
                else ("--zk-tls-cert", "--zk-tls-key")
            )
            raise ConfigError(f"{given}: needs {missing} too")
        if self.zk_tls_cert is not None and self.zk_tls_ca is None:
            raise ConfigError("--zk-tls-cert: needs --zk-tls-ca (TLS to ZooKeeper)")
        if self.zk_acl in ("world-read", "private") and self.zk_auth_file is None:
            raise ConfigError(
                f"--zk-acl: {self.zk_acl} names electd's identity: needs --zk-auth-file"
            )
        if self.zk_tls_ca is not None:
            from electd.tlsfiles import PemError, certificates, key_pair

            try:
                certificates(self.zk_tls_ca, "--zk-tls-ca")
                if self.zk_tls_cert is not None and self.zk_tls_key is not None:
                    key_pair(self.zk_tls_cert, self.zk_tls_key, "--zk-tls-cert", "--zk-tls-key")
            except PemError as exc:
                raise ConfigError(str(exc)) from None
        if self.zk_auth_file is not None:
            from electd.credentials import CredentialsError, read

            try:
                read(self.zk_auth_file)
            except CredentialsError as exc:
                raise ConfigError(f"--zk-auth-file: {exc}") from None
