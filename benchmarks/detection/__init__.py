"""Evaluation harness of theft detection: scenario sets through the pure detectors.

Run `scripts/env python -m benchmarks.detection` (see --help).
"""
