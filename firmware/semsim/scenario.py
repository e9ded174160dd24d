"""Scenario files: houses, their loads over time, bypass theft and meter faults.

A scenario is JSON:

    {"name": "...", "interval": 1, "speed": 1, "seed": 1, "voltage": 226.6,
     "nodes": [{"node": "n1", "name": "...", "houses": [HOUSE, ...], "faults": [FAULT, ...]}]}

    HOUSE = {"pair": "house1", "name": "House 1",
             "line": {"id": "line1", "addr": 1}, "house": {"id": "house1", "addr": 2, "gain": 0.99},
             "relay": {"id": "r1", "pin": 26, "power_on": "on"},
             "load": LOAD or [LOAD, ...],
             "bypass": {"fraction": 0.18, "from_s": 0, "until_s": null}}
    LOAD = {"constant": 60, "pf": 0.9}
         | {"lamps": {"watts": 20, "pf": 0.75, "counts": [1, 2, 3, 4, 5], "step_s": 25}}
         | {"steps": [[0, 100], [30, 250]], "loop_s": 60, "pf": 0.95}
    FAULT = {"meter": "house2", "offline": [[60, 70]], "crc_rate": 0.01, "timeout_rate": 0.0}

The bypass fraction is the share of the house's consumption drawn before its meter: the line meter
sees all of it, the house meter the rest. A relay that is off cuts the house's whole load.
"""

import json
import random as _random

from semsim.hw import SimHardware, SimPin, SimWdt
from semsim.pzem import EmulatedPzem
from semsim.uart import EmulatedUart

DEFAULT_UART = {"id": 2, "tx": 17, "rx": 16}


class ScenarioError(Exception):
    pass


def _profile(spec):
    """A function t -> (watts, pf) for one LOAD."""
    if not isinstance(spec, dict):
        raise ScenarioError("a load must be an object, not %r" % (spec,))
    if "constant" in spec:
        watts = float(spec["constant"])
        pf = float(spec.get("pf", 1.0))
        return lambda t: (watts, pf)
    if "lamps" in spec:
        lamps = spec["lamps"]
        each = float(lamps.get("watts", 20))
        pf = float(lamps.get("pf", 1.0))
        counts = lamps.get("counts", [1, 2, 3, 4, 5])
        step = float(lamps.get("step_s", 25))
        if not counts or step <= 0:
            raise ScenarioError("lamps need counts and a positive step_s")
        return lambda t: (each * counts[int(t / step) % len(counts)], pf)
    if "steps" in spec:
        steps = sorted((float(a), float(w)) for a, w in spec["steps"])
        loop = spec.get("loop_s")
        pf = float(spec.get("pf", 1.0))

        def stepped(t):
            if loop:
                t = t % float(loop)
            watts = 0.0
            for start, level in steps:
                if t >= start:
                    watts = level
            return (watts, pf)

        return stepped
    raise ScenarioError("unknown load %r" % (spec,))


def _sum(profiles):
    def total(t):
        watts = 0.0
        reactive_weight = 0.0
        for profile in profiles:
            w, pf = profile(t)
            watts += w
            reactive_weight += w * pf
        return (watts, reactive_weight / watts if watts > 0 else 1.0)

    return total


def _window(spec, t):
    start = spec.get("from_s", 0)
    until = spec.get("until_s")
    return t >= start and (until is None or t < until)


class House:
    """One house: its consumption, the bypass, and the relay that can cut it."""

    def __init__(self, spec, pin=None, active_high=True):
        loads = spec.get("load", [])
        if isinstance(loads, dict):
            loads = [loads]
        self.consumption = _sum([_profile(load) for load in loads])
        self.bypass = spec.get("bypass") or {}
        self.pin = pin
        self.active_high = active_high

    def powered(self):
        return self.pin is None or bool(self.pin.level) == self.active_high

    def bypass_fraction(self, t):
        if self.bypass and _window(self.bypass, t):
            return float(self.bypass.get("fraction", 0.0))
        return 0.0

    def line_load(self, t):
        watts, pf = self.consumption(t)
        return (watts if self.powered() else 0.0, pf)

    def house_load(self, t):
        watts, pf = self.line_load(t)
        return (watts * (1 - self.bypass_fraction(t)), pf)


def load_file(path):
    with open(path) as f:
        text = f.read()
    try:
        scenario = json.loads(text)
    except ValueError as err:
        raise ScenarioError("%s is not valid JSON (%s)" % (path, err)) from None
    if not isinstance(scenario, dict) or not isinstance(scenario.get("nodes"), list):
        raise ScenarioError("%s: a scenario is an object with a list of nodes" % path)
    return scenario


def find_node(scenario, node_id):
    for node in scenario["nodes"]:
        if node.get("node") == node_id:
            return node
    raise ScenarioError("the scenario has no node %r" % (node_id,))


