"""Benchmarks: reports, not tests. `make bench` runs bench.write_path."""
