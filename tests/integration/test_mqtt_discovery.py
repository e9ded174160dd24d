"""A node announcing itself on Home Assistant's MQTT broker starts the config flow."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from unittest.mock import patch

import pytest
from homeassistant.config_entries import SOURCE_MQTT, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.service_info.mqtt import MqttServiceInfo
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.smart_energy_meter.const import DOMAIN
from custom_components.smart_energy_meter.semcore.protocol import encode_announce
from tests.integration.common import PAPER_ANNOUNCE, make_entry
from tests.mosquitto import Broker


@pytest.fixture(autouse=True)
def short_discovery() -> Iterator[None]:
    """Listen for announces for a fraction of a second."""
    with patch("custom_components.smart_energy_meter.config_flow.DISCOVERY_SECONDS", 0.2):
        yield


def _announce(
    payload: str | bytes | None = None, topic: str | None = None, node: str = "node1"
) -> Any:
    announce = encode_announce(replace(PAPER_ANNOUNCE, node=node)).decode()
    return MqttServiceInfo(
        topic=topic or f"sem/{node}/announce",
        payload=announce if payload is None else payload,
        qos=1,
        retain=True,
        subscribed_topic="sem/+/announce",
        timestamp=0.0,
    )


def _home_assistant_mqtt(hass: HomeAssistant, broker: Broker) -> None:
    MockConfigEntry(domain="mqtt", data={"broker": broker.host, "port": broker.port}).add_to_hass(
        hass
    )


def _suggested(result: Any) -> dict[str, Any]:
    return {
        str(key): key.description["suggested_value"]
        for key in result["data_schema"].schema
        if key.description and "suggested_value" in key.description
    }


async def _discover(hass: HomeAssistant, info: Any) -> dict[str, Any]:
    return dict(
        await hass.config_entries.flow.async_init(
            DOMAIN, context={"source": SOURCE_MQTT}, data=info
        )
    )


async def test_announce_starts_the_flow_with_home_assistants_broker(
    hass: HomeAssistant, own_mosquitto: Broker
) -> None:
    _home_assistant_mqtt(hass, own_mosquitto)
    result = await _discover(hass, _announce())
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert _suggested(result) == {"host": "127.0.0.1", "port": own_mosquitto.port}
    # The discovered card shows the node's name.
    progress = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["title_placeholders"] for flow in progress] == [{"name": "Pole 7"}]
    # A second node on the same broker is the same discovery.
    second = await _discover(hass, _announce(node="node2"))
    assert second["type"] is FlowResultType.ABORT
    assert second["reason"] == "already_in_progress"

    result = dict(
        await hass.config_entries.flow.async_configure(
            result["flow_id"],
            {"host": "127.0.0.1", "port": own_mosquitto.port, "tls": False, "prefix": "sem"},
        )
    )
    assert result["type"] is FlowResultType.SHOW_PROGRESS
    await hass.async_block_till_done()
    result = dict(await hass.config_entries.flow.async_configure(result["flow_id"]))
    assert result["step_id"] == "no_nodes"  # this broker holds no retained announce
    result = dict(await hass.config_entries.flow.async_configure(result["flow_id"], {}))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    entry = result["result"]
    assert entry.unique_id == f"127.0.0.1:{own_mosquitto.port}/sem"
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED

    # Once the broker and prefix are set up, more announces start nothing.
    again = await _discover(hass, _announce(node="node3"))
    assert again["type"] is FlowResultType.ABORT
    assert again["reason"] == "already_configured"
    await hass.config_entries.async_unload(entry.entry_id)


async def test_configured_broker_is_not_offered(hass: HomeAssistant, mosquitto: Broker) -> None:
    _home_assistant_mqtt(hass, mosquitto)
    make_entry(hass, mosquitto, "sem", pairs=[])
    result = await _discover(hass, _announce())
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


@pytest.mark.parametrize(
    ("payload", "topic"),
    [
        (b'{"proto": "2.0", "node": "node1"}', "sem/node1/announce"),  # another major version
        ("{not json", "sem/node1/announce"),
        ("", "sem/node1/announce"),  # a removed node
        (encode_announce(PAPER_ANNOUNCE), "sem/node1/status"),
    ],
)
async def test_what_is_not_a_node_announce_is_dropped(
    hass: HomeAssistant, mosquitto: Broker, payload: str | bytes, topic: str
) -> None:
    _home_assistant_mqtt(hass, mosquitto)
    result = await _discover(hass, _announce(payload, topic))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "invalid_discovery_info"


async def test_no_discovery_without_home_assistants_broker(hass: HomeAssistant) -> None:
    result = await _discover(hass, _announce())
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "invalid_discovery_info"
