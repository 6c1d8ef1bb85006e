"""Allows `python -m electd ...`."""

from electd.cli import main

raise SystemExit(main())
