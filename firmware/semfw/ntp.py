"""Setting the clock over SNTP without ever stalling the node.

`ntptime` blocks the event loop for up to a second per attempt (and the watchdog is 10 s); here the
query runs on a non-blocking UDP socket and the node keeps polling while it waits. A node on a
network without internet (the paper's setup: a broker on a local PC) never gets an answer: it
says so once and keeps going, its timestamps counting from the boot (docs/protocol.md,
*Timestamps*). The server may be an IP address and may carry a port (`host:port`).

A name's DNS lookup cannot be made without blocking, and takes until the resolver gives up when no
DNS server answers (seconds, more than the watchdog allows). The node therefore resolves the
server once, at boot, before it arms the watchdog (`resolve`), and asks that address from then on.
"""

import errno
import socket

NTP_TO_UNIX_S = 2208988800  # 1900-01-01 to 1970-01-01
PORT = 123
TIMEOUT_MS = 2000
RETRY_MS = 60000  # after a failure, doubling up to the period
PERIOD_MS = 3600000  # a clock that was set is set again every hour


def split_server(server):
    """(host, port) of `host` or `host:port`."""
    host, sep, port = server.rpartition(":")
    if sep and port.isdigit() and host and "]" not in port:
        return host, int(port)
    return server, PORT


def request(nonce):
    """An SNTP v3 client request whose transmit timestamp is the 8-byte `nonce`."""
    return b"\x1b" + bytes(39) + nonce


def parse(reply, nonce):
    """The server's transmit time in Unix milliseconds; ValueError when it is no answer to the
    request carrying `nonce` (a stale or forged reply, an unsynchronised server)."""
    if len(reply) < 48:
        raise ValueError("short reply (%d bytes)" % len(reply))
    if reply[0] & 0x07 != 4:
        raise ValueError("not a server reply")
    if not 1 <= reply[1] <= 15:
        raise ValueError("server not synchronised (stratum %d)" % reply[1])
    if bytes(reply[24:32]) != bytes(nonce):
        raise ValueError("reply to another request")
    seconds = int.from_bytes(reply[40:44], "big")
    fraction = int.from_bytes(reply[44:48], "big")
    if seconds == 0:
        raise ValueError("no transmit time")
    return (seconds - NTP_TO_UNIX_S) * 1000 + (fraction * 1000 >> 32)


def resolve(server, log=print):
    """The time server's socket address; None when there is none or its name did not resolve
    (said once: the clock then counts from the boot)."""
    if not server:
        log("clock: no time server configured; timestamps count from the boot")
        return None
    host, port = split_server(server)
    try:
        return socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)[0][-1]
    except OSError as err:
        log(
            "clock: cannot look up %s (%s); no time this boot, timestamps count from the boot "
            "(without DNS, give the server's IP address)" % (server, err)
        )
        return None


async def query(address, clock, timeout_ms=TIMEOUT_MS):
    """Unix milliseconds from the server at `address`, waiting at most timeout_ms; OSError or
    ValueError."""
    tick = clock.ticks_ms() & 0xFFFFFFFF
    nonce = tick.to_bytes(4, "big") + bytes((0x53, 0x45, 0x4D, 0x31))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.sendto(request(nonce), address)
        start = clock.ticks_ms()
        while True:
            try:
                reply = sock.recv(64)
            except OSError as err:
                if err.args[0] != errno.EAGAIN:
                    raise
            else:
                if reply:
                    received = clock.ticks_ms()
                    # Half the round trip is the best guess of the reply's age.
                    return parse(reply, nonce) + clock.ticks_diff(received, start) // 2
            if clock.ticks_diff(clock.ticks_ms(), start) >= timeout_ms:
                raise OSError("no answer within %d ms" % timeout_ms)
            await clock.sleep_ms(20)
    finally:
        sock.close()


async def keep_time(
    server, address, set_unix_ms, clock, log=print, period_ms=PERIOD_MS, timeout_ms=TIMEOUT_MS
):
    """Set the clock from the server at `address` (resolved from `server`) now and every period;
    without one, or while it does not answer, the clock keeps running from the boot and the node
    works on."""
    if address is None:
        return
    retry = RETRY_MS
    synced = False
    failed = False
    while True:
        try:
            unix_ms = await query(address, clock, timeout_ms)
        except (OSError, ValueError, IndexError) as err:
            if not failed:
                log(
                    "clock: no time from %s (%s); timestamps count from the %s"
                    % (server, err, "last setting" if synced else "boot")
                )
            failed = True
            await clock.sleep_ms(retry)
            retry = min(retry * 2, period_ms)
            continue
        set_unix_ms(unix_ms)
        if failed or not synced:
            log("clock: set from %s" % server)
        synced, failed, retry = True, False, RETRY_MS
        await clock.sleep_ms(period_ms)
