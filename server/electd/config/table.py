"""The settings table: every setting of every command is one field of a frozen config
dataclass (config/commands.py), declared with `setting(...)`: its flag, environment variable,
default, parser (validation) and help. Everything else is derived from those declarations:

  * the argument parser of each command (`add_arguments`),
  * the validated, frozen config (`load`): a flag wins over the environment, which wins over
    the default; a bad value fails here with a message naming the flag or the variable,
  * the argv of a process launcher (`to_argv`) for tests, benchmarks and `electd dev`, which
    refuses a name that is not a setting.

Adding a setting is adding one field. Imports neither kazoo nor grpc.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from electd.config.values import ConfigError

_C = TypeVar("_C")

#: The environment variable prefix of every setting that has one.
ENV_PREFIX = "ELECTD_"


@dataclass(frozen=True)
class Setting:
    """One row of the table. `parse(raw, what)` turns the raw text (a list of texts for a
    repeatable setting) into the value, raising ConfigError that names `what`."""

    name: str
    flag: str
    parse: Callable[[Any, str], Any]
    default: str | tuple[str, ...] | bool
    help: str
    metavar: str = ""
    env: str = ""
    repeatable: bool = False
    switch: bool = False
    choices: tuple[str, ...] = ()
    shown_default: str = ""

    def describe(self) -> str:
        """The help line: the text, then the default and the environment variable."""
        extra = []
        if not self.switch:
            default = ",".join(self.default) if isinstance(self.default, tuple) else self.default
            extra.append(f"default: {self.shown_default or default or 'none'}")
        if self.env:
            extra.append(f"env {self.env}" + (", comma-separated" if self.repeatable else ""))
        return f"{self.help} ({'; '.join(extra)})" if extra else self.help


_KEY = "electd.setting"


def setting(
    flag: str,
    *,
    parse: Callable[[Any, str], Any],
    default: str | tuple[str, ...] | bool,
    help: str,
    metavar: str = "",
    env: str | bool = False,
    repeatable: bool = False,
    switch: bool = False,
    choices: tuple[str, ...] = (),
    shown_default: str = "",
) -> Any:
    """Declare a config field as a setting. `env=True` derives the variable from the flag
    (--session-timeout -> ELECTD_SESSION_TIMEOUT); a string names it; False: none."""
    if env is True:
        env = ENV_PREFIX + flag.lstrip("-").upper().replace("-", "_")
    spec = {
        "flag": flag,
        "parse": parse,
        "default": default,
        "help": help,
        "metavar": metavar,
        "env": env or "",
        "repeatable": repeatable,
        "switch": switch,
        "choices": choices,
        "shown_default": shown_default,
    }
    return dataclasses.field(metadata={_KEY: spec})


def settings_of(*classes: type) -> list[Setting]:
    """The rows declared by these config classes, in declaration order."""
    rows = []
    for cls in classes:
        for f in dataclasses.fields(cls):
            spec = f.metadata.get(_KEY)
            if spec is not None:
                rows.append(Setting(name=f.name, **spec))
    return rows


def add_arguments(parser: argparse.ArgumentParser, *classes: type) -> None:
    """Add the flags of these config classes. Defaults stay None here: `load` tells a flag
    that was given from one that was not, so that the environment can fill in."""
    for row in settings_of(*classes):
        kwargs: dict[str, Any] = {"dest": row.name, "default": None, "help": row.describe()}
        if row.switch:
            kwargs["action"] = "store_true"
        elif row.choices:
            kwargs["choices"] = row.choices
        else:
            kwargs["metavar"] = row.metavar or row.name.upper()
            if row.repeatable:
                kwargs["action"] = "append"
        parser.add_argument(row.flag, **kwargs)


def load(cls: type[_C], given: Mapping[str, Any], environ: Mapping[str, str]) -> _C:
    """Build the frozen config `cls` from the flags given (by setting name; None or a missing
    key means not given), else the environment, else the defaults. Raises ConfigError."""
    unknown = set(given) - {row.name for row in settings_of(cls)}
    if unknown:
        raise TypeError(f"{cls.__name__} has no setting {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for row in settings_of(cls):
        raw: Any = given.get(row.name)
        what = row.flag
        if raw is None and row.env and row.env in environ:
            raw, what = environ[row.env], row.env
            if row.repeatable:
                raw = [item for item in raw.split(",") if item.strip()]
            elif row.switch:
                raw = _env_bool(raw, row.env)
        if raw is None:
            raw = list(row.default) if isinstance(row.default, tuple) else row.default
        if row.switch:
            values[row.name] = bool(raw)
        elif row.repeatable:
            values[row.name] = row.parse([str(item) for item in raw], what)
        else:
            text = str(raw)  # a number passed by a caller in Python (tests) becomes its text
            if row.choices:
                text = text.lower()
                if text not in row.choices:
                    raise ConfigError(f"{what}: {raw!r} is not one of {', '.join(row.choices)}")
            values[row.name] = row.parse(text, what)
    config = cls(**values)
    # Every class's own `check`, bases first: a mixin's checks (config/security.py) run even
    # when the class that inherits it has a `check` of its own.
    for klass in reversed(type(config).__mro__):
        check = klass.__dict__.get("check")
        if check is not None:
            check(config)
    return config


def load_args(cls: type[_C], args: argparse.Namespace, environ: Mapping[str, str]) -> _C:
    """`load` from a parsed command line."""
    names = {row.name for row in settings_of(cls)}
    return load(cls, {k: v for k, v in vars(args).items() if k in names}, environ)


def to_argv(cls: type, **values: Any) -> list[str]:
    """Flags that set these settings of `cls` (by name), for launching a process. Values are
    given as a person would type them (numbers are turned into text); a list repeats a flag."""
    rows = {row.name: row for row in settings_of(cls)}
    argv: list[str] = []
    for name, value in values.items():
        row = rows.get(name)
        if row is None:
            raise TypeError(f"{cls.__name__} has no setting {name!r}")
        if value is None:
            continue
        if row.switch:
            argv += [row.flag] if value else []
        elif row.repeatable:
            for item in _items(value):
                argv += [row.flag, str(item)]
        else:
            argv += [row.flag, str(value)]
    return argv


def environment(cls: type) -> list[Setting]:
    """The rows of `cls` that an environment variable can set (for docs and tests)."""
    return [row for row in settings_of(cls) if row.env]


def _items(value: Any) -> Iterable[Any]:
    if isinstance(value, Mapping):
        return [f"{k}={v}" for k, v in value.items()]
    if isinstance(value, str | bytes):
        return [value]
    return list(value)


def _env_bool(raw: str, what: str) -> bool:
    text = raw.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("", "0", "false", "no", "off"):
        return False
    raise ConfigError(f"{what}: {raw!r} is not a boolean (true/false)")


def markdown(*classes: type) -> str:
    """The settings of these classes as the README's Markdown table."""
    lines = ["| flag | env | default | meaning |", "|---|---|---|---|"]
    for row in settings_of(*classes):
        if row.switch:
            flag = f"`{row.flag}`"
        elif row.choices:
            flag = f"`{row.flag} {'|'.join(row.choices)}`".replace("|", "\\|")
        else:
            flag = f"`{row.flag} {row.metavar or row.name.upper()}`"
        if row.repeatable:
            flag += " (repeatable)"
        env = f"`{row.env}`" + (" (comma-separated)" if row.repeatable else "") if row.env else ""
        default = ",".join(row.default) if isinstance(row.default, tuple) else str(row.default)
        shown = row.shown_default or (f"`{default}`" if default and not row.switch else "none")
        meaning = row.help.replace("|", "\\|")
        lines.append(f"| {flag} | {env} | {shown} | {meaning} |")
    return "\n".join(lines) + "\n"
