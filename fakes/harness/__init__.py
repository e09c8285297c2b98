"""The real bot process wired to the fakes, as the tests and the benchmarks drive it."""
