"""What the firmware unit tests share. Written for CPython and MicroPython alike: no pytest."""

import asyncio

REPO = None  # the MicroPython runner sets this; under CPython it is found from this file


def repo():
    if REPO:
        return REPO
    path = __file__
    for _ in range(4):
        path = path.rsplit("/", 1)[0]
    return path


def raises(exc_type, fn, *args):
    """Call fn(*args) and return the exception it raised, which must be an exc_type."""
    try:
        fn(*args)
    except exc_type as err:
        return err
    raise AssertionError("%s was not raised" % exc_type.__name__)


async def araises(exc_type, awaitable):
    try:
        await awaitable
    except exc_type as err:
        return err
    raise AssertionError("%s was not raised" % exc_type.__name__)


def run(coro):
    return asyncio.run(coro)


class ManualClock:
    """A clock that moves only when something sleeps on it (or `advance` is called)."""

    def __init__(self, start=0, unix_ms=1764072000000):
        self.now = start
        self._unix0 = unix_ms

    def ticks_ms(self):
        return self.now

    def ticks_diff(self, a, b):
        return a - b

    def advance(self, ms):
        self.now += int(ms)

    async def sleep_ms(self, ms):
        self.now += int(ms)
        await asyncio.sleep(0)

    def unix_ms(self):
        return self._unix0 + self.now


def load_json(relative):
    import json

    with open(repo() + "/" + relative) as f:
        return json.loads(f.read())


def announce_from_fields(fields):
    """The firmware's announce payload for a vector's expected Announce fields (both the
    CPython and the MicroPython tests compare it with the vector)."""
    import json

    from semfw import protocol

    return protocol.announce_payload(
        fields["node"],
        fields["name"],
        fields["model"],
        fields["firmware"],
        fields["mac"],
        fields["ip"],
        int(round(fields["interval"] * 1000)),
        [(m["id"], m["role"], m["pair"], m["address"]) for m in fields["meters"]],
        [(r["id"], r["pair"]) for r in fields["relays"]],
        sorted(fields["pair_names"].items()),
        fields["paper_topics"],
        [
            (key, json.dumps(fields[name]))
            for key, name in (("mp", "interpreter"), ("mpy", "mpy"), ("update", "update"))
            if fields.get(name) is not None
        ],
    )


def scratch_dir(name):
    """A new, empty directory for files a test writes (CPython and MicroPython alike)."""
    import os
    import time

    try:
        stamp = time.ticks_us()
    except AttributeError:  # CPython
        stamp = time.time_ns() // 1000
    path = "/tmp/semfw-%s-%d-%d" % (name, os.getpid() if hasattr(os, "getpid") else 0, stamp)
    os.mkdir(path)
    return path
