"""Print the firmware update figures (nothing is asserted):

    scripts/env python -m benchmarks.firmware.update [--runs 3]

A simulated board (firmware/semsim/board.py under the MicroPython unix port, its flash a
folder, the copy by hand at version 1.0.0) against a real mosquitto; the integration's sender
(semcore.firmware.send) installs the shipped bundle (custom_components/.../node_firmware) over
a plain MQTT client, at each of the node's poll intervals, while the node keeps polling and
publishing its two meters. Per run: the time from Install to the node asking for nothing more
(transfer), the messages and bytes the sender published (payloads, topics not counted), the
time from Install to the new firmware confirmed after its restart (back online), and the flash
the new copy takes beside the running one; with mosquitto as installed and with
`set_tcp_nodelay true`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from custom_components.smart_energy_meter.semcore import firmware as fw
from tests.firmware.board import SHIPPED, Board, install, sender
from tests.firmware.test_update import NODE, PREFIX, scenario
from tests.mosquitto import running_broker


def _used(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


async def _run(
    interval: float, workdir: Path, index: int, broker_config: str, plain: bool = False
) -> dict[str, float]:
    """One update; `plain`: chunks at QoS 1 and Nagle's algorithm on at the sender, to compare."""
    bundle = fw.load_bundle(SHIPPED)
    tag = f"{interval}-{index}-{len(broker_config)}-{plain}"
    flash = workdir / f"flash-{tag}"
    install(flash, "1.0.0")
    folder = workdir / f"scenario-{tag}"
    folder.mkdir()
    path = scenario(folder)
    text = path.read_text().replace('"interval": 1,', f'"interval": {interval},')
    path.write_text(text)
    with running_broker(workdir / f"mosquitto-{tag}", extra_config=broker_config) as broker:
        board = Board(broker, flash, path, NODE)
        try:
            async with sender(broker, PREFIX, NODE, nodelay=not plain) as peer:
                await board.wait_line("mqtt: connected")
                await asyncio.sleep(1)
                started = time.monotonic()
                transferred: list[float] = []

                def progress(percent: int) -> None:
                    if percent == 100 and not transferred:
                        transferred.append(time.monotonic() - started)

                await fw.send(
                    fw.Transfer(bundle, PREFIX, NODE, f"b{index}"),
                    (lambda t, p, q: peer.publish(t, p, 1)) if plain else peer.publish,
                    peer.states,
                    progress,
                )
                online = time.monotonic() - started
        finally:
            board.stop()
    return {
        "transfer_s": transferred[0],
        "online_s": online,
        "messages": peer.published,
        "bytes": peer.bytes,
        "firmware_bytes": bundle.size,
        "slot_bytes": _used(flash / "fw" / "a"),
    }


def _print(label: str, interval: float, runs: list[dict[str, float]]) -> None:
    first = runs[0]
    print(
        f"broker {label}, interval {interval} s: firmware {first['firmware_bytes']:.0f} bytes, "
        f"{first['messages']:.0f} messages / {first['bytes']:.0f} bytes sent, "
        f"transfer {statistics.median(r['transfer_s'] for r in runs):.2f} s, "
        f"Install to back online {statistics.median(r['online_s'] for r in runs):.2f} s "
        f"(median of {len(runs)}), new copy on flash {first['slot_bytes']:.0f} bytes"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        # QoS 1 chunks with Nagle on (for comparison), then as shipped with mosquitto as
        # installed and with Nagle's algorithm off there too (docs/mosquitto/mosquitto.conf)
        for config, label, plain in (
            ("", "default, QoS 1 chunks, Nagle on", True),
            ("", "default", False),
            ("set_tcp_nodelay true", "set_tcp_nodelay", False),
        ):
            for interval in (1.0, 0.2):
                runs = [
                    asyncio.run(_run(interval, Path(tmp), index, config, plain))
                    for index in range(args.runs)
                ]
                _print(label, interval, runs)


if __name__ == "__main__":
    main()
