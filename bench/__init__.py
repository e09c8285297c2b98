"""Benchmarks: `python -m bench.core` measures the shared core under concurrent conversations."""
