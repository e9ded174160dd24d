"""The fleet service's verdict on a pair, over a real broker: its entity appears with the first
verdict, follows it, comes back after a reload and a restart from the retained message, and
leaves the local detection alone; junk and verdicts on other pairs change nothing."""

from __future__ import annotations

import json
import logging
from types import MappingProxyType
from typing import Any

import pytest
from homeassistant.config_entries import ConfigSubentry
from homeassistant.const import EVENT_STATE_CHANGED, STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import Event, HomeAssistant
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.smart_energy_meter.const import EVENT_THEFT_DETECTED, SUBENTRY_PAIR
from custom_components.smart_energy_meter.diagnostics import async_get_config_entry_diagnostics
from custom_components.smart_energy_meter.semcore.protocol import encode_verdict, verdict_topic
from tests.integration.common import (
    HOUSE_1,
    HOUSE_2,
    TestNode,
    make_entry,
    publish_verdict,
    service_verdict,
    setup_entry,
    state_of,
    wait_for,
    wait_state,
)
from tests.mosquitto import Broker

VERDICT = "sensor.house_1_service_verdict"
LOGGER = "custom_components.smart_energy_meter"


async def _house_1(hass: HomeAssistant, broker: Broker, prefix: str, node: TestNode) -> Any:
    entry = make_entry(hass, broker, prefix, pairs=[HOUSE_1])
    await setup_entry(hass, entry)
    await node.announce()
    await node.status("online")
    await wait_state(hass, "binary_sensor.pole_7_status", "on")
    return entry


def _writes(hass: HomeAssistant) -> list[Event[Any]]:
    """Every state written from now on, of any entity."""
    return async_capture_events(hass, EVENT_STATE_CHANGED)


