"""The node's logic on emulated hardware, with its MQTT client replaced by a recorder."""

import asyncio
import json

from semfw import config
from semfw.node import Node
from semsim import scenario as scen
from semsim.clock import SimClock

from tests.firmware.unit.support import run

SCENARIO = {
    "name": "unit",
    "interval": 0.5,
    "seed": 3,
    "wire_timing": False,
    "pzem": {"min_gap_ms": 0, "timeout_ms": 50, "retries": 0},
    "nodes": [
        {
            "node": "n1",
            "name": "Unit node",
            "houses": [
                {
                    "pair": "house1",
                    "name": "House 1",
                    "line": {"id": "line1", "addr": 1},
                    "house": {"id": "house1", "addr": 2},
                    "relay": {"id": "r1", "pin": 26, "power_on": "on"},
                    "load": {"constant": 100, "pf": 1.0},
                },
                {
                    "pair": "house2",
                    "line": {"id": "line2", "addr": 3},
                    "house": {"id": "house2", "addr": 4},
                    "relay": {"id": "r2", "pin": 27, "power_on": "off"},
                    "load": {"constant": 200, "pf": 0.8},
                    "bypass": {"fraction": 0.25},
                },
            ],
        }
    ],
}


class RecordingClient:
    def __init__(self):
        self.connected = True
        self.published = []
        self.subscribed = []
        self.up = asyncio.Event()

    async def wait_connected(self):
        while not self.connected:
            self.up.clear()
            await self.up.wait()

    def wake(self):
        """The connection is back (set `connected` first)."""
        self.up.set()

    async def publish(self, topic, payload, retain=False, qos=1):
        if not self.connected:
            return False
        self.published.append((topic, bytes(payload), retain))
        return True

    async def subscribe(self, topics):
        self.subscribed += topics
        return True

    def topics(self):
        return [topic for topic, _, _ in self.published]

    def last(self, topic):
        for t, payload, retain in reversed(self.published):
            if t == topic:
                return payload, retain
        return None


def _node(**node_changes):
    scenario = json.loads(json.dumps(SCENARIO))
    spec = scenario["nodes"][0]
    for key, value in node_changes.items():
        spec[key] = value
    clock = SimClock(20.0)
    sim = scen.SimNode(scenario, spec, clock, SimClock(1.0))
    text = json.dumps(scen.node_config(scenario, spec, {"host": "127.0.0.1", "port": 1}))
    lines = []
    node = Node(config.load(text), sim.hardware, log=lines.append)
    node.client = RecordingClient()
    return node, sim, lines


def test_boot_applies_the_power_on_policy():
    node, sim, lines = _node()
    node.boot()
    assert sim.pins["r1"].level == 1
    assert sim.pins["r2"].level == 0
    assert "relay r1: power-on state ON" in lines


def test_on_connect_publishes_retained_state_and_subscribes_without_touching_pins():
    node, sim, _ = _node()
    node.boot()
    writes = (sim.pins["r1"].writes, sim.pins["r2"].writes)
    run(node._on_connect())
    client = node.client
    assert client.topics()[:2] == ["sem/n1/status", "sem/n1/announce"]
    assert client.last("sem/n1/status") == (b"online", True)
    announce = json.loads(client.last("sem/n1/announce")[0])
    assert announce["node"] == "n1"
    assert announce["interval"] == 0.5
    assert [m["id"] for m in announce["meters"]] == ["line1", "house1", "line2", "house2"]
    assert announce["pairs"] == {"house1": "House 1"}
    assert client.last("sem/n1/relay/r1/state") == (b"ON", True)
    assert client.last("sem/n1/relay/r2/state") == (b"OFF", True)
    assert sorted(t for t, _ in client.subscribed) == [
        "sem/n1/house1/reset_energy",
        "sem/n1/house2/reset_energy",
        "sem/n1/line1/reset_energy",
        "sem/n1/line2/reset_energy",
        "sem/n1/relay/r1/set",
        "sem/n1/relay/r2/set",
    ]
    assert all(qos == 1 for _, qos in client.subscribed)
    assert (sim.pins["r1"].writes, sim.pins["r2"].writes) == writes


def test_a_relay_change_behind_the_firmware_is_reported_as_read_back():
    node, sim, _ = _node()
    node.boot()
    sim.pins["r2"].level = 1  # someone bridged the pin
    run(node._on_connect())
    assert node.client.last("sem/n1/relay/r2/state") == (b"ON", True)


def _drain_commands(node):
    async def go():
        task = asyncio.create_task(node._command_loop())
        for _ in range(5):
            await asyncio.sleep(0)
        task.cancel()

    run(go())


def test_relay_command_is_applied_and_confirmed():
    node, sim, lines = _node()
    node.boot()
    node._on_message("sem/n1/relay/r2/set", b"ON", False)
    _drain_commands(node)
    assert sim.pins["r2"].level == 1
    assert node.client.last("sem/n1/relay/r2/state") == (b"ON", True)
    assert any("relay r2: commanded ON, reads back ON" in line for line in lines)


