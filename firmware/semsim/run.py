"""Run one simulated node: the real firmware (semfw) on emulated hardware, against a real broker.

    micropython firmware/semsim/run.py SCENARIO.json NODE_ID --host H --port P [--prefix sem]
        [--username U --password P] [--tls-ca CA.pem [--tls-server-name NAME]] [--ntp SERVER]
        [--speed X] [--interval S] [--duration S] [--control] [--state-dir DIR]

--tls-ca connects over TLS (the port then defaults to 8883), accepting only a broker whose
certificate CA.pem signed and whose name is NAME (default: the host). --ntp runs the node like a
board after power-up: its clock starts unset (2000-01-01, as the ESP32's RTC) and only the
firmware's NTP client against SERVER (`host[:port]`, or `none`) sets it. Without --ntp the node's
clock is the host's.

With --control, lines on stdin steer the run: `quit`, `stats`, `reboot` (the board resets, the
PZEMs keep counting), `offline METER`, `online METER`,
`crc METER RATE`, `timeout METER RATE`, `relaypin RELAY 0|1` (a pin changed behind the firmware's
back), `stuck RELAY` (a pin that ignores writes), `garbage METER HEX` (line noise before every
reply; `-` for none), `register METER NAME VALUE|off` (a register value no PZEM measures, e.g.
`register house1 energy 4294967295`), `refusereset METER 0|1` (reset_energy answered with an
exception). End of input is `quit`.
"""

import asyncio
import gc
import json
import select
import sys

# Make `semfw` and `semsim` importable when started as a script from any directory.
_here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
_root = _here.rsplit("/", 1)[0] if "/" in _here else _here + "/.."
if _root not in sys.path:
    sys.path.insert(0, _root)

from semfw import ntp  # noqa: E402
from semfw.boots import BootCounter  # noqa: E402
from semfw.node import Node  # noqa: E402

from semsim import scenario as scen  # noqa: E402
from semsim.clock import SimClock  # noqa: E402
from semsim.hw import MemoryStore  # noqa: E402

USAGE = "usage: run.py SCENARIO NODE --host H --port P [options]"
UNSET_CLOCK_MS = 946684800000  # 2000-01-01, where an ESP32's RTC starts after power-up


class StartError(Exception):
    pass


def load_config(text, mac):
    """Validate like the board does, then drop the validator from the heap as the board does."""
    from semfw import config

    try:
        cfg = config.load(text, mac)
    except config.ConfigError as err:
        raise StartError("; ".join(err.errors)) from None
    config.forget()
    return cfg


def parse_args(argv):
    args = {
        "prefix": None,
        "username": None,
        "password": None,
        "speed": None,
        "interval": None,
        "duration": None,
        "control": False,
        "state_dir": None,
        "host": "127.0.0.1",
        "port": None,
        "tls_ca": None,
        "tls_server_name": None,
        "ntp": None,
        "fallback": None,
    }
    positional = []
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg == "--control":
            args["control"] = True
        elif arg.startswith("--"):
            key = arg[2:].replace("-", "_")
            if key not in args or index + 1 >= len(argv):
                raise SystemExit(USAGE)
            index += 1
            args[key] = argv[index]
        else:
            positional.append(arg)
        index += 1
    if len(positional) != 2:
        raise SystemExit(USAGE)
    args["scenario"], args["node"] = positional
    if args["port"] is None:
        args["port"] = 8883 if args["tls_ca"] else 1883
    args["port"] = int(args["port"])
    for key in ("speed", "interval", "duration"):
        if args[key] is not None:
            args[key] = float(args[key])
    return args


