"""Print the firmware figures (nothing is asserted):

    scripts/env python -m benchmarks.firmware [--minutes 10] [--speed 20] [--window 6]
        [--baseline DIR] [--only poll|heap]

With --baseline DIR (a checkout holding an earlier `firmware/`, e.g. made by
`git worktree add DIR REV`), the polling figures of that firmware are measured with the same
harness and printed next to this tree's: "before" and "after" (the 32-bit heap too).

1. Poll-cycle time per PZEM on the emulated UART (MicroPython unix port), with replies that are
   there at once (the firmware's own cost) and with the 9600-baud wire timing, next to the wire
   time of one poll (8 + 25 bytes = 33 bytes, about 34 ms).
2. Polling against a slow or frozen broker (benchmarks/firmware/polling.py).
3. MicroPython heap in use (gc.mem_alloc() after gc.collect()) of the `paper` node after N
   simulated minutes against a real mosquitto, and what the code itself takes (unix port,
   64-bit); then the same node with 2 and 4 PZEMs on the WebAssembly port (32-bit pointers, like
   the ESP32) with an in-memory broker (benchmarks/firmware/wasm_node.py).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.firmware import polling
from tests.mosquitto import Broker
from tests.tls import make_ca_and_server

REPO = Path(__file__).parents[2]
PROBE = Path(__file__).parent / "mp_probe.py"
WASM = Path(__file__).parent / "wasm_heap.mjs"
RUN = REPO / "firmware" / "semsim" / "run.py"
WIRE_MS = 33 * 10 * 1000 / 9600


def _micropython() -> str:
    binary = shutil.which("micropython")
    if binary is None:
        sys.exit("micropython is not installed: run this inside scripts/env")
    return binary


def _values(text: str) -> dict[str, float]:
    return {k: float(v) for k, v in re.findall(r"(\w+)=([-\d.]+)", text)}


def _probe(mode: str, *extra: str) -> dict[str, float]:
    out = subprocess.run(
        [_micropython(), str(PROBE), str(REPO), mode, *extra],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    return _values(out)


def _heap_run(minutes: float, speed: float) -> list[dict[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(Path(tmp) / "mosquitto")
        broker.start()
        try:
            proc = subprocess.Popen(
                [
                    _micropython(),
                    str(RUN),
                    str(REPO / "firmware/scenarios/paper.json"),
                    "paper-node",
                    "--port",
                    str(broker.port),
                    "--speed",
                    str(speed),
                    "--duration",
                    str(minutes * 60),
                    "--control",
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert proc.stdin is not None
            assert proc.stdout is not None
            # A sample after the first simulated minute; the run prints the last one at its end.
            # stdin stays open until then: its end would stop the node.
            time.sleep(60 / speed)
            proc.stdin.write("stats\n")
            proc.stdin.flush()
            out = proc.stdout.read()
            proc.wait(60)
            proc.stdin.close()
        finally:
            broker.stop()
    return [_values(line) for line in out.splitlines() if "stats:" in line]


def _polling(window_s: float, baseline: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(Path(tmp) / "mosquitto")
        broker.start()
        try:
            runs = [("after", RUN)]
            if baseline:
                run = Path(baseline).resolve() / "firmware" / "semsim" / "run.py"
                runs.insert(0, (f"before ({Path(baseline).name})", run))
            figures = [
                (label, asyncio.run(polling.measure(broker, run, Path(tmp), window_s)))
                for label, run in runs
            ]
        finally:
            broker.stop()
    print("== polling against a slow broker (MicroPython node, PZEMs at 9600-baud wire timing)")
    print("   " + " " * 52 + "".join(f"{label:>22}" for label, _ in figures))

    def row(text: str, values: list[str]) -> None:
        print(f"   {text:52}" + "".join(f"{v:>22}" for v in values))

    for uarts, rtt in figures[0][1].per_uart_count:
        row(
            f"PZEMs at 1 Hz, {uarts} UART{'s' if uarts > 1 else ''}, {rtt:3d} ms round trip",
            [f"{f.per_uart_count[(uarts, rtt)]:.1f}" for _, f in figures],
        )
    row("16 PZEMs at 1 s, 100 ms round trip: cycles/s", [f"{f.sixteen_hz:.2f}" for _, f in figures])
    row(
        f"broker frozen {polling.FREEZE_S:.0f} s: poll cycles at 1 s",
        [f"{f.frozen_cycles} of {f.frozen_expected:.0f}" for _, f in figures],
    )


def _wasm_heap(meters: int, minutes: float, speed: float, tree: Path) -> dict[str, float]:
    port = Path(sys.prefix) / "lib" / "micropython-wasm"
    node = shutil.which("node")
    if node is None or not (port / "micropython.mjs").exists():
        sys.exit("the WebAssembly port is not installed: run this inside scripts/env")
    mpy_cross = shutil.which("mpy-cross")
    if mpy_cross is None:
        sys.exit("mpy-cross is not installed: run this inside scripts/env")
    with tempfile.TemporaryDirectory() as tmp:
        sources = {
            "semfw": sorted((tree / "firmware" / "semfw").glob("*.py")),
            "semsim": sorted((tree / "firmware" / "semsim").glob("*.py")),
            "harness": [Path(__file__).parent / n for n in ("wasm_node.py", "mp_probe.py")],
        }
        for directory, files in sources.items():
            (Path(tmp) / directory).mkdir()
            for source in files:
                target = Path(tmp) / directory / (source.stem + ".mpy")
                subprocess.run([mpy_cross, "-o", str(target), str(source)], check=True)
        out = subprocess.run(
            [node, str(WASM), str(port), str(tree), tmp, str(meters), str(minutes), str(speed)],
            capture_output=True,
            text=True,
            check=True,
            timeout=900,
        ).stdout
    values: dict[str, float] = {}
    samples = []
    for line in out.splitlines():
        if "stats:" in line:
            samples.append(_values(line))
        elif re.fullmatch(r"\w+=[-\d.]+", line):
            values.update(_values(line))
    # The port's collector scans the WebAssembly stack conservatively: a stale pointer there can
    # keep garbage alive for one sample, so each half of the run is judged by its lowest sample.
    half = len(samples) // 2
    values["first_half"] = min(s["mem_alloc"] for s in samples[:half])
    values["second_half"] = min(s["mem_alloc"] for s in samples[half:])
    values["minutes"] = samples[-1]["sim_s"] / 60
    values["polls"] = samples[-1]["polls"]
    return values


def _heap_32bit(minutes: float, speed: float, baseline: str | None) -> None:
    print("== MicroPython heap, 32-bit: WebAssembly port 1.27 (node), bytecode, in-memory broker")
    print("   (lowest gc.mem_alloc() of the samples taken every simulated minute, TLS off)")
    trees = [("after", REPO)]
    if baseline:
        trees.insert(0, (f"before ({Path(baseline).name})", Path(baseline).resolve()))
    for meters in (2, 4):
        for label, tree in trees:
            v = _wasm_heap(meters, minutes, speed, tree)
            # What only the host run has: the emulated hardware and the harness that drives it.
            harness = v["heap_interpreter"] - v["heap_bare"] + v["heap_code_runner"]
            emulation = v["heap_code_emulation"] + harness
            code = v["heap_code_firmware"]
            print(
                f"   {meters} PZEMs, {label}: whole process, minutes 1-{minutes / 2:.0f} / "
                f"{minutes / 2:.0f}-{v['minutes']:.0f} ({v['polls']:.0f} poll cycles): "
                f"{v['first_half']:7.0f} / {v['second_half']:7.0f} B"
            )
            print(f"     firmware code (semfw bytecode):                {code:7.0f} B")
            print(f"     emulation and harness code, not on a board:    {emulation:7.0f} B")
            print(
                f"     the node itself (code and state):              "
                f"{v['second_half'] - emulation:7.0f} B  (goal < 61440 B)"
            )


def _tls_heap() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        files = make_ca_and_server(Path(tmp) / "pki")
        broker = Broker(Path(tmp) / "mosquitto", tls=files)
        broker.start()
        try:
            v = _probe("tls", broker.host, str(broker.port), str(files.ca_cert))
        finally:
            broker.stop()
    print("== TLS in the MicroPython heap (unix port, 64-bit; mbedTLS's own buffers are not in it)")
    print(f"   context with the CA certificate:               {v['tls_context']:7.0f} B")
    print(f"   plus one open TLS connection to mosquitto:     {v['tls_connection']:7.0f} B")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--speed", type=float, default=20.0)
    parser.add_argument("--window", type=float, default=6.0, help="seconds per polling figure")
    parser.add_argument("--baseline", help="also measure the polling of DIR/firmware")
    parser.add_argument("--only", choices=("poll", "heap"))
    args = parser.parse_args()

    if args.only != "heap":
        _polling(args.window, args.baseline)
    if args.only != "poll":
        _heap(args.minutes, args.speed)
        _heap_32bit(args.minutes, args.speed, args.baseline)
        _tls_heap()


def _heap(minutes: float, speed: float) -> None:
    poll = _probe("poll")
    print("== poll cycle per PZEM (MicroPython unix port, emulated UART)")
    print(f"   wire time of one poll (33 bytes at 9600 8N1):  {WIRE_MS:7.2f} ms")
    print(f"   with 9600-baud wire timing:                    {poll['poll_wire_ms']:7.2f} ms")
    print(f"   replies there at once (firmware's own cost):   {poll['poll_instant_ms']:7.3f} ms")
    print(f"   encoding one state payload:                    {poll['encode_state_us']:7.1f} us")

    code = _probe("imports")
    print("== MicroPython heap (gc.mem_alloc(), unix port, 64-bit)")
    print(f"   interpreter at start:                          {code['heap_interpreter']:7.0f} B")
    print(f"   firmware code (semfw, without the validator):  {code['heap_code_firmware']:7.0f} B")
    print(f"   config validator (dropped after loading):      {code['heap_code_validator']:7.0f} B")
    print(f"   emulation code (not on a board):               {code['heap_code_emulation']:7.0f} B")
    samples = _heap_run(minutes, speed)
    for sample in samples:
        print(
            f"   paper node after {sample['sim_s'] / 60:5.1f} simulated min "
            f"({sample['polls']:.0f} poll cycles, {sample['connections']:.0f} connection): "
            f"{sample['mem_alloc']:7.0f} B in use"
        )
    if samples:
        last = samples[-1]["mem_alloc"]
        board = last - code["heap_code_emulation"]
        print(f"   minus the emulation code (64-bit upper bound): {board:7.0f} B  (goal < 61440 B)")


if __name__ == "__main__":
    main()
