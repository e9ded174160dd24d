"""Rows and bytes the recorder keeps per pair per day, before and after the write policy.

Two Home Assistants with the real recorder (SQLite), each with its own broker and the firmware
simulator running the same scenario: one node per load profile (a steady load; the paper's lamp
steps; a household day compressed into ten minutes, with a kettle, a washing machine and a
fridge cycling). One writes every reading (`every_reading`, the behaviour before the policy),
the other runs the default (`significant`). The same stream, recorded from the broker, is also
counted as ESPHome's PZEM-004T example would write it (every quantity of both meters sampled at
60 s) and at 1 s. Rows are counted over a window after start-up and extrapolated to a day;
bytes per row are measured in the database. Prints figures; asserts nothing about time.

    scripts/env python -m benchmarks.recorder [--minutes 10]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from demo.hass_api import HassClient
from demo.processes import port_is_free
from demo.stack import DOMAIN, PREFIX, Stack

PROFILES = {"house_1": "steady", "house_2": "lamps", "house_3": "household"}
QUANTITIES = ("v", "i", "p", "e", "f", "pf")
# As the integration and ESPHome show them: volts 0.1, amps 0.001, watts 0.1, Wh 1, Hz 0.1.
DIGITS = {"v": 1, "i": 3, "p": 1, "e": 0, "f": 1, "pf": 2}
DAY = 86400.0


def scenario() -> dict[str, Any]:
    """Three houses, one node each, all honest: the profiles differ in load only."""

    def house(n: int, load: Any) -> dict[str, Any]:
        return {
            "pair": f"house{n}",
            "name": f"House {n}",
            "line": {"id": f"line{n}", "addr": 1, "energy_wh": 1000 * n},
            "house": {"id": f"house{n}", "addr": 2, "energy_wh": 900 * n},
            "relay": {"id": f"r{n}", "pin": 4, "power_on": "on"},
            "load": load,
        }

    household = [
        {"constant": 80, "pf": 0.9},  # standby, lights
        {"steps": [[0, 120], [40, 0]], "loop_s": 120, "pf": 0.8},  # fridge: 40 s on, 80 s off
        {  # kettle, washing machine, television: a day in ten minutes
            "steps": [[0, 0], [100, 2000], [120, 0], [200, 500], [320, 0], [400, 100], [590, 0]],
            "loop_s": 600,
            "pf": 0.95,
        },
    ]
    loads = [
        {"constant": 150, "pf": 0.95},
        {"lamps": {"watts": 20, "pf": 0.75, "counts": [1, 2, 3, 4, 5], "step_s": 25}},
        household,
    ]
    return {
        "name": "recorder",
        "description": "Three honest houses: a steady load, the paper's lamps, a household day.",
        "interval": 1,
        "speed": 1,
        "seed": 7,
        "voltage": 226.6,
        "frequency": 50.0,
        "noise": 0.005,
        "nodes": [
            {
                "node": f"node{n}",
                "name": f"Node {n}",
                "uarts": [{"id": 2, "tx": 17, "rx": 16}],
                "houses": [house(n, load)],
            }
            for n, load in enumerate(loads, start=1)
        ],
    }


@dataclass
class StreamLog:
    """Every reading on the broker, by meter: (arrival, payload)."""

    readings: dict[str, list[tuple[float, dict[str, Any]]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    lock: threading.Lock = field(default_factory=threading.Lock)

    def listen(self, port: int) -> mqtt.Client:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)

        def on_message(_c: Any, _u: Any, message: Any) -> None:
            if message.retain or not message.topic.endswith("/state"):
                return
            try:
                payload = json.loads(message.payload)
            except ValueError:
                return
            if not isinstance(payload, dict) or "p" not in payload:
                return
            meter = message.topic.split("/")[-2]
            with self.lock:
                self.readings[meter].append((time.time(), payload))

        client.on_message = on_message
        client.connect("127.0.0.1", port)
        client.subscribe(f"{PREFIX}/+/+/state")
        client.loop_start()
        return client

    def rows(self, meter: str, start: float, end: float, every: float) -> int:
        """State rows of the meter's six quantities if sampled every `every` s (0: each one)."""
        with self.lock:
            readings = [r for t, r in self.readings[meter] if start <= t < end]
            times = [t for t, _ in self.readings[meter] if start <= t < end]
        count = 0
        last: dict[str, float] = {}
        next_sample = start
        for moment, reading in zip(times, readings, strict=True):
            if every and moment < next_sample:
                continue
            next_sample = moment + every
            for quantity in QUANTITIES:
                value = round(float(reading.get(quantity, 0.0)), DIGITS[quantity])
                if last.get(quantity) != value:
                    count += 1
                    last[quantity] = value
        return count


