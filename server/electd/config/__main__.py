"""`python -m electd.config [--readme README.md]`: print the settings of each command as
Markdown tables, or rewrite the README's tables between their markers (`<!-- settings:CMD -->`
... `<!-- /settings -->`). tests/unit/test_settings.py checks that the README is in sync."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from electd.config.commands import COMMANDS
from electd.config.table import markdown

_BLOCK = re.compile(r"(<!-- settings:(\w+) -->\n)(.*?)(<!-- /settings -->)", re.S)


def render(text: str) -> str:
    """`text` with every settings block replaced by the current table of its command."""
    return _BLOCK.sub(lambda m: m[1] + markdown(*COMMANDS[m[2]]) + m[4], text)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m electd.config", description=__doc__)
    parser.add_argument("--readme", type=Path, help="rewrite the tables of this file in place")
    args = parser.parse_args()
    if args.readme is None:
        for name, classes in COMMANDS.items():
            sys.stdout.write(f"## electd {name}\n\n{markdown(*classes)}\n")
        return 0
    text = args.readme.read_text()
    args.readme.write_text(render(text))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
