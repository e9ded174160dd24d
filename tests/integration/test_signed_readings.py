"""Signed readings on a real broker: a node with a key is believed only when it signs.

A scripted node signs like the firmware (the protocol's canonical suffix); a spoofer publishes on
its topics. The firmware's own signing is exercised end to end in test_signed_spoofing.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from homeassistant.const import STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.smart_energy_meter.const import DOMAIN
from custom_components.smart_energy_meter.issues import NodeIssue, issue_id
from custom_components.smart_energy_meter.semcore.protocol import (
    RECENT_READINGS,
    Snapshot,
    encode_state,
    state_topic,
)
from custom_components.smart_energy_meter.semcore.signing import sign_payload
from custom_components.smart_energy_meter.signed import TAMPER_HOLD
from tests.conftest import _allow_loopback_sockets
from tests.integration.common import (
    EVERY_READING,
    HOUSE_1,
    TestNode,
    add_node_key,
    make_entry,
    setup_entry,
    state_of,
    wait_for,
    wait_state,
)
from tests.integration.simnode import StateLog
from tests.mosquitto import Broker, running_broker

KEY = "node1 signing key, 32 bytes long"
WRONG_KEY = "another key that is long enough"
# A node without a key, for contrast: whatever reaches its topics is believed.
HOUSE_3 = {
    "pair": "house1",
    "name": "House 3",
    "line": {"node": "node2", "meter": "line1"},
    "house": {"node": "node2", "meter": "house1"},
}
LOGGER = "custom_components.smart_energy_meter"


class SignedNode(TestNode):
    """A scripted node that signs its `state` and `announce` like the firmware does."""

    __test__ = False

    def __init__(self, broker: Broker, prefix: str, key: str, node: str = "node1") -> None:
        super().__init__(broker, prefix, node)
        self.key = key.encode()
        self.sent: dict[str, list[bytes]] = {}

    async def publish(self, topic: str, payload: bytes | str, *, retain: bool = False) -> None:
        raw = payload.encode() if isinstance(payload, str) else payload
        if topic.endswith(("/state", "/announce")) and raw.startswith(b"{"):
            raw = sign_payload(self.key, topic, raw)
            self.sent.setdefault(topic, []).append(raw)
        await super().publish(topic, raw, retain=retain)


def signed_entry(
    hass: HomeAssistant, broker: Broker, prefix: str, pairs: list[dict[str, Any]]
) -> MockConfigEntry:
    """An entry with these pairs and a signing key for node1 (not set up); every reading is
    written, so that each one believed shows."""
    entry = make_entry(hass, broker, prefix, pairs=pairs, options=EVERY_READING)
    add_node_key(hass, entry, "node1", KEY)
    return entry


def state_payload(
    power: float, *, seq: int, ts: float | None = None, energy: float = 5000.0
) -> bytes:
    return encode_state(
        Snapshot(
            "node1",
            "house1",
            seq,
            time.time() if ts is None else ts,
            230.0,
            round(power / 230.0, 3),
            power,
            energy,
            50.0,
            1.0,
            False,
        )
    )


def _issue(hass: HomeAssistant, entry: MockConfigEntry) -> ir.IssueEntry | None:
    return ir.async_get(hass).async_get_issue(
        DOMAIN, issue_id(NodeIssue.SIGNATURE_REFUSED, entry.entry_id, "node1")
    )


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith(LOGGER) and r.levelno >= logging.WARNING
    ]


async def _start(node: TestNode, house_power: float) -> None:
    await node.announce(mac=f"24:6f:28:a1:b2:{int(node.node[-1]):02x}")
    await node.status("online")
    await node.snapshot("line1", 1000.0, energy=9000.0)
    await node.snapshot("house1", house_power, energy=5000.0)


async def test_spoofed_house_meter_is_not_believed(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    entry = signed_entry(hass, mosquitto, prefix, [HOUSE_1, HOUSE_3])
    await setup_entry(hass, entry)
    topic = state_topic(prefix, "node1", "house1")
    async with (
        SignedNode(mosquitto, prefix, KEY) as node,
        TestNode(mosquitto, prefix, "node2") as unsigned,
        # Someone else on the broker, publishing in node1's name.
        TestNode(mosquitto, prefix, "node1") as spoofer,
    ):
        await _start(node, 1000.0)  # no theft yet
        await wait_state(hass, "sensor.house_1_theft_percentage", "0.0")
        honest_1000 = node.sent[topic][-1]
        # The bypass begins: the next poll cycle's readings, more of them than a node has in
        # flight (a copy of one of those would be the node sending it again, not a replay).
        for _ in range(RECENT_READINGS):
            await node.snapshot("line1", 1000.0, energy=9000.0)
            await node.snapshot("house1", 800.0, energy=5001.0)
        await _start(unsigned, 800.0)
        await wait_state(hass, "sensor.house_1_theft_percentage", "20.0")
        await wait_state(hass, "sensor.house_3_theft_percentage", "20.0")
        assert state_of(hass, "binary_sensor.house_1_tamper") != "on"
        log = StateLog(hass)

        # The spoofer claims the line's power for the house: unsigned, with a wrong key, and
        # as a replay of the node's own signed reading from before the bypass.
        seq = node._seq["house1"] + 1
        await spoofer.publish(topic, state_payload(1000.0, seq=seq))
        await spoofer.publish(
            topic, sign_payload(WRONG_KEY.encode(), topic, state_payload(1000.0, seq=seq + 1))
        )
        await spoofer.publish(topic, honest_1000)
        # A copy of the node's latest reading is ignored, neither used nor refused.
        await spoofer.publish(topic, node.sent[topic][-1])
        # The same spoof on the node without a key works: the contrast that shows it would.
        await unsigned.snapshot("line1", 1000.0, energy=9000.0)
        await unsigned.snapshot("house1", 1000.0, energy=5001.0)
        await wait_state(hass, "sensor.house_3_power", "1000.0")
        await wait_state(hass, "sensor.house_3_theft_percentage", "0.0")
        await wait_state(hass, "binary_sensor.house_1_tamper", "on")
        signed = entry.runtime_data.fleet.signed
        assert signed is not None
        await wait_for(
            hass,
            lambda: sum(signed.diagnostics()["node1"]["refused"].values()) == 3,
            "three refusals",
        )
        assert signed.diagnostics()["node1"]["refused"] == {
            "unsigned": 1,
            "bad_signature": 1,
            "replayed": 1,
            "clock": 0,
        }
        # A correctly signed reading whose time is far from this clock is refused too.
        await node.snapshot("house1", 1000.0, energy=5001.0, ts=time.time() - 120)
        await wait_for(
            hass, lambda: signed.diagnostics()["node1"]["refused"]["clock"] == 1, "the clock"
        )

        # The honest node goes on; its readings are used, and theft stays visible.
        await node.snapshot("line1", 1000.0, energy=9001.0)
        await node.snapshot("house1", 790.0, energy=5002.0)
        await wait_state(hass, "sensor.house_1_power", "790.0")
        await wait_state(hass, "sensor.house_1_theft_percentage", "21.0")
        assert 1000.0 not in log.numbers("sensor.house_1_power")
        assert "0.0" not in log.states("sensor.house_1_theft_percentage")
        assert state_of(hass, "sensor.house_1_detection_status") == "tamper_suspected"
        assert state_of(hass, "binary_sensor.house_3_tamper") in ("off", STATE_UNKNOWN)
        issue = _issue(hass, entry)
        assert issue is not None
        assert issue.translation_key == "signature_refused"
        assert issue.translation_placeholders == {"node": "node1", "minutes": "10"}
        # One warning for the whole episode; the rest at debug.
        assert len(_warnings(caplog)) == 1
        assert "tamper suspected" in _warnings(caplog)[0]
        log.stop()

        # Ten quiet minutes: the alarm and the issue go away by themselves.
        async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=TAMPER_HOLD + 1))
        await hass.async_block_till_done()
        assert state_of(hass, "binary_sensor.house_1_tamper") != "on"
        assert state_of(hass, "sensor.house_1_detection_status") != "tamper_suspected"
        assert _issue(hass, entry) is None
    await hass.config_entries.async_unload(entry.entry_id)


@pytest.fixture
def persistent_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker that keeps retained messages across a restart, like a production one."""
    _allow_loopback_sockets()
    store = tmp_path / "store"
    store.mkdir()
    with running_broker(
        tmp_path / "broker", extra_config=f"persistence true\npersistence_location {store}/\n"
    ) as broker:
        yield broker


