"""Test helpers shared by the test modules and the benchmarks: real brokers, built
models, paths."""
