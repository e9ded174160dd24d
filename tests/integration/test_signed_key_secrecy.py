"""A node's signing key: entered through the UI's API once, never shown, logged or exported.

Everything goes through Home Assistant's own HTTP and websocket API, as the frontend uses it.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.typing import (
    ClientSessionGenerator,
    WebSocketGenerator,
)

from custom_components.smart_energy_meter.semcore.protocol import state_topic
from tests.integration.common import TestNode, make_entry, setup_entry, wait_for, wait_state
from tests.integration.test_signed_readings import SignedNode
from tests.mosquitto import Broker

KEY = "the first key, a secret of 32 B"
NEW_KEY = "the replacement key of node one"
FLOWS = "/api/config/config_entries/subentries/flow"


class Api:
    """The frontend's view: every answer it got is kept, to search for the key afterwards."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.seen: list[str] = []

    async def post(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.client.post(url, json=body)
        text = await response.text()
        self.seen.append(text)
        assert response.status == HTTPStatus.OK, text
        result: dict[str, Any] = json.loads(text)
        return result

    async def get(self, url: str) -> dict[str, Any]:
        response = await self.client.get(url)
        text = await response.text()
        self.seen.append(text)
        assert response.status == HTTPStatus.OK, text
        result: dict[str, Any] = json.loads(text)
        return result


def _fields(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {field["name"]: field for field in result["data_schema"]}


async def test_key_is_entered_once_and_never_shown(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    hass_ws_client: WebSocketGenerator,
    mosquitto: Broker,
    prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, Home Assistant's own too
    for component in ("config", "diagnostics", "websocket_api"):
        assert await async_setup_component(hass, component, {})
    entry = make_entry(hass, mosquitto, prefix)
    await setup_entry(hass, entry)
    api = Api(await hass_client())
    async with SignedNode(mosquitto, prefix, KEY) as node:
        await node.announce()
        await node.status("online")
        await wait_for(hass, lambda: "node1" in entry.runtime_data.fleet.nodes, "the announce")

        # Add the key: the announced node is offered; mistakes are explained, and the key typed
        # in is never sent back, not even with an error.
        form = await api.post(FLOWS, {"handler": [entry.entry_id, "node_key"]})
        assert form["step_id"] == "user"
        fields = _fields(form)
        assert fields["node"]["selector"]["select"]["options"] == ["node1"]
        assert fields["key"]["selector"]["text"]["type"] == "password"
        url = f"{FLOWS}/{form['flow_id']}"
        short = "only15 bytes..."
        answer = await api.post(url, {"node": "node1", "key": short})
        assert answer["errors"] == {"key": "key_too_short"}
        assert short not in api.seen[-1]
        answer = await api.post(url, {"node": "Node 1", "key": KEY})
        assert answer["errors"] == {"node": "invalid_node"}
        assert KEY not in api.seen[-1]
        answer = await api.post(url, {"node": "node1", "key": KEY})
        assert answer["type"] == "create_entry"
        assert answer["title"] == "node1"
        await wait_for(
            hass,
            lambda: entry.runtime_data.fleet.signed is not None,
            "the reload with the key",
        )

        # A second key for the same node is refused.
        form = await api.post(FLOWS, {"handler": [entry.entry_id, "node_key"]})
        assert _fields(form)["node"]["selector"]["select"]["options"] == []
        answer = await api.post(f"{FLOWS}/{form['flow_id']}", {"node": "node1", "key": NEW_KEY})
        assert answer["errors"] == {"node": "node_has_key"}

        # Signed readings are believed, unsigned ones are not.
        await node.announce()
        await node.status("online")
        await node.snapshot("line1", 1000.0, energy=9000.0)
        await node.snapshot("house1", 990.0, energy=5000.0)
        await wait_state(hass, "sensor.house_1_power", "990.0")
        async with TestNode(mosquitto, prefix) as spoofer:
            spoof = b'{"seq":99,"ts":1,"v":230,"i":1,"p":1,"e":1,"f":50,"pf":1}'
            await spoofer.publish(state_topic(prefix, "node1", "house1"), spoof)
        await wait_state(hass, "binary_sensor.house_1_tamper", "on")
        assert hass.states.get("sensor.house_1_power").state == "990.0"  # type: ignore[union-attr]

        # The list of subentries and the reconfigure form show no key.
        client = await hass_ws_client(hass)
        await client.send_json_auto_id(
            {"type": "config_entries/subentries/list", "entry_id": entry.entry_id}
        )
        listed = await client.receive_json()
        api.seen.append(json.dumps(listed))
        assert {s["subentry_type"]: s["title"] for s in listed["result"]}["node_key"] == "node1"
        subentry_id = next(
            s["subentry_id"] for s in listed["result"] if s["subentry_type"] == "node_key"
        )
        form = await api.post(
            FLOWS, {"handler": [entry.entry_id, "node_key"], "subentry_id": subentry_id}
        )
        assert form["step_id"] == "reconfigure"
        assert form["description_placeholders"] == {"node": "node1"}
        assert list(_fields(form)) == ["key"]
        answer = await api.post(f"{FLOWS}/{form['flow_id']}", {"key": short})
        assert answer["errors"] == {"key": "key_too_short"}
        answer = await api.post(f"{FLOWS}/{form['flow_id']}", {"key": NEW_KEY})
        assert answer["type"] == "abort"
        assert answer["reason"] == "reconfigure_successful"
        await wait_for(
            hass,
            lambda: (
                entry.subentries[subentry_id].data["key"] == NEW_KEY
                and entry.runtime_data.fleet.signed is not None
                and entry.runtime_data.hub.connected
            ),
            "the reload with the new key",
        )
        # The old key no longer convinces.
        await node.snapshot("house1", 980.0, energy=5001.0)
        await wait_state(hass, "binary_sensor.house_1_tamper", "on")
        signed = entry.runtime_data.fleet.signed
        assert signed is not None
        await wait_for(
            hass,
            lambda: signed.diagnostics()["node1"]["refused"]["bad_signature"] >= 1,
            "the refusal",
        )

        # Diagnostics as downloaded, for the entry and for each device.
        base = f"/api/diagnostics/config_entry/{entry.entry_id}"
        diagnostics = await api.get(base)
        assert diagnostics["data"]["signing"]["node1"]["key"] == "**REDACTED**"
        for device in dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id):
            await api.get(f"{base}/device/{device.id}")
        issues = ir.async_get(hass).issues.values()
        assert any(issue.translation_key == "signature_refused" for issue in issues)

    # Stored, as a password is, and nowhere else.
    assert entry.subentries[subentry_id].data["key"] == NEW_KEY
    exported = {
        "api": api.seen,
        "states": [state.as_dict() for state in hass.states.async_all()],
        "issues": [issue.to_json() for issue in ir.async_get(hass).issues.values()],
    }
    text = json.dumps(exported, default=str)
    for secret in (KEY, NEW_KEY):
        assert secret not in text
        assert secret not in caplog.text
    await hass.config_entries.async_unload(entry.entry_id)


async def test_key_can_be_added_while_the_broker_is_not_loaded(
    hass: HomeAssistant, mosquitto: Broker, prefix: str
) -> None:
    entry = make_entry(hass, mosquitto, prefix)  # not set up: nothing announced to offer
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, "node_key"), context={"source": "user"}
    )
    schema = result["data_schema"]
    assert schema is not None
    node_field = next(key for key in schema.schema if key == "node")
    assert schema.schema[node_field].config["options"] == []
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"node": " sem-a1b2c3 ", "key": KEY}
    )
    assert result["type"] == "create_entry"
    [subentry] = [s for s in entry.subentries.values() if s.subentry_type == "node_key"]
    assert dict(subentry.data) == {"node": "sem-a1b2c3", "key": KEY}
    assert subentry.unique_id == "sem-a1b2c3"
