"""Benchmarks (run by hand or `make bench`; never from pytest)."""
