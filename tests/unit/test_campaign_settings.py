"""The settings of election as a service: defaults, the candidate lease's bound from the
session timeout, the elections root kept apart from the node election, and `electd serve`
exiting 2 with a message that names the flag."""

from __future__ import annotations

import subprocess
import sys

import pytest

from electd.config import ConfigError, build_node_config


def cfg(**kw: object):
    return build_node_config(**{"listen": "127.0.0.1:0", **kw})


def test_defaults() -> None:
    c = cfg()
    assert c.elections_root == "/elections"
    assert c.candidate_timeout == 5.0 and c.max_candidates == 10_000
    assert c.candidate_lease is None
    assert c.effective_candidate_lease() == 2.0  # T = 10: min(2, 2T/3 - T/8 = 5.42)
    short = cfg(session_timeout=2)
    assert short.effective_candidate_lease() == pytest.approx(2 * (2 / 3 - 1 / 8))
    assert cfg(zk="h:1/chroot").elections_zk_root == "/chroot/elections"


def test_a_given_candidate_lease_is_bounded_by_what_a_heartbeat_keeps() -> None:
    assert cfg(session_timeout=2, candidate_lease="1").effective_candidate_lease() == 1.0
    with pytest.raises(ConfigError, match=r"^--candidate-lease: 1.5s is longer .* 1.083s"):
        cfg(session_timeout=2, candidate_lease="1.5")
    with pytest.raises(ConfigError, match=r"^--candidate-lease: "):
        cfg(candidate_lease="0")
    with pytest.raises(ConfigError, match=r"^--candidate-lease: "):
        cfg(candidate_lease="soon")


@pytest.mark.parametrize(
    ("root", "path"),
    [("/election", "/election"), ("/election/named", "/election"), ("/a", "/a/node")],
)
def test_the_elections_root_is_apart_from_the_node_election(root: str, path: str) -> None:
    with pytest.raises(ConfigError, match=r"^--elections-root: .* apart from --election-path"):
        cfg(elections_root=root, election_path=path)
    assert cfg(elections_root="/elections-x", election_path="/election").elections_root


def test_other_bad_values_name_their_flag() -> None:
    with pytest.raises(ConfigError, match=r"^--elections-root: 'relative' must start with '/'"):
        cfg(elections_root="relative")
    with pytest.raises(ConfigError, match=r"^--max-candidates: 0 is outside"):
        cfg(max_candidates="0")
    with pytest.raises(ConfigError, match=r"^--candidate-timeout: "):
        cfg(candidate_timeout="0")
    with pytest.raises(ConfigError, match=r"^ELECTD_MAX_CANDIDATES: "):
        build_node_config({"ELECTD_MAX_CANDIDATES": "many"})


def test_serve_exits_2_naming_the_flag() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "electd",
            "serve",
            "--session-timeout",
            "2",
            "--candidate-lease",
            "5",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done
    assert "--candidate-lease" in done.stderr
