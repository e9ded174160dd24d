"""The firmware update entity against a scripted node: what it offers, what it refuses and why."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from pathlib import Path

import aiomqtt
import pytest
from homeassistant.components.update import (
    ATTR_IN_PROGRESS,
    ATTR_INSTALLED_VERSION,
    ATTR_LATEST_VERSION,
    ATTR_RELEASE_SUMMARY,
    UpdateEntityFeature,
)
from homeassistant.const import ATTR_ENTITY_ID, ATTR_SUPPORTED_FEATURES
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError

from custom_components.smart_energy_meter import node_update
from custom_components.smart_energy_meter.update import FAILURE_REASONS
from tests.integration.common import (
    HOUSE_1,
    TestNode,
    make_entry,
    setup_entry,
    state_of,
    wait_for,
    wait_state,
)
from tests.mosquitto import Broker

ENTITY = "update.pole_7_firmware"


async def install(hass: HomeAssistant) -> None:
    await hass.services.async_call("update", "install", {ATTR_ENTITY_ID: ENTITY}, blocking=True)


async def test_another_interpreter_is_offered_no_install(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    entry = make_entry(hass, mosquitto, prefix, pairs=[HOUSE_1])
    await setup_entry(hass, entry)
    await node.announce(interpreter="1.19.1", mpy="5", update=1)
    await node.status("online")
    await wait_state(hass, ENTITY, "off")
    state = hass.states.get(ENTITY)
    assert state is not None
    assert state.attributes[ATTR_LATEST_VERSION] == state.attributes[ATTR_INSTALLED_VERSION]
    assert not state.attributes[ATTR_SUPPORTED_FEATURES] & UpdateEntityFeature.INSTALL
    # The entity says why, in words: another MicroPython, to update by hand first.
    summary = state.attributes[ATTR_RELEASE_SUMMARY]
    assert summary.startswith("Pole 7: ")
    assert "another MicroPython version" in summary
    # Home Assistant offers no Install and refuses the action; the entity would say why.
    with pytest.raises(HomeAssistantError) as refused:
        await install(hass)
    assert refused.value.translation_key == "service_not_supported"
    entity = hass.data["entity_components"]["update"].get_entity(ENTITY)
    with pytest.raises(HomeAssistantError) as why:
        await entity.async_install(None, False)
    assert why.value.translation_key == "update_interpreter"
    # The same .mpy format on a MicroPython older than the one the files were compiled for.
    await node.announce(interpreter="1.28.0", mpy="6", update=1)
    await wait_for(
        hass,
        lambda: entity._announce is not None and entity._announce.interpreter == "1.28.0",
        "the 1.28 announce",
    )
    assert entity._refusal() == "update_interpreter"
    with pytest.raises(HomeAssistantError) as why:
        await entity.async_install(None, False)
    assert why.value.translation_key == "update_interpreter"
    await node.announce()  # a node without the update capability
    await wait_for(hass, lambda: entity._refusal() == "update_unsupported", "the new announce")
    with pytest.raises(HomeAssistantError) as why:
        await entity.async_install(None, False)
    assert why.value.translation_key == "update_unsupported"
    await wait_for(
        hass,
        lambda: (
            "cannot take firmware updates"
            in str(hass.states.get(ENTITY).attributes.get(ATTR_RELEASE_SUMMARY))
        ),  # type: ignore[union-attr]
        "the summary of a node without updates",
    )


async def test_refusals_and_a_failure_the_node_reports(
    hass: HomeAssistant,
    mosquitto: Broker,
    prefix: str,
    node: TestNode,
    caplog: pytest.LogCaptureFixture,
) -> None:
    entry = make_entry(hass, mosquitto, prefix, pairs=[HOUSE_1])
    await setup_entry(hass, entry)
    bundle = entry.runtime_data.updates.bundle
    assert bundle is not None
    await node.announce(interpreter="1.29.0", mpy=bundle.mpy, update=1)
    await node.status("offline")
    await wait_state(hass, ENTITY, "on")
    fleet = entry.runtime_data.fleet
    await wait_for(hass, lambda: not fleet.node_reachable(node.node), "the node offline")
    with pytest.raises(HomeAssistantError) as offline:
        await install(hass)
    assert offline.value.translation_key == "node_unavailable"

    # Junk on the node's update state is logged and changes nothing.
    state_topic = f"{prefix}/node1/update/state"
    await node.publish(state_topic, b'{"state":"dancing"}', retain=True)
    await wait_for(hass, lambda: "Update state of node node1 ignored" in caplog.text, "a log line")
    assert "node1" not in entry.runtime_data.updates.states
    await node.publish(f"{prefix}/Node-1/update/state", b'{"state":"idle"}')
    await wait_for(hass, lambda: "not a node's topic" in caplog.text, "a log line")
    assert entry.runtime_data.updates.states == {}

    await node.status("online")
    begins: list[bytes] = []
    async with aiomqtt.Client(mosquitto.host, mosquitto.port) as peer:
        await peer.subscribe(f"{prefix}/node1/update/begin", qos=1)

        async def collect() -> None:
            async for message in peer.messages:
                assert isinstance(message.payload, bytes)
                begins.append(message.payload)

        collector = asyncio.create_task(collect())
        running = hass.async_create_task(install(hass))
        for _ in range(200):  # the install runs on: no async_block_till_done here
            if begins:
                break
            await asyncio.sleep(0.02)
        assert state_of(hass, ENTITY) == "on"
        assert hass.states.get(ENTITY).attributes[ATTR_IN_PROGRESS] is True  # type: ignore[union-attr]
        assert not json.loads(begins[0])["downgrade"]
        with pytest.raises(HomeAssistantError) as busy:
            await install(hass)
        assert busy.value.translation_key == "update_in_progress"  # Home Assistant's own
        entity = hass.data["entity_components"]["update"].get_entity(ENTITY)
        with pytest.raises(HomeAssistantError) as busy:
            await entity.async_install(None, False)
        assert busy.value.translation_key == "update_busy"
        transfer_id = json.loads(begins[0])["id"]
        await node.publish(
            state_topic,
            json.dumps(
                {"id": transfer_id, "state": "failed", "error": "no_space", "detail": "9 free"}
            ).encode(),
            retain=True,
        )
        with pytest.raises(HomeAssistantError) as failed:
            await running
        collector.cancel()
    assert failed.value.translation_key == "update_failed_no_space"
    assert failed.value.translation_placeholders is not None
    assert failed.value.translation_placeholders["detail"] == ": 9 free"
    assert hass.states.get(ENTITY).attributes[ATTR_IN_PROGRESS] is False  # type: ignore[union-attr]
    assert f"firmware {bundle.version} not installed" in caplog.text


async def test_a_damaged_shipped_firmware_offers_no_install(
    hass: HomeAssistant,
    mosquitto: Broker,
    prefix: str,
    node: TestNode,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    damaged = tmp_path / "node_firmware"
    shutil.copytree(node_update.BUNDLE_DIR, damaged)
    (damaged / "semfw" / "node.mpy").write_bytes(b"M\x06")
    monkeypatch.setattr(node_update, "BUNDLE_DIR", damaged)
    entry = make_entry(hass, mosquitto, prefix, pairs=[HOUSE_1])
    await setup_entry(hass, entry)
    assert "The node firmware shipped with the integration is damaged" in caplog.text
    await node.announce(interpreter="1.29.0", mpy="6", update=1)
    await wait_state(hass, ENTITY, "off")
    state = hass.states.get(ENTITY)
    assert state is not None
    assert not state.attributes[ATTR_SUPPORTED_FEATURES] & UpdateEntityFeature.INSTALL


def test_every_failure_reason_is_a_sentence_in_each_language() -> None:
    """A failed install names its reason in words, never the node's code."""
    base = Path(__file__).resolve().parents[2] / "custom_components" / "smart_energy_meter"
    for name in ("strings.json", "translations/en.json", "translations/id.json"):
        exceptions = json.loads((base / name).read_text())["exceptions"]
        for reason in FAILURE_REASONS:
            message = exceptions[f"update_failed_{reason}"]["message"]
            assert set(re.findall(r"{(\w+)}", message)) <= {"name", "version", "detail"}, message
