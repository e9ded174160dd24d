"""The node's poll loop apart from publishing: the outbox, dropped readings, bounded commands and
UARTs read concurrently."""

import asyncio
import json

from semfw import config
from semfw.node import PUBLISH_WINDOW, QUEUED_READINGS, Node
from semfw.queues import RingQueue
from semsim import scenario as scen
from semsim.clock import SimClock

from tests.firmware.unit.support import run
from tests.firmware.unit.test_fw_node import SCENARIO, RecordingClient, _node


class FrozenClient(RecordingClient):
    """A broker that takes PUBLISHes and never acknowledges them, until `thaw()`."""

    def __init__(self):
        RecordingClient.__init__(self)
        self.sent = []
        self.thawed = asyncio.Event()

    def thaw(self):
        self.thawed.set()

    async def publish(self, topic, payload, retain=False, qos=1):
        self.sent.append((topic, bytes(payload)))  # the order on the wire
        await self.thawed.wait()
        return await RecordingClient.publish(self, topic, payload, retain, qos)


def _queued(queue):
    """What a RingQueue holds, oldest first, without taking it out."""
    return [queue._items[(queue._read + k) % queue.capacity] for k in range(len(queue))]


def _states(client, meter):
    topic = "sem/n1/%s/state" % meter
    return [json.loads(p) for t, p, _ in client.published if t == topic]


def test_a_poll_cycle_queues_every_reading_without_waiting_for_the_broker():
    node, _, _ = _node()
    node.client = FrozenClient()

    async def go():
        await asyncio.wait_for(node.poll_cycle(), 5)

    run(go())
    assert len(node.outbox) == 4
    assert node.client.sent == []  # nothing was even handed to the client
    assert [entry[0].spec.id for entry in _queued(node.outbox)] == [
        "line1",
        "house1",
        "line2",
        "house2",
    ]


def test_the_publishers_send_queued_readings_in_order_with_a_window_in_flight():
    node, _, _ = _node()
    client = node.client = FrozenClient()

    async def go():
        for _ in range(2):
            await node.poll_cycle()
        tasks = [asyncio.create_task(node._publisher()) for _ in range(PUBLISH_WINDOW)]
        for _ in range(5):
            await asyncio.sleep(0)
        in_flight = len(client.sent)
        client.thaw()
        for _ in range(20):
            await asyncio.sleep(0)
        for task in tasks:
            task.cancel()
        return in_flight

    in_flight = run(go())
    assert in_flight == PUBLISH_WINDOW
    assert len(node.outbox) == 0
    for meter in ("line1", "house1", "line2", "house2"):
        topic = "sem/n1/%s/state" % meter
        assert [json.loads(p)["seq"] for t, p in client.sent if t == topic] == [0, 1]
        assert sorted(s["seq"] for s in _states(client, meter)) == [0, 1]
        assert all("dropped" not in s for s in _states(client, meter))


def _small_outbox(**changes):
    """A node whose outbox holds two poll cycles of its four meters (as one with 16 meters)."""
    node, sim, lines = _node(**changes)
    node.outbox = RingQueue(8)
    return node, sim, lines


def test_the_outbox_holds_32_readings_and_at_least_two_poll_cycles():
    node, _, _ = _node()
    assert node.outbox.capacity == QUEUED_READINGS == 32
    spec = json.loads(json.dumps(SCENARIO))
    houses = spec["nodes"][0]["houses"]
    for index in range(2, 8):  # 16 meters, the configuration's maximum
        house = json.loads(json.dumps(houses[0]))
        house["pair"] = "house%d" % (index + 1)
        house["line"] = dict(house["line"], id="line%d" % (index + 1), addr=2 * index + 1)
        house["house"] = dict(house["house"], id="house%d" % (index + 1), addr=2 * index + 2)
        house.pop("relay", None)
        houses.append(house)
    clock = SimClock(1.0)
    sim = scen.SimNode(spec, spec["nodes"][0], clock, SimClock(1.0))
    text = json.dumps(scen.node_config(spec, spec["nodes"][0], {"host": "127.0.0.1", "port": 1}))
    big = Node(config.load(text), sim.hardware, log=lambda line: None)
    assert len(big.meters) == 16
    assert big.outbox.capacity == 32


