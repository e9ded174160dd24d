"""The firmware's hand-written HMAC signing against the integration's verification (semcore
.signing), both ways, for generated keys, topics and payloads; under CPython with hypothesis and
under the MicroPython unix port (the interpreter of the ESP32 build) for a seeded batch.

SEM_FUZZ_EXAMPLES sets the examples per test (4000 by default, as for the codec).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from semfw import protocol

from custom_components.smart_energy_meter.semcore import protocol as codec
from custom_components.smart_energy_meter.semcore.signing import (
    MIN_KEY_BYTES,
    sign_payload,
    verify_payload,
)
from tests.firmware.unit.test_fw_node import _node

EXAMPLES = int(os.environ.get("SEM_FUZZ_EXAMPLES", "4000"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FIRMWARE = Path(__file__).parents[2] / "firmware"

# Keys around HMAC's 64-byte block, where a longer key is hashed first.
keys = st.binary(min_size=MIN_KEY_BYTES, max_size=100)
topics = st.text(min_size=1, max_size=80)
objects = st.dictionaries(
    st.text(max_size=8),
    st.one_of(st.integers(), st.floats(allow_nan=False), st.text(max_size=20), st.booleans()),
    min_size=1,
    max_size=8,
).map(lambda obj: json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode())


@FUZZ
@given(key=keys, topic=topics, payload=objects)
def test_firmware_and_integration_sign_alike(key: bytes, topic: str, payload: bytes) -> None:
    firmware = protocol.sign(key, topic, payload)
    integration = sign_payload(key, topic, payload)
    assert firmware == integration
    # Firmware-signed verifies in the integration...
    assert verify_payload(key, topic, firmware)
    # ... and the firmware's own HMAC reproduces the integration's signature.
    digest = protocol.hmac_sha256(key, topic.encode() + b"\n" + payload)
    assert digest == hmac.new(key, topic.encode() + b"\n" + payload, hashlib.sha256).digest()
    assert integration.endswith(b',"sig":"' + protocol.hex_text(digest).encode() + b'"}')


@FUZZ
@given(key=keys, other=keys, topic=topics, payload=objects, index=st.integers(0, 10_000))
def test_a_changed_byte_key_or_topic_fails(
    key: bytes, other: bytes, topic: str, payload: bytes, index: int
) -> None:
    signed = protocol.sign(key, topic, payload)
    position = index % len(signed)
    flipped = signed[:position] + bytes((signed[position] ^ 0x01,)) + signed[position + 1 :]
    assert not verify_payload(key, topic, flipped)
    if other != key:
        assert not verify_payload(other, topic, signed)
    assert not verify_payload(key, topic + "/x", signed)


# A whole node per example: a tenth of the budget.
@settings(FUZZ, max_examples=max(100, EXAMPLES // 10))
@given(
    key=st.text(min_size=MIN_KEY_BYTES, max_size=40).filter(lambda k: len(k.encode()) >= 16),
    meter=st.sampled_from(["line1", "house1", "line2", "house2"]),
    fault=st.sampled_from([None, "timeout"]),
)
def test_a_node_with_a_key_signs_what_the_integration_verifies(
    key: str, meter: str, fault: str | None
) -> None:
    """The node's own publications: announce, readings and the error form, with the key from its
    configuration (the same text the integration is given)."""
    node, sim, _ = _node(key=key)
    if fault:
        sim.pzems[meter].forced_offline = True
    node.boot()
    asyncio.run(node._on_connect())
    asyncio.run(node.poll_meter(next(m for m in node.meters if m.spec.id == meter)))
    published = [(topic, payload) for topic, payload, _ in node.client.published]
    signed = [
        (topic, payload)
        for topic, payload in published
        if topic.endswith(("/state", "/announce")) and "/relay/" not in topic
    ]
    assert len(signed) == 2
    for topic, payload in signed:
        assert verify_payload(key.encode(), topic, payload), (topic, payload)
        decoded = codec.decode("sem", topic, payload, retained=True)
        assert not isinstance(decoded, codec.Rejected), decoded
    # Status and relay state are not signed (docs/protocol.md).
    unsigned = [payload for topic, payload in published if (topic, payload) not in signed]
    assert len(unsigned) == 3  # status, two relays
    assert all(b"sig" not in payload for payload in unsigned)


MP_SIGN = """
import sys
sys.path.insert(0, sys.argv[1])
from semfw import protocol
import json
for line in sys.stdin:
    case = json.loads(line)
    key = bytes.fromhex(case["key"])
    payload = bytes.fromhex(case["payload"])
    print(protocol.sign(key, case["topic"], payload).decode())
"""


@pytest.mark.skipif(shutil.which("micropython") is None, reason="no MicroPython unix port")
def test_micropython_signs_like_the_integration_verifies(tmp_path: Path) -> None:
    rng = random.Random(7)
    cases = []
    for _ in range(max(200, EXAMPLES // 20)):
        key = rng.randbytes(rng.choice([16, 17, 32, 63, 64, 65, 100]))
        obj = {f"k{i}": rng.choice([rng.random(), rng.randint(-9, 10**9), "é✓"]) for i in range(4)}
        topic = rng.choice(["sem/node1/house1/state", "sem/n/announce", "a/b/c/d/e/x/state"])
        payload = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
        cases.append({"key": key.hex(), "topic": topic, "payload": payload.hex()})
    script = tmp_path / "sign.py"
    script.write_text(MP_SIGN)
    micropython = shutil.which("micropython")
    assert micropython is not None
    proc = subprocess.run(
        [micropython, str(script), str(FIRMWARE)],
        input="".join(json.dumps(case) + "\n" for case in cases),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    outputs = proc.stdout.splitlines()
    assert len(outputs) == len(cases), proc.stderr
    for case, output in zip(cases, outputs, strict=True):
        key, topic = bytes.fromhex(case["key"]), case["topic"]
        signed = output.encode()
        assert verify_payload(key, topic, signed)
        assert signed == sign_payload(key, topic, bytes.fromhex(case["payload"]))