def set_policy(client: HassClient, policy: str) -> None:
    """The entry's options flow, with every other option as it is."""
    [entry] = client.config_entries(DOMAIN)
    base = "/api/config/config_entries/options/flow"
    form = client.request("POST", base, {"handler": entry["entry_id"]})
    values: dict[str, Any] = {}
    for item in form["data_schema"]:
        if item.get("type") == "expandable":
            values[item["name"]] = {
                inner["name"]: inner["description"]["suggested_value"]
                for inner in item["schema"]
                if "suggested_value" in inner.get("description", {})
            }
        elif "suggested_value" in item.get("description", {}):
            values[item["name"]] = item["description"]["suggested_value"]
    values["recording"] = {"state_writes": policy}
    result = client.request("POST", f"{base}/{form['flow_id']}", values)
    if result.get("type") != "create_entry":
        raise SystemExit(f"options flow did not finish: {result}")


def database_rows(path: Path, start: float, end: float) -> tuple[dict[str, int], float]:
    """State rows per pair within [start, end), and the bytes one state row takes (its table,
    its indexes and its share of the attributes)."""
    db = sqlite3.connect(path)
    per_pair: dict[str, int] = defaultdict(int)
    for entity_id, count in db.execute(
        "SELECT m.entity_id, COUNT(*) FROM states s JOIN states_meta m"
        " ON s.metadata_id = m.metadata_id WHERE s.last_updated_ts >= ? AND"
        " s.last_updated_ts < ? GROUP BY m.entity_id",
        (start, end),
    ):
        name = entity_id.split(".", 1)[1]
        pair = next((p for p in PROFILES if name.startswith(p + "_")), None)
        if pair is not None:
            per_pair[pair] += count
    total_rows = db.execute("SELECT COUNT(*) FROM states").fetchone()[0]
    try:
        size = db.execute(
            "SELECT SUM(pgsize) FROM dbstat WHERE name IN ('states', 'state_attributes')"
            " OR name IN (SELECT name FROM sqlite_master WHERE type = 'index'"
            " AND tbl_name IN ('states', 'state_attributes'))"
        ).fetchone()[0]
    except sqlite3.OperationalError:  # no dbstat: the whole file
        size = path.stat().st_size
    db.close()
    return dict(per_pair), size / max(total_rows, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="measured window (10)")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before it (60)")
    args = parser.parse_args()
    ports = [port for port in range(18123, 18200) if port_is_free(port)][:4]
    with tempfile.TemporaryDirectory(prefix="sem-recorder-") as tmp:
        work = Path(tmp)
        scenario_file = work / "recorder.json"
        scenario_file.write_text(json.dumps(scenario()))
        stacks = {
            policy: Stack(
                workdir=work / policy,
                http_port=ports[2 * n],
                mqtt_port=ports[2 * n + 1],
                scenario=str(scenario_file),
                say=lambda line, policy=policy: print(f"[{policy}] {line}", flush=True),
            )
            for n, policy in enumerate(("every_reading", "significant"))
        }
        log = StreamLog()
        listener = None
        try:
            for stack in stacks.values():
                stack.start()
            set_policy(stacks["every_reading"].client, "every_reading")
            listener = log.listen(stacks["significant"].mqtt_port)
            time.sleep(args.warmup)
            start = time.time()
            print(f"measuring {args.minutes:g} min ...", flush=True)
            time.sleep(args.minutes * 60)
            end = time.time()
        finally:
            if listener is not None:
                listener.loop_stop()
            for stack in stacks.values():
                stack.stop()
        scale = DAY / (end - start)
        measured = {
            policy: database_rows(stack.config / "home-assistant_v2.db", start, end)
            for policy, stack in stacks.items()
        }
        row_bytes = measured["every_reading"][1]
        print(f"\nbytes per state row (states + attributes + indexes): {row_bytes:.0f}")
        print(
            "| profile | before: every reading | after: significant changes |"
            " ESPHome example, 60 s | every reading at 1 s |"
        )
        print("|---|---|---|---|---|")
        for pair, profile in PROFILES.items():
            n = pair.split("_")[1]
            cells = [
                measured["every_reading"][0].get(pair, 0),
                measured["significant"][0].get(pair, 0),
                sum(log.rows(f"{m}{n}", start, end, 60.0) for m in ("line", "house")),
                sum(log.rows(f"{m}{n}", start, end, 0.0) for m in ("line", "house")),
            ]
            shown = [
                f"{rows * scale:,.0f} rows, {rows * scale * row_bytes / 1e6:.1f} MB"
                for rows in cells
            ]
            print(f"| {profile} | " + " | ".join(shown) + " |")
        print(f"\n(per pair per day, from {(end - start) / 60:.1f} min)")


if __name__ == "__main__":
    main()
