"""Scenario files: houses, their loads over time, bypass theft and meter faults.

A scenario is JSON:

    {"name": "...", "interval": 1, "speed": 1, "seed": 1, "voltage": 226.6,
     "nodes": [{"node": "n1", "name": "...", "houses": [HOUSE, ...], "faults": [FAULT, ...]}]}

    HOUSE = {"pair": "house1", "name": "House 1",
             "line": {"id": "line1", "addr": 1}, "house": {"id": "house1", "addr": 2, "gain": 0.99},
             "relay": {"id": "r1", "pin": 26, "power_on": "on"},
             "load": LOAD or [LOAD, ...],
             "bypass": BYPASS,
             "cable": CABLE}
    LOAD = {"constant": 60, "pf": 0.9}
         | {"lamps": {"watts": 20, "pf": 0.75, "counts": [1, 2, 3, 4, 5], "step_s": 25}}
         | {"steps": [[0, 100], [30, 250]], "loop_s": 60, "pf": 0.95}
    BYPASS = {"fraction": 0.18, "from_s": 0, "until_s": null}
           | {"fraction": 0.1, "windows": [[300, 900], [1500, 2100]], "on_s": 40, "off_s": 80}
    CABLE = {"length_m": 40, "mm2": 16, "conductor": "aluminium", "temperature_c": 45}
          | {"ohm": 0.15}
    FAULT = {"meter": "house2", "offline": [[60, 70]], "crc_rate": 0.01, "timeout_rate": 0.0}

The bypass fraction is the share of the house's consumption drawn before its meter: the line meter
sees all of it, the house meter the rest. It is on from `from_s` until `until_s`, or inside each
of its `windows`; with `on_s` and `off_s` it is switched on and off within each window (on first).
A relay that is off cuts the house's whole load.

The cable is the service cable between the line meter and the house meter (loop resistance from
its route length, cross-section, metal and temperature, 2 conductors; or given in ohm). A LOAD's
watts are what it draws at the grid voltage; its current I flows through the cable, the house
end sees the voltage less I*R (and the load draws correspondingly less power), and the line meter
sees the house's power plus the cable's I^2*R.
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


def _bypass_windows(spec):
    """[(from_s, until_s or None)] of a BYPASS, and its (on_s, off_s) switching or None."""
    if "windows" in spec:
        windows = []
        for window in spec["windows"]:
            if len(window) != 2:
                raise ScenarioError("a bypass window is [from_s, until_s], not %r" % (window,))
            until = window[1]
            windows.append((float(window[0]), None if until is None else float(until)))
    else:
        until = spec.get("until_s")
        windows = [(float(spec.get("from_s", 0)), None if until is None else float(until))]
    switching = None
    if "on_s" in spec or "off_s" in spec:
        switching = (float(spec.get("on_s", 0)), float(spec.get("off_s", 0)))
        if switching[0] <= 0 or switching[1] <= 0:
            raise ScenarioError("a switched bypass needs a positive on_s and off_s")
    return windows, switching


# Resistivity at 20 degC (ohm m) and its temperature coefficient (1/K): the values of the
# integration's cable model (semcore/cable_loss.py).
CONDUCTORS = {"copper": (1.7241e-8, 0.00393), "aluminium": (2.82e-8, 0.00403)}


def cable_ohm(spec):
    """The loop resistance (ohm) of a CABLE; 0 without a cable."""
    if not spec:
        return 0.0
    if "ohm" in spec:
        ohm = float(spec["ohm"])
    else:
        metal = spec.get("conductor", "copper")
        if metal not in CONDUCTORS:
            raise ScenarioError("cable conductor %r is not copper or aluminium" % (metal,))
        if "length_m" not in spec or "mm2" not in spec:
            raise ScenarioError("a cable needs length_m and mm2 (or ohm)")
        rho, alpha = CONDUCTORS[metal]
        rho *= 1 + alpha * (float(spec.get("temperature_c", 20)) - 20)
        loop_m = float(spec.get("conductors", 2)) * float(spec["length_m"])
        ohm = rho * loop_m / (float(spec["mm2"]) * 1e-6)
    if not ohm >= 0:
        raise ScenarioError("cable resistance %r is not >= 0" % (ohm,))
    return ohm


class House:
    """One house: its consumption, the bypass, the service cable, the relay that can cut it."""

    def __init__(self, spec, pin=None, active_high=True, voltage=226.6):
        loads = spec.get("load", [])
        if isinstance(loads, dict):
            loads = [loads]
        self.consumption = _sum([_profile(load) for load in loads])
        self.bypass = spec.get("bypass") or {}
        self.windows, self.switching = _bypass_windows(self.bypass)
        self.cable_ohm = cable_ohm(spec.get("cable"))
        self.voltage = voltage
        self.pin = pin
        self.active_high = active_high

    def powered(self):
        return self.pin is None or bool(self.pin.level) == self.active_high

    def bypass_on(self, t):
        for start, until in self.windows:
            if t >= start and (until is None or t < until):
                if self.switching is None:
                    return True
                on, off = self.switching
                return (t - start) % (on + off) < on
        return False

    def bypass_fraction(self, t):
        if self.bypass and self.bypass_on(t):
            return float(self.bypass.get("fraction", 0.0))
        return 0.0

    def _current(self, t):
        """(watts, pf, amps): the consumption and the current it draws through the cable."""
        watts, pf = self.consumption(t)
        if not self.powered():
            return 0.0, pf, 0.0
        amps = watts / (self.voltage * pf) if watts > 0 and pf > 0 else 0.0
        return watts, pf, amps

    def line_load(self, t):
        watts, pf, amps = self._current(t)
        if not self.cable_ohm or not amps:
            return (watts, pf)
        loss = amps * amps * self.cable_ohm
        line = watts - loss * pf + loss  # the house end gets V - I*R; the cable burns I^2*R
        return (line, line / (self.voltage * amps))

    def house_load(self, t):
        watts, pf, amps = self._current(t)
        share = 1 - self.bypass_fraction(t)
        if not self.cable_ohm or not amps:
            return (watts * share, pf)
        volts = self.voltage - amps * self.cable_ohm
        return (watts * volts / self.voltage * share, pf, volts)


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

    broker: {"host", "port", "user", "password"} and optionally "prefix", and "tls", "ca",
    "server_name" as in config.json.
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
    for key in ("tls", "ca", "server_name", "fallback"):
        if broker.get(key) is not None:
            cfg["broker"][key] = broker[key]
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

    def __init__(self, scenario, node, clock, net_clock, store=None, wire_timing=None, boots=None):
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
            house = House(spec, pin, relay.get("active_high", True) if relay else True, voltage)
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
            boots,
        )
