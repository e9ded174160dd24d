"""Setting the clock over SNTP: the packets, a server on 127.0.0.1 that answers, one that does
not, and a node without a time server. Runs under CPython and the MicroPython unix port alike."""

import asyncio
import socket

from semfw import ntp
from semsim.clock import SimClock

from tests.firmware.unit.support import ManualClock, raises, run

NONCE = b"\x01\x02\x03\x04SEM1"
# 2026-01-01 00:00:00 UTC and a quarter second, in NTP's era (seconds since 1900).
NTP_SECONDS = 1767225600 + ntp.NTP_TO_UNIX_S


def _reply(nonce=NONCE, mode=4, stratum=2, seconds=NTP_SECONDS):
    out = bytearray(48)
    out[0] = 0x20 | mode
    out[1] = stratum
    out[24:32] = nonce
    out[40:44] = seconds.to_bytes(4, "big")
    out[44:48] = (1 << 30).to_bytes(4, "big")  # 0.25 s
    return bytes(out)


def test_request_carries_the_nonce_as_transmit_time():
    packet = ntp.request(NONCE)
    assert len(packet) == 48
    assert packet[0] == 0x1B  # version 3, client
    assert packet[40:48] == NONCE


def test_parse_gives_unix_milliseconds():
    assert ntp.parse(_reply(), NONCE) == 1767225600250


def test_parse_refuses_what_is_no_answer_to_the_request():
    raises(ValueError, ntp.parse, _reply()[:47], NONCE)
    raises(ValueError, ntp.parse, _reply(mode=3), NONCE)
    raises(ValueError, ntp.parse, _reply(stratum=0), NONCE)  # kiss-o'-death, unsynchronised
    raises(ValueError, ntp.parse, _reply(stratum=16), NONCE)
    raises(ValueError, ntp.parse, _reply(nonce=b"\x00" * 8), NONCE)  # stale or forged
    raises(ValueError, ntp.parse, _reply(seconds=0), NONCE)


def test_split_server():
    assert ntp.split_server("pool.ntp.org") == ("pool.ntp.org", 123)
    assert ntp.split_server("192.168.1.10:1123") == ("192.168.1.10", 1123)
    assert ntp.split_server("192.168.1.10") == ("192.168.1.10", 123)


def test_without_a_server_the_clock_is_left_alone():
    lines = []
    calls = []
    address = ntp.resolve(None, lines.append)
    assert address is None
    run(ntp.keep_time(None, address, calls.append, ManualClock(), lines.append))
    assert calls == []
    assert lines == ["clock: no time server configured; timestamps count from the boot"]


class NoDns:
    """The socket module of a network whose DNS server does not answer."""

    AF_INET = socket.AF_INET
    SOCK_DGRAM = socket.SOCK_DGRAM

    @staticmethod
    def getaddrinfo(host, port, family=0, kind=0):
        raise OSError(-202)


def test_a_name_that_does_not_resolve_is_said_once_and_not_asked():
    lines = []
    calls = []
    real = ntp.socket
    ntp.socket = NoDns
    try:
        address = ntp.resolve("time.invalid", lines.append)
    finally:
        ntp.socket = real
    assert address is None
    run(ntp.keep_time("time.invalid", address, calls.append, ManualClock(), lines.append))
    assert calls == []
    assert len(lines) == 1
    assert lines[0].startswith("clock: cannot look up time.invalid ("), lines
    assert lines[0].endswith(
        "); no time this boot, timestamps count from the boot (without DNS, give the server's "
        "IP address)"
    ), lines


def _udp_server():
    """A UDP socket on a free port of 127.0.0.1 (MicroPython sockets cannot tell their port)."""
    base = 24000 + SimClock().ticks_ms() % 1000
    for attempt in range(40):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        port = base + attempt * 991
        try:
            sock.bind(socket.getaddrinfo("127.0.0.1", port)[0][-1])
        except OSError:
            sock.close()
            continue
        sock.setblocking(False)
        return sock, port
    raise AssertionError("no free port")


async def _answer(sock, answer, requests):
    while True:
        try:
            request, address = sock.recvfrom(64)
        except OSError:
            await asyncio.sleep(0.01)
            continue
        requests.append(request)
        if answer:
            sock.sendto(_reply(nonce=request[40:48]), address)


class QuickRetries(SimClock):
    """Real time for the replies, but retries and the hourly setting come at once."""

    async def sleep_ms(self, ms):
        await super().sleep_ms(min(ms, 10))


async def _keep_time(answer, until):
    sock, port = _udp_server()
    lines = []
    calls = []
    requests = []
    server = asyncio.create_task(_answer(sock, answer, requests))
    name = "127.0.0.1:%d" % port
    address = ntp.resolve(name, lines.append)
    keeper = asyncio.create_task(
        ntp.keep_time(name, address, calls.append, QuickRetries(), lines.append, timeout_ms=200)
    )
    for _ in range(200):
        if until(lines, calls):
            break
        await asyncio.sleep(0.02)
    keeper.cancel()
    server.cancel()
    await asyncio.sleep(0)
    sock.close()
    return port, lines, calls, requests


def test_a_server_that_answers_sets_the_clock():
    port, lines, calls, _ = run(_keep_time(True, lambda lines, calls: calls))
    assert len(calls) == 1
    # The reply's time plus half the round trip, which is under the 200 ms the query waits.
    assert 1767225600250 <= calls[0] <= 1767225600250 + 100, calls
    assert lines == ["clock: set from 127.0.0.1:%d" % port]


def test_a_server_that_never_answers_leaves_the_clock_running_from_boot():
    started = SimClock()

    def until(lines, calls):
        return started.ticks_ms() > 700  # three attempts of 200 ms

    port, lines, calls, requests = run(_keep_time(False, until))
    assert calls == []
    assert len(requests) >= 2  # it kept asking
    # Said once, not at every retry.
    assert lines == [
        "clock: no time from 127.0.0.1:%d (no answer within 200 ms); timestamps count from "
        "the boot" % port
    ], lines
