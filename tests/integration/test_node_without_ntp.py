"""A node on a network without internet (the paper's setup: a broker on a local PC): the firmware
under MicroPython with its clock unset, as an ESP32's after power-up, and a time server that never
answers. Its readings still reach Home Assistant, are ordered and compared (theft percentage,
energy), and its signed readings are accepted."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from homeassistant.core import HomeAssistant

from tests.firmware.e2e import SimNode, observe
from tests.integration.common import (
    EVERY_READING,
    add_node_key,
    make_entry,
    setup_entry,
    state_of,
    wait_number,
)
from tests.integration.simnode import (
    NODE,
    SIM_PAIR,
    StateLog,
    requires_micropython,
    write_scenario,
)
from tests.mosquitto import Broker

pytestmark = requires_micropython

KEY = "isolated node key: 0123456789abcdef"
BYPASS = 0.2
UNSET_CLOCK_S = 946684800  # 2000-01-01, where the ESP32's RTC starts


def _silent_udp_port() -> int:
    """A UDP port on 127.0.0.1 that nothing answers on: the unreachable time server."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_signed_node_without_ntp_end_to_end(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, tmp_path: Path
) -> None:
    scenario = write_scenario(tmp_path, house_w=1000.0, bypass=BYPASS, key=KEY)
    server = f"127.0.0.1:{_silent_udp_port()}"
    node = SimNode(mosquitto, "--prefix", prefix, "--ntp", server, scenario=scenario, node=NODE)
    try:
        async with observe(mosquitto, prefix) as obs:
            await node.wait_line(r"sim time 0 at unix 946684800000 ms")
            await node.wait_line("mqtt: connected")
            entry = make_entry(hass, mosquitto, prefix, [SIM_PAIR])
            add_node_key(hass, entry, NODE, KEY)
            hass.config_entries.async_update_entry(entry, options=EVERY_READING)
            log = StateLog(hass)
            await setup_entry(hass, entry)

            value = await wait_number(hass, "sensor.house_1_theft_percentage", within=20)
            await node.wait_line(rf"clock: no time from {server} \(no answer within 2000 ms\)")
            # The line meter sees the bypass, the house meter does not: about a fifth is missing.
            assert 15 < value < 25, value
            signed = entry.runtime_data.fleet.signed
            assert signed is not None
            counts = signed.diagnostics()[NODE]
            assert counts["accepted"] >= 4
            assert sum(counts["refused"].values()) == 0
            assert state_of(hass, "binary_sensor.house_1_tamper") != "on"
            # Energy only goes forward.
            energy = log.numbers("sensor.house_1_energy")
            assert energy
            assert energy == sorted(energy)
            log.stop()
            # What went over the wire really was stamped on the unset clock.
            stamps = [json.loads(m.payload)["ts"] for m in obs.on(f"{prefix}/{NODE}/house1/state")]
            assert stamps
            assert all(UNSET_CLOCK_S <= ts < UNSET_CLOCK_S + 600 for ts in stamps)
            assert not any("clock: set from" in line for line in node.lines)
            assert node.stop() == 0
    finally:
        node.kill()
    await hass.config_entries.async_unload(entry.entry_id)
