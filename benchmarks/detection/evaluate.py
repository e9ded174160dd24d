"""Run one scenario through every detector and score the alarms.

Scoring:
- an episode (a theft, or a house meter outage for the tamper check) is detected when the
  detector's alarm of the expected kind is raised, or already on, between its start and its end
  plus a grace period (the windows that contain its end close a little later);
- latency is the time from the episode's start to that alarm;
- every other alarm raised outside an episode (plus grace) is a false alarm; false alarms per
  day divide them by the time without any episode.
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass, replace

from custom_components.smart_energy_meter.semcore.debounce import DebounceConfig, DebounceMode

from .detectors import Detector, Ours, PaperDebounced, PaperInstant, Spans
from .scenarios import COMMISSION_S, DAY, Scenario, scenarios
from .simulation import readings

OURS = "windowed balance"
OURS_CUSUM = "windowed, CUSUM"
OURS_COMMISSIONED = "windowed, commissioned"
GRACE_S = 60.0
FAST_S = 120.0


@dataclass(frozen=True)
class Score:
    scenario: str
    group: str
    detector: str
    days: float
    episodes: int
    detected: int
    fast: int  # detected within FAST_S
    latencies: tuple[float, ...]
    false_alarms: int
    quiet_days: float
    note: str = ""

    @property
    def detection_rate(self) -> float | None:
        return self.detected / self.episodes if self.episodes else None

    @property
    def fast_rate(self) -> float | None:
        return self.fast / self.episodes if self.episodes else None

    @property
    def false_per_day(self) -> float:
        return self.false_alarms / self.quiet_days if self.quiet_days > 0 else 0.0

    @property
    def median_latency(self) -> float | None:
        return statistics.median(self.latencies) if self.latencies else None


def detectors_for(scenario: Scenario, lead_in_s: float) -> list[Detector]:
    """The paper's rule, the integration's debounced rule, and ours in its variants."""
    cusum = replace(scenario.config, debounce=DebounceConfig(mode=DebounceMode.CUSUM))
    found: list[Detector] = [
        PaperInstant(),
        PaperDebounced(),
        Ours(scenario.config, name=OURS),
        Ours(cusum, name=OURS_CUSUM),
    ]
    if scenario.commission:
        found.append(Ours(scenario.config, commission_s=lead_in_s, name=OURS_COMMISSIONED))
    return found


def run(
    scenario: Scenario,
    scale: float = 1.0,
    lead_in_s: float = COMMISSION_S,
    min_tail_s: float = 3 * 3600.0,
) -> list[Score]:
    """Simulate `scenario.days x scale` days, at least the lead-in plus `min_tail_s`."""
    duration = max(scenario.days * scale * DAY, lead_in_s + min_tail_s)
    rng = random.Random(scenario.seed)
    built = scenario.build(rng, duration, lead_in_s)
    detectors = detectors_for(scenario, lead_in_s)
    feeds = [d.feed for d in detectors]
    for is_line, read in readings(built.world, scenario.seed + 1000):
        for feed in feeds:
            feed(is_line, read)
    expected = built.thefts or built.offline
    kind = "theft" if built.thefts else "tamper_suspected"
    quiet = duration - sum(b - a for a, b in expected)
    scores = []
    for det in detectors:
        found = tally(det.alarms, built.world.start_s, expected, kind)
        note = ""
        if isinstance(det, Ours) and det.fit_error:
            note = f"commissioning failed: {det.fit_error}"
        scores.append(
            Score(
                scenario.name,
                scenario.group,
                det.name,
                duration / DAY,
                len(expected),
                found.detected,
                found.fast,
                found.latencies,
                found.false_alarms,
                quiet / DAY,
                note,
            )
        )
    return scores


@dataclass(frozen=True)
class Tally:
    detected: int
    fast: int
    latencies: tuple[float, ...]
    false_alarms: int


def tally(alarms: Spans, start: float, expected: list[tuple[float, float]], kind: str) -> Tally:
    """Score one detector's alarms against the episodes (seconds after `start`) in which an
    alarm of `kind` is expected."""
    spans = {
        k: [(x.raised - start, None if x.cleared is None else x.cleared - start) for x in v]
        for k, v in alarms.spans.items()
    }
    detected = fast = 0
    latencies: list[float] = []
    for a, b in expected:
        latency = _hits(spans.get(kind, []), a, b)
        if latency is not None:
            detected += 1
            latencies.append(latency)
            fast += latency <= FAST_S
    false = 0
    for k, v in spans.items():
        for r, _ in v:
            if k == kind and any(a <= r <= b + GRACE_S for a, b in expected):
                continue
            false += 1
    return Tally(detected, fast, tuple(latencies), false)


def run_named(job: tuple[str, float, float, float]) -> list[Score]:
    """run() by scenario name, for worker processes (scenarios hold closures)."""
    name, scale, lead_in_s, min_tail_s = job
    return run(next(s for s in scenarios() if s.name == name), scale, lead_in_s, min_tail_s)


def _hits(spans: list[tuple[float, float | None]], a: float, b: float) -> float | None:
    """Latency of the first alarm span overlapping [a, b + grace], None if there is none."""
    for raised, cleared in spans:
        if raised <= b + GRACE_S and (cleared is None or cleared >= a):
            return max(0.0, raised - a)
    return None
