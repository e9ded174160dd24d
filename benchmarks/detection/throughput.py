"""Throughput of the pure detection core: python -m benchmarks.detection.throughput
[--pairs 1000] [--seconds 60] [--repeat 3]

One pair update is what the integration does for a pair each second: a line and a house reading
go to the paper's instantaneous rule (semcore/instant_rule.py, PairDetector) and to the windowed
energy balance (semcore/energy_balance.py, TheftEngine), with the balance's clock tick every 5 s.
The readings are made beforehand (a theft-free pair with noise); building each MeterReading is
counted, as the integration builds one per reading. Prints pair updates per second per core for
the rule, the balance and both, median and range over the runs. Figures only.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import time
from collections.abc import Callable

from custom_components.smart_energy_meter.semcore.energy_balance import MeterReading, TheftEngine
from custom_components.smart_energy_meter.semcore.instant_rule import PairDetector
from custom_components.smart_energy_meter.semcore.protocol import Role

TICK_EVERY = 5  # seconds, as the integration's TICK_INTERVAL

# (line W, line V, line A, line Wh, house W, house V, house A, house Wh) of one second
Second = tuple[float, float, float, float, float, float, float, float]


def machine() -> str:
    cpu = platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next(
                (line.split(":", 1)[1].strip() for line in info if line.startswith("model name")),
                cpu,
            )
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def readings(pairs: int, seconds: int, seed: int = 1) -> list[list[Second]]:
    """Per pair, one honest second after another: ~0.5 % cable loss, meter noise."""
    rng = random.Random(seed)
    fleet = []
    for _ in range(pairs):
        load = rng.uniform(100.0, 2000.0)
        line_wh, house_wh = 10_000.0, 9_950.0
        out: list[Second] = []
        for _ in range(seconds):
            load = min(3000.0, max(50.0, load + rng.gauss(0.0, 20.0)))
            volts = 230.0 + rng.gauss(0.0, 1.0)
            house = load * (1 + rng.gauss(0.0, 0.002))
            line = load * 1.005 * (1 + rng.gauss(0.0, 0.002))
            line_wh += line / 3600
            house_wh += house / 3600
            out.append((
                round(line, 1), round(volts + 0.3, 1), round(line / volts, 3), float(int(line_wh)),
                round(house, 1), round(volts, 1), round(house / volts, 3), float(int(house_wh)),
            ))  # fmt: skip
        fleet.append(out)
    return fleet


def _rule(fleet: list[list[Second]], start: float) -> int:
    updates = 0
    for pair in fleet:
        detector = PairDetector()
        for t, (lp, _lv, _li, _le, hp, _hv, _hi, _he) in enumerate(pair):
            ts = start + t
            detector.update_line(lp, ts)
            detector.update_house(hp, ts)
            updates += 1
    return updates


def _balance(fleet: list[list[Second]], start: float) -> int:
    updates = 0
    for pair in fleet:
        engine = TheftEngine()
        for t, (lp, lv, li, le, hp, hv, hi, he) in enumerate(pair):
            ts = start + t
            engine.feed(Role.LINE, MeterReading(ts, lp, lv, li, le))
            engine.feed(Role.HOUSE, MeterReading(ts, hp, hv, hi, he))
            if t % TICK_EVERY == 0:
                engine.tick(ts)
            updates += 1
    return updates


def _both(fleet: list[list[Second]], start: float) -> int:
    updates = 0
    for pair in fleet:
        detector = PairDetector()
        engine = TheftEngine()
        for t, (lp, lv, li, le, hp, hv, hi, he) in enumerate(pair):
            ts = start + t
            detector.update_line(lp, ts)
            engine.feed(Role.LINE, MeterReading(ts, lp, lv, li, le))
            detector.update_house(hp, ts)
            engine.feed(Role.HOUSE, MeterReading(ts, hp, hv, hi, he))
            if t % TICK_EVERY == 0:
                engine.tick(ts)
            updates += 1
    return updates


def rate(run: Callable[[list[list[Second]], float], int], fleet: list[list[Second]]) -> float:
    """Pair updates per second of CPU time."""
    started = time.process_time()
    updates = run(fleet, 1_800_000_000.0)
    return updates / (time.process_time() - started)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.detection.throughput", description=__doc__
    )
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=60, help="simulated seconds per pair")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    fleet = readings(args.pairs, args.seconds)
    print(f"machine: {machine()}")
    print(
        f"{args.pairs} pairs x {args.seconds} s of 1 s readings, {args.repeat} runs "
        "(median, range); one pair update = a line and a house reading"
    )
    print()
    print("| detector | pair updates/s (one core) | µs per pair update |")
    print("|---|---|---|")
    for label, run in (
        ("paper's rule (PairDetector)", _rule),
        ("energy balance (TheftEngine)", _balance),
        ("both, as the integration runs them", _both),
    ):
        rates = [rate(run, fleet) for _ in range(args.repeat)]
        median = statistics.median(rates)
        spread = f"{median:,.0f} ({min(rates):,.0f} to {max(rates):,.0f})"
        print(f"| {label} | {spread} | {1e6 / median:.1f} |", flush=True)


if __name__ == "__main__":
    main()