def node_config(scenario, node, broker):
    """The firmware configuration (a dict to be written as config.json) of one scenario node.

    broker: {"host", "port", "user", "password"} and optionally "prefix".
    """
    uarts = node.get("uarts", [DEFAULT_UART])
    meters, relays, pairs = [], [], {}
    for house in node.get("houses", []):
        pair = house["pair"]
        for role in ("line", "house"):
            meter = house.get(role)
            if meter:
                meters.append(
                    {
                        "id": meter["id"],
                        "role": role,
                        "pair": pair,
                        "addr": meter["addr"],
                        "uart": meter.get("uart", uarts[0]["id"]),
                    }
                )
        relay = house.get("relay")
        if relay:
            relays.append(
                {
                    "id": relay["id"],
                    "pair": pair,
                    "pin": relay["pin"],
                    "active_high": relay.get("active_high", True),
                    "power_on": relay.get("power_on", "off"),
                }
            )
        if house.get("name"):
            pairs[pair] = house["name"]
    cfg = {
        "node": node["node"],
        "name": node.get("name", node["node"]),
        "network": {"type": "host"},
        "broker": {
            "host": broker["host"],
            "port": broker["port"],
            "keepalive": node.get("keepalive", scenario.get("keepalive", 30)),
        },
        "prefix": broker.get("prefix") or scenario.get("prefix", "sem"),
        "interval": node.get("interval", scenario.get("interval", 1)),
        "uarts": uarts,
        "meters": meters,
        "relays": relays,
        "pairs": pairs,
        "paper_topics": node.get("paper_topics", scenario.get("paper_topics", False)),
        "watchdog": True,
        # The emulated PZEM refreshes instantly, so the 1 s pacing of the real one is not needed.
        "pzem": scenario.get("pzem", {"min_gap_ms": 0, "timeout_ms": 200, "retries": 1}),
    }
    if broker.get("user"):
        cfg["broker"]["user"] = broker["user"]
        cfg["broker"]["password"] = broker.get("password") or ""
    if node.get("key"):
        cfg["key"] = node["key"]
    return cfg


def _mac(node_id):
    # A stable, locally administered MAC derived from the node id.
    digest = 0
    for char in node_id:
        digest = (digest * 31 + ord(char)) & 0xFFFFFFFF
    return bytes(
        (
            0x02,
            0x53,
            (digest >> 24) & 0xFF,
            (digest >> 16) & 0xFF,
            (digest >> 8) & 0xFF,
            digest & 0xFF,
        )
    )


class SimNode:
    """The emulated hardware of one scenario node: houses, PZEMs on UARTs, relay pins."""

    def __init__(self, scenario, node, clock, net_clock, store=None, wire_timing=None):
        seed = scenario.get("seed", 1)
        rng = _random.Random(seed) if hasattr(_random, "Random") else None
        if rng is None:
            _random.seed(seed)
            self.random = _random.random
        else:
            self.random = rng.random
        if wire_timing is None:
            wire_timing = scenario.get("wire_timing", True)
        uart_specs = node.get("uarts", [DEFAULT_UART])
        self.uarts = {}
        for spec in uart_specs:
            self.uarts[spec["id"]] = EmulatedUart(clock, wire_timing=wire_timing)
        self.pins = {}
        self.houses = {}
        self.pzems = {}
        voltage = float(scenario.get("voltage", 226.6))
        frequency = float(scenario.get("frequency", 50.0))
        noise = float(scenario.get("noise", 0.005))
        for spec in node.get("houses", []):
            pin = None
            relay = spec.get("relay")
            if relay:
                pin = SimPin(relay["pin"])
                self.pins[relay["id"]] = pin
            house = House(spec, pin, relay.get("active_high", True) if relay else True)
            self.houses[spec["pair"]] = house
            for role, load in (("line", house.line_load), ("house", house.house_load)):
                meter = spec.get(role)
                if not meter:
                    continue
                device = EmulatedPzem(
                    meter["addr"],
                    load,
                    self.random,
                    voltage,
                    frequency,
                    float(meter.get("gain", 1.0)),
                    noise,
                )
                # A meter installed long ago: its counter does not start at 0.
                device.energy_wh = float(meter.get("energy_wh", 0.0))
                self.pzems[meter["id"]] = device
                self.uarts[meter.get("uart", uart_specs[0]["id"])].devices.append(device)
        for fault in node.get("faults", []):
            device = self.pzems.get(fault.get("meter"))
            if device is None:
                raise ScenarioError("fault for unknown meter %r" % (fault.get("meter"),))
            device.offline = [(w[0], w[1]) for w in fault.get("offline", [])]
            device.crc_rate = float(fault.get("crc_rate", 0.0))
            device.timeout_rate = float(fault.get("timeout_rate", 0.0))
        self.hardware = SimHardware(
            clock,
            net_clock,
            self.uarts,
            self.pins,
            self.random,
            _mac(node["node"]),
            store,
            SimWdt(net_clock),
        )
