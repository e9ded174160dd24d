"""Smoke test of the ingest benchmark's peer (tiny runs), so that it cannot rot.

The figures come from `python -m benchmarks.ingest --consumers home_assistant,mqtt_peer`; this
checks the peer's discovery configs, and that a tiny run of the harness (its own processes, a
real mosquitto and Home Assistant, as the benchmark runs) shows the peer's sensors taking in
every snapshot with a latency.
"""

from __future__ import annotations

import json
import subprocess
import sys

from benchmarks.ingest.__main__ import LABELS
from benchmarks.ingest.fleet import DISCOVERED, DISCOVERY_PREFIX, VirtualNode, peer_entity_id
from benchmarks.ingest.mqtt_peer import snapshot_ts
from custom_components.smart_energy_meter.semcore import protocol as p

PAIRS = 2


def test_snapshot_ts_reads_the_state_payloads_ts() -> None:
    payload = p.encode_state(
        p.Snapshot("n", "house", 7, 1764072000.123456, 230.0, 1.0, 200.0, 5.0, 50.0, 0.9, False)
    )
    assert snapshot_ts(payload) == 1764072000.123456
    assert snapshot_ts(b'{"seq": 1}') is None


def test_each_meter_has_one_state_topic_read_by_six_discovered_sensors() -> None:
    node = VirtualNode("bench", "bench-0003", 3)
    configs = {topic: json.loads(payload) for topic, payload in node.discovery()}
    assert len(configs) == 2 * len(DISCOVERED)
    for meter in ("line", "house"):
        for quantity, field, device_class, _unit, _state_class in DISCOVERED:
            topic = f"{DISCOVERY_PREFIX}/sensor/bench-0003/{meter}_{quantity}/config"
            config = configs[topic]
            assert config["state_topic"] == p.state_topic("bench", "bench-0003", meter)
            assert config["value_template"] == f"{{{{ value_json.{field} }}}}"
            assert config["device_class"] == device_class
            assert config["default_entity_id"] == peer_entity_id("bench-0003", meter, quantity)
            assert config["availability_topic"] == p.status_topic("bench", "bench-0003")
    assert len({c["unique_id"] for c in configs.values()}) == len(configs)


def _rows(output: str) -> dict[str, list[str]]:
    """The table rows of the paced window, by consumer label."""
    rows: dict[str, list[str]] = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if line.startswith("| ") and cells[0] in LABELS.values() and cells[1] == str(PAIRS):
            rows.setdefault(cells[0], cells)  # the paced table comes first
    return rows


def test_a_tiny_run_of_the_integration_and_its_peer_takes_in_every_snapshot() -> None:
    argv = [sys.executable, "-m", "benchmarks.ingest", "--pairs", str(PAIRS),
            "--consumers", "home_assistant,mqtt_peer,mqtt_peer_theft", "--seconds", "2",
            "--step-seconds", "0", "--settle", "0", "--floor-seconds", "0", "--no-pin"]  # fmt: skip
    output = subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=True, timeout=300)
    rows = _rows(output.stdout)
    for kind in ("mqtt_peer", "mqtt_peer_theft"):
        cells = rows[LABELS[kind]]
        offered, processed, p50, p99 = (float(cells[n]) for n in (2, 3, 4, 5))
        # Two snapshots per pair per second, each taken in by its power sensor's state write.
        assert offered > 0
        assert processed >= 0.5 * offered
        assert 0 <= p50 <= p99 < 2000
        # Voltage, current, power and power factor move with every reading.
        assert float(cells[10]) >= 4
    # The integration takes in every snapshot, and writes only what moved noticeably.
    cells = rows[LABELS["home_assistant"]]
    offered, processed, p50, p99 = (float(cells[n]) for n in (2, 3, 4, 5))
    assert processed >= 0.5 * offered
    assert 0 <= p50 <= p99 < 2000
    assert float(cells[10]) < float(rows[LABELS["mqtt_peer"]][10])
    # The template's theft % is written too.
    assert float(rows[LABELS["mqtt_peer_theft"]][10]) > float(rows[LABELS["mqtt_peer"]][10])
