"""The node's firmware update entity, end to end: Home Assistant's test harness, a real
mosquitto, and the firmware under the MicroPython unix port as a board with its own flash."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from homeassistant.components.update import (
    ATTR_IN_PROGRESS,
    ATTR_INSTALLED_VERSION,
    ATTR_LATEST_VERSION,
    ATTR_UPDATE_PERCENTAGE,
    UpdateEntityFeature,
)
from homeassistant.const import ATTR_ENTITY_ID, ATTR_SUPPORTED_FEATURES
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError

from custom_components.smart_energy_meter import update as update_platform
from custom_components.smart_energy_meter.diagnostics import async_get_config_entry_diagnostics
from custom_components.smart_energy_meter.semcore import firmware as fw
from tests.firmware.board import Board, bundle_of, firmware_sources, install
from tests.firmware.e2e import SimNode
from tests.integration.common import (
    add_node_key,
    make_entry,
    setup_entry,
    state_of,
    wait_for,
    wait_state,
)
from tests.integration.simnode import NODE, SIM_PAIR, setup_sim_entry, write_scenario
from tests.mosquitto import Broker

pytestmark = pytest.mark.skipif(
    shutil.which("micropython") is None, reason="the MicroPython unix port is not installed"
)

ENTITY = "update.sim_node_firmware"
OLD = "1.0.0"


@pytest.fixture
def board(mosquitto: Broker, prefix: str, tmp_path: Path) -> Iterator[Board]:
    flash = tmp_path / "flash"
    install(flash, OLD)
    node = Board(mosquitto, flash, write_scenario(tmp_path), NODE, "--prefix", prefix)
    yield node
    node.stop()


def record(hass: HomeAssistant) -> list[dict[str, object]]:
    """The update entity's attributes at every state write."""
    seen: list[dict[str, object]] = []

    @callback
    def keep(event: Event[EventStateChangedData]) -> None:
        new = event.data["new_state"]
        if new is not None and new.entity_id == ENTITY:
            seen.append(dict(new.attributes))

    hass.bus.async_listen("state_changed", keep)
    return seen


async def install_update(hass: HomeAssistant, **data: str) -> None:
    await hass.services.async_call(
        "update", "install", {ATTR_ENTITY_ID: ENTITY, **data}, blocking=True
    )


async def test_install_from_home_assistant_and_a_failed_one_rolled_back(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, board: Board
) -> None:
    await board.wait_line("mqtt: connected")
    entry = await setup_sim_entry(hass, mosquitto, prefix)
    bundle = entry.runtime_data.updates.bundle
    assert bundle is not None
    await wait_state(hass, ENTITY, "on", within=10)
    state = hass.states.get(ENTITY)
    assert state is not None
    assert state.attributes[ATTR_INSTALLED_VERSION] == OLD
    assert state.attributes[ATTR_LATEST_VERSION] == bundle.version
    assert state.attributes[ATTR_SUPPORTED_FEATURES] & UpdateEntityFeature.INSTALL
    entity = hass.data["entity_components"]["update"].get_entity(ENTITY)
    assert await entity.async_release_notes() == bundle.notes
    assert "MicroPython" in bundle.notes or bundle.notes.startswith("-")

    seen = record(hass)
    await install_update(hass)
    await wait_state(hass, ENTITY, "off", within=10)
    assert state_of(hass, ENTITY) == "off"
    state = hass.states.get(ENTITY)
    assert state is not None
    assert state.attributes[ATTR_INSTALLED_VERSION] == bundle.version
    percentages = [s[ATTR_UPDATE_PERCENTAGE] for s in seen if s[ATTR_IN_PROGRESS]]
    assert percentages[0] == 0
    assert percentages[-1] == 100
    assert percentages == sorted(percentages)
    assert len(set(percentages)) > 3
    assert state.attributes[ATTR_IN_PROGRESS] is False

    # A build that crashes at import: the node goes back by itself, the install says why.
    crashing = bundle_of(
        firmware_sources(
            "1.2.0", {"node.py": lambda text: 'raise ImportError("broken build")\n' + text}
        ),
        "1.2.0",
    )
    entry.runtime_data.updates.bundle = crashing
    entity.async_write_ha_state()
    assert hass.states.get(ENTITY).attributes[ATTR_LATEST_VERSION] == "1.2.0"  # type: ignore[union-attr]
    with pytest.raises(HomeAssistantError) as failed:
        await install_update(hass)
    assert failed.value.translation_key == "update_failed_crashed"
    diagnostics = await async_get_config_entry_diagnostics(hass, entry)
    assert diagnostics["node_firmware"]["version"] == "1.2.0"
    assert diagnostics["nodes"][NODE]["update"]["state"] == "rolled_back"
    await wait_for(
        hass,
        lambda: hass.states.get(ENTITY).attributes[ATTR_INSTALLED_VERSION] == bundle.version,  # type: ignore[union-attr]
        "the node back on its previous firmware",
        within=10,
    )
    assert hass.states.get(ENTITY).attributes[ATTR_IN_PROGRESS] is False  # type: ignore[union-attr]
    assert board.boots == 4  # the update, the crash, the rollback


