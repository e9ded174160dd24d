"""Benchmarks: each prints figures and asserts no times."""
