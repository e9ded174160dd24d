"""The broker of an existing entry: setup checks, a login the broker refuses, reconfiguring."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.smart_energy_meter.config_flow import PASSWORD_UNCHANGED
from custom_components.smart_energy_meter.const import DOMAIN
from tests.conftest import BROKER_PASSWORD, BROKER_USER, _allow_loopback_sockets
from tests.integration.common import (
    TestNode,
    entry_data,
    make_entry,
    setup_entry,
    wait_for,
    wait_state,
)
from tests.mosquitto import Broker, free_port, running_broker

NEW_PASSWORD = "a new broker password"


@pytest.fixture
def auth_broker(tmp_path: Any) -> Iterator[Broker]:
    """A broker with a login, for one test, whose password the test may change."""
    _allow_loopback_sockets()
    with running_broker(
        tmp_path / "auth", username=BROKER_USER, password=BROKER_PASSWORD
    ) as broker:
        yield broker


def _change_password(broker: Broker, password: str) -> None:
    broker.stop()
    broker.password = password
    broker.write_config()
    broker.start()


def _reauth_flows(hass: HomeAssistant, entry: MockConfigEntry) -> list[dict[str, Any]]:
    return [
        dict(flow)
        for flow in hass.config_entries.flow.async_progress_by_handler(DOMAIN)
        if flow["context"]["source"] == SOURCE_REAUTH
        and flow["context"].get("entry_id") == entry.entry_id
    ]


def _suggested(result: Any) -> dict[str, Any]:
    return {
        str(key): key.description["suggested_value"]
        for key in result["data_schema"].schema
        if key.description and "suggested_value" in key.description
    }


# --- test before setup ------------------------------------------------------------------------


async def test_setup_retries_while_the_broker_is_down(
    hass: HomeAssistant, own_mosquitto: Broker, prefix: str
) -> None:
    own_mosquitto.stop()
    entry = make_entry(hass, own_mosquitto, prefix)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert entry.reason is not None
    assert entry.reason == (
        f"The broker 127.0.0.1:{own_mosquitto.port} refused the connection: "
        f"nothing listens on port {own_mosquitto.port}"
    )
    # No entity was made up while the broker was away.
    assert hass.states.get("sensor.house_1_power") is None

    own_mosquitto.start()
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(minutes=2))
    await wait_for(hass, lambda: entry.state is ConfigEntryState.LOADED, "the retried setup")
    await wait_for(hass, lambda: entry.runtime_data.hub.connected, "the connection")
    await hass.config_entries.async_unload(entry.entry_id)


async def test_wrong_password_at_setup_asks_for_a_new_login(
    hass: HomeAssistant, mosquitto_auth: Broker, prefix: str
) -> None:
    entry = make_entry(hass, mosquitto_auth, prefix)
    hass.config_entries.async_update_entry(entry, data={**entry.data, "password": "wrong"})
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert (
        entry.reason
        == f"The broker 127.0.0.1:{mosquitto_auth.port} refused the username or password"
    )
    await hass.async_block_till_done()
    flows = _reauth_flows(hass, entry)
    assert len(flows) == 1
    flow_id = flows[0]["flow_id"]

    result = await hass.config_entries.flow.async_configure(flow_id)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reauth_confirm"
    assert result["description_placeholders"]["address"] == f"127.0.0.1:{mosquitto_auth.port}"
    assert _suggested(result) == {"username": BROKER_USER}
    # Another wrong password: the broker says so, nothing is stored.
    result = await hass.config_entries.flow.async_configure(
        flow_id, {"username": BROKER_USER, "password": "still wrong"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "invalid_auth"}
    assert entry.data["password"] == "wrong"

    result = await hass.config_entries.flow.async_configure(
        flow_id, {"username": BROKER_USER, "password": BROKER_PASSWORD}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert entry.data == entry_data(mosquitto_auth, prefix)
    await wait_for(hass, lambda: entry.state is ConfigEntryState.LOADED, "the reload")
    await wait_for(hass, lambda: entry.runtime_data.hub.connected, "the connection")
    await hass.config_entries.async_unload(entry.entry_id)


async def test_password_changed_on_the_broker_starts_reauth(
    hass: HomeAssistant, auth_broker: Broker, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="custom_components.smart_energy_meter")
    entry = make_entry(hass, auth_broker, prefix)
    await setup_entry(hass, entry)
    assert _reauth_flows(hass, entry) == []

    _change_password(auth_broker, NEW_PASSWORD)
    await wait_for(hass, lambda: bool(_reauth_flows(hass, entry)), "the reauth flow")
    assert not entry.runtime_data.hub.connected
    # The hub keeps trying (the login may come back on the broker), one flow and one line only.
    await wait_for(
        hass, lambda: auth_broker.log().lower().count("not authori") >= 3, "refused logins"
    )
    assert len(_reauth_flows(hass, entry)) == 1
    # The outage was said once, when the restart dropped the connection.
    lost = [r for r in caplog.records if "is unavailable" in r.getMessage()]
    assert len(lost) == 1

    flow_id = _reauth_flows(hass, entry)[0]["flow_id"]
    result = await hass.config_entries.flow.async_configure(flow_id)
    result = await hass.config_entries.flow.async_configure(
        flow_id, {"username": BROKER_USER, "password": NEW_PASSWORD}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert entry.data["password"] == NEW_PASSWORD
    # The update listener reloads the loaded entry with the new login.
    await wait_for(
        hass,
        lambda: entry.state is ConfigEntryState.LOADED and entry.runtime_data.hub.connected,
        "the reconnection with the new login",
    )
    await hass.config_entries.async_unload(entry.entry_id)


# --- reconfigure ------------------------------------------------------------------------------


async def _start_reconfigure(hass: HomeAssistant, entry: MockConfigEntry) -> dict[str, Any]:
    result = await entry.start_reconfigure_flow(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reconfigure"
    return dict(result)


def _broker_input(broker: Broker, prefix: str, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "host": broker.host,
        "port": broker.port,
        "tls": False,
        "prefix": prefix,
    }
    if broker.username:
        data |= {"username": broker.username, "password": broker.password}
    return data | changes


async def test_reconfigure_moves_to_another_broker_and_prefix(
    hass: HomeAssistant, mosquitto: Broker, mosquitto_auth: Broker, prefix: str
) -> None:
    entry = make_entry(hass, mosquitto, prefix)
    await setup_entry(hass, entry)
    entities = er.async_get(hass)
    before = {
        e.unique_id: e.entity_id
        for e in er.async_entries_for_config_entry(entities, entry.entry_id)
    }
    assert "sensor.house_1_power" in before.values()

    new_prefix = f"{prefix}/moved"
    result = await _start_reconfigure(hass, entry)
    # The stored settings are offered; the broker without login has no password to hide.
    assert _suggested(result) == {
        "host": "127.0.0.1",
        "port": mosquitto.port,
        "tls": False,
        "prefix": prefix,
    }
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _broker_input(mosquitto_auth, new_prefix)
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.data == entry_data(mosquitto_auth, new_prefix)
    assert entry.unique_id == f"127.0.0.1:{mosquitto_auth.port}/{new_prefix}"
    assert entry.title == f"{new_prefix} @ 127.0.0.1:{mosquitto_auth.port}"

    await wait_for(
        hass,
        lambda: (
            entry.state is ConfigEntryState.LOADED
            and entry.runtime_data.settings.prefix == new_prefix
            and entry.runtime_data.hub.connected
        ),
        "the reload on the new broker",
    )
    # Same entities, same ids: the pairs follow the node ids under the new prefix.
    after = {
        e.unique_id: e.entity_id
        for e in er.async_entries_for_config_entry(entities, entry.entry_id)
    }
    assert after == before
    async with TestNode(mosquitto_auth, new_prefix) as node:
        await node.announce()
        await node.status("online")
        await node.snapshot("house1", 41.5)
        await wait_state(hass, "sensor.house_1_power", "41.5")
    await hass.config_entries.async_unload(entry.entry_id)


async def test_reconfigure_refuses_what_does_not_work(
    hass: HomeAssistant, mosquitto: Broker, mosquitto_auth: Broker, prefix: str
) -> None:
    other = make_entry(hass, mosquitto, f"{prefix}other", pairs=[])
    entry = make_entry(hass, mosquitto_auth, prefix, pairs=[])
    hass.config_entries.async_update_entry(entry, title="Boarding house")
    result = await _start_reconfigure(hass, entry)
    # The stored password never goes to the form, only a stand-in for it.
    suggested = _suggested(result)
    assert suggested["password"] == PASSWORD_UNCHANGED
    assert suggested["username"] == BROKER_USER
    assert BROKER_PASSWORD not in str(suggested)
    flow_id = result["flow_id"]

    async def errors(**changes: Any) -> dict[str, str]:
        answer = await hass.config_entries.flow.async_configure(
            flow_id, _broker_input(mosquitto_auth, prefix) | changes
        )
        assert answer["type"] is FlowResultType.FORM
        return dict(answer["errors"] or {})

    assert await errors(prefix="sem/#") == {"prefix": "invalid_prefix"}
    # Broker and prefix of another entry.
    assert await errors(port=mosquitto.port, prefix=f"{prefix}other") == {
        "base": "already_configured"
    }
    assert await errors(port=free_port()) == {"base": "connection_refused"}
    assert await errors(password="wrong") == {"base": "invalid_auth"}
    # The texts name the broker, as in the setup flow.
    answer = await hass.config_entries.flow.async_configure(
        flow_id, _broker_input(mosquitto_auth, prefix) | {"password": "wrong"}
    )
    assert answer["description_placeholders"]["address"] == f"127.0.0.1:{mosquitto_auth.port}"
    assert await errors(tls=True, ca_cert="not a certificate") == {"ca_cert": "invalid_ca"}
    assert entry.data == entry_data(mosquitto_auth, prefix)

    # The stand-in keeps the stored password; a title the user chose stays.
    result = await hass.config_entries.flow.async_configure(
        flow_id, _broker_input(mosquitto_auth, f"{prefix}/b", password=PASSWORD_UNCHANGED)
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.data == entry_data(mosquitto_auth, f"{prefix}/b")
    assert entry.title == "Boarding house"
    assert other.unique_id == f"127.0.0.1:{mosquitto.port}/{prefix}other"
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    await hass.config_entries.async_unload(entry.entry_id)


async def test_reconfigure_keeps_own_broker_and_fixes_a_waiting_entry(
    hass: HomeAssistant, mosquitto: Broker, prefix: str
) -> None:
    # An entry that waits for a broker that is not there: pointing it at a working one sets it up.
    entry = make_entry(hass, mosquitto, prefix)
    hass.config_entries.async_update_entry(entry, data={**entry.data, "port": free_port()})
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    result = await _start_reconfigure(hass, entry)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _broker_input(mosquitto, prefix)
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    # Its own broker and prefix are no conflict.
    assert entry.unique_id == f"127.0.0.1:{mosquitto.port}/{prefix}"
    await wait_for(hass, lambda: entry.state is ConfigEntryState.LOADED, "the setup")
    await wait_for(hass, lambda: entry.runtime_data.hub.connected, "the connection")
    await hass.config_entries.async_unload(entry.entry_id)
