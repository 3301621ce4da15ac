"""Benchmarks, each a script: `make bench`, `make bench-e2e`, ... (see docs/performance.md)."""
