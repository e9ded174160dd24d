"""python -m benchmarks.detection.end_to_end [--only TEXT] [--speed X]

Runs the scenario files of benchmarks/detection/end_to_end/scenarios at once, end to end: a real
mosquitto on 127.0.0.1, one firmware simulator per file (the node firmware under MicroPython,
emulated PZEM-004T meters, simulated time running `speed` times faster than real time), and a
subscriber that decodes every snapshot and feeds each pair's detectors. Prints the same tables
as `python -m benchmarks.detection`, what the subscriber received, and the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from benchmarks.detection.end_to_end.stream import Result, run
from benchmarks.detection.end_to_end.truth import load
from benchmarks.detection.evaluate import OURS
from benchmarks.detection.report import check_goals, machine, tables

SCENARIOS = Path(__file__).parent / "scenarios"


def traffic_table(result: Result) -> str:
    rows = [
        "| scenario | pairs | simulated | speed | snapshots | sensor errors | missed | rejected "
        "| longest gap | gaps > 5 s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for file in result.files:
        seen = result.traffic[file.name]
        rows.append(
            f"| {file.name} | {len(file.pairs)} | {file.duration_s / 60:.0f} min "
            f"| x{result.speeds[file.name]:g} | {seen.snapshots} | {seen.sensor_errors} "
            f"| {seen.missed} | {seen.rejected} | {seen.longest_gap_s:.1f} s | {seen.long_gaps} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.detection.end_to_end", description=__doc__
    )
    parser.add_argument("--only", default="", help="run scenario files whose name contains this")
    parser.add_argument("--speed", type=float, default=None, help="override the files' speed")
    args = parser.parse_args(argv)
    files = [load(path) for path in sorted(SCENARIOS.glob("*.json"))]
    chosen = [f for f in files if args.only in f.name or args.only in f.path.stem]
    if not chosen:
        parser.error(f"no scenario matches {args.only!r}")
    # Table order: no theft first, as in the pure harness.
    order = {"no theft": 0, "meter offline": 1, "theft": 2}
    chosen.sort(key=lambda f: (order[f.group], f.path.stem))

    result = asyncio.run(run(chosen, speed=args.speed))

    print(tables(result.scores, span=("pair-hours", 24.0)))
    print("\nWhat the subscriber received:\n")
    print(traffic_table(result))
    for name, seen in result.traffic.items():
        for problem in seen.problems:
            print(f"problem: {name}: {problem}")
    simulated = sum(f.duration_s * len(f.pairs) for f in chosen) / 3600
    print(
        f"\n{simulated:.1f} pair-hours of simulated time, 1 s readings, in {result.real_s:.0f} s "
        f"on {machine()}"
    )
    print("CPU: " + ", ".join(f"{who} {seconds:.0f} s" for who, seconds in result.cpu_s.items()))
    failures = check_goals(result.scores, OURS, {f.name for f in chosen if f.fast_goal})
    for failure in failures:
        print(f"GOAL MISSED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
