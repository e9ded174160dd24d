"""The virtual fleet for the service, as its own process (one MQTT connection):

    python -m benchmarks.fleet.publish PORT PAIRS [FIRST_SEQ [THIEVES [PREFIX [retained]]]]

The ingest benchmark's virtual nodes (`benchmarks.ingest.fleet`), all under one prefix
(default `fleet`), one reading per meter per second spread evenly over the second; every
node whose index is a multiple of PAIRS // THIEVES (at most THIEVES of them) has a bypass
that takes 20 % of its load past the house meter. Prints what the ingest publisher prints.

Everything goes at QoS 1, as a node publishes it (the readings stream takes what NATS stored
before its PUBACK); when terminated it waits for the PUBACK of everything it sent, so the count
it prints last is what the cluster acknowledged. Announces, statuses and snapshots go
unretained unless `retained` is given. NATS stores every retained MQTT message in a replicated
stream before it reads the connection's next packet; a real node has a connection of its own
for its two snapshots a second, while this one connection carries the whole fleet's
(docs/scale.md: what one connection sustains).
"""

from __future__ import annotations

import signal
import sys
import threading
import time

from benchmarks.ingest.fleet import VirtualNode, publish_packet
from benchmarks.ingest.publish import Publisher
from custom_components.smart_energy_meter.semcore import protocol as p

PREFIX = "fleet"
STOLEN = 0.20


def node_id(index: int) -> str:
    """The id of the virtual fleet's nth node."""
    return f"v-{index:06d}"


def thieves(pairs: int, count: int) -> list[int]:
    """Indices of the nodes with a bypass."""
    if count <= 0:
        return []
    step = max(1, pairs // count)
    return list(range(step // 2, pairs, step))[:count]


def fleet(pairs: int, thief_count: int, prefix: str = PREFIX) -> list[VirtualNode]:
    """The virtual nodes."""
    stealing = set(thieves(pairs, thief_count))
    return [
        VirtualNode(prefix, node_id(n), n, STOLEN if n in stealing else 0.0) for n in range(pairs)
    ]


PUBACK = b"\x40\x02"
# Packets in flight at most: packet ids are 16 bits, and a packet id is only reused once the
# broker acknowledged the packet that had it.
IN_FLIGHT = 30_000
DRAIN_S = 10.0


class FleetPublisher(Publisher):
    """QoS 1; stops between two sends when terminated, once everything sent is acknowledged."""

    stopping = False

    def __init__(self, port: int, nodes: list[VirtualNode]) -> None:
        super().__init__(port, nodes)
        self.published = 0  # QoS 1 packets sent
        self.acked = 0  # PUBACKs received (NATS answers a connection's packets in order)
        self.lost = False
        threading.Thread(target=self._read_acks, daemon=True).start()

    def _read_acks(self) -> None:
        pending = b""
        while data := self.sock.recv(65536):
            pending += data
            whole = len(pending) // 4 * 4
            if any(pending[i : i + 2] != PUBACK for i in range(0, whole, 4)):
                break  # not only PUBACKs: this publisher expects nothing else
            self.acked += whole // 4
            pending = pending[whole:]
        self.lost = True

    def packet(self, topic: str, payload: bytes, retain: bool) -> bytes:
        while self.published - self.acked >= IN_FLIGHT and not self.lost:
            time.sleep(0.01)
        self.published += 1
        return publish_packet(topic, payload, retain=retain, packet_id=self.published % 65535 + 1)

    def packets(self, index: int, seq: int) -> bytes:
        line, house = self.nodes[index].snapshots(seq)
        line_topic, house_topic = self.topics[index]
        return self.packet(line_topic, line, self.retain_state) + self.packet(
            house_topic, house, self.retain_state
        )

    def send(self, data: bytes, snapshots: int) -> None:
        super().send(data, snapshots)
        if self.stopping:
            raise SystemExit(0)

    def drain(self) -> None:
        """Wait for the PUBACK of everything sent (a message to stderr when they do not come)."""
        deadline = time.monotonic() + DRAIN_S
        while self.acked < self.published and not self.lost and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.acked < self.published:
            print(f"{self.published - self.acked} of {self.published} not acknowledged",
                  file=sys.stderr, flush=True)  # fmt: skip


def main(port: int, pairs: int, seq: int, thief_count: int, prefix: str, retain: bool) -> None:
    publisher = FleetPublisher(port, fleet(pairs, thief_count, prefix))
    publisher.retain_state = retain
    signal.signal(signal.SIGTERM, lambda *_: setattr(publisher, "stopping", True))
    for node in publisher.nodes:
        publisher.sock.sendall(
            publisher.packet(p.announce_topic(prefix, node.node), node.announce(), retain)
            + publisher.packet(p.status_topic(prefix, node.node), b"online", retain)
        )
    try:
        publisher.paced(seq)
    finally:
        publisher.drain()
        publisher.report()


if __name__ == "__main__":
    args = sys.argv[1:]
    main(
        int(args[0]),
        int(args[1]),
        int(args[2]) if len(args) > 2 else 0,
        int(args[3]) if len(args) > 3 else 0,
        args[4] if len(args) > 4 else PREFIX,
        len(args) > 5 and args[5] == "retained",
    )