async def test_duplicates_reboots_and_restarts_are_not_tamper(
    hass: HomeAssistant, persistent_broker: Broker, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    entry = signed_entry(hass, persistent_broker, prefix, [HOUSE_1])
    await setup_entry(hass, entry)
    signed = entry.runtime_data.fleet.signed
    assert signed is not None
    async with SignedNode(persistent_broker, prefix, KEY) as node:
        await _start(node, 990.0)
        await node.relay_state("r1", "ON")
        await wait_state(hass, "sensor.house_1_theft_percentage", "1.0")
        accepted = signed.diagnostics()["node1"]["accepted"]
        assert accepted >= 3  # announce, two readings

    # The broker restarts with its retained messages: Home Assistant gets the same signed
    # readings again on reconnecting. Not new, not an attack.
    persistent_broker.stop()
    await wait_for(hass, lambda: not entry.runtime_data.hub.connected, "the outage")
    persistent_broker.start()
    await wait_for(hass, lambda: entry.runtime_data.hub.connected, "the reconnection")
    await wait_for(
        hass, lambda: "the same signed reading again" in caplog.text, "the retained readings"
    )
    await wait_state(hass, "sensor.house_1_power", "990.0")

    async with SignedNode(persistent_broker, prefix, KEY) as node:
        # A reboot: seq starts at 0 again with a clearly newer time; accepted. (The readings
        # arrive that much later too: a reboot takes its time.)
        node._seq = {}
        last_ts = time.time()
        entry.runtime_data.fleet.clock = lambda: time.time() + 10
        await node.snapshot("line1", 1000.0, energy=9010.0, ts=last_ts + 10)
        await node.snapshot("house1", 980.0, energy=5010.0, ts=last_ts + 10)
        await wait_state(hass, "sensor.house_1_power", "980.0")
        assert signed.diagnostics()["node1"]["refused"] == dict.fromkeys(
            ("unsigned", "bad_signature", "replayed", "clock"), 0
        )

        # Home Assistant restarts: the retained signed readings are believed again.
        await hass.config_entries.async_unload(entry.entry_id)
        await setup_entry(hass, entry)
        await wait_state(hass, "sensor.house_1_power", "980.0")
        await wait_state(hass, "switch.house_1_relay", "on")

        # Home Assistant restarts after the node went silent long ago: its retained reading is
        # too old to be checked against replays, so it is not used, but it is no attack either.
        await hass.config_entries.async_unload(entry.entry_id)
        await node.snapshot("house1", 970.0, energy=5011.0, ts=time.time() - 90)
        await setup_entry(hass, entry)
        await wait_state(hass, "binary_sensor.pole_7_status", "on")
        await wait_state(hass, "sensor.house_1_line_power", "1000.0")
        assert state_of(hass, "sensor.house_1_power") == STATE_UNAVAILABLE
        signed = entry.runtime_data.fleet.signed
        assert signed is not None
        assert sum(signed.diagnostics()["node1"]["refused"].values()) == 0
    assert state_of(hass, "binary_sensor.house_1_tamper") != "on"
    assert _issue(hass, entry) is None
    assert _warnings(caplog) == []
    await hass.config_entries.async_unload(entry.entry_id)


async def test_reboot_inside_the_margin_and_removal_are_refused(
    hass: HomeAssistant, mosquitto: Broker, prefix: str
) -> None:
    entry = signed_entry(hass, mosquitto, prefix, [HOUSE_1])
    await setup_entry(hass, entry)
    signed = entry.runtime_data.fleet.signed
    assert signed is not None
    async with SignedNode(mosquitto, prefix, KEY) as node:
        await _start(node, 990.0)
        await wait_state(hass, "sensor.house_1_power", "990.0")
        # seq from 0 again but hardly any time later: indistinguishable from a replay.
        node._seq = {}
        await node.snapshot("house1", 500.0, energy=5001.0)
        # An empty announce would mark the node removed; it cannot be signed, so it is refused.
        await node.publish(f"{prefix}/node1/announce", b"", retain=False)
        await wait_for(
            hass,
            lambda: (
                signed.diagnostics()["node1"]["refused"]
                == {"unsigned": 1, "bad_signature": 0, "replayed": 1, "clock": 0}
            ),
            "the refusals",
        )
        assert state_of(hass, "sensor.house_1_power") == "990.0"
        assert not entry.runtime_data.fleet.nodes["node1"].gone
        await wait_state(hass, "binary_sensor.house_1_tamper", "on")
    await hass.config_entries.async_unload(entry.entry_id)


def _no_refusals(entry: MockConfigEntry) -> bool:
    signed = entry.runtime_data.fleet.signed
    assert signed is not None
    return not any(signed.diagnostics()["node1"]["refused"].values())


async def test_a_node_that_counts_its_boots_is_believed_right_after_a_reboot(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    entry = signed_entry(hass, mosquitto, prefix, [HOUSE_1])
    await setup_entry(hass, entry)
    signed = entry.runtime_data.fleet.signed
    assert signed is not None
    topic = state_topic(prefix, "node1", "house1")
    async with (
        SignedNode(mosquitto, prefix, KEY) as node,
        TestNode(mosquitto, prefix, "node1") as spoofer,
    ):
        node.boot = 41
        await _start(node, 990.0)
        await wait_state(hass, "sensor.house_1_power", "990.0")
        await node.snapshot("house1", 985.0, energy=5001.0)
        await wait_state(hass, "sensor.house_1_power", "985.0")
        earlier_boot = node.sent[topic][0]  # 990 W: boot 41, seq 0

        # The node reboots and publishes again at once: seq from 0, within 5 s of its last
        # reading, with the next boot.
        node._seq = {}
        node.boot = 42
        await node.snapshot("line1", 1000.0, energy=9002.0)
        await node.snapshot("house1", 980.0, energy=5002.0)
        await wait_state(hass, "sensor.house_1_power", "980.0")
        await node.snapshot("house1", 975.0, energy=5003.0)
        await wait_state(hass, "sensor.house_1_power", "975.0")
        assert _no_refusals(entry)
        assert state_of(hass, "binary_sensor.house_1_tamper") != "on"
        assert state_of(hass, "sensor.house_1_detection_status") != "tamper_suspected"
        assert _issue(hass, entry) is None
        assert _warnings(caplog) == []

        # Captured signed readings replayed: one of the earlier boot, one of this boot older
        # than the readings a node can have in flight.
        this_boot = node.sent[topic][-2]  # 980 W: boot 42, seq 0
        accepted = signed.diagnostics()["node1"]["accepted"]
        for step in range(RECENT_READINGS):
            await node.snapshot("house1", 975.0, energy=5004.0 + step)
        await wait_for(
            hass,
            lambda: signed.diagnostics()["node1"]["accepted"] == accepted + RECENT_READINGS,
            "the readings after it",
        )
        log = StateLog(hass)
        await spoofer.publish(topic, earlier_boot)
        await spoofer.publish(topic, this_boot)
        await wait_for(
            hass, lambda: signed.diagnostics()["node1"]["refused"]["replayed"] == 2, "refusals"
        )
        await wait_state(hass, "binary_sensor.house_1_tamper", "on")
        log.stop()
        assert state_of(hass, "sensor.house_1_power") == "975.0"
        assert log.numbers("sensor.house_1_power") == []
        assert _issue(hass, entry) is not None
        assert signed.diagnostics()["node1"]["refused"] == {
            "unsigned": 0,
            "bad_signature": 0,
            "replayed": 2,
            "clock": 0,
        }
    await hass.config_entries.async_unload(entry.entry_id)


async def test_a_node_without_ntp_is_believed_after_a_reboot(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An isolated network: the node's clock counts from its boot and starts again at 0."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    entry = signed_entry(hass, mosquitto, prefix, [HOUSE_1])
    await setup_entry(hass, entry)
    signed = entry.runtime_data.fleet.signed
    assert signed is not None
    booted = time.time() - 30.0

    async with SignedNode(mosquitto, prefix, KEY) as node:

        async def both(house_w: float, energy: float) -> None:
            accepted = signed.diagnostics()["node1"]["accepted"]
            await node.snapshot("line1", 1000.0, energy=9000.0 + energy, ts=time.time() - booted)
            await node.snapshot("house1", house_w, energy=5000.0 + energy, ts=time.time() - booted)
            await wait_for(
                hass,
                lambda: signed.diagnostics()["node1"]["accepted"] >= accepted + 2,
                "both readings",
            )

        node.boot = 7
        await node.announce(mac="24:6f:28:a1:b2:01")
        await node.status("online")
        await wait_for(hass, lambda: signed.diagnostics()["node1"]["accepted"] == 1, "announce")
        await both(990.0, 0.0)
        await wait_state(hass, "sensor.house_1_power", "990.0")
        await both(985.0, 1.0)
        await wait_state(hass, "sensor.house_1_power", "985.0")

        # The node reboots: its clock starts again near 0, a second after its last reading.
        node._seq = {}
        node.boot = 8
        booted = time.time() - 0.5
        for step, watts in enumerate((980.0, 979.0, 978.0)):
            await both(watts, 2.0 + step)
        # The energy balance's clock follows the jump once three readings agree on it.
        await wait_state(hass, "sensor.house_1_power", "978.0")
        assert entry.runtime_data.fleet.nodes["node1"].clock.jumps == 1
        assert _no_refusals(entry)
        assert state_of(hass, "binary_sensor.house_1_tamper") != "on"
        assert _issue(hass, entry) is None

        # Home Assistant restarts: the retained readings' age cannot be told without NTP; they
        # are not used, and are no attack. The node's next readings are.
        await hass.config_entries.async_unload(entry.entry_id)
        await setup_entry(hass, entry)
        await wait_state(hass, "binary_sensor.pole_7_status", "on")
        signed = entry.runtime_data.fleet.signed
        assert signed is not None
        await wait_for(hass, lambda: "cannot be checked" in caplog.text, "the retained readings")
        assert state_of(hass, "sensor.house_1_power") in (STATE_UNAVAILABLE, STATE_UNKNOWN)
        await both(977.0, 5.0)
        await wait_state(hass, "sensor.house_1_power", "977.0")
        assert _no_refusals(entry)
    assert state_of(hass, "binary_sensor.house_1_tamper") != "on"
    assert _issue(hass, entry) is None
    # What is logged is the node clock's jump (docs/protocol.md, Timestamps), never tamper.
    assert [w for w in _warnings(caplog) if "tamper" in w] == []
    assert any("jumped by -30 s" in w for w in _warnings(caplog))
    await hass.config_entries.async_unload(entry.entry_id)
