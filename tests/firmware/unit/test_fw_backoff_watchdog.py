"""Reconnect backoff and the watchdog's progress rule."""

import asyncio

from semfw.backoff import Backoff
from semfw.watchdog import Progress, feeder

from tests.firmware.unit.support import ManualClock, run


def test_backoff_doubles_up_to_the_cap():
    backoff = Backoff(500, 8000)
    assert [backoff.next_ms() for _ in range(7)] == [500, 1000, 2000, 4000, 8000, 8000, 8000]


def test_backoff_jitter_stays_between_half_and_the_ceiling():
    values = iter([0.0, 0.999, 0.5] * 10)
    backoff = Backoff(1000, 30000, random=lambda: next(values))
    delays = [backoff.next_ms() for _ in range(9)]
    ceilings = [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]
    for delay, ceiling in zip(delays, ceilings):
        assert ceiling // 2 <= delay <= ceiling, (delay, ceiling)
    assert delays[0] == 500  # random() == 0 gives the lower bound
    assert len(set(delays[-3:])) == 3  # jitter spreads the capped delays


def test_backoff_reset():
    backoff = Backoff(500, 30000)
    for _ in range(5):
        backoff.next_ms()
    backoff.reset()
    assert backoff.next_ms() == 500


def test_backoff_does_not_overflow_after_many_attempts():
    backoff = Backoff(500, 30000)
    for _ in range(10000):
        delay = backoff.next_ms()
    assert delay == 30000


def test_progress_needs_both_activities():
    clock = ManualClock()
    progress = Progress(clock, stall_ms=1000)
    assert progress.healthy()
    clock.advance(800)
    progress.mark("poll")
    clock.advance(800)
    assert progress.stalled() == ["mqtt"]
    progress.mark("mqtt")
    assert progress.healthy()
    clock.advance(1001)
    assert progress.stalled() == ["poll", "mqtt"]


class _Wdt:
    def __init__(self):
        self.feeds = 0

    def feed(self):
        self.feeds += 1


def test_feeder_stops_feeding_when_something_stalls():
    clock = ManualClock()
    progress = Progress(clock, stall_ms=5000)
    wdt = _Wdt()
    lines = []

    async def scenario():
        task = asyncio.create_task(feeder(progress, wdt, clock, 1000, lines.append))
        for _ in range(10):
            progress.mark("poll")
            progress.mark("mqtt")
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        fed = wdt.feeds
        # Polling goes on, MQTT is stuck: after 5 s the feeding stops.
        for _ in range(40):
            progress.mark("poll")
            await asyncio.sleep(0)
        task.cancel()
        return fed

    fed_while_healthy = run(scenario())
    assert fed_while_healthy >= 5
    assert wdt.feeds <= fed_while_healthy + 7
    assert any("no progress in mqtt" in line for line in lines)
