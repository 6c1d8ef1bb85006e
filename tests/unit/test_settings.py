"""The settings table: the parser, the validated config and the launchers' argv all come from
one declaration per setting, a flag wins over the environment, which wins over the default,
and a bad value names the flag or the variable it came from."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from electd.cli import build_parser
from electd.config import (
    COMMANDS,
    ConfigError,
    DevConfig,
    NodeConfig,
    NodesConfig,
    load,
    load_args,
    settings_of,
    to_argv,
)


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_every_config_field_is_a_setting_with_help() -> None:
    for classes in COMMANDS.values():
        for cls in classes:
            rows = {row.name: row for row in settings_of(cls)}
            assert set(rows) == {f.name for f in dataclasses.fields(cls)}, cls
            for row in rows.values():
                assert row.flag.startswith("--") and row.help, row


def test_the_parser_has_exactly_the_flags_of_the_table() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for command, classes in COMMANDS.items():
        flags = {
            opt
            for action in sub.choices[command]._actions
            for opt in action.option_strings
            if opt not in ("-h", "--help")
        }
        assert flags == {row.flag for row in settings_of(*classes)}, command


def test_flag_beats_environment_beats_default() -> None:
    env = {"ELECTD_SESSION_TIMEOUT": "3", "ELECTD_LABELS": "zone=a,rack=r1"}
    cfg = load_args(NodeConfig, parse("serve"), env)
    assert cfg.session_timeout == 3.0 and dict(cfg.labels) == {"zone": "a", "rack": "r1"}
    cfg = load_args(NodeConfig, parse("serve", "--session-timeout", "7"), env)
    assert cfg.session_timeout == 7.0
    cfg = load_args(NodeConfig, parse("serve"), {})
    assert cfg.session_timeout == 10.0 and cfg.max_streams == 20_000 and cfg.advertise is None


def test_a_bad_value_names_where_it_came_from() -> None:
    with pytest.raises(ConfigError, match=r"^--max-streams: "):
        load_args(NodeConfig, parse("serve", "--max-streams", "0"), {})
    with pytest.raises(ConfigError, match=r"^ELECTD_MAX_STREAMS: 'many' is not a whole number"):
        load_args(NodeConfig, parse("serve"), {"ELECTD_MAX_STREAMS": "many"})
    with pytest.raises(ConfigError, match=r"^--selector: key 'bad key'"):
        load_args(NodesConfig, parse("nodes", "--selector", "bad key=1"), {})
    with pytest.raises(ConfigError, match=r"^--base-port: 65535 leaves no room for 3 nodes"):
        load_args(DevConfig, parse("dev", "--base-port", "65535"), {})


def test_launcher_argv_round_trips_and_refuses_unknown_names() -> None:
    argv = to_argv(
        NodeConfig,
        zk="h1:2181,h2:2181/chroot",
        listen="127.0.0.1:0",
        session_timeout=2.5,
        labels={"zone": "a", "rack": "1"},
        node_id=None,
    )
    assert argv.count("--label") == 2 and "--node-id" not in argv
    cfg = load_args(NodeConfig, parse("serve", *argv), {})
    assert (str(cfg.zk), cfg.session_timeout, dict(cfg.labels)) == (
        "h1:2181,h2:2181/chroot",
        2.5,
        {"zone": "a", "rack": "1"},
    )
    with pytest.raises(TypeError, match="no setting 'sesion_timeout'"):
        to_argv(NodeConfig, sesion_timeout=2)
    with pytest.raises(TypeError, match="no setting"):
        load(NodeConfig, {"sesion_timeout": 2}, {})


def test_the_readme_tables_are_the_settings_table() -> None:
    """The README's configuration tables are generated from the table; regenerate them with
    `python -m electd.config --readme README.md`."""
    from pathlib import Path

    from electd.config.__main__ import render

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "<!-- settings:serve -->" in readme
    assert render(readme) == readme, "run: python -m electd.config --readme README.md"
