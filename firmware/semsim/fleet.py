"""Start a fleet of simulated nodes from a scenario (CPython; `scripts/simulate` calls this).

Each node of the scenario runs as its own MicroPython unix-port process (firmware/semsim/run.py),
with its own MQTT connection, like a real ESP32. SIGINT/SIGTERM stop every node cleanly: each
publishes `offline`, disconnects and exits; nothing is left running.
"""

import argparse
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FIRMWARE = os.path.dirname(HERE)
SCENARIOS = os.path.join(FIRMWARE, "scenarios")
PR_SET_PDEATHSIG = 1


def scenario_path(name):
    """A scenario file path, or the name of one shipped in firmware/scenarios."""
    if os.path.exists(name):
        return os.path.abspath(name)
    shipped = os.path.join(SCENARIOS, name + ".json")
    if os.path.exists(shipped):
        return shipped
    names = sorted(f[:-5] for f in os.listdir(SCENARIOS) if f.endswith(".json"))
    raise SystemExit("simulate: no scenario %r (shipped: %s)" % (name, ", ".join(names)))


def _die_with_parent():
    # If this supervisor is killed outright, its nodes must not outlive it.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="simulate", description=__doc__.split("\n")[0])
    parser.add_argument("scenario", help="a shipped scenario name (e.g. paper) or a file path")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None, help="1883, or 8883 with --tls-ca")
    parser.add_argument("--prefix", default=None, help="topic prefix (default: the scenario's)")
    parser.add_argument("--username", default=None)
    parser.add_argument("--password", default=None)
    parser.add_argument("--tls-ca", default=None, help="TLS, trusting this CA certificate")
    parser.add_argument("--tls-server-name", default=None, help="the broker certificate's name")
    parser.add_argument("--ntp", default=None, help="clock unset until SERVER (or none) sets it")
    parser.add_argument("--speed", type=float, default=None, help="simulated seconds per second")
    parser.add_argument("--interval", type=float, default=None, help="seconds between polls")
    parser.add_argument("--duration", type=float, default=None, help="stop after N sim seconds")
    parser.add_argument("--nodes", default=None, help="comma-separated node ids to run")
    parser.add_argument("--state-dir", default=None, help="keep relay states here (restore)")
    parser.add_argument(
        "--boards",
        default=None,
        help="run each node as a board with its own flash under DIR/<node> (takes updates)",
    )
    parser.add_argument("--micropython", default=None, help="the MicroPython unix binary")
    return parser.parse_args(argv)


# A board resets (an update, a new firmware that failed) or its watchdog fires: power it again.
RESET_CODES = (3, 75)


def flash_of(boards, node_id):
    """The node's flash folder, set up the way `mpremote` sets up a board the first time: the
    boot selector and the firmware's sources. What an update wrote there later is kept."""
    flash = os.path.join(os.path.abspath(boards), node_id)
    if not os.path.exists(os.path.join(flash, "semboot.py")):
        os.makedirs(os.path.join(flash, "semfw"), exist_ok=True)
        firmware = os.path.dirname(HERE)
        shutil.copy(os.path.join(firmware, "semboot.py"), flash)
        semfw = os.path.join(firmware, "semfw")
        for name in sorted(os.listdir(semfw)):
            if name.endswith(".py"):
                shutil.copy(os.path.join(semfw, name), os.path.join(flash, "semfw"))
    return flash


def node_command(args, path, node_id, micropython):
    if args.boards:
        # The board keeps its relay states in its flash.
        start = [os.path.join(HERE, "board.py"), flash_of(args.boards, node_id)]
        kept = ()
    else:
        start = [os.path.join(HERE, "run.py")]
        kept = ("state_dir",)
    cmd = [micropython] + start + [path, node_id, "--host", args.host, "--control"]
    flags = ("port", "prefix", "username", "password", "speed", "interval", "duration")
    for flag in flags + kept + ("tls_ca", "tls_server_name", "ntp"):
        value = getattr(args, flag)
        if value is not None:
            cmd += ["--" + flag.replace("_", "-"), str(value)]
    return cmd


def main(argv):
    args = parse_args(argv)
    path = scenario_path(args.scenario)
    with open(path) as f:
        scenario = json.load(f)
    node_ids = [node["node"] for node in scenario.get("nodes", [])]
    if args.nodes:
        wanted = args.nodes.split(",")
        unknown = sorted(set(wanted) - set(node_ids))
        if unknown:
            raise SystemExit("simulate: the scenario has no node %s" % ", ".join(unknown))
        node_ids = [n for n in node_ids if n in wanted]
    if not node_ids:
        raise SystemExit("simulate: the scenario has no nodes")
    micropython = args.micropython or shutil.which("micropython")
    if not micropython:
        raise SystemExit("simulate: no micropython binary (run inside scripts/env)")

    stopping = []

    def request_stop(signum, _frame):
        stopping.append(signum)

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    print(
        "simulate: scenario %s, %d node(s) -> %s:%d"
        % (scenario.get("name", path), len(node_ids), args.host, args.port),
        flush=True,
    )

    def start(node_id):
        return subprocess.Popen(
            node_command(args, path, node_id, micropython),
            stdin=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    procs = {node_id: start(node_id) for node_id in node_ids}
    status = 0
    while not stopping:
        if args.boards:
            for node_id, proc in procs.items():
                if proc.poll() in RESET_CODES:
                    print("simulate: node %s reset; powering it again" % node_id, flush=True)
                    procs[node_id] = start(node_id)
        running = [p for p in procs.values() if p.poll() is None]
        if not running:
            break
        time.sleep(0.1)
    for node_id, proc in procs.items():
        if proc.poll() is None:
            try:
                proc.stdin.write(b"quit\n")
                proc.stdin.flush()
            except OSError:
                pass
    deadline = time.monotonic() + 5
    for node_id, proc in procs.items():
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print("simulate: node %s did not stop; killing it" % node_id, flush=True)
            proc.kill()
            proc.wait()
        if proc.returncode not in (0, None) and not stopping:
            status = proc.returncode
    print("simulate: stopped", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
