"""Benchmarks: `python -m bench.discord` and `python -m bench.slack` run the real bot process against the
loopback platforms."""
