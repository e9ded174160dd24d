"""Emulated counterparts of semfw.hw: relay pins, the relay-state store and the watchdog."""

import json


class SimPin:
    """A relay coil driven by a GPIO: remembers its level; a stuck pin ignores writes."""

    def __init__(self, number, level=0):
        self.number = number
        self.level = level
        self.writes = 0
        self.stuck = False

    def value(self, *level):
        if not level:
            return self.level
        self.writes += 1
        if not self.stuck:
            self.level = 1 if level[0] else 0
        return None


class MemoryStore:
    """Remembered relay states; kept in a JSON file when a path is given (survives restarts)."""

    def __init__(self, path=None):
        self.path = path
        self.data = {}

    def load(self):
        if self.path is None:
            return dict(self.data)
        try:
            with open(self.path) as f:
                return json.loads(f.read())
        except OSError:
            return {}

    def save(self, states):
        self.data = dict(states)
        if self.path is not None:
            with open(self.path, "w") as f:
                f.write(json.dumps(states))


class MemoryBoots:
    """The boot counter of a simulated node, kept as long as its hardware (see semfw.boots)."""

    def __init__(self):
        self.count = -1
        self.error = None

    def current(self):
        return self.count

    def advance(self):
        self.count += 1
        return self.count


class SimWdt:
    """Records feeds; `expired()` tells when a real watchdog would have reset the board."""

    def __init__(self, clock, timeout_ms=10000):
        self.clock = clock
        self.timeout_ms = timeout_ms
        self.feeds = 0
        self._last = clock.ticks_ms()

    def feed(self):
        self.feeds += 1
        self._last = self.clock.ticks_ms()

    def expired(self):
        return self.clock.ticks_diff(self.clock.ticks_ms(), self._last) > self.timeout_ms


class SimHardware:
    """The hardware bundle of a simulated node (see semfw.node)."""

    def __init__(
        self, clock, net_clock, uarts, pins, random, mac, store=None, wdt=None, boots=None
    ):
        self.clock = clock
        self.net_clock = net_clock
        self._uarts = uarts
        self.pins = pins
        self.random = random
        self.mac = mac
        self.store = store or MemoryStore()
        self.boots = boots or MemoryBoots()
        self.wdt = wdt

    def open_uart(self, spec):
        return self._uarts[spec.id]

    def open_pin(self, spec):
        return self.pins[spec.id]

    def ip(self):
        return "127.0.0.1"