def test_a_stuck_relay_is_confirmed_as_it_really_is():
    node, sim, _ = _node()
    node.boot()
    sim.pins["r2"].stuck = True
    node._on_message("sem/n1/relay/r2/set", b"ON", False)
    _drain_commands(node)
    assert node.client.last("sem/n1/relay/r2/state") == (b"OFF", True)


def test_retained_commands_are_ignored():
    node, sim, lines = _node()
    node.boot()
    node._on_message("sem/n1/relay/r2/set", b"ON", True)
    node._on_message("sem/n1/line1/reset_energy", b"", True)
    _drain_commands(node)
    assert sim.pins["r2"].level == 0
    assert node.client.published == []
    assert sum(1 for line in lines if "retained" in line) == 2


def test_bad_relay_payloads_and_topics_are_ignored():
    node, sim, lines = _node()
    node.boot()
    for payload in (b"on", b"", b"TOGGLE", b"1"):
        node._on_message("sem/n1/relay/r2/set", payload, False)
    node._on_message("sem/n1/relay/r9/set", b"ON", False)
    node._on_message("sem/n1/relay/r2/set", b"ON" * 3000, False)
    _drain_commands(node)
    assert sim.pins["r2"].level == 0
    assert node.client.published == []
    assert len(lines) >= 6


def test_reset_energy_command_resets_the_pzem():
    node, sim, lines = _node()
    sim.pzems["line1"].energy_wh = 500.0
    sim.pzems["house1"].energy_wh = 300.0
    node._on_message("sem/n1/line1/reset_energy", b"", False)
    _drain_commands(node)
    assert sim.pzems["line1"].energy_wh < 1
    assert sim.pzems["house1"].energy_wh == 300.0  # only the addressed meter
    assert any("line1: energy counter reset" in line for line in lines)
    # The result goes back, not retained: it is the reply to one command, not a state.
    assert node.client.last("sem/n1/line1/reset_energy/result") == (b'{"ok":true}', False)


def test_a_refused_energy_reset_is_reported_back():
    node, sim, lines = _node()
    sim.pzems["line1"].energy_wh = 500.0
    sim.pzems["line1"].refuse_reset = True  # the PZEM answers 0xC2
    node._on_message("sem/n1/line1/reset_energy", b"", False)
    _drain_commands(node)
    assert sim.pzems["line1"].energy_wh == 500.0
    payload, retain = node.client.last("sem/n1/line1/reset_energy/result")
    assert retain is False
    assert json.loads(payload) == {"ok": False, "error": "exception", "detail": "slave error"}
    assert any("line1: energy reset failed (exception: slave error)" in line for line in lines)


def test_an_unanswered_energy_reset_is_reported_back():
    node, sim, _ = _node()
    sim.pzems["house1"].forced_offline = True

    async def go():
        task = asyncio.create_task(node._command_loop())
        node._on_message("sem/n1/house1/reset_energy", b"", False)
        for _ in range(200):
            await asyncio.sleep(0.01)
            if node.client.published:
                break
        task.cancel()

    run(go())
    payload, retain = node.client.last("sem/n1/house1/reset_energy/result")
    assert (json.loads(payload), retain) == (
        {"ok": False, "error": "timeout", "detail": "no reply"},
        False,
    )


def test_poll_publishes_snapshots_with_the_bypass_visible():
    node, _, _ = _node()
    node.boot()
    for meter in node.meters:
        run(node.poll_meter(meter))
    states = {}
    for topic, payload, retain in node.client.published:
        assert retain is True
        states[topic.split("/")[2]] = json.loads(payload)
    assert set(states) == {"line1", "house1", "line2", "house2"}
    assert all(s["seq"] == 0 for s in states.values())
    assert abs(states["line1"]["p"] - 100) <= 1
    # r2 is off at power-on: house 2 draws nothing, and that is a real zero.
    assert states["line2"]["p"] == 0
    node._on_message("sem/n1/relay/r2/set", b"ON", False)
    _drain_commands(node)
    run(node.poll_meter(node.meters[2]))
    run(node.poll_meter(node.meters[3]))
    line2 = json.loads(node.client.last("sem/n1/line2/state")[0])
    house2 = json.loads(node.client.last("sem/n1/house2/state")[0])
    assert line2["seq"] == 1
    mismatch = (line2["p"] - house2["p"]) / line2["p"]
    assert 0.24 < mismatch < 0.26


def test_a_silent_pzem_gives_the_error_form_not_zeros():
    node, sim, lines = _node()
    sim.pzems["house1"].forced_offline = True
    meter = node.meters[1]
    run(node.poll_meter(meter))
    run(node.poll_meter(meter))
    payload, retain = node.client.last("sem/n1/house1/state")
    obj = json.loads(payload)
    assert obj["error"] == "timeout"
    assert obj["seq"] == 1
    assert "p" not in obj
    assert "v" not in obj
    assert sum(1 for line in lines if "house1: timeout" in line) == 1  # logged once


def test_corrupt_replies_give_the_crc_error_form():
    node, sim, _ = _node()
    sim.pzems["line1"].crc_rate = 1.0
    run(node.poll_meter(node.meters[0]))
    assert json.loads(node.client.last("sem/n1/line1/state")[0])["error"] == "crc"