def test_a_full_outbox_drops_the_oldest_reading_counts_it_and_says_so_once():
    node, _, lines = _small_outbox()
    capacity = node.outbox.capacity

    async def go():
        for _ in range(3):  # one cycle more than fits
            await node.poll_cycle()

    run(go())
    assert len(node.outbox) == capacity
    assert [m.dropped for m in node.meters] == [1, 1, 1, 1]
    dropped_lines = [line for line in lines if "readings dropped" in line]
    assert len(dropped_lines) == 1
    assert "publish queue full" in dropped_lines[0]
    # What is left are the two newest cycles, oldest first.
    queued = [json.loads(entry[1]) for entry in _queued(node.outbox)]
    assert sorted(q["seq"] for q in queued) == [1] * 4 + [2] * 4
    assert all("dropped" not in q for q in queued)  # the count goes out with the send
    run(node.poll_cycle())
    while len(node.outbox):
        run(node._deliver(node.outbox.get_nowait()))
    for meter in ("line1", "house1", "line2", "house2"):
        sent = _states(node.client, meter)
        assert [s["seq"] for s in sent] == [2, 3]
        assert [s["dropped"] for s in sent] == [2, 2]  # cycles 0 and 1 never went out


def test_catching_up_is_logged_with_the_count():
    node, _, lines = _small_outbox()

    async def go():
        for _ in range(3):
            await node.poll_cycle()
        while len(node.outbox):
            await node._deliver(node.outbox.get_nowait())

    run(go())
    assert any("caught up; 4 readings were dropped" in line for line in lines)
    assert node._episode_drops == 0


def test_a_reading_the_broker_did_not_acknowledge_goes_again_byte_for_byte_in_order():
    # The broker may have stored a QoS 1 publish whose PUBACK never came: the same bytes go
    # again after the reconnect (receivers drop the copy), in the order they were taken.
    node, _, lines = _small_outbox(key="0123456789abcdef0123")
    client = node.client = FrozenClient()

    async def go(drop):
        await node.poll_cycle()
        await node.poll_cycle()
        tasks = [asyncio.create_task(node._publisher()) for _ in range(PUBLISH_WINDOW)]
        for _ in range(5):
            await asyncio.sleep(0)
        first = list(client.sent)
        if drop:
            await node.poll_cycle()  # the outbox is full behind the four in flight
        client.connected = False  # the connection broke with these in flight
        client.thaw()
        for _ in range(20):
            await asyncio.sleep(0)
        assert client.published == [] and len(node.outbox) == 8  # nothing lost, no spin
        client.connected = True
        client.wake()
        for _ in range(40):
            await asyncio.sleep(0)
        for task in tasks:
            task.cancel()
        return first

    first = run(go(False))
    meters = ("line1", "house1", "line2", "house2")
    assert [t for t, _ in first] == ["sem/n1/%s/state" % m for m in meters]
    sent = [(t, p) for t, p, _ in client.published]
    assert sent[:4] == first  # the very same signed bytes, in their order
    assert [json.loads(p)["seq"] for _, p in sent] == [0] * 4 + [1] * 4
    assert node.resent == 4 and [m.dropped for m in node.meters] == [0, 0, 0, 0]
    assert any("not acknowledged by the broker: sent again" in line for line in lines)
    assert any("caught up; 0 readings were dropped, 4 sent again" in line for line in lines)

    node, _, lines = _small_outbox()
    client = node.client = FrozenClient()
    run(go(True))
    # Put back into a full outbox, cycle 0 is the oldest of all: dropped and counted.
    assert [m.dropped for m in node.meters] == [1, 1, 1, 1] and node.resent == 0
    for meter in ("line1", "house1", "line2", "house2"):
        assert [s["seq"] for s in _states(client, meter)] == [1, 2]
    assert any("caught up; 4 readings were dropped, 0 sent again" in line for line in lines)


def test_a_reading_put_back_goes_out_as_the_same_signed_bytes():
    node, _, _ = _node(key="0123456789abcdef0123")
    client = node.client = FrozenClient()

    async def go():
        await node.poll_cycle()
        task = asyncio.create_task(node._publisher())
        for _ in range(5):
            await asyncio.sleep(0)
        client.connected = False
        client.thaw()
        for _ in range(5):
            await asyncio.sleep(0)
        node.meters[0].dropped = 3  # drops counted meanwhile must not change the bytes
        client.connected = True
        client.wake()
        for _ in range(20):
            await asyncio.sleep(0)
        task.cancel()

    run(go())
    first_try = client.sent[0]
    assert first_try[0] == "sem/n1/line1/state"
    assert client.last("sem/n1/line1/state")[0] == first_try[1]
    assert b'"sig":"' in first_try[1] and b'"dropped"' not in first_try[1]
    assert node.resent == 1


