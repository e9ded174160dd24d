"""Home Assistant and the firmware (under MicroPython) on the broker of docs/mosquitto, set up as
its README says: TLS with the CA its commands make, an account each, the shipped ACL. Readings and
relay commands go through; a node logged in under another user name than its node id is dropped
by the ACL, says so in its log, and Home Assistant raises its repair issue."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from homeassistant.const import ATTR_ENTITY_ID
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.smart_energy_meter.const import DOMAIN, SUBENTRY_PAIR
from tests.docs_broker import make_certificates, running_docs_broker
from tests.firmware.e2e import SimNode
from tests.integration.common import setup_entry, state_of, wait_number, wait_state
from tests.integration.simnode import NODE, SIM_PAIR, requires_micropython, write_scenario
from tests.mosquitto import Broker
from tests.tls import TlsFiles

pytestmark = requires_micropython

USERS = {"homeassistant": "ha-secret-1", NODE: "node-secret", "sem": "change me"}


@pytest.fixture
def docs_tls(tmp_path: Path) -> TlsFiles:
    return make_certificates(tmp_path / "ca")


@pytest.fixture
def broker(tmp_path: Path, docs_tls: TlsFiles) -> Iterator[Broker]:
    with running_docs_broker(tmp_path / "mosquitto", docs_tls, USERS) as broker:
        yield broker


def _entry(hass: HomeAssistant, broker: Broker, tls: TlsFiles) -> MockConfigEntry:
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="sem @ docs broker",
        data={
            "host": broker.host,
            "port": broker.port,
            "username": "homeassistant",
            "password": USERS["homeassistant"],
            "tls": True,
            "ca_cert": tls.ca_pem,
            "prefix": "sem",
        },
        unique_id=f"{broker.host}:{broker.port}/sem",
        subentries_data=[
            {
                "data": SIM_PAIR,
                "subentry_type": SUBENTRY_PAIR,
                "title": SIM_PAIR["name"],
                "unique_id": f"{NODE}/house1",
            }
        ],
    )
    entry.add_to_hass(hass)
    return entry


def _node(broker: Broker, tls: TlsFiles, scenario: Path, user: str) -> SimNode:
    return SimNode(
        broker,
        "--prefix",
        "sem",
        "--tls-ca",
        str(tls.ca_cert),
        "--username",
        user,
        "--password",
        USERS[user],
        scenario=scenario,
        node=NODE,
    )


async def test_firmware_and_home_assistant_over_the_documented_broker(
    hass: HomeAssistant, broker: Broker, docs_tls: TlsFiles, tmp_path: Path
) -> None:
    node = _node(broker, docs_tls, write_scenario(tmp_path, house_w=1000.0, bypass=0.2), NODE)
    try:
        entry = _entry(hass, broker, docs_tls)
        await setup_entry(hass, entry)

        value = await wait_number(hass, "sensor.house_1_theft_percentage", within=20)
        assert 15 < value < 25
        # A relay command from Home Assistant's account reaches the node and is confirmed.
        await wait_state(hass, "switch.house_1_relay", "on")
        await hass.services.async_call(
            "switch", "turn_off", {ATTR_ENTITY_ID: "switch.house_1_relay"}, blocking=True
        )
        assert state_of(hass, "switch.house_1_relay") == "off"
        assert node.stop() == 0
    finally:
        node.kill()
    assert "drops this node's messages" not in node.output()
    await hass.config_entries.async_unload(entry.entry_id)


async def test_a_node_logged_in_as_another_user_is_told_on_both_sides(
    hass: HomeAssistant, broker: Broker, docs_tls: TlsFiles, tmp_path: Path
) -> None:
    node = _node(broker, docs_tls, write_scenario(tmp_path), "sem")
    try:
        entry = _entry(hass, broker, docs_tls)
        await setup_entry(hass, entry)
        await node.wait_line("mqtt: the broker drops this node's messages", within=15)
        assert state_of(hass, "sensor.house_1_power") == "unavailable"
        async_fire_time_changed(hass, dt_util.utcnow() + timedelta(minutes=11))
        await hass.async_block_till_done()
        issue = ir.async_get(hass).async_get_issue(DOMAIN, f"node_unheard_{entry.entry_id}_{NODE}")
        assert issue is not None
        assert issue.translation_placeholders == {"node": NODE, "minutes": "10", "prefix": "sem"}
        assert node.stop() == 0
    finally:
        node.kill()
    await hass.config_entries.async_unload(entry.entry_id)
