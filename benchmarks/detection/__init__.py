"""Evaluation harness of theft detection: scenario sets through the pure detectors.

Run `scripts/env python -m benchmarks.detection` (see --help); a subset end to end through the
firmware simulator and a real broker: `scripts/env python -m benchmarks.detection.end_to_end`.
"""
