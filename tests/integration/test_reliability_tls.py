"""The integration on a broker set up like docs/mosquitto: TLS with a private CA, a password per
account, and the shipped ACL. Also: a login refused at runtime, a wrong CA, and the diagnostics
of such an entry (snapshots in snapshots/)."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Any, Self

import aiomqtt
import pytest
from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState, ConfigSubentry
from homeassistant.const import ATTR_ENTITY_ID
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.translation import async_get_translations
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.syrupy import HomeAssistantSnapshotExtension
from syrupy.assertion import SnapshotAssertion
from syrupy.filters import props

from custom_components.smart_energy_meter.const import DOMAIN
from custom_components.smart_energy_meter.diagnostics import (
    async_get_config_entry_diagnostics,
    async_get_device_diagnostics,
)
from custom_components.smart_energy_meter.semcore.protocol import state_topic, status_topic
from tests.conftest import REPO, SECURE_USERS, _allow_loopback_sockets
from tests.integration.common import HOUSE_1, setup_entry, state_of, wait_for, wait_state
from tests.integration.test_signed_readings import SignedNode
from tests.mosquitto import Broker, running_broker
from tests.tls import TlsFiles, make_ca_and_server

PREFIX = "sem"  # the prefix the shipped ACL is written for
KEY = "node1 key for the secure broker"
LOGGER = "custom_components.smart_energy_meter"
# What changes from run to run: the broker's port, and times.
VOLATILE = props("port", "heard", "offset_s", "at", "ts", "start", "end")


@pytest.fixture
def snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """Home Assistant's snapshot format, kept in tests/integration/snapshots/."""
    return snapshot.use_extension(HomeAssistantSnapshotExtension)


@pytest.fixture
def secure_broker(tmp_path: Path, broker_tls: TlsFiles) -> Iterator[Broker]:
    """TLS, passwords and docs/mosquitto/sem.acl, for one test (which may change a password)."""
    _allow_loopback_sockets()
    with running_broker(
        tmp_path / "secure",
        users=dict(SECURE_USERS),
        acl_file=REPO / "docs" / "mosquitto" / "sem.acl",
        tls=broker_tls,
    ) as broker:
        yield broker


class TlsNode(SignedNode):
    """A signing node that logs in with its own account over TLS."""

    __test__ = False

    def __init__(self, broker: Broker, tls: TlsFiles, user: str, key: str = KEY) -> None:
        super().__init__(broker, PREFIX, key, node=user)
        self._user = user
        self._ca = tls.ca_cert

    async def __aenter__(self) -> Self:
        self._client = aiomqtt.Client(
            self.broker.host,
            self.broker.port,
            username=self._user,
            password=SECURE_USERS[self._user],
            tls_context=ssl.create_default_context(cafile=str(self._ca)),
            will=aiomqtt.Will(status_topic(PREFIX, self.node), b"offline", 1, True),
        )
        await self._client.__aenter__()
        await self._client.subscribe(f"{PREFIX}/{self.node}/relay/+/set", qos=1)
        self._task = asyncio.get_running_loop().create_task(self._respond())
        return self


