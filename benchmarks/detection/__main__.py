"""python -m benchmarks.detection [--scale X] [--jobs N] [--only TEXT]

Simulates every scenario (seeded: the same figures on every run), feeds the readings to each
detector and prints two Markdown tables: false alarms per day without theft, and detection rate,
detection within 2 minutes and median latency with theft (or with the house meter offline).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

from .evaluate import OURS, run_named
from .report import check_goals, machine, tables
from .scenarios import COMMISSION_S, scenarios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.detection", description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply simulated days")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes")
    parser.add_argument("--only", default="", help="run scenarios whose name contains this")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 1 h per scenario (15 min lead-in); figures are not meaningful",
    )
    args = parser.parse_args(argv)
    scale, lead_in, tail = args.scale, COMMISSION_S, 3 * 3600.0
    if args.quick:
        scale, lead_in, tail = 0.0, 900.0, 2700.0

    chosen = [s for s in scenarios() if args.only in s.name]
    if not chosen:
        parser.error(f"no scenario matches {args.only!r}")
    started = time.perf_counter()
    # Longest first, so the pool does not end waiting on one long scenario.
    order = sorted(chosen, key=lambda s: -s.days)
    jobs = [(s.name, scale, lead_in, tail) for s in order]
    if args.jobs > 1:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            results = dict(zip(order, pool.map(run_named, jobs), strict=True))
    else:
        results = dict(zip(order, map(run_named, jobs), strict=True))
    scores = [score for s in chosen for score in results[s]]
    elapsed = time.perf_counter() - started

    print(tables(scores))
    for s in scores:
        if s.note:
            print(f"\nnote: {s.scenario}, {s.detector}: {s.note}")
    simulated = sum(d for _, d in {(s.scenario, s.days) for s in scores})
    print(f"\n{simulated:.2f} simulated days, 1 s readings, in {elapsed:.0f} s on {machine()}")
    failures = check_goals(scores, OURS, {s.name for s in chosen if s.fast_goal})
    for failure in failures:
        print(f"GOAL MISSED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
