"""Property-based fuzzing of the firmware's input paths (under CPython): the PZEM's Modbus replies
up to the published payload, and the commands from the raw MQTT bytes to the command handler.

SEM_FUZZ_EXAMPLES sets the examples per test (4000 by default, as for the codec).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from semfw import modbus, mqtt, protocol
from semfw.pzem import Bus, Pzem, Reading, parse_measurements

from custom_components.smart_energy_meter.semcore import protocol as codec
from tests.firmware.unit.support import ManualClock
from tests.firmware.unit.test_fw_node import _node

EXAMPLES = int(os.environ.get("SEM_FUZZ_EXAMPLES", "4000"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

ADDRESS = 2  # the house meter of the unit scenario's first house


def _reply(address: int, function: int, data: bytes) -> bytes:
    return modbus.with_crc(bytes((address, function, len(data))) + data)


def _flip(frame: bytes, index: int, value: int) -> bytes:
    if not frame:
        return frame
    index %= len(frame)
    return frame[:index] + bytes((value,)) + frame[index + 1 :]


def _registers(
    voltage: int, current: int, power: int, energy: int, freq: int, pf: int, alarm: int
) -> bytes:
    def u16(v: int) -> bytes:
        return bytes(((v >> 8) & 0xFF, v & 0xFF))

    def u32(v: int) -> bytes:
        return u16(v & 0xFFFF) + u16((v >> 16) & 0xFFFF)

    return u16(voltage) + u32(current) + u32(power) + u32(energy) + u16(freq) + u16(pf) + u16(alarm)


u16s = st.integers(0, 0xFFFF)
u32s = st.integers(0, 0xFFFFFFFF)


# Register contents: mostly plausible, often at or past the edges of the ranges.
def _mostly(inside: st.SearchStrategy[int], anything: st.SearchStrategy[int]) -> Any:
    return st.one_of(inside, inside, inside, anything)


plausible = st.builds(
    _registers,
    _mostly(st.integers(0, 3000), u16s),
    _mostly(st.integers(0, 100000), u32s),
    _mostly(st.integers(0, 250000), u32s),
    u32s,
    _mostly(st.integers(450, 650), u16s),
    _mostly(st.integers(0, 100), u16s),
    st.sampled_from([0, 0xFFFF, 1]),
)
valid_reads = st.builds(lambda data: _reply(ADDRESS, modbus.READ_INPUT, data), plausible)
replies = st.one_of(
    valid_reads,
    valid_reads,
    st.binary(max_size=40),
    st.builds(lambda d: _reply(ADDRESS, modbus.READ_INPUT, d), st.binary(max_size=40)),
    st.builds(
        lambda a, f, d: modbus.with_crc(bytes((a, f)) + d),
        st.integers(0, 255),
        st.integers(0, 255),
        st.binary(max_size=30),
    ),
    st.builds(lambda code: modbus.with_crc(bytes((ADDRESS, 0x84, code))), st.integers(0, 255)),
    st.builds(_flip, valid_reads, st.integers(0, 40), st.integers(0, 255)),
    st.builds(lambda frame, n: frame[:n], valid_reads, st.integers(0, 25)),
    st.builds(lambda frame, extra: frame + extra, valid_reads, st.binary(min_size=1, max_size=8)),
)


def _chunks(frame: bytes, sizes: list[int]) -> list[bytes]:
    """A reply as the UART delivers it: in pieces."""
    chunks, index = [], 0
    for size in sizes:
        if index >= len(frame):
            break
        chunks.append(frame[index : index + size])
        index += size
    if index < len(frame):
        chunks.append(frame[index:])
    return chunks


chunked_replies = st.builds(_chunks, replies, st.lists(st.integers(1, 9), max_size=6))


class ScriptedUart:
    """Answers each request with the next scripted reply, piece by piece; then stays silent."""

    def __init__(self, replies: list[list[bytes]]) -> None:
        self.replies = list(replies)
        self.pending: list[bytes] = []
        self.written: list[bytes] = []

    def write(self, frame: bytes) -> None:
        self.written.append(bytes(frame))
        self.pending = self.replies.pop(0) if self.replies else []

    def read(self) -> bytes | None:
        return self.pending.pop(0) if self.pending else None


# --- the PZEM side ------------------------------------------------------------------------------


@FUZZ
@given(reply=st.one_of(replies, st.binary(max_size=64)), function=st.sampled_from([3, 4, 6, 0x42]))
def test_check_reply_accepts_only_well_formed_answers(reply: bytes, function: int) -> None:
    try:
        data = modbus.check_reply(reply, ADDRESS, function)
    except modbus.ModbusError as err:
        refused = err.kind
    else:
        refused = None
    if refused is not None:
        assert refused in protocol.ERRORS
        return
    assert modbus.crc_ok(reply)
    assert reply[0] == ADDRESS
    assert reply[1] == function
    if function in (modbus.READ_INPUT, modbus.READ_HOLDING):
        assert len(data) == reply[2] == len(reply) - 5


@FUZZ
@given(first=st.binary(max_size=8), function=st.integers(0, 255), address=st.integers(0, 255))
def test_expected_length_is_bounded(first: bytes, function: int, address: int) -> None:
    length = modbus.expected_length(address, function, first)
    assert length is None or 4 <= length <= 260


@FUZZ
@given(data=st.one_of(plausible, st.binary(max_size=30)))
def test_measurements_parse_or_refuse(data: bytes) -> None:
    try:
        reading = parse_measurements(data)
    except modbus.ModbusError as err:
        refused = err.kind
    else:
        refused = None
    if refused is not None:
        assert len(data) != 20
        assert refused == "crc"
        return
    problem = reading.problem()
    assert problem is None or isinstance(problem, str)
    assert repr(reading)


@FUZZ
@given(script=st.lists(chunked_replies, min_size=0, max_size=3), retries=st.integers(0, 2))
def test_bus_returns_data_or_a_modbus_error(script: list[list[bytes]], retries: int) -> None:
    uart = ScriptedUart(script)
    pzem = Pzem(Bus(uart, ManualClock(), timeout_ms=60, retries=retries), ADDRESS, 0)
    try:
        result: Reading | str = asyncio.run(pzem.read())
    except modbus.ModbusError as err:
        result = err.kind
    assert isinstance(result, Reading) or result in protocol.ERRORS
    event(result if isinstance(result, str) else "reading")
    # One request per attempt, an exception reply is an answer and is not retried.
    assert 1 <= len(uart.written) <= retries + 1


@FUZZ
@given(script=st.lists(chunked_replies, min_size=1, max_size=2))
def test_node_publishes_only_what_the_integration_accepts(script: list[list[bytes]]) -> None:
    """Whatever a PZEM answers, the node publishes a valid reading or the error form."""
    node, _, _ = _node()
    meter = next(m for m in node.meters if m.spec.addr == ADDRESS)
    meter.pzem = Pzem(
        Bus(ScriptedUart(script), ManualClock(), timeout_ms=60, retries=1), ADDRESS, 0
    )
    asyncio.run(node.poll_meter(meter))
    [(topic, payload, retain)] = node.client.published
    assert topic == meter.state_topic
    assert retain is True
    decoded = codec.decode("sem", topic, payload, retained=True)
    assert isinstance(decoded, codec.Snapshot | codec.SensorError), (payload, decoded)
    event(f"published {type(decoded).__name__} {getattr(decoded, 'error', '')}")


# --- the command side ---------------------------------------------------------------------------

node_topics = st.one_of(
    st.sampled_from(
        [
            "sem/n1/relay/r1/set",
            "sem/n1/relay/r2/set",
            "sem/n1/relay/r3/set",
            "sem/n1/line1/reset_energy",
            "sem/n1/house2/reset_energy",
            "sem/n1/house9/reset_energy",
            "sem/n2/relay/r1/set",
            "sem/n1/relay/r1/state",
        ]
    ),
    st.text(max_size=40),
)
command_payloads = st.one_of(
    st.sampled_from([b"ON", b"OFF", b"on", b"ON ", b"", b"1", b"true", b"OFF\x00"]),
    st.binary(max_size=30),
    st.builds(lambda n: b"O" * n, st.sampled_from([4096, 4097, 5000])),
)


@FUZZ
@given(topic=node_topics, payload=command_payloads, retained=st.booleans())
def test_command_handler_obeys_only_exact_live_commands(
    topic: str, payload: bytes, retained: bool
) -> None:
    node, _, _ = _node()
    node._on_message(topic, payload, retained)
    queued = []
    while len(node._commands):
        (kind, target), arg = node._commands.pop()
        queued.append((kind, target, arg))
    live = not retained and len(payload) <= protocol.MAX_PAYLOAD
    if (
        live
        and topic in ("sem/n1/relay/r1/set", "sem/n1/relay/r2/set")
        and payload
        in (
            b"ON",
            b"OFF",
        )
    ):
        assert queued == [("relay", topic.split("/")[3], payload == b"ON")]
    elif live and topic in ("sem/n1/line1/reset_energy", "sem/n1/house2/reset_energy"):
        assert len(queued) == 1
        assert queued[0][0] == "reset"
        assert queued[0][1].spec.id == topic.split("/")[2]
    else:
        assert queued == []


class _Writer:
    def __init__(self) -> None:
        self.sent = bytearray()

    def write(self, data: bytes) -> None:
        self.sent += data

    async def drain(self) -> None:
        return None


def _publish_packets(topic: str, payload: bytes, qos: int, retain: bool) -> bytes:
    return mqtt.publish_packet(topic, payload, qos, retain, packet_id=7 if qos else 0)


publishes = st.builds(
    _publish_packets, node_topics, command_payloads, st.integers(0, 1), st.booleans()
)
packets = st.one_of(
    publishes,
    publishes,
    publishes,
    st.binary(max_size=40),
    st.builds(
        lambda first, body: bytes((first,)) + mqtt.encode_length(len(body)) + body,
        st.integers(0, 255),
        st.binary(max_size=40),
    ),
)


@FUZZ
@given(stream=st.lists(packets, max_size=5))
def test_raw_mqtt_bytes_to_the_command_handler(stream: list[bytes]) -> None:
    """Bytes from the broker through the client's packet reader into the node's handler."""
    node, _, _ = _node()
    received: list[tuple[str, bytes, bool]] = []

    def on_message(topic: str, payload: bytes, retained: bool) -> None:
        received.append((topic, payload, retained))
        node._on_message(topic, payload, retained)

    async def read() -> None:
        client = mqtt.Client("n1", "127.0.0.1", 1, ManualClock(), on_message=on_message, log=str)
        reader = asyncio.StreamReader()
        reader.feed_data(b"".join(stream))
        reader.feed_eof()
        client._reader = reader
        client._writer = _Writer()  # type: ignore[assignment]
        client.connected = True
        await asyncio.wait_for(client._read_loop(), 5)
        # The stream ended (or broke): the connection is lost, nothing else happened.
        assert client._lost.is_set()
        assert not client.connected

    asyncio.run(read())
    event(f"{len(received)} messages, {len(node._commands)} commands")
    while len(node._commands):
        (kind, target), _ = node._commands.pop()
        assert kind in ("relay", "reset")
        assert any(not retained for _, _, retained in received)
        assert target is not None
