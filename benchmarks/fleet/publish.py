"""The virtual fleet for the service, as its own process (one MQTT connection):

    python -m benchmarks.fleet.publish PORT[,PORT...] PAIRS [FIRST_SEQ [THIEVES [PREFIX
        [retained]]]]

The ingest benchmark's virtual nodes (`benchmarks.ingest.fleet`), all under one prefix
(default `fleet`), one reading per meter per second spread evenly over the second; every
node whose index is a multiple of PAIRS // THIEVES (at most THIEVES of them) has a bypass
that takes 20 % of its load past the house meter. Prints what the ingest publisher prints.

Everything goes at QoS 1, as a node publishes it (the readings stream takes what NATS stored
before its PUBACK); when terminated it waits for the PUBACK of everything it sent, so the count
it prints last is what the cluster acknowledged. Like a node with `broker.fallback`, it moves to
the next PORT when its connection breaks and sends again what was not acknowledged. Announces,
statuses and snapshots go unretained unless `retained` is given. NATS stores every retained
MQTT message in a replicated stream before it reads the connection's next packet; a real node
has a connection of its own for its two snapshots a second, while this one connection carries
the whole fleet's (docs/scale.md: what one connection sustains).
"""

from __future__ import annotations

import contextlib
import signal
import socket
import sys
import threading
import time

from benchmarks.ingest.fleet import VirtualNode, publish_packet
from benchmarks.ingest.publish import Publisher, connect
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
DUP = 0x08  # the PUBLISH flag of a packet sent again
RECONNECT_S = 0.5  # between two connection attempts when no server answers
CONNECT_S = 5.0  # a server that does not answer a reconnect within this is skipped


class FleetPublisher(Publisher):
    """QoS 1 as a node publishes: a packet the server did not acknowledge before the connection
    broke is sent again (same packet id, DUP set) after the reconnect, which goes to the next of
    `ports` (a node's `broker.fallback`). Stops between two sends when terminated, once
    everything sent is acknowledged."""

    stopping = False

    def __init__(self, ports: list[int], nodes: list[VirtualNode]) -> None:
        super().__init__(ports[0], nodes)
        self.ports = ports
        self.port = 0  # index into ports of the current connection
        self.published = 0  # QoS 1 packets made
        self.unacked: dict[int, bytes] = {}  # packet id -> packet, in the order sent
        self.lock = threading.Lock()
        self.lost = False
        self.connection = 0  # which connection the ack reader reads
        self.resent = 0
        self.moves = 0
        self._read_acks_of(self.sock)

    def _read_acks_of(self, sock: socket.socket) -> None:
        connection = self.connection
        threading.Thread(target=self._read_acks, args=(sock, connection), daemon=True).start()

    def _read_acks(self, sock: socket.socket, connection: int) -> None:
        pending = b""
        try:
            while data := sock.recv(65536):
                pending += data
                whole = len(pending) // 4 * 4
                if any(pending[i : i + 2] != PUBACK for i in range(0, whole, 4)):
                    break  # not only PUBACKs: this publisher expects nothing else
                with self.lock:
                    for i in range(0, whole, 4):
                        self.unacked.pop(int.from_bytes(pending[i + 2 : i + 4], "big"), None)
                pending = pending[whole:]
        except OSError:
            pass
        if connection == self.connection:
            self.lost = True

    def packet(self, topic: str, payload: bytes, retain: bool) -> bytes:
        while len(self.unacked) >= IN_FLIGHT:
            if self.lost:
                self._reconnect()
            time.sleep(0.01)
        self.published += 1
        packet_id = self.published % 65535 + 1
        packet = publish_packet(topic, payload, retain=retain, packet_id=packet_id)
        with self.lock:
            self.unacked[packet_id] = packet
        return packet

    def write(self, data: bytes) -> None:
        """Send packets made by `packet`; on a lost connection the reconnect sends them with
        everything else unacknowledged."""
        if not self.lost:
            try:
                self.sock.sendall(data)
                return
            except OSError:
                self.lost = True
        self._reconnect()

    def _reconnect(self) -> None:
        self.connection += 1  # first: the old connection's reader must not mark the new lost
        with contextlib.suppress(OSError):
            self.sock.close()
        while True:
            self.port = (self.port + 1) % len(self.ports)
            port = self.ports[self.port]
            try:
                sock = connect(port, timeout=CONNECT_S)
                break
            except OSError as err:
                print(f"cannot connect to port {port}: {err}", file=sys.stderr, flush=True)
                time.sleep(RECONNECT_S)
        self.sock = sock
        self.lost = False
        self.moves += 1
        self._read_acks_of(sock)
        with self.lock:
            again = [bytes([packet[0] | DUP]) + packet[1:] for packet in self.unacked.values()]
        self.resent += len(again)
        print(f"connection lost: connected to port {port}, {len(again)} unacknowledged "
              "packets sent again", file=sys.stderr, flush=True)  # fmt: skip
        try:
            sock.sendall(b"".join(again))
        except OSError:
            self.lost = True  # the next write connects again

    def send(self, data: bytes, snapshots: int) -> None:
        super().send(data, snapshots)
        if self.stopping:
            raise SystemExit(0)

    def drain(self) -> None:
        """Wait for the PUBACK of everything sent (a message to stderr when they do not come)."""
        deadline = time.monotonic() + DRAIN_S
        while self.unacked and time.monotonic() < deadline:
            if self.lost:
                self._reconnect()
            time.sleep(0.05)
        if self.unacked:
            print(f"{len(self.unacked)} of {self.published} not acknowledged",
                  file=sys.stderr, flush=True)  # fmt: skip
        print(f"moved {self.moves} times, {self.resent} packets sent again",
              file=sys.stderr, flush=True)  # fmt: skip


def main(
    ports: list[int], pairs: int, seq: int, thief_count: int, prefix: str, retain: bool
) -> None:
    publisher = FleetPublisher(ports, fleet(pairs, thief_count, prefix))
    publisher.retain_state = retain
    signal.signal(signal.SIGTERM, lambda *_: setattr(publisher, "stopping", True))
    for node in publisher.nodes:
        publisher.write(
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
        [int(port) for port in args[0].split(",")],
        int(args[1]),
        int(args[2]) if len(args) > 2 else 0,
        int(args[3]) if len(args) > 3 else 0,
        args[4] if len(args) > 4 else PREFIX,
        len(args) > 5 and args[5] == "retained",
    )