async def test_a_node_without_updates_offers_no_install(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, tmp_path: Path
) -> None:
    """A node started without the selector (or an older firmware) cannot take updates."""
    node = SimNode(mosquitto, "--prefix", prefix, scenario=write_scenario(tmp_path), node=NODE)
    try:
        await node.wait_line("mqtt: connected")
        await setup_sim_entry(hass, mosquitto, prefix)
        await wait_state(hass, ENTITY, "off", within=10)
        state = hass.states.get(ENTITY)
        assert state is not None
        assert state.attributes[ATTR_INSTALLED_VERSION] == state.attributes[ATTR_LATEST_VERSION]
        assert not state.attributes[ATTR_SUPPORTED_FEATURES] & UpdateEntityFeature.INSTALL
        with pytest.raises(HomeAssistantError):
            await install_update(hass)
    finally:
        node.kill()


async def test_install_survives_a_broker_restart_during_the_transfer(
    hass: HomeAssistant, own_mosquitto: Broker, prefix: str, tmp_path: Path
) -> None:
    flash = tmp_path / "flash"
    install(flash, OLD)
    node = Board(own_mosquitto, flash, write_scenario(tmp_path), NODE, "--prefix", prefix)
    try:
        await node.wait_line("mqtt: connected")
        entry = await setup_sim_entry(hass, own_mosquitto, prefix)
        await wait_state(hass, ENTITY, "on", within=10)
        updates = entry.runtime_data.updates
        publish = updates._publish
        chunks: list[str] = []

        async def restart_midway(topic: str, payload: bytes, qos: int) -> bool:
            if topic.endswith("/chunk"):
                chunks.append(topic)
                if len(chunks) == 5:
                    own_mosquitto.kill()
                    own_mosquitto.start()
            return await publish(topic, payload, qos)

        updates._publish = restart_midway  # type: ignore[method-assign]
        await install_update(hass)
        state = hass.states.get(ENTITY)
        assert state is not None
        assert state.attributes[ATTR_INSTALLED_VERSION] == updates.bundle.version  # type: ignore[union-attr]
        assert node.boots == 2  # the transfer resumed; nothing restarted but the update
        assert node.output().count("mqtt: connected") >= 3
    finally:
        node.stop()


async def test_a_signed_node_is_downgraded_only_when_asked_and_only_with_its_key(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, tmp_path: Path
) -> None:
    key = "sim-node signing key, 32 bytes.."
    flash = tmp_path / "flash"
    install(flash, "9.0.0")
    node = Board(mosquitto, flash, write_scenario(tmp_path, key=key), NODE, "--prefix", prefix)
    try:
        await node.wait_line("mqtt: connected")
        entry = make_entry(hass, mosquitto, prefix, [SIM_PAIR])
        add_node_key(hass, entry, NODE, key)
        await setup_entry(hass, entry)
        shipped = entry.runtime_data.updates.bundle
        assert shipped is not None
        await wait_for(
            hass,
            lambda: (
                (s := hass.states.get(ENTITY)) is not None
                and s.attributes[ATTR_INSTALLED_VERSION] == "9.0.0"
            ),
            "the node's version",
            within=10,
        )
        assert state_of(hass, ENTITY) == "off"  # newer than the shipped firmware
        with pytest.raises(HomeAssistantError) as refused:
            await install_update(hass)
        assert refused.value.translation_key == "update_downgrade"
        with pytest.raises(HomeAssistantError) as unknown:
            await install_update(hass, version="8.0.0")
        assert unknown.value.translation_key == "update_version"
        # asked for explicitly: signed with the node's key, which the node requires
        await install_update(hass, version=shipped.version)
        state = hass.states.get(ENTITY)
        assert state is not None
        assert state.attributes[ATTR_INSTALLED_VERSION] == shipped.version
        assert node.boots == 2
    finally:
        node.stop()


async def test_a_firmware_that_never_connects_is_reported_failed(
    hass: HomeAssistant,
    mosquitto: Broker,
    prefix: str,
    board: Board,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await board.wait_line("mqtt: connected")
    entry = await setup_sim_entry(hass, mosquitto, prefix)
    await wait_state(hass, ENTITY, "on", within=10)
    lost = bundle_of(
        firmware_sources(
            "1.2.0", {"mqtt.py": lambda text: text.replace("[(host, port)]", "[(host, 1)]")}
        ),
        "1.2.0",
    )
    entry.runtime_data.updates.bundle = lost
    # the node's time limit, 120 s in use, short here
    monkeypatch.setattr(update_platform, "Transfer", partial(fw.Transfer, confirm_s=5))
    with pytest.raises(HomeAssistantError) as failed:
        await install_update(hass, version="1.2.0")
    assert failed.value.translation_key == "update_failed_not_confirmed"
    await wait_for(
        hass,
        lambda: hass.states.get(ENTITY).attributes[ATTR_INSTALLED_VERSION] == OLD,  # type: ignore[union-attr]
        "the node back on its firmware",
        within=10,
    )
    assert board.boots == 3
