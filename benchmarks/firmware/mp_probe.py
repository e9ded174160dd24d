"""MicroPython side of the firmware figures (runs under the unix port, prints key=value lines).

micropython benchmarks/firmware/mp_probe.py REPO poll|imports
micropython benchmarks/firmware/mp_probe.py REPO tls HOST PORT CA_FILE
"""

import asyncio
import gc
import sys
import time


async def _cycle(rounds, meters):
    start = time.ticks_us()
    for _ in range(rounds):
        for meter in meters:
            await meter.read()
    return time.ticks_diff(time.ticks_us(), start)


def poll(repo):
    from semfw import protocol, pzem
    from semsim.clock import SimClock
    from semsim.pzem import EmulatedPzem
    from semsim.uart import EmulatedUart

    def load(t):
        return (100.0, 0.9)

    state = [1]

    def random():
        state[0] = (state[0] * 1103515245 + 12345) % 2147483648
        return state[0] / 2147483648

    for wire, rounds in ((False, 500), (True, 25)):
        clock = SimClock(1.0)
        devices = [EmulatedPzem(a, load, random) for a in (1, 2, 3, 4)]
        uart = EmulatedUart(clock, devices, wire_timing=wire, latency_ms=0)
        bus = pzem.Bus(uart, clock, timeout_ms=500, retries=0, poll_ms=1)
        meters = [pzem.Pzem(bus, a, 0) for a in (1, 2, 3, 4)]

        elapsed_us = asyncio.run(_cycle(rounds, meters))
        per_poll_ms = elapsed_us / 1000 / (rounds * len(meters))
        print(f"poll_{'wire' if wire else 'instant'}_ms={per_poll_ms:.3f}")
    reading = pzem.Reading(2257, 108, 244, 38, 500, 100, False)
    start = time.ticks_us()
    for seq in range(1000):
        protocol.state_payload(seq, 1764072000500, reading)
    print(f"encode_state_us={time.ticks_diff(time.ticks_us(), start) / 1000:.1f}")


def imports(repo):
    gc.collect()
    base = gc.mem_alloc()
    import asyncio  # noqa: F401
    import json  # noqa: F401

    groups = (
        (
            "firmware",
            (
                "semfw.modbus",
                "semfw.pzem",
                "semfw.protocol",
                "semfw.spec",
                "semfw.relay",
                "semfw.backoff",
                "semfw.watchdog",
                "semfw.mqtt",
                "semfw.node",
            ),
        ),
        ("validator", ("semfw.config",)),
        (
            "emulation",
            ("semsim.clock", "semsim.pzem", "semsim.uart", "semsim.hw", "semsim.scenario"),
        ),
    )
    gc.collect()
    print(f"heap_interpreter={gc.mem_alloc()}")
    print(f"heap_stdlib={gc.mem_alloc() - base}")
    for name, modules in groups:
        gc.collect()
        before = gc.mem_alloc()
        for module in modules:
            __import__(module)
        gc.collect()
        print(f"heap_code_{name}={gc.mem_alloc() - before}")


def tls(repo, host, port, ca_file):
    """What a TLS connection (CA certificate loaded, server name checked) adds to the heap."""
    import binascii
    import socket

    import tls

    with open(ca_file) as f:
        pem = f.read()
    der = binascii.a2b_base64("".join(x for x in pem.splitlines() if not x.startswith("-----")))
    gc.collect()
    base = gc.mem_alloc()
    context = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    context.verify_mode = tls.CERT_REQUIRED
    context.load_verify_locations(der)
    gc.collect()
    print(f"tls_context={gc.mem_alloc() - base}")
    sock = socket.socket()
    sock.connect(socket.getaddrinfo(host, int(port))[0][-1])
    wrapped = context.wrap_socket(sock, server_hostname="localhost")
    gc.collect()
    print(f"tls_connection={gc.mem_alloc() - base}")
    wrapped.close()


def main(argv):
    repo = argv[0]
    sys.path.insert(0, repo + "/firmware")
    {"poll": poll, "imports": imports, "tls": tls}[argv[1]](repo, *argv[2:])


if __name__ == "__main__":
    main(sys.argv[1:])