def secure_entry(
    hass: HomeAssistant, broker: Broker, tls: TlsFiles, **changes: Any
) -> MockConfigEntry:
    """The integration's account, the private CA, the pair of node1 and node1's key."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=f"{PREFIX} @ secure broker",
        data={
            "host": broker.host,
            "port": broker.port,
            "username": "homeassistant",
            "password": SECURE_USERS["homeassistant"],
            "tls": True,
            "ca_cert": tls.ca_pem,
            "prefix": PREFIX,
        }
        | changes,
        unique_id=f"{broker.host}:{broker.port}/{PREFIX}",
    )
    entry.add_to_hass(hass)
    for subentry in (
        ConfigSubentry(
            data=MappingProxyType(HOUSE_1),
            subentry_type="meter_pair",
            title="House 1",
            unique_id="node1/house1",
        ),
        ConfigSubentry(
            data=MappingProxyType({"node": "node1", "key": KEY}),
            subentry_type="node_key",
            title="node1",
            unique_id="node1",
        ),
    ):
        hass.config_entries.async_add_subentry(entry, subentry)
    return entry


async def test_secure_broker_end_to_end_and_diagnostics(
    hass: HomeAssistant, secure_broker: Broker, broker_tls: TlsFiles, snapshot: SnapshotAssertion
) -> None:
    entry = secure_entry(hass, secure_broker, broker_tls)
    await setup_entry(hass, entry)  # the broker's certificate checked against the private CA
    async with (
        TlsNode(secure_broker, broker_tls, "node1") as node,
        TlsNode(secure_broker, broker_tls, "node2", key="node2 has another key") as other,
    ):
        await node.announce()
        await node.status("online")
        await node.relay_state("r1", "OFF")
        await node.snapshot("line1", 1000.0, energy=9000.0)
        await node.snapshot("house1", 800.0, energy=5000.0)
        await wait_state(hass, "sensor.house_1_theft_percentage", "20.0")
        # Home Assistant may command node1's relay; node1 reads the command and confirms.
        await hass.services.async_call(
            "switch", "turn_on", {ATTR_ENTITY_ID: "switch.house_1_relay"}, blocking=True
        )
        assert node.relay_commands == [("r1", b"ON")]
        # node2 publishing in node1's name: the broker's ACL drops it; Home Assistant sees
        # only what node2 may publish (its own status, the marker that it got through).
        await other.publish(state_topic(PREFIX, "node1", "house1"), b"x")
        await other.status("online")
        await wait_for(hass, lambda: "node2" in entry.runtime_data.fleet.nodes, "node2's status")
        signed = entry.runtime_data.fleet.signed
        assert signed is not None
        assert signed.diagnostics()["node1"]["refused"] == dict.fromkeys(
            ("unsigned", "bad_signature", "replayed", "clock"), 0
        )
        assert state_of(hass, "sensor.house_1_power") == "800.0"

        diagnostics = await async_get_config_entry_diagnostics(hass, entry)
        assert diagnostics == snapshot(name="entry", exclude=VOLATILE)
        devices = sorted(
            dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id),
            key=lambda device: device.name or "",
        )
        assert [device.name for device in devices] == ["House 1", "Pole 7"]
        for device in devices:
            data = await async_get_device_diagnostics(hass, entry, device)
            assert data == snapshot(name=f"device {device.name}", exclude=VOLATILE)
            assert "**REDACTED**" in str(data)
    for secret in (SECURE_USERS["homeassistant"], KEY, broker_tls.ca_pem):
        assert secret not in str(diagnostics)
    await hass.config_entries.async_unload(entry.entry_id)


def _reauth_flows(hass: HomeAssistant, entry: MockConfigEntry) -> list[Any]:
    return [
        flow
        for flow in hass.config_entries.flow.async_progress_by_handler(DOMAIN)
        if flow["context"]["source"] == SOURCE_REAUTH
        and flow["context"].get("entry_id") == entry.entry_id
    ]


async def test_password_refused_at_runtime_starts_reauth(
    hass: HomeAssistant,
    secure_broker: Broker,
    broker_tls: TlsFiles,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    entry = secure_entry(hass, secure_broker, broker_tls)
    await setup_entry(hass, entry)
    assert _reauth_flows(hass, entry) == []
    # The broker's administrator changes the integration's password.
    secure_broker.stop()
    secure_broker.users["homeassistant"] = "a new password"
    secure_broker.write_config()
    secure_broker.start()
    await wait_for(hass, lambda: bool(_reauth_flows(hass, entry)), "the reauth flow")
    assert entry.state is ConfigEntryState.LOADED
    assert not entry.runtime_data.hub.connected
    await wait_for(
        hass,
        lambda: secure_broker.log().lower().count("not authori") >= 3,
        "more refused logins",
    )
    assert len(_reauth_flows(hass, entry)) == 1
    assert SECURE_USERS["homeassistant"] not in caplog.text
    await hass.config_entries.async_unload(entry.entry_id)


async def test_wrong_ca_is_a_clear_translated_error(
    hass: HomeAssistant, secure_broker: Broker, broker_tls: TlsFiles, tmp_path: Path
) -> None:
    other_ca = make_ca_and_server(tmp_path / "other", ca_name="another CA").ca_pem
    entry = secure_entry(hass, secure_broker, broker_tls, ca_cert=other_ca)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    # Retried, since a broker's certificate may be renewed; the reason says what is wrong.
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert entry.reason is not None
    assert entry.reason.startswith(
        f"The TLS connection to the broker 127.0.0.1:{secure_broker.port} failed: "
    )
    assert "certificate verify failed" in entry.reason
    for language in ("en", "id"):
        for category, key in (("exceptions", "tls_error.message"), ("config", "error.tls_error")):
            translations = await async_get_translations(hass, language, category, [DOMAIN])
            text = translations[f"component.{DOMAIN}.{category}.{key}"]
            assert "TLS" in text, (language, text)
    await hass.config_entries.async_remove(entry.entry_id)
