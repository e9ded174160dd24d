"""`scripts/demo`: the whole system on this machine, until Ctrl-C."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

from demo.processes import DemoError
from demo.stack import Stack, missing_parts

# The requirement the demo proves every time it runs.
THEFT_WITHIN = 90.0
# A run whose logs were kept (it failed) is deleted by a later run after this long.
KEEP_FAILED_RUN_S = 7 * 24 * 3600.0


def runs_dir() -> Path:
    """Where each run keeps its logs and state: in the environment's cache, which scripts/env
    shares with its sandbox at the same path, so every path the demo prints opens from the
    user's shell too (the sandbox's /tmp is its own)."""
    cache = os.environ.get("SEM_CACHE_DIR") or Path.home() / ".cache" / "smart_energy_meter"
    return Path(cache) / "demo"


def _prune_runs(runs: Path) -> None:
    """Delete the kept logs of failed runs once nothing in them changed for a week."""
    if not runs.is_dir():
        return
    now = time.time()
    for run in runs.glob("run-*"):
        newest = max((f.stat().st_mtime for f in run.rglob("*")), default=run.stat().st_mtime)
        if now - newest > KEEP_FAILED_RUN_S:
            shutil.rmtree(run, ignore_errors=True)


class _Stop(Exception):
    """SIGTERM or SIGHUP: stop like Ctrl-C."""


def _raise_stop(signum: int, _frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


def say(message: str) -> None:
    print(f"demo: {message}", flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/demo",
        description="Runs mosquitto, the simulated two-house fleet and Home Assistant with the "
        "Smart Energy Meter integration on 127.0.0.1, until Ctrl-C.",
    )
    parser.add_argument("--http-port", type=int, default=8123, help="Home Assistant (8123)")
    parser.add_argument("--mqtt-port", type=int, default=1883, help="mosquitto (1883)")
    parser.add_argument("--scenario", default="paper", help="simulator scenario (paper)")
    parser.add_argument(
        "--config-dir",
        type=Path,
        help="keep Home Assistant's state in this directory across runs "
        "(default: a fresh one, deleted at exit)",
    )
    parser.add_argument(
        "--no-setup",
        action="store_true",
        help="do not set the integration up, to try its setup flow in the browser "
        "(an entry kept in --config-dir stays)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help=f"exit once house 2 shows theft and house 1 does not (or fail after "
        f"{THEFT_WITHIN:.0f} s) instead of running until Ctrl-C",
    )
    args = parser.parse_args(argv)
    if args.check and args.no_setup:
        parser.error("--check needs the integration: leave out --no-setup")
    return args


def _report_theft(stack: Stack) -> bool:
    """Wait for the paper's verdict; True when house 2 shows theft and house 1 does not."""
    deadline = time.monotonic() + max(0.0, THEFT_WITHIN - stack.elapsed())
    after, house1 = stack.wait_theft_verdict(deadline)
    if after is None:
        say(f"CHECK FAILED: house 2 shows no theft {THEFT_WITHIN:.0f} s after start")
        return False
    if house1 != "off":
        say(f"CHECK FAILED: house 2 shows theft ({after:.0f} s), but house 1 is {house1!r}")
        return False
    say(f"house 2 shows theft {after:.0f} s after start; house 1 does not")
    return True


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    # scripts/demo ignores SIGINT so that only this process handles Ctrl-C (the sandbox
    # around it must not die first); take it back here.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGHUP, _raise_stop)

    runs = runs_dir()
    runs.mkdir(parents=True, exist_ok=True)
    _prune_runs(runs)
    workdir = Path(tempfile.mkdtemp(prefix="run-", dir=runs))
    failed = True
    stack = Stack(
        workdir=workdir,
        http_port=args.http_port,
        mqtt_port=args.mqtt_port,
        scenario=args.scenario,
        config_dir=args.config_dir,
        set_up=not args.no_setup,
        say=say,
    )
    try:
        stack.start()
        say(f"open {stack.url}  (this machine is logged in automatically)")
        if stack.integration_ready:
            ok = _report_theft(stack)
            if args.check:
                failed = not ok
                return 0 if ok else 1
        elif args.no_setup:
            say(
                "the integration is not set up: Settings → Devices & services → Add "
                f"integration → Smart Energy Meter, host 127.0.0.1, port {args.mqtt_port}"
            )
        else:
            say("no meters yet: " + "; ".join(missing_parts()))
            if args.check:
                return 1
        say("running; Ctrl-C stops everything")
        while True:
            # Also starts Home Assistant again after a restart from its UI.
            stack.check_alive()
            time.sleep(1)
    except DemoError as err:
        say(f"FAILED: {err}")
        return 1
    except KeyboardInterrupt, _Stop:
        failed = False
        say("stopping")
        return 0
    finally:
        # A second Ctrl-C must not interrupt the clean-up.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stack.stop()
        if failed and any(workdir.iterdir()):
            say(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        say("stopped")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
