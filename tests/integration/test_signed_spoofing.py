"""A spoofing house meter against the firmware's signed readings, end to end: the simulator signs
with the key from its config, the integration verifies with the same key, and a second client
on the broker claims the line's power for the house, over and over."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiomqtt
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.smart_energy_meter.const import DOMAIN
from custom_components.smart_energy_meter.issues import NodeIssue, issue_id
from custom_components.smart_energy_meter.semcore.protocol import state_topic
from custom_components.smart_energy_meter.semcore.signing import sign_payload
from tests.firmware.e2e import Seen, observe
from tests.integration.common import (
    EVERY_READING,
    add_node_key,
    make_entry,
    setup_entry,
    state_of,
    wait_for,
    wait_state,
)
from tests.integration.simnode import (
    NODE,
    SIM_PAIR,
    StateLog,
    requires_micropython,
    sim_meters,
    start_node,
    write_scenario,
)
from tests.mosquitto import Broker

pytestmark = requires_micropython

KEY = "pole 7 node key: 0123456789abcdef"
LINE_W = 1000.0
BYPASS = 0.2  # a fifth of the house's load is drawn before its meter
SPOOF_SECONDS = 5.0


async def test_spoofing_house_meter_is_not_believed(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, tmp_path: Path
) -> None:
    node = await start_node(
        mosquitto, prefix, write_scenario(tmp_path, house_w=LINE_W, bypass=BYPASS, key=KEY)
    )
    try:
        # The paper's rule with a short debounce, so the verdict follows within seconds.
        entry = make_entry(hass, mosquitto, prefix, [{**SIM_PAIR, "detection": "paper"}])
        add_node_key(hass, entry, NODE, KEY)
        hass.config_entries.async_update_entry(entry, options={"debounce": 2.0, **EVERY_READING})
        await setup_entry(hass, entry)
        signed = entry.runtime_data.fleet.signed
        assert signed is not None
        await wait_state(hass, "binary_sensor.house_1_theft", "on", within=15)
        # Everything the firmware signed was verified; nothing was refused.
        counts = signed.diagnostics()[NODE]
        assert counts["accepted"] >= 5
        assert sum(counts["refused"].values()) == 0
        assert state_of(hass, "binary_sensor.house_1_tamper") != "on"

        log = StateLog(hass)
        topic = state_topic(prefix, NODE, "house1")
        spoofed: list[float] = []
        async with aiomqtt.Client(mosquitto.host, mosquitto.port) as spoofer:
            deadline = time.monotonic() + SPOOF_SECONDS
            seq = 10_000
            while time.monotonic() < deadline:
                # The house meter "agrees" with the line meter: no theft to see.
                line = float(state_of(hass, "sensor.house_1_line_power"))
                spoofed.append(line)
                payload = (
                    f'{{"seq":{seq},"ts":{time.time():.3f},"v":226.6,"i":{line / 226.6:.3f},'
                    f'"p":{line},"e":1,"f":50.0,"pf":1.0,"alarm":false}}'
                ).encode()
                if seq % 2:  # half of them signed, with a key that is not the node's
                    payload = sign_payload(b"a guessed key, 16+ bytes", topic, payload)
                await spoofer.publish(topic, payload, qos=1, retain=True)
                seq += 1
                await asyncio.sleep(0.2)
                await hass.async_block_till_done()
        await wait_for(
            hass, lambda: sum(signed.diagnostics()[NODE]["refused"].values()) >= 20, "refusals"
        )
        # The node's next reading (it keeps publishing) comes after the last spoof.
        accepted = signed.diagnostics()[NODE]["accepted"]
        await wait_for(
            hass, lambda: signed.diagnostics()[NODE]["accepted"] >= accepted + 2, "the node"
        )
        log.stop()

        refused = signed.diagnostics()[NODE]["refused"]
        assert refused["unsigned"] >= 10
        assert refused["bad_signature"] >= 10
        house = log.numbers("sensor.house_1_power")
        assert house, "the node's own readings went on"
        # Not one spoofed value was shown; the house meter's own ~800 W stayed.
        assert all(abs(value - LINE_W * (1 - BYPASS)) < 20 for value in house), house
        assert not set(house) & set(spoofed)
        percentages = log.numbers("sensor.house_1_theft_percentage")
        assert all(15 < value < 25 for value in percentages), percentages
        assert set(log.states("binary_sensor.house_1_theft")) <= {"on"}
        assert STATE_UNAVAILABLE not in log.states("sensor.house_1_power")
        assert state_of(hass, "binary_sensor.house_1_theft") == "on"
        assert state_of(hass, "binary_sensor.house_1_tamper") == "on"
        assert state_of(hass, "sensor.house_1_detection_status") == "tamper_suspected"
        issue = ir.async_get(hass).async_get_issue(
            DOMAIN, issue_id(NodeIssue.SIGNATURE_REFUSED, entry.entry_id, NODE)
        )
        assert issue is not None
        await hass.config_entries.async_unload(entry.entry_id)
    finally:
        node.stop()


async def test_a_node_that_reboots_is_believed_and_its_old_readings_are_not(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, tmp_path: Path
) -> None:
    """The firmware counts its boots: readings right after a reboot (within the old 5 s margin)
    are believed, and a reading captured before the reboot, replayed, is not."""
    node = await start_node(
        mosquitto, prefix, write_scenario(tmp_path, house_w=LINE_W, bypass=BYPASS, key=KEY)
    )
    try:
        async with observe(mosquitto, prefix) as observer:
            entry = make_entry(hass, mosquitto, prefix, [SIM_PAIR])
            add_node_key(hass, entry, NODE, KEY)
            await setup_entry(hass, entry)
            signed = entry.runtime_data.fleet.signed
            assert signed is not None
            topic = state_topic(prefix, NODE, "house1")
            await observer.wait(lambda seen: len(_states(seen, topic)) >= 3, what="3 readings")
            captured = _states(observer.messages, topic)[1]
            assert json.loads(captured.payload)["boot"] == 0

            node.send("reboot")
            await node.wait_line("rebooted")
            rebooted = time.monotonic()
            await observer.wait(
                lambda seen: len(_states(seen, topic, boot=1)) >= 2, what="2 readings, boot 1"
            )
            first = _states(observer.messages, topic, boot=1)[0]
            assert json.loads(first.payload)["seq"] == 0
            assert first.at - rebooted < 5.0
            last_of_boot_0 = _states(observer.messages, topic, boot=0)[-1]
            assert first.at - last_of_boot_0.at < 5.0  # inside the margin of protocol 1.0
            await wait_for(
                hass,
                lambda: (
                    (snapshot := sim_meters(entry)["house1"].snapshot) is not None
                    and snapshot.boot == 1
                    and snapshot.seq >= 1
                ),
                "the readings after the reboot",
            )
            assert sum(signed.diagnostics()[NODE]["refused"].values()) == 0
            assert state_of(hass, "binary_sensor.house_1_tamper") != "on"
            assert _tamper_issue(hass, entry) is None

            # A reading captured before the reboot, replayed by another client.
            async with aiomqtt.Client(mosquitto.host, mosquitto.port) as spoofer:
                await spoofer.publish(topic, captured.payload, qos=1)
            await wait_for(
                hass,
                lambda: signed.diagnostics()[NODE]["refused"]["replayed"] == 1,
                "the replay refused",
            )
            assert sim_meters(entry)["house1"].snapshot.boot == 1  # type: ignore[union-attr]
            await wait_state(hass, "binary_sensor.house_1_tamper", "on")
            assert _tamper_issue(hass, entry) is not None
            await hass.config_entries.async_unload(entry.entry_id)
    finally:
        node.stop()


def _states(seen: list[Seen], topic: str, boot: int | None = None) -> list[Seen]:
    """The node's live readings on a topic, of one boot if given."""
    return [
        m
        for m in seen
        if m.topic == topic
        and not m.retain
        and (boot is None or json.loads(m.payload).get("boot") == boot)
    ]


def _tamper_issue(hass: HomeAssistant, entry: MockConfigEntry) -> ir.IssueEntry | None:
    return ir.async_get(hass).async_get_issue(
        DOMAIN, issue_id(NodeIssue.SIGNATURE_REFUSED, entry.entry_id, NODE)
    )
