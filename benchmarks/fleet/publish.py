"""The virtual fleet for the service, as its own process (one MQTT connection):

    python -m benchmarks.fleet.publish PORT PAIRS [FIRST_SEQ [THIEVES [PREFIX [retained]]]]

The ingest benchmark's virtual nodes (`benchmarks.ingest.fleet`), all under one prefix
(default `fleet`), one reading per meter per second spread evenly over the second; every
node whose index is a multiple of PAIRS // THIEVES (at most THIEVES of them) has a bypass
that takes 20 % of its load past the house meter. Prints what the ingest publisher prints.

Announces, statuses and snapshots go unretained unless `retained` is given. NATS stores every
retained MQTT message in a replicated stream before it reads the connection's next packet; a
real node has a connection of its own for its two snapshots a second, while this one connection
carries the whole fleet's (docs/scale.md: what one connection sustains).
"""

from __future__ import annotations

import signal
import sys

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


class FleetPublisher(Publisher):
    """Stops between two sends when terminated: the count it prints is what the broker got."""

    stopping = False

    def send(self, data: bytes, snapshots: int) -> None:
        super().send(data, snapshots)
        if self.stopping:
            raise SystemExit(0)


def main(port: int, pairs: int, seq: int, thief_count: int, prefix: str, retain: bool) -> None:
    publisher = FleetPublisher(port, fleet(pairs, thief_count, prefix))
    publisher.retain_state = retain
    signal.signal(signal.SIGTERM, lambda *_: setattr(publisher, "stopping", True))
    if retain:
        publisher.announce()
    else:
        for node in publisher.nodes:
            publisher.sock.sendall(
                publish_packet(p.announce_topic(prefix, node.node), node.announce(), retain=False)
                + publish_packet(p.status_topic(prefix, node.node), b"online", retain=False)
            )
    try:
        publisher.paced(seq)
    finally:
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
