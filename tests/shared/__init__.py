"""Tests of adapters/shared/: what every platform needs done one way (claims, rate limits, reply records, feedback)."""