async def _marker(hass: HomeAssistant, entry: MockConfigEntry, node: TestNode) -> None:
    """A valid verdict on a pair no entry has, sent last: once it is handled (the model logs
    it), everything published before it was too (one connection, in order)."""
    seen: list[logging.LogRecord] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "no pair here" in record.getMessage() and "marker" in record.getMessage():
                seen.append(record)

    handler = Catch()
    logger = logging.getLogger(LOGGER)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        await publish_verdict(node, service_verdict("marker"), "marker", retain=False)
        await wait_for(hass, lambda: bool(seen), "the marker verdict")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def test_installations_without_the_service_have_no_entity(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    entry = await _house_1(hass, mosquitto, prefix, node)
    await _marker(hass, entry, node)
    assert er.async_get(hass).async_get(VERDICT) is None
    assert hass.states.get(VERDICT) is None


async def test_the_entity_appears_on_the_first_verdict_and_follows_it(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    entry = await _house_1(hass, mosquitto, prefix, node)
    local = {
        entity_id: state_of(hass, entity_id)
        for entity_id in ("binary_sensor.house_1_theft", "sensor.house_1_detection_status")
    }
    thefts = async_capture_events(hass, EVENT_THEFT_DETECTED)
    writes = _writes(hass)

    await publish_verdict(node, service_verdict())
    await wait_state(hass, VERDICT, "theft")
    state = hass.states.get(VERDICT)
    assert state is not None
    assert state.attributes["device_class"] == "enum"
    assert state.attributes["options"] == [
        "ok",
        "theft",
        "meter_fault",
        "tamper_suspected",
        "not_evaluable",
        "evaluating",
    ]
    assert state.attributes["theft_since"] == "2025-11-25T12:00:27.050000+00:00"
    assert state.attributes["decided_at"] == "2025-11-25T12:00:27.050000+00:00"
    assert state.attributes["mismatch"] == 20.81
    assert state.attributes["unaccounted_energy"] == 0.2
    registered = er.async_get(hass).async_get(VERDICT)
    assert registered is not None
    assert registered.translation_key == "service_verdict"
    assert registered.device_id == entry.runtime_data.pairs[registered.config_subentry_id].device_id

    # Live, as the service publishes the change: detected -> cleared.
    await publish_verdict(node, service_verdict(detected=False, at=1_764_075_627.5))
    await wait_state(hass, VERDICT, "ok")
    state = hass.states.get(VERDICT)
    assert state is not None
    # The theft is over: no "since" for it, the rest is the clear's.
    assert state.attributes["theft_since"] is None
    assert state.attributes["decided_at"] == "2025-11-25T13:00:27.500000+00:00"
    assert state.attributes["mismatch"] == 0.35
    # The same verdict again (a second retained copy, a redelivery) writes nothing.
    await publish_verdict(node, service_verdict(detected=False, at=1_764_075_627.5))
    await _marker(hass, entry, node)

    # One verdict, one state written; nothing else of the device wrote for them.
    assert [event.data["entity_id"] for event in writes] == [VERDICT, VERDICT]
    # The local detection is as it was: no event, no change.
    assert thefts == []
    assert {entity_id: state_of(hass, entity_id) for entity_id in local} == local


async def test_a_retained_verdict_comes_back_after_a_reload_and_a_restart(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    entry = await _house_1(hass, mosquitto, prefix, node)
    await publish_verdict(node, service_verdict())
    await wait_state(hass, VERDICT, "theft")
    unique_id = er.async_get(hass).async_get(VERDICT).unique_id  # type: ignore[union-attr]

    assert await hass.config_entries.async_reload(entry.entry_id)
    await wait_state(hass, VERDICT, "theft")

    # A restart: nothing running, no state, the registry kept; the broker hands the verdict.
    assert await hass.config_entries.async_unload(entry.entry_id)
    for state in hass.states.async_all():
        hass.states.async_remove(state.entity_id)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await wait_state(hass, VERDICT, "theft")
    registry = er.async_get(hass)
    assert [e.unique_id for e in er.async_entries_for_config_entry(registry, entry.entry_id)].count(
        unique_id
    ) == 1
    assert registry.async_get(VERDICT).unique_id == unique_id  # type: ignore[union-attr]

    # The service stops judging the pair: its retained verdict is removed; not shown as current.
    await publish_verdict(node, b"")
    await wait_state(hass, VERDICT, STATE_UNKNOWN)
    state = hass.states.get(VERDICT)
    assert state is not None
    assert state.attributes["decided_at"] is None

    diagnostics = await async_get_config_entry_diagnostics(hass, entry)
    shown = diagnostics["pairs"]["House 1"]["service_verdict"]
    assert shown == {"topic_pair": "node1/house1", "heard": True, "current": True, "last": None}


async def test_after_a_broker_restart_a_verdict_not_handed_again_is_not_shown(
    hass: HomeAssistant, own_mosquitto: Broker, prefix: str
) -> None:
    """The restarted broker kept nothing (no persistence), as if the verdict had been withdrawn
    while the connection was down: unavailable, never the old verdict as current."""
    async with TestNode(own_mosquitto, prefix) as node:
        entry = await _house_1(hass, own_mosquitto, prefix, node)
        await publish_verdict(node, service_verdict())
        await wait_state(hass, VERDICT, "theft")
        own_mosquitto.stop()
        await wait_state(hass, VERDICT, STATE_UNAVAILABLE)
    own_mosquitto.start()
    await wait_for(hass, lambda: entry.runtime_data.hub.connected, "the reconnection")
    async with TestNode(own_mosquitto, prefix) as node:
        await node.announce()
        await node.status("online")
        await wait_state(hass, "binary_sensor.pole_7_status", "on")
        await _marker(hass, entry, node)
        assert state_of(hass, VERDICT) == STATE_UNAVAILABLE
        diagnostics = await async_get_config_entry_diagnostics(hass, entry)
        shown = diagnostics["pairs"]["House 1"]["service_verdict"]
        assert (shown["current"], shown["last"]["id"]) == (False, "node1/house1/theft/1")
        # The service publishes it again: current once more.
        await publish_verdict(node, service_verdict())
        await wait_state(hass, VERDICT, "theft")
    await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.parametrize(
    "payload",
    [
        b"{not json",
        b"[1, 2]",
        json.dumps(json.loads(encode_verdict(service_verdict())) | {"pair": "node1/house2"}),
        json.dumps(json.loads(encode_verdict(service_verdict())) | {"event": "raised"}),
        encode_verdict(service_verdict()).replace(b"20.81", b"NaN"),
        json.dumps(json.loads(encode_verdict(service_verdict())) | {"at": "soon"}),
        json.dumps(json.loads(encode_verdict(service_verdict())) | {"pad": "x" * 4100}),
    ],
    ids=["json", "array", "other_pair", "event", "nan", "type", "oversized"],
)
async def test_junk_verdicts_log_one_line_and_make_no_entity(
    hass: HomeAssistant,
    mosquitto: Broker,
    prefix: str,
    node: TestNode,
    payload: bytes | str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    entry = await _house_1(hass, mosquitto, prefix, node)
    topic = verdict_topic(prefix, "node1", "house1")
    caplog.set_level(logging.DEBUG, LOGGER)
    caplog.clear()
    await node.publish(topic, payload, retain=True)
    await _marker(hass, entry, node)
    # The MQTT client's own trace (every packet) aside: what the integration says about it.
    lines = [r for r in caplog.records if topic in r.getMessage() and not r.name.endswith(".mqtt")]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert lines[0].getMessage().startswith(f"Ignoring {topic}: ")
    assert er.async_get(hass).async_get(VERDICT) is None
    tracked = next(iter(entry.runtime_data.pairs.values())).service_verdict
    assert tracked is not None
    assert (tracked.heard, tracked.verdict) == (False, None)


async def test_a_verdict_on_a_pair_of_no_entry_changes_nothing(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    entry = await _house_1(hass, mosquitto, prefix, node)
    before = {state.entity_id: state for state in hass.states.async_all()}
    writes = _writes(hass)
    # House 2 is on the node but not in this entry.
    await publish_verdict(node, service_verdict("house2"), "house2")
    await _marker(hass, entry, node)
    assert writes == []
    assert {state.entity_id: state for state in hass.states.async_all()} == before
    assert er.async_get(hass).async_get("sensor.house_2_service_verdict") is None
    assert set(entry.runtime_data.fleet.model.verdicts) == {("node1", "house1")}


async def test_each_pair_shows_its_own_verdict(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    entry = make_entry(hass, mosquitto, prefix, pairs=[HOUSE_1, HOUSE_2])
    await setup_entry(hass, entry)
    await publish_verdict(node, service_verdict("house2"), "house2")
    await wait_state(hass, "sensor.house_2_service_verdict", "theft")
    await _marker(hass, entry, node)
    assert hass.states.get(VERDICT) is None


async def test_a_pair_added_later_shows_the_verdict_heard_before_and_keeps_it_when_remade(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    entry = await _house_1(hass, mosquitto, prefix, node)
    await publish_verdict(node, service_verdict("house2"), "house2")
    await _marker(hass, entry, node)
    hass.config_entries.async_add_subentry(
        entry,
        ConfigSubentry(
            data=MappingProxyType(HOUSE_2),
            subentry_type=SUBENTRY_PAIR,
            title="House 2",
            unique_id="node1/house2",
        ),
    )
    await wait_state(hass, "sensor.house_2_service_verdict", "theft")

    # Following the paper's rule makes the pair's entities again: the verdict's too.
    writes = _writes(hass)
    hass.config_entries.async_update_entry(entry, options={**entry.options, "detection": "paper"})
    await wait_for(
        hass,
        lambda: (
            [
                e.data["new_state"].state
                for e in writes
                if e.data["entity_id"] == "sensor.house_2_service_verdict"
            ]
            == [STATE_UNAVAILABLE, "theft"]
        ),  # removed (kept in the registry), then added again
        "the entities made again",
    )
    await wait_state(hass, "sensor.house_2_service_verdict", "theft")
    pair = next(p for p in entry.runtime_data.pairs.values() if p.config.pair == "house2")
    assert pair.detection == "paper"
    await publish_verdict(node, service_verdict("house2", detected=False), "house2")
    await wait_state(hass, "sensor.house_2_service_verdict", "ok")


async def test_a_deleted_pair_and_a_pair_by_topic_base_take_no_verdict(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    """The service judges pairs its nodes announce: a device by topic base has no verdict; a
    pair deleted while the entry runs takes none any more."""
    by_base = {
        "pair": "house3",
        "name": "House 3",
        "line": {"topic_base": f"paper/{prefix}/line"},
        "house": {"topic_base": f"paper/{prefix}/house"},
    }
    entry = make_entry(hass, mosquitto, prefix, pairs=[HOUSE_1, by_base])
    await setup_entry(hass, entry)
    await publish_verdict(node, service_verdict())
    await wait_state(hass, VERDICT, "theft")
    diagnostics = await async_get_config_entry_diagnostics(hass, entry)
    assert diagnostics["pairs"]["House 3"]["service_verdict"] is None
    assert diagnostics["pairs"]["House 1"]["service_verdict"]["last"]["status"] == "theft"

    house_1 = next(s for s in entry.subentries.values() if s.title == "House 1")
    assert hass.config_entries.async_remove_subentry(entry, house_1.subentry_id)
    await wait_for(hass, lambda: len(entry.runtime_data.pairs) == 1, "the pair deleted")
    writes = _writes(hass)
    await publish_verdict(node, service_verdict(detected=False))
    await _marker(hass, entry, node)
    assert writes == []
    assert er.async_get(hass).async_get(VERDICT) is None
