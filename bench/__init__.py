"""electd's benchmarks: `python -m bench` (see bench/cli.py and BENCHMARKS.md)."""
