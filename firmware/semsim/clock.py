"""A clock that can run faster than real time, with the interface of semfw.hw.Clock."""

import asyncio
import time

try:
    _now_ns = time.monotonic_ns  # CPython
except AttributeError:
    _now_ns = time.time_ns  # MicroPython unix port


def wall_ms():
    return time.time_ns() // 1000000


class SimClock:
    """Simulated milliseconds since start; `speed` simulated seconds pass per real second.

    Simulated time t (s) is Unix time `start_unix_ms + 1000 t` in the node's timestamps.
    """

    def __init__(self, speed=1.0, start_unix_ms=None):
        self.speed = speed
        self._start_ns = _now_ns()
        self.start_unix_ms = wall_ms() if start_unix_ms is None else start_unix_ms

    def ticks_ms(self):
        return int((_now_ns() - self._start_ns) * self.speed) // 1000000

    def ticks_diff(self, a, b):
        return a - b

    async def sleep_ms(self, ms):
        if ms <= 0:
            await asyncio.sleep(0)
        else:
            await asyncio.sleep(ms / 1000 / self.speed)

    def unix_ms(self):
        return self.start_unix_ms + self.ticks_ms()

    def set_unix_ms(self, unix_ms):
        """Set the clock, as NTP sets a board's RTC: Unix time jumps, ticks run on."""
        self.start_unix_ms = unix_ms - self.ticks_ms()

    def seconds(self):
        """Simulated seconds since start."""
        return self.ticks_ms() / 1000