class Runner:
    def __init__(self, args, flash=None):
        """flash: what a firmware update needs of the board (see semsim.board), or None."""
        self.args = args
        scenario = scen.load_file(args["scenario"])
        spec = scen.find_node(scenario, args["node"])
        if args["interval"] is not None:
            spec["interval"] = args["interval"]
        speed = args["speed"] if args["speed"] is not None else float(scenario.get("speed", 1))
        self.speed = speed
        # A board after power-up: the RTC counts from 2000-01-01 until NTP sets it.
        unset = UNSET_CLOCK_MS if args["ntp"] is not None else None
        self.clock = SimClock(speed, start_unix_ms=unset)
        net_clock = SimClock(1.0)
        self.net_clock = net_clock
        self.node_id = spec["node"]
        store = boots = None
        if args["state_dir"]:
            store = MemoryStore(args["state_dir"] + "/" + self.node_id + "-relays.json")
            boots = BootCounter(args["state_dir"] + "/" + self.node_id + "-boot")
        self.sim = scen.SimNode(scenario, spec, self.clock, net_clock, store, boots=boots)
        broker = {
            "host": args["host"],
            "port": args["port"],
            "user": args["username"],
            "password": args["password"],
            "prefix": args["prefix"],
        }
        if args["fallback"]:
            broker["fallback"] = args["fallback"].split(",")
        if args["tls_ca"]:
            broker["tls"] = True
            broker["ca"] = args["tls_ca"]
            broker["server_name"] = args["tls_server_name"]
        config = scen.node_config(scenario, spec, broker)
        if args["ntp"] is not None:
            config["ntp"] = None if args["ntp"] == "none" else args["ntp"]
        text = json.dumps(config)
        self.cfg = load_config(text, self.sim.hardware.mac)
        for warning in self.cfg.warnings:
            self.log("config: " + warning)
        self.backoff_cap_ms = int(spec.get("backoff_cap_ms", 30000))
        self.sim.hardware.flash = flash
        self.node = self.make_node()
        self.done = asyncio.Event()
        self.extra = []  # more coroutines to run beside the node (semsim.board)

    def make_node(self):
        return Node(
            self.cfg,
            self.sim.hardware,
            log=self.log,
            backoff_cap_ms=self.backoff_cap_ms,
            # Receivers see snapshots at the real-time rate.
            announce_interval_ms=max(200, int(self.cfg.interval_ms / self.speed)),
        )

    async def reboot(self):
        """The board resets: the firmware stops dead (no DISCONNECT, so the broker publishes the
        last will) and starts again; the PZEMs, powered from the mains, keep their counters."""
        for task in self.node._tasks:
            task.cancel()
        await asyncio.sleep(0.05)  # let the cancelled client close its socket
        self.node = self.make_node()
        self.node.boot()
        self.node.start()
        self.log("rebooted")

    def log(self, message):
        print("[%s %.1f] %s" % (self.node_id, self.clock.seconds(), message))

    def stats(self):
        gc.collect()
        alloc = gc.mem_alloc() if hasattr(gc, "mem_alloc") else -1
        writes = ",".join("%s=%d" % (r.id, r.writes) for r in self.node.relays.relays.values())
        self.log(
            "stats: sim_s=%.1f polls=%d mem_alloc=%d connections=%d relay_writes=%s "
            "wdt_feeds=%d"
            % (
                self.clock.seconds(),
                self.node.polls,
                alloc,
                self.node.client.connections,
                writes or "-",
                self.sim.hardware.wdt.feeds,
            )
        )

    def command(self, line):
        words = line.split()
        if not words:
            return
        verb = words[0]
        pzem = self.sim.pzems.get(words[1]) if len(words) > 1 else None
        if verb == "quit":
            self.done.set()
        elif verb == "stats":
            self.stats()
        elif verb == "reboot":
            asyncio.create_task(self.reboot())
        elif verb in ("offline", "online") and pzem is not None:
            pzem.forced_offline = verb == "offline"
        elif verb == "crc" and pzem is not None and len(words) == 3:
            pzem.crc_rate = float(words[2])
        elif verb == "timeout" and pzem is not None and len(words) == 3:
            pzem.timeout_rate = float(words[2])
        elif verb == "relaypin" and len(words) == 3 and words[1] in self.sim.pins:
            self.sim.pins[words[1]].level = int(words[2])
        elif verb == "stuck" and len(words) == 2 and words[1] in self.sim.pins:
            self.sim.pins[words[1]].stuck = True
        elif verb == "garbage" and pzem is not None and len(words) == 3:
            pzem.garbage = b"" if words[2] == "-" else bytes.fromhex(words[2])
        elif verb == "register" and pzem is not None and len(words) == 4:
            if not pzem.force(words[2], None if words[3] == "off" else int(words[3])):
                self.log("control: no register %r" % words[2])
                return
        elif verb == "refusereset" and pzem is not None and len(words) == 3:
            pzem.refuse_reset = words[2] == "1"
        else:
            self.log("control: unknown command %r" % line)
            return
        self.log("control: " + line)

    async def control(self):
        poller = select.poll()
        poller.register(sys.stdin, select.POLLIN)
        while not self.done.is_set():
            if poller.poll(0):
                line = sys.stdin.readline()
                if not line:
                    self.done.set()  # the supervisor went away
                    return
                self.command(line.strip())
            else:
                await asyncio.sleep(0.05)

    async def watch(self):
        wdt = self.sim.hardware.wdt
        duration = self.args["duration"]
        while not self.done.is_set():
            if wdt.expired():
                self.log("watchdog: not fed for %d ms, the board would reset now" % wdt.timeout_ms)
                self.done.set()
                self.expired = True
            if duration is not None and self.clock.seconds() >= duration:
                self.done.set()
            await asyncio.sleep(0.05)

    async def main(self):
        self.expired = False
        self.log(
            "node %s: %d meters, %d relays, interval %d ms, speed x%s, sim time 0 at unix %d ms"
            % (
                self.node_id,
                len(self.cfg.meters),
                len(self.cfg.relays),
                self.cfg.interval_ms,
                self.speed,
                self.clock.start_unix_ms,
            )
        )
        self.node.boot()
        self.node.start()
        tasks = [asyncio.create_task(self.watch())]
        if self.args["ntp"] is not None:
            address = ntp.resolve(self.cfg.ntp, self.log)
            keep = ntp.keep_time(
                self.cfg.ntp, address, self.clock.set_unix_ms, self.net_clock, self.log
            )
            tasks.append(asyncio.create_task(keep))
        if self.args["control"]:
            tasks.append(asyncio.create_task(self.control()))
        tasks += [asyncio.create_task(coro) for coro in self.extra]
        await self.done.wait()
        self.stats()
        await self.node.stop()
        for task in tasks:
            task.cancel()
        self.log("stopped")
        return 75 if self.expired else 0


def main(argv):
    try:
        runner = Runner(parse_args(argv))
    except (scen.ScenarioError, StartError, OSError, KeyError, ValueError) as err:
        print("simulate: cannot start: %s" % (err,))
        return 2
    try:
        return asyncio.run(runner.main())
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
