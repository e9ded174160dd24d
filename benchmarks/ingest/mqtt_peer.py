"""The peer: Home Assistant's own MQTT integration consuming the virtual fleet.

What a user picks instead of the integration: Home Assistant's MQTT integration (its paho
client, MQTT discovery), with the sensors the nodes describe in retained discovery configs, as
Tasmota or ESPHome-over-MQTT meters do: per meter voltage, current, power, power factor,
frequency and energy, six sensors reading the meter's one `state` topic, each with a value
template picking its field from the JSON payload. No theft detection: the MQTT integration has
none. With `theft`, one template sensor per pair adds what a user can build by hand: the share
of the line's power the house meter does not see, in %, from the two power sensors.

Home Assistant runs in this process as for the integration (the test suite's core, without HTTP
or recorder). Every snapshot changes its meter's power, so the state writes of the line and house
power sensors count the snapshots processed; latency runs from the snapshot's publish (its `ts`)
to that state write, as for the integration.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any
from unittest.mock import patch

import paho.mqtt.client as paho
from homeassistant.components import mqtt
from homeassistant.components.mqtt.client import MQTT
from homeassistant.const import EVENT_STATE_CHANGED, STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_test_home_assistant,
)

from benchmarks.ingest.fleet import DISCOVERED, peer_entity_id, virtual_nodes
from benchmarks.ingest.measure import Counter

SETUP_TIMEOUT = 600.0
# Home Assistant enables at most 10,000 entities per config entry, and the MQTT integration has
# one config entry.
MAX_PAIRS = 10_000 // (2 * len(DISCOVERED))
_TS = b'"ts":'


def snapshot_ts(payload: bytes) -> float | None:
    """The `ts` of a state payload (docs/protocol.md), found without decoding the whole JSON."""
    start = payload.find(_TS)
    if start < 0:
        return None
    start += len(_TS)
    end = payload.find(b",", start)
    return float(payload[start : end if end >= 0 else None])


def theft_template(node: str) -> dict[str, Any]:
    """A template sensor: the share of the line's power the house meter does not see."""
    line = peer_entity_id(node, "line", "power")
    house = peer_entity_id(node, "house", "power")
    return {
        "name": f"{node} theft",
        "unique_id": f"{node}_theft",
        "unit_of_measurement": "%",
        "state_class": "measurement",
        "state": (
            f"{{% set line = states('{line}') | float(0) %}}"
            f"{{{{ ((line - states('{house}') | float(0)) / line * 100) | round(1)"
            " if line > 0 else 0 }}"
        ),
    }


class MqttPeerConsumer:
    """A Home Assistant core with the MQTT integration set up against the fleet's broker."""

    def __init__(self, port: int, pairs: int, *, theft: bool = False) -> None:
        if pairs > MAX_PAIRS:
            raise ValueError(f"the peer carries at most {MAX_PAIRS} pairs (one config entry)")
        self.counter = Counter()
        self._port = port
        self._nodes = virtual_nodes(pairs)
        self._theft = theft
        self._stack = contextlib.AsyncExitStack()
        self._entry: MockConfigEntry | None = None
        self.hass: HomeAssistant | None = None
        self.setup_seconds = 0.0  # from the first setup to every pair showing readings
        self._started = 0.0
        # The message Home Assistant's MQTT client is handling: its sensors write their states
        # while it does (after every subscriber of the topic has read it).
        self._message: paho.MQTTMessage | None = None
        self._watched = {
            peer_entity_id(node.node, meter, "power")
            for node in self._nodes
            for meter in ("line", "house")
        }

    async def __aenter__(self) -> MqttPeerConsumer:
        config_dir = self._stack.enter_context(tempfile.TemporaryDirectory())
        # The MQTT integration reads its YAML part at setup: an empty configuration.
        (Path(config_dir) / "configuration.yaml").write_text("", encoding="utf-8")
        self._stack.enter_context(
            patch.object(
                MQTT, "_async_mqtt_on_message", self._on_message(MQTT._async_mqtt_on_message)
            )
        )
        hass = await self._stack.enter_async_context(
            async_test_home_assistant(config_dir=config_dir)
        )
        self.hass = hass
        self._stack.push_async_callback(self._unload)
        # The MQTT integration's HTTP parts (certificate upload, panels) are not used here.
        hass.config.components.update({"http", "file_upload"})
        self._started = time.monotonic()
        entry = MockConfigEntry(
            domain=mqtt.DOMAIN,
            data={"broker": "127.0.0.1", "port": self._port, "protocol": "5",
                  "discovery": True},
        )  # fmt: skip
        entry.add_to_hass(hass)
        self._entry = entry
        assert await hass.config_entries.async_setup(entry.entry_id)
        if self._theft:
            sensors = [theft_template(node.node) for node in self._nodes]
            assert await async_setup_component(
                hass, "template", {"template": [{"sensor": sensors}]}
            )
        self._watch(hass)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    def _on_message(self, handle: Callable[..., None]) -> Callable[..., None]:
        consumer = self

        def on_message(
            self: MQTT, client: paho.Client, userdata: None, msg: paho.MQTTMessage
        ) -> None:
            consumer._message = msg
            handle(self, client, userdata, msg)

        return on_message

    async def _unload(self) -> None:
        assert self.hass is not None
        assert self._entry is not None
        await self.hass.config_entries.async_unload(self._entry.entry_id)
        await self.hass.async_block_till_done()

    def _watch(self, hass: HomeAssistant) -> None:
        watched = self._watched
        counter = self.counter

        @callback
        def on_state(event: Event[Any]) -> None:
            if not counter.counting:
                return
            counter.state_writes += 1
            if event.data["entity_id"] in watched and (message := self._message) is not None:
                counter.processed(snapshot_ts(message.payload))

        self._stack.callback(hass.bus.async_listen(EVENT_STATE_CHANGED, on_state))

    async def ready(self, settle: float) -> None:
        """Wait until every pair shows readings, then `settle` more seconds."""
        assert self.hass is not None
        hass = self.hass
        deadline = time.monotonic() + SETUP_TIMEOUT
        while not mqtt.is_connected(hass) or any(
            (state := hass.states.get(entity_id)) is None
            or state.state in (STATE_UNAVAILABLE, STATE_UNKNOWN)
            for entity_id in self._watched
        ):
            if time.monotonic() > deadline:
                raise TimeoutError("the pairs' readings")
            await asyncio.sleep(0.25)
        self.setup_seconds = time.monotonic() - self._started
        await asyncio.sleep(settle)
