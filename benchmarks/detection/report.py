"""Markdown tables of the scores, and the goals the windowed balance must meet."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Iterable

from .evaluate import Score

GOAL_RATE = 0.99


def _detectors(scores: Iterable[Score]) -> list[str]:
    names: list[str] = []
    for s in scores:
        if s.detector not in names:
            names.append(s.detector)
    return names


def _pct(value: float | None) -> str:
    if value is None:
        return "-"
    # One decimal between the ends, so that 99.6 % does not read as 100 %.
    return f"{100 * value:.0f} %" if value in (0.0, 1.0) else f"{100 * value:.1f} %"


def _rate(value: float) -> str:
    return "0" if value == 0 else f"{value:.1f}"


def _row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def tables(scores: list[Score], span: tuple[str, float] = ("days", 1.0)) -> str:
    """Table 1: false alarms per day without theft. Table 2: detection with theft/tamper.

    span: the heading of table 1's simulated-time column and its factor from days."""
    detectors = _detectors(scores)
    by_key = {(s.scenario, s.detector): s for s in scores}
    scenarios = list(dict.fromkeys(s.scenario for s in scores))
    groups = {s.scenario: s.group for s in scores}
    days = {s.scenario: s.days for s in scores}
    episodes = {s.scenario: s.episodes for s in scores}
    out: list[str] = []

    quiet = [name for name in scenarios if groups[name] == "no theft"]
    if quiet:
        out.append("False alarms per day, no theft:\n")
        out.append(_row(["scenario", span[0], *detectors]))
        out.append(_row(["---"] * (len(detectors) + 2)))
        for name in quiet:
            cells = [name, f"{days[name] * span[1]:.1f}"]
            for det in detectors:
                score = by_key.get((name, det))
                cells.append("n/a" if score is None else _rate(score.false_per_day))
            out.append(_row(cells))

    active = [name for name in scenarios if groups[name] != "no theft"]
    if active:
        if out:
            out.append("")
        out.append(
            "With theft (house meter offline: tamper): detected / detected within 2 min / "
            "median latency; false alarms per day outside the episodes in brackets:\n"
        )
        out.append(_row(["scenario", "episodes", *detectors]))
        out.append(_row(["---"] * (len(detectors) + 2)))
        for name in active:
            cells = [name, str(episodes[name])]
            for det in detectors:
                score = by_key.get((name, det))
                if score is None:
                    cells.append("n/a")
                    continue
                latency = score.median_latency
                median = "-" if latency is None else f"{latency:.0f} s"
                cells.append(
                    f"{_pct(score.detection_rate)} / {_pct(score.fast_rate)} / {median} "
                    f"({_rate(score.false_per_day)})"
                )
            out.append(_row(cells))
    return "\n".join(out)


def check_goals(scores: list[Score], detector: str, fast_goal: set[str]) -> list[str]:
    """No false alarm anywhere; >= 99 % detected within 2 minutes where the goal applies."""
    failures = []
    for s in scores:
        if s.detector != detector:
            continue
        if s.false_alarms:
            failures.append(f"{detector}: {s.false_alarms} false alarm(s) in {s.scenario!r}")
        if s.scenario in fast_goal and (s.fast_rate or 0.0) < GOAL_RATE:
            failures.append(
                f"{detector}: {_pct(s.fast_rate)} detected within 2 min in {s.scenario!r}"
            )
    return failures


def machine() -> str:
    """The CPU, its cores and the Python that ran the figures."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()} ({sys.platform})"
