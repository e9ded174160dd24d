"""The virtual fleet as its own process:

    python -m benchmarks.ingest.publish PORT PAIRS paced|flood [FIRST_SEQ [RATE [discovery|-
        [retained|unretained]]]]

It publishes every node's retained announce and status (and with `discovery` the retained
MQTT-discovery configs of the peer's sensors, as a Tasmota node does when it connects), then
snapshots until terminated:
`paced`, one snapshot per meter per second with the nodes spread evenly over the second, as real
nodes drift apart; `flood`, RATE snapshots/s in all, for the saturation steps (the rate is capped
so that the publisher does not starve the broker it shares a core with). FIRST_SEQ continues an
earlier publisher's readings, so energy never goes backwards. Every 0.25 s, and when terminated,
it prints "<snapshots sent> <time.monotonic()> <reading number>": the offered rate, and where a
next publisher goes on. It writes the MQTT packets to its socket itself, which costs far less
CPU than a client library.
"""

from __future__ import annotations

import signal
import socket
import sys
import time

from benchmarks.ingest.fleet import VirtualNode, connect_packet, publish_packet, virtual_nodes
from custom_components.smart_energy_meter.semcore import protocol as p

PERIOD = 1.0
SLOTS = 100  # paced: the second is cut into this many sends
BATCH = 256  # flood: packets per send
FLOOD_RATE = 20_000.0
REPORT_EVERY = 0.25


def connect(port: int, timeout: float | None = None) -> socket.socket:
    """A clean-session MQTT connection to 127.0.0.1:`port` (ConnectionError without CONNACK);
    `timeout` bounds the connect and the CONNACK."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        sock.sendall(connect_packet(f"bench-publisher-{port}"))
        if sock.recv(4)[:1] != b"\x20":
            raise ConnectionError("no CONNACK")
    except OSError:
        sock.close()
        raise
    sock.settimeout(None)
    return sock


class Publisher:
    """One connection; counts the snapshots it sent and reports them."""

    def __init__(self, port: int, nodes: list[VirtualNode]) -> None:
        self.nodes = nodes
        self.topics = [
            (p.state_topic(n.prefix, n.node, "line"), p.state_topic(n.prefix, n.node, "house"))
            for n in nodes
        ]
        self.sock = connect(port)
        self.sent = 0
        self.seq = 0
        self.retain_state = True  # snapshots retained, as the protocol has them
        self._reported = 0.0

    def announce(self) -> None:
        for node in self.nodes:
            self.sock.sendall(
                publish_packet(p.announce_topic(node.prefix, node.node), node.announce(),
                               retain=True)
                + publish_packet(p.status_topic(node.prefix, node.node), b"online", retain=True)
            )  # fmt: skip

    def discovery(self) -> None:
        for node in self.nodes:
            self.sock.sendall(
                b"".join(publish_packet(topic, config, retain=True)
                         for topic, config in node.discovery())
            )  # fmt: skip

    def packet(self, topic: str, payload: bytes, retain: bool) -> bytes:
        """One PUBLISH (QoS 0 here)."""
        return publish_packet(topic, payload, retain=retain)

    def packets(self, index: int, seq: int) -> bytes:
        line, house = self.nodes[index].snapshots(seq)
        line_topic, house_topic = self.topics[index]
        retain = self.retain_state
        return self.packet(line_topic, line, retain) + self.packet(house_topic, house, retain)

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, data: bytes, snapshots: int) -> None:
        self.write(data)
        self.sent += snapshots
        if (now := time.monotonic()) - self._reported >= REPORT_EVERY:
            self._reported = now
            self.report()

    def report(self) -> None:
        print(f"{self.sent} {time.monotonic():.6f} {self.seq}", flush=True)

    def paced(self, seq: int) -> None:
        count = len(self.nodes)
        bounds = [count * slot // SLOTS for slot in range(SLOTS + 1)]
        start = time.monotonic() - seq * PERIOD
        while True:
            tick = start + seq * PERIOD
            self.seq = seq
            for slot in range(SLOTS):
                if (delay := tick + PERIOD * slot / SLOTS - time.monotonic()) > 0:
                    time.sleep(delay)
                first, last = bounds[slot], bounds[slot + 1]
                if first < last:
                    data = b"".join(self.packets(i, seq) for i in range(first, last))
                    self.send(data, 2 * (last - first))
            seq += 1

    def flood(self, seq: int, rate: float) -> None:
        batch = max(1, BATCH // 2)
        start = time.monotonic()
        sent = 0
        while True:
            self.seq = seq
            for first in range(0, len(self.nodes), batch):
                last = min(first + batch, len(self.nodes))
                data = b"".join(self.packets(i, seq) for i in range(first, last))
                self.send(data, 2 * (last - first))
                sent += 2 * (last - first)
                if (ahead := start + sent / rate - time.monotonic()) > 0:
                    time.sleep(ahead)
            seq += 1


def main(
    port: int, pairs: int, mode: str, seq: int, rate: float, discovery: bool, retained: bool
) -> None:
    publisher = Publisher(port, virtual_nodes(pairs))
    publisher.retain_state = retained
    publisher.announce()
    if discovery:
        publisher.discovery()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        if mode == "flood":
            publisher.flood(seq, rate)
        else:
            publisher.paced(seq)
    finally:
        publisher.report()


if __name__ == "__main__":
    args = sys.argv[1:]
    main(
        int(args[0]),
        int(args[1]),
        args[2],
        int(args[3]) if len(args) > 3 else 0,
        float(args[4]) if len(args) > 4 else FLOOD_RATE,
        len(args) > 5 and args[5] == "discovery",
        not (len(args) > 6 and args[6] == "unretained"),
    )
