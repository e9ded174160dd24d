"""Readings whose acknowledgement was lost: the broker stored them, the node never heard so, and
sends the same bytes again after reconnecting (QoS 1 is at least once). Home Assistant takes
each reading once: a signed copy is not a replay, a late copy is not a clock jump, and nothing
is counted as dropped. The firmware under MicroPython, a real mosquitto behind a proxy that
loses the broker's replies."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from pathlib import Path

import pytest
from homeassistant.core import HomeAssistant

from tests.firmware.e2e import SimNode, observe
from tests.integration.common import (
    EVERY_READING,
    add_node_key,
    make_entry,
    setup_entry,
    state_of,
    wait_for,
)
from tests.integration.simnode import NODE, SIM_PAIR, requires_micropython, write_scenario
from tests.latency_proxy import latency_proxy
from tests.mosquitto import Broker

pytestmark = requires_micropython

KEY = "resending node key: 0123456789abcdef"


async def test_a_reading_sent_twice_is_taken_once(
    hass: HomeAssistant,
    mosquitto: Broker,
    prefix: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    scenario = write_scenario(tmp_path, house_w=1000.0, bypass=0.2, key=KEY)
    with latency_proxy(mosquitto) as proxy:
        async with observe(mosquitto, prefix) as obs:
            node = SimNode(
                mosquitto, "--prefix", prefix, "--port", str(proxy.port), scenario=scenario,
                node=NODE,
            )  # fmt: skip
            try:
                await node.wait_line("mqtt: connected")
                entry = make_entry(hass, mosquitto, prefix, [SIM_PAIR])
                add_node_key(hass, entry, NODE, KEY)
                hass.config_entries.async_update_entry(entry, options=EVERY_READING)
                await setup_entry(hass, entry)
                await wait_for(
                    hass,
                    lambda: (
                        state_of(hass, "sensor.house_1_power") not in ("unknown", "unavailable")
                    ),
                    "a reading in Home Assistant",
                    within=20,
                )
                caplog.clear()
                proxy.mute()  # the broker stores what arrives; its PUBACKs never come back
                await asyncio.sleep(2.5)
                proxy.sever()  # and then the connection breaks
                proxy.unmute()
                await node.wait_line("mqtt: connection lost", within=10)
                await node.wait_line("sent again once connected", within=10)
                caught_up = await node.wait_line(
                    r"publishing caught up; (\d+) readings were dropped, (\d+) sent again",
                    within=30,
                )
                topic = f"{prefix}/{NODE}/house1/state"
                seqs_before = len(obs.on(topic))
                await wait_for(
                    hass, lambda: len(obs.on(topic)) >= seqs_before + 3, "readings after", within=15
                )
                copies = Counter(m.payload for m in obs.on(topic))
                signed = entry.runtime_data.fleet.signed
                assert signed is not None
                counts = signed.diagnostics()[NODE]
            finally:
                node.kill()
    # The broker really delivered copies: the same signed bytes twice.
    assert max(copies.values()) == 2, copies
    # Every reading in flight went again, none was dropped: no gap in `seq`.
    assert (int(caught_up[1]), int(caught_up[2])) == (0, 4), caught_up[0]
    seqs = sorted(json.loads(payload)["seq"] for payload in copies)
    assert seqs == list(range(seqs[0], seqs[-1] + 1))
    assert all(b'"dropped"' not in payload for payload in copies)
    # Home Assistant took each once: nothing refused, no tamper, no clock jump.
    assert sum(counts["refused"].values()) == 0, counts
    assert not counts["tamper_suspected"]
    assert state_of(hass, "binary_sensor.house_1_tamper") == "off"
    ours = [r for r in caplog.records if r.name.startswith("custom_components.smart_energy_meter")]
    assert not [r.getMessage() for r in ours if r.levelno >= logging.WARNING]
    await hass.config_entries.async_unload(entry.entry_id)