def test_dropped_readings_are_signed_with_the_rest():
    node, _, _ = _small_outbox(key="0123456789abcdef0123")
    run(node.poll_cycle())
    run(node.poll_cycle())
    run(node.poll_cycle())
    run(node.poll_cycle())
    while len(node.outbox):
        run(node._deliver(node.outbox.get_nowait()))
    payload = node.client.last("sem/n1/line1/state")[0]
    assert b'"dropped":2,"sig":"' in payload
    assert json.loads(payload)["seq"] == 3


def test_relay_commands_are_bounded_one_pending_per_relay_and_the_last_wins():
    node, sim, lines = _node()
    node.boot()
    for index in range(50):
        node._on_message("sem/n1/relay/r2/set", b"ON" if index % 2 else b"OFF", False)
    node._on_message("sem/n1/relay/r1/set", b"OFF", False)
    for _ in range(10):
        node._on_message("sem/n1/line1/reset_energy", b"", False)
    assert len(node._commands) == 3
    assert sum(1 for line in lines if "replaces the one still pending" in line) == 58

    async def go():
        task = asyncio.create_task(node._command_loop())
        for _ in range(10):
            await asyncio.sleep(0)
        task.cancel()

    run(go())
    assert sim.pins["r2"].level == 1  # the 50th command, ON
    assert sim.pins["r1"].level == 0
    assert node.client.last("sem/n1/relay/r2/state") == (b"ON", True)
    assert sum(1 for line in lines if "energy counter reset" in line) == 1


def _two_uart_node():
    scenario = json.loads(json.dumps(SCENARIO))
    scenario["wire_timing"] = True
    scenario["pzem"] = {"min_gap_ms": 0, "timeout_ms": 300, "retries": 0}
    spec = scenario["nodes"][0]
    spec["uarts"] = [{"id": 1, "tx": 33, "rx": 32}, {"id": 2, "tx": 17, "rx": 16}]
    spec["houses"][0]["line"]["uart"] = 1
    spec["houses"][0]["house"]["uart"] = 1
    spec["houses"][1]["line"]["uart"] = 2
    spec["houses"][1]["house"]["uart"] = 2
    clock = SimClock(1.0)
    sim = scen.SimNode(scenario, spec, clock, SimClock(1.0))
    text = json.dumps(scen.node_config(scenario, spec, {"host": "127.0.0.1", "port": 1}))
    node = Node(config.load(text), sim.hardware, log=lambda line: None)
    node.client = RecordingClient()
    return node, sim


def test_two_uarts_are_read_concurrently():
    node, sim = _two_uart_node()
    assert [[m.spec.id for m in meters] for meters in node.bus_meters] == [
        ["line1", "house1"],
        ["line2", "house2"],
    ]
    order = []
    for uart_id, uart in sim.uarts.items():
        original = uart.write

        def write(data, uart_id=uart_id, original=original):
            order.append(uart_id)
            return original(data)

        uart.write = write
    run(node.poll_cycle())
    # One after the other would give [1, 1, 2, 2]: the second UART starts before the first ends.
    assert order[:2] == [1, 2]
    assert sorted(order) == [1, 1, 2, 2]
    assert len(node.outbox) == 4
    states = [json.loads(entry[1]) for entry in _queued(node.outbox)]
    assert all("v" in state for state in states)


class SlowClient(RecordingClient):
    """Each publish takes a few scheduler rounds; records how many overlap."""

    def __init__(self):
        RecordingClient.__init__(self)
        self.in_flight = 0
        self.most = 0

    async def publish(self, topic, payload, retain=False, qos=1):
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        for _ in range(3):
            await asyncio.sleep(0)
        self.in_flight -= 1
        return await RecordingClient.publish(self, topic, payload, retain, qos)


def test_the_paper_topics_of_a_reading_are_in_flight_together_after_its_state():
    node, _, _ = _node(paper_topics=True)
    node.client = SlowClient()
    entry = run(node.read_meter(node.meters[0]))
    run(node._deliver(node._ticketed(entry)))
    topics = node.client.topics()
    assert topics[0] == "sem/n1/line1/state"
    assert sorted(topics[1:]) == sorted(
        "sem/n1/line1/" + q for q in ("vac", "iac", "pac", "energy", "pf")
    )
    assert node.client.most == 5