IMPOSSIBLE = (
    ("energy", 0xFFFFFFFF, "energy 4294967295 Wh above 10000000 Wh"),
    ("voltage", 0xFFFF, "voltage 6553.5 V above 300 V"),
    ("current", 0xFFFFFFFF, "current 4294967.295 A above 100 A"),
    ("power", 0xFFFFFFFF, "power 429496729.5 W above 25000 W"),
    ("pf", 101, "power factor 1.01 above 1"),
    ("frequency", 0, "frequency 0 Hz outside 45-65 Hz"),
)


def test_each_impossible_reading_is_the_error_form_with_its_reason():
    for register, value, detail in IMPOSSIBLE:
        node, sim, lines = _node()
        sim.pzems["line1"].forced[register] = value
        run(node.poll_meter(node.meters[0]))
        payload, retain = node.client.last("sem/n1/line1/state")
        assert retain is True
        assert json.loads(payload) == {
            "seq": 0,
            "ts": json.loads(payload)["ts"],
            "error": "out_of_range",
            "detail": detail,
        }, register
        assert lines == ["meter line1: out_of_range: %s" % detail], lines


def test_an_impossible_reading_is_logged_once_and_the_recovery_too():
    node, sim, lines = _node()
    sim.pzems["line1"].forced["energy"] = 0xFFFFFFFF
    for _ in range(3):
        run(node.poll_meter(node.meters[0]))
    del sim.pzems["line1"].forced["energy"]
    run(node.poll_meter(node.meters[0]))
    errors = [json.loads(p).get("error") for t, p, _ in node.client.published]
    assert errors == ["out_of_range", "out_of_range", "out_of_range", None]
    assert [json.loads(p)["seq"] for t, p, _ in node.client.published] == [0, 1, 2, 3]
    assert len(lines) == 2
    assert lines[1] == "meter line1: answering again"


def test_line_noise_before_every_reply_is_skipped():
    node, sim, _ = _node()
    sim.pzems["line1"].garbage = b"\x00\xff\x01"
    for _ in range(3):
        run(node.poll_meter(node.meters[0]))
    for _, payload, _ in node.client.published:
        assert "error" not in json.loads(payload)
        assert 220 < json.loads(payload)["v"] < 235


def test_nothing_is_published_while_disconnected():
    node, _, _ = _node()
    node.client.connected = False
    run(node.poll_meter(node.meters[0]))
    assert node.client.published == []
    assert node.meters[0].seq == 0


def test_paper_topics():
    node, _, _ = _node(paper_topics=True)
    node.boot()
    run(node.poll_meter(node.meters[0]))
    topics = node.client.topics()
    assert topics[0] == "sem/n1/line1/state"
    assert topics[1:] == ["sem/n1/line1/" + q for q in ("vac", "iac", "pac", "energy", "pf")]
    for topic, payload, retain in node.client.published[1:]:
        assert retain is False
        float(payload)


def test_signed_node_signs_state_and_announce():
    node, _, _ = _node(key="0123456789abcdef0123")
    run(node._on_connect())
    run(node.poll_meter(node.meters[0]))
    announce = json.loads(node.client.last("sem/n1/announce")[0])
    state = json.loads(node.client.last("sem/n1/line1/state")[0])
    assert len(announce["sig"]) == 64
    assert len(state["sig"]) == 64
    assert node.client.last("sem/n1/status")[0] == b"online"


class RefusingClient(RecordingClient):
    """A broker that refuses the first `refusals` subscriptions (a cluster electing)."""

    def __init__(self, refusals):
        RecordingClient.__init__(self)
        self.refusals = refusals
        self.connections = 1

    async def subscribe(self, topics):
        if self.refusals:
            self.refusals -= 1
            return False
        return await RecordingClient.subscribe(self, topics)


def _retrying_quickly(step):
    """Run `step` with refused subscriptions tried again after 5 ms instead of seconds."""
    from semfw import node as node_module

    saved = node_module.RESUBSCRIBE_MS
    node_module.RESUBSCRIBE_MS = 5
    try:
        run(step())
    finally:
        node_module.RESUBSCRIBE_MS = saved


def test_refused_command_subscriptions_are_tried_again():
    node, _, lines = _node()
    node.client = RefusingClient(2)

    async def go():
        await node._on_connect()
        assert node.client.subscribed == []
        for _ in range(100):
            if node.client.subscribed:
                break
            await asyncio.sleep(0.01)

    _retrying_quickly(go)
    assert ("sem/n1/relay/r1/set", 1) in node.client.subscribed
    assert "mqtt: subscribed to the commands" in lines


def test_a_new_connection_ends_the_retries_of_the_old_one():
    node, _, lines = _node()
    node.client = RefusingClient(1)

    async def go():
        await node._on_connect()
        node.client.connections += 1  # reconnected meanwhile: that connection subscribes
        for _ in range(20):
            await asyncio.sleep(0.01)

    _retrying_quickly(go)
    assert node.client.subscribed == []
    assert "mqtt: subscribed to the commands" not in lines
