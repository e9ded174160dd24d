"""How long polling stalls while the time server does not answer (MicroPython unix port):

    scripts/env micropython benchmarks/firmware/mp_ntp_stall.py

A task that wakes every 5 ms measures the event loop's largest pause over three unanswered SNTP
attempts to 127.0.0.1:9, made the way `ntptime` makes them (a blocking socket with a 1 s timeout:
the firmware before) and by `semfw.ntp` (a non-blocking socket, 1 s per attempt), next to the
same 3 s of an idle loop (what the machine's own scheduling adds). The node polls its PZEMs on
the same loop, so a pause is a gap in the readings, and the watchdog's 10 s covers only a few of
them.
"""

import asyncio
import socket
import sys
import time

_here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
sys.path.insert(0, _here + "/../../firmware")

from semfw import ntp  # noqa: E402
from semsim.clock import SimClock  # noqa: E402

SERVER = "127.0.0.1:9"  # nothing answers
ATTEMPTS = 3


def _ntptime_attempt():
    """One attempt as ntptime.time() makes it."""
    address = socket.getaddrinfo("127.0.0.1", 9)[0][-1]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.settimeout(1)
        sock.sendto(b"\x1b" + bytes(47), address)
        sock.recv(48)
    except OSError:
        pass
    finally:
        sock.close()


async def _blocking():
    for _ in range(ATTEMPTS):
        _ntptime_attempt()
        await asyncio.sleep(0)


async def _attempt(clock):
    try:
        await ntp.query(ntp.resolve(SERVER), clock, 1000)
    except OSError as err:
        return err
    return None


async def _non_blocking():
    clock = SimClock()
    for _ in range(ATTEMPTS):
        await _attempt(clock)


async def _idle():
    await asyncio.sleep_ms(ATTEMPTS * 1000)


async def _largest_pause(job):
    gaps = []
    done = []

    async def ticker():
        last = time.ticks_ms()
        while not done:
            await asyncio.sleep_ms(5)
            now = time.ticks_ms()
            gaps.append(time.ticks_diff(now, last))
            last = now

    task = asyncio.create_task(ticker())
    await asyncio.sleep_ms(20)
    await job()
    done.append(True)
    await task
    return max(gaps)


async def main():
    before = await _largest_pause(_blocking)
    after = await _largest_pause(_non_blocking)
    idle = await _largest_pause(_idle)
    print(
        f"largest event-loop pause over {ATTEMPTS} unanswered SNTP attempts: "
        f"ntptime {before} ms, semfw.ntp {after} ms, idle loop {idle} ms"
    )


asyncio.run(main())
