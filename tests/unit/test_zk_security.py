"""The ZooKeeper security settings and what zk/security.py makes of them: the credentials file
is checked at start with messages that never show a password; the ACL names electd's
identities with every right and, as configured, anyone with read; TLS verifies the server's
certificate and name."""

from __future__ import annotations

from pathlib import Path

import pytest
from kazoo.security import OPEN_ACL_UNSAFE, make_acl, make_digest_acl

from electd.config import ConfigError, IdentityConfig, NodeConfig, load
from electd.credentials import CredentialsError, parse
from electd.devcluster.certs import CertificateAuthority
from electd.zk.security import acl_for, client_options

PASSWORD = "a-long-enough-password-1"


def auth_file(tmp_path: Path, text: str = f"# ours\nelectd:{PASSWORD}\n") -> str:
    path = tmp_path / "zk-auth"
    path.write_text(text)
    return str(path)


def test_credentials_lines_comments_and_rotation() -> None:
    creds = parse(f"# c\n\nelectd:{PASSWORD}\nelectd-next:{PASSWORD}2\n", "f")
    assert [c.user for c in creds] == ["electd", "electd-next"]
    assert PASSWORD not in repr(creds)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("electd\n", "line 1: not USER:PASSWORD"),
        (f"bad user:{PASSWORD}\n", "line 1: not USER:PASSWORD"),
        ("electd:short\n", "shorter than 16"),
        (f"electd:{PASSWORD}\nelectd:{PASSWORD}x\n", "twice"),
        ("\n# nothing\n", "no USER:PASSWORD line"),
    ],
)
def test_bad_credentials_are_named_without_the_secret(text: str, message: str) -> None:
    with pytest.raises(CredentialsError) as err:
        parse(text, "f")
    assert message in str(err.value) and PASSWORD not in str(err.value)


def test_the_acl_mode_follows_the_credentials(tmp_path: Path) -> None:
    assert load(NodeConfig, {}, {}).zk_acl_mode == "open"
    env = {"ELECTD_ZK_AUTH_FILE": auth_file(tmp_path)}
    assert load(NodeConfig, {}, env).zk_acl_mode == "world-read"
    assert load(NodeConfig, {"zk_acl": "private"}, env).zk_acl_mode == "private"
    with pytest.raises(ConfigError, match=r"--zk-acl: private .* needs --zk-auth-file"):
        load(NodeConfig, {"zk_acl": "private"}, {})
    with pytest.raises(ConfigError, match="--zk-acl: 'locked' is not one of"):
        load(NodeConfig, {"zk_acl": "locked"}, env)
    with pytest.raises(ConfigError, match="--zk-auth-file: cannot read"):
        load(NodeConfig, {"zk_auth_file": str(tmp_path / "missing")}, {})
    with pytest.raises(ConfigError, match="--apply-acl: needs --zk-auth-file"):
        load(IdentityConfig, {"apply_acl": True}, {})


def test_tls_settings_come_in_pairs_and_are_checked(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path)
    client = ca.issue("c", "electd")
    with pytest.raises(ConfigError, match="--zk-tls-cert: needs --zk-tls-key"):
        load(NodeConfig, {"zk_tls_ca": str(ca.cert), "zk_tls_cert": str(client.cert)}, {})
    with pytest.raises(ConfigError, match="--zk-tls-cert: needs --zk-tls-ca"):
        load(NodeConfig, {"zk_tls_cert": str(client.cert), "zk_tls_key": str(client.key)}, {})
    with pytest.raises(ConfigError, match="--zk-tls-ca"):
        load(NodeConfig, {"zk_tls_ca": str(client.key)}, {})
    cfg = load(
        NodeConfig,
        {"zk_tls_ca": str(ca.cert), "zk_tls_cert": str(client.cert), "zk_tls_key": str(client.key)},
        {},
    )
    options = client_options(cfg)
    assert options["use_ssl"] and options["verify_certs"] and options["check_hostname"]
    assert options["certfile"] == str(client.cert) and "auth_data" not in options
    assert options["default_acl"] == OPEN_ACL_UNSAFE


def test_the_acl_gives_electd_everything_and_others_at_most_read(tmp_path: Path) -> None:
    cfg = load(NodeConfig, {"zk_auth_file": auth_file(tmp_path)}, {})
    options = client_options(cfg)
    ours = make_digest_acl("electd", PASSWORD, all=True)
    assert options["auth_data"] == [("digest", f"electd:{PASSWORD}")]
    assert options["default_acl"] == [ours, make_acl("world", "anyone", read=True)]
    creds = parse(f"electd:{PASSWORD}\n", "f")
    assert acl_for(creds, "private") == [ours]
    assert acl_for(creds, "open") == OPEN_ACL_UNSAFE
    assert acl_for((), "world-read") == OPEN_ACL_UNSAFE
