"""The virtual fleet: one node per meter pair, publishing protocol v1 snapshots.

Each node has a line and a house meter forming the pair `house`. Readings move like a real
PZEM-004T's: voltage, current, power and power factor change with every snapshot, frequency
now and then, energy by whole watt-hours. The line reads a little more than the house (a theft-free
service cable). Power changes with every snapshot, so the power sensors' state writes count the
snapshots a consumer processed. Snapshots carry their publish time in `ts`, so a consumer can
measure publish-to-state latency.

For the peer (Home Assistant's own MQTT integration) each node also publishes, as Tasmota does,
retained MQTT-discovery configs: one sensor per quantity of each meter, all reading the meter's one
`state` topic through a value template.

Fleets larger than PAIRS_PER_ENTRY are split over several topic prefixes, one config entry each:
Home Assistant enables at most 10,000 entities per config entry.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from custom_components.smart_energy_meter.semcore import protocol as p

PAIRS_PER_ENTRY = 500
PREFIX = "bench"
DISCOVERY_PREFIX = "homeassistant"
# The peer's sensors of one meter: object id, state field, device class, unit, state class.
DISCOVERED = (
    ("voltage", "v", "voltage", "V", "measurement"),
    ("current", "i", "current", "A", "measurement"),
    ("power", "p", "power", "W", "measurement"),
    ("power_factor", "pf", "power_factor", None, "measurement"),
    ("frequency", "f", "frequency", "Hz", "measurement"),
    ("energy", "e", "energy", "Wh", "total_increasing"),
)


@dataclass(frozen=True)
class VirtualNode:
    """One node id on a prefix, with a line and a house meter forming the pair `house`."""

    prefix: str
    node: str
    index: int
    # Share of the house's load taken past the house meter (a bypass): the line still sees it.
    stolen: float = 0.0

    def announce(self) -> bytes:
        return p.encode_announce(
            p.Announce(
                node=self.node,
                version=p.PROTOCOL_VERSION,
                name=self.node,
                model="virtual",
                firmware="bench",
                mac=None,
                interval=1.0,
                meters=(
                    p.MeterInfo("line", p.Role.LINE, "house", 1),
                    p.MeterInfo("house", p.Role.HOUSE, "house", 2),
                ),
                relays=(),
            )
        )

    def discovery(self) -> list[tuple[str, bytes]]:
        """The retained MQTT-discovery configs (topic, payload) of the peer's sensors."""
        device = {"identifiers": [self.node], "name": self.node, "model": "virtual",
                  "sw_version": "bench"}  # fmt: skip
        availability = p.status_topic(self.prefix, self.node)
        configs = []
        for meter in ("line", "house"):
            for quantity, field, device_class, unit, state_class in DISCOVERED:
                object_id = f"{meter}_{quantity}"
                config = {
                    "name": f"{meter.title()} {quantity.replace('_', ' ')}",
                    "unique_id": f"{self.node}_{object_id}",
                    "default_entity_id": peer_entity_id(self.node, meter, quantity),
                    "state_topic": p.state_topic(self.prefix, self.node, meter),
                    "value_template": f"{{{{ value_json.{field} }}}}",
                    "device_class": device_class,
                    "unit_of_measurement": unit,
                    "state_class": state_class,
                    "availability_topic": availability,
                    "payload_available": "online",
                    "payload_not_available": "offline",
                    "device": device,
                }
                if unit is None:
                    del config["unit_of_measurement"]
                topic = f"{DISCOVERY_PREFIX}/sensor/{self.node}/{object_id}/config"
                configs.append((topic, json.dumps(config).encode()))
        return configs

    def snapshots(self, seq: int) -> tuple[bytes, bytes]:
        """The line and the house snapshot of reading `seq`, stamped now."""
        n = self.index
        ts = round(time.time(), 6)
        # seq * 37 mod 101 never repeats from one reading to the next: power always changes.
        power = round(150.0 + 7 * (n % 97) + 0.3 * ((seq * 37 + n) % 101), 1)
        volts = round(230.0 + 0.1 * ((seq * 13 + n) % 31 - 15), 1)
        pf = round(0.90 + 0.01 * ((seq * 3 + n) % 8), 2)
        hz = round(50.0 + 0.1 * ((seq // 5 + n) % 3 - 1), 1)
        # Whole watt-hours, as the PZEM counts them (about 0.2 Wh per reading here).
        energy = float(1000 + (seq * (150 + 7 * (n % 97))) // 3600)
        line, line_energy = round(power * 1.005 + 1.0, 1), energy + 5
        if self.stolen:
            # A bypass: the house meter sees only what is not stolen.
            power = round(power * (1.0 - self.stolen), 1)
            energy = float(1000 + int(seq * (150 + 7 * (n % 97)) * (1.0 - self.stolen)) // 3600)
        return (
            p.encode_state(
                p.Snapshot(self.node, "line", seq, ts, round(volts + 0.3, 1),
                           round(line / (volts * pf), 3), line, line_energy, hz, pf, False)
            ),
            p.encode_state(
                p.Snapshot(self.node, "house", seq, ts, volts, round(power / (volts * pf), 3),
                           power, energy, hz, pf, False)
            ),
        )  # fmt: skip


def peer_entity_id(node: str, meter: str, quantity: str) -> str:
    """The entity id of one of the peer's sensors."""
    return f"sensor.{node.replace('-', '_')}_{meter}_{quantity}"


def prefix_of(entry: int) -> str:
    """Topic prefix of the nth config entry."""
    return PREFIX if entry == 0 else f"{PREFIX}{entry}"


def virtual_nodes(pairs: int) -> list[VirtualNode]:
    """The fleet, PAIRS_PER_ENTRY nodes per prefix."""
    return [VirtualNode(prefix_of(n // PAIRS_PER_ENTRY), f"bench-{n:04d}", n) for n in range(pairs)]


def prefixes(pairs: int) -> list[str]:
    """The prefixes (config entries) of a fleet of `pairs`."""
    return list(dict.fromkeys(node.prefix for node in virtual_nodes(pairs)))


# --- MQTT 3.1.1 packets, for a publisher that costs as little CPU as possible ---------------


def _length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(value: bytes) -> bytes:
    return len(value).to_bytes(2, "big") + value


def connect_packet(client_id: str) -> bytes:
    """CONNECT, clean session, no keepalive (the publisher never idles long)."""
    body = _string(b"MQTT") + bytes([4, 0x02]) + (0).to_bytes(2, "big")
    body += _string(client_id.encode())
    return b"\x10" + _length(len(body)) + body


def publish_packet(topic: str, payload: bytes, *, retain: bool, packet_id: int = 0) -> bytes:
    """PUBLISH at QoS 0, or at QoS 1 with a packet id."""
    body = _string(topic.encode()) + (packet_id.to_bytes(2, "big") if packet_id else b"") + payload
    return bytes([0x30 | (0x02 if packet_id else 0) | retain]) + _length(len(body)) + body
