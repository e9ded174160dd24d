"""Theft detection end to end: firmware simulator → mosquitto → decoder → detectors.

Run `scripts/env python -m benchmarks.detection.end_to_end` (see --help).
"""
