"""Junk into the running integration: hypothesis feeds the entry's message handler directly (the
path every broker message takes), a batch of junk goes through the real broker, and payloads
over the size limit are dropped before anything parses them.

SEM_FUZZ_EXAMPLES sets the number of generated messages (4000 by default, as for the codec).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any
from unittest.mock import patch

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.smart_energy_meter.fleet import foreign_protocol
from custom_components.smart_energy_meter.semcore import protocol as p
from tests.core.test_protocol_fuzz import VALID_STATE, json_values, payloads, state_keys
from tests.integration.common import (
    HOUSE_1,
    PAPER_ANNOUNCE,
    TestNode,
    setup_entry,
    wait_for,
    wait_state,
)
from tests.integration.test_signed_readings import KEY, SignedNode, signed_entry
from tests.mosquitto import Broker

EXAMPLES = int(os.environ.get("SEM_FUZZ_EXAMPLES", "4000"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Readings stay current for the whole test: junk must change nothing, time included.
STILL_FRESH = 600.0
# Examples per run of the generator; the event loop runs in between (the broker's keepalive).
BATCH = 500

# node1 signs (it has a key), node2 does not; House 3 publishes only the paper's topics.
HOUSE_2 = {
    "pair": "house1",
    "name": "House 2",
    "line": {"node": "node2", "meter": "line1"},
    "house": {"node": "node2", "meter": "house1"},
    "relay": {"node": "node2", "relay": "r1"},
}


def _paper_pair(prefix: str) -> dict[str, Any]:
    return {
        "pair": "house3",
        "name": "House 3",
        "line": {"topic_base": f"paper/{prefix}/line"},
        "house": {"topic_base": f"paper/{prefix}/house"},
        "interval": STILL_FRESH,
    }


def _dump(obj: Any) -> bytes:
    return json.dumps(obj, allow_nan=True).encode()


VALID_ANNOUNCE = json.loads(p.encode_announce(PAPER_ANNOUNCE))


def _topics(prefix: str) -> st.SearchStrategy[str]:
    ids = st.one_of(
        st.sampled_from(["node1", "node2", "node3", "line1", "house1", "r1", "r2", "x" * 33]),
        st.text(alphabet="abn019_-+#/AZ é\x00", max_size=12),
    )
    kinds = st.sampled_from(
        ["status", "announce", "state", "relay", "set", "reset_energy", "vac", "pac", "energy"]
    )
    structured = st.builds(
        lambda levels: "/".join([prefix, *levels]), st.lists(st.one_of(ids, kinds), max_size=4)
    )
    protocol = st.builds(
        lambda node, tail: f"{prefix}/{node}/{tail}",
        st.sampled_from(["node1", "node2", "node3"]),
        st.sampled_from(
            ["status", "announce", "line1/state", "house1/state", "house2/state", "relay/r1/state"]
        ),
    )
    paper = st.builds(
        lambda meter, quantity: f"paper/{prefix}/{meter}/{quantity}",
        st.sampled_from(["line", "house", "other"]),
        st.sampled_from(["vac", "iac", "pac", "energy", "pf", "f", ""]),
    )
    return st.one_of(protocol, protocol, paper, structured, st.text(max_size=40))


def _with_sig(payload: bytes, digits: str) -> bytes:
    return payload[:-1] + b',"sig":"' + digits.encode() + b'"}'


def _mqtt_topic(topic: str) -> bool:
    """A topic a client may publish to: no wildcards, no NUL or control characters."""
    return bool(topic) and all(
        ord(c) >= 0x20 and not 0x7F <= ord(c) <= 0x9F and c not in "+#\ufffe\uffff" for c in topic
    )


near_valid = st.one_of(
    # Valid ones, so that the handler's other paths run between the junk.
    st.builds(lambda seq: _dump(dict(VALID_STATE, seq=seq, ts=1.0e9)), st.integers(0, 99)),
    st.just(_dump(VALID_ANNOUNCE)),
    st.sampled_from([b"online", b"offline", b"ON", b"OFF", b"230.5", b"12"]),
    # One field of a valid reading or announce changed.
    st.builds(lambda k, v: _dump(dict(VALID_STATE, **{k: v})), state_keys, json_values),
    st.builds(
        lambda k, v: _dump(dict(VALID_ANNOUNCE, **{k: v})),
        st.sampled_from([*VALID_ANNOUNCE, "proto", "sig"]),
        json_values,
    ),
    st.builds(lambda k: _dump({x: y for x, y in VALID_STATE.items() if x != k}), state_keys),
    # Signature-shaped junk.
    st.builds(
        _with_sig,
        st.builds(_dump, st.just(dict(VALID_STATE, ts=1.0e9))),
        st.text(alphabet="0123456789abcdefABCDEF", min_size=0, max_size=70),
    ),
    # Paper values.
    st.builds(lambda f: repr(f).encode(), st.floats(allow_nan=True, allow_infinity=True)),
    st.builds(lambda t: t.encode(), st.text(max_size=40)),
    # Just over the size limit: valid JSON padded with spaces.
    st.builds(
        lambda n: _dump(VALID_STATE)[:-1] + b" " * n + b"}",
        st.integers(p.MAX_PAYLOAD_BYTES - 100, p.MAX_PAYLOAD_BYTES + 100),
    ),
)
fuzz_payloads = st.one_of(payloads, near_valid)


def _is_junk(prefix: str, paper_topics: list[str], topic: str, payload: bytes) -> bool:
    """Whether the message carries nothing the integration may use (so it must change nothing)."""
    if topic in paper_topics:
        quantity = topic.rsplit("/", 1)[1]
        base = topic.rsplit("/", 1)[0]
        oversize = len(payload) > p.MAX_PAYLOAD_BYTES
        return oversize or isinstance(p.decode_paper_value(base, quantity, payload), p.Rejected)
    if not isinstance(p.decode(prefix, topic, payload), p.Rejected):
        return False
    # A node on another major version is refused, and says so with a repair issue.
    return not (
        topic.endswith("/announce")
        and len(payload) <= p.MAX_PAYLOAD_BYTES
        and foreign_protocol(payload) is not None
    )


def _structure(hass: HomeAssistant, entry: MockConfigEntry) -> dict[str, Any]:
    """Entities, devices and what the fleet tracks: no message may add to them."""
    fleet = entry.runtime_data.fleet
    entities = er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
    devices = dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
    return {
        "entities": sorted(e.entity_id for e in entities),
        "devices": sorted(d.id for d in devices),
        "meters": sorted(fleet.meters),
        "relays": sorted(fleet.relays),
        "states": sorted(s.entity_id for s in hass.states.async_all()),
    }


def _everything(hass: HomeAssistant, entry: MockConfigEntry) -> dict[str, Any]:
    """Every state and attribute, what the fleet knows, issues, flows: junk changes none."""
    fleet = entry.runtime_data.fleet
    signed = fleet.signed
    return {
        "states": {s.entity_id: (s.state, dict(s.attributes)) for s in hass.states.async_all()},
        "nodes": {n: (s.announce, s.status, s.gone, s.heard) for n, s in fleet.nodes.items()},
        "meters": {
            key: (
                m.energy.value,
                m.samples,
                m.fresh,
                getattr(m, "snapshot", None),
                getattr(m, "values", None),
                getattr(m, "error", None),
            )
            for key, m in fleet.meters.items()
        },
        "relays": {key: r.state for key, r in fleet.relays.items()},
        "signing": signed.diagnostics() if signed is not None else None,
        "issues": sorted(ir.async_get(hass).issues),
        "flows": len(hass.config_entries.flow.async_progress()),
    }


async def _running(hass: HomeAssistant, broker: Broker, prefix: str) -> MockConfigEntry:
    entry = signed_entry(hass, broker, prefix, [HOUSE_1, HOUSE_2, _paper_pair(prefix)])
    await setup_entry(hass, entry)
    async with (
        SignedNode(broker, prefix, KEY) as node1,
        TestNode(broker, prefix, "node2") as node2,
    ):
        for node, mac in ((node1, "24:6f:28:a1:b2:01"), (node2, "24:6f:28:a1:b2:02")):
            await node.announce(mac=mac, interval=STILL_FRESH)
            await node.status("online")
            await node.relay_state("r1", "OFF")
            await node.snapshot("line1", 1000.0, energy=9000.0)
            await node.snapshot("house1", 900.0, energy=5000.0)
        for meter, power in (("line", "500"), ("house", "450")):
            base = f"paper/{prefix}/{meter}"
            for quantity, value in (("vac", "230"), ("iac", "2"), ("pac", power), ("pf", "1")):
                await node2.publish(f"{base}/{quantity}", value)
            await node2.publish(f"{base}/energy", "1000")
        await wait_state(hass, "sensor.house_1_theft_percentage", "10.0")
        await wait_state(hass, "sensor.house_2_theft_percentage", "10.0")
        await wait_state(hass, "sensor.house_3_theft_percentage", "10.0")
    return entry


async def test_handler_fuzz(hass: HomeAssistant, mosquitto: Broker, prefix: str) -> None:
    entry = await _running(hass, mosquitto, prefix)
    fleet = entry.runtime_data.fleet
    paper_topics = fleet.value_topics
    structure = _structure(hass, entry)
    baseline = _everything(hass, entry)
    kinds: Counter[str] = Counter()

    @settings(FUZZ, max_examples=min(BATCH, EXAMPLES))
    @given(topic=_topics(prefix), payload=fuzz_payloads, retained=st.booleans())
    def handle(topic: str, payload: bytes, retained: bool) -> None:
        nonlocal baseline
        fleet.async_handle_message(topic, payload, retained)  # nothing may escape
        assert _structure(hass, entry) == structure
        if _is_junk(prefix, paper_topics, topic, payload):
            kinds["junk"] += 1
            assert _everything(hass, entry) == baseline
        else:
            kinds["valid"] += 1
            baseline = _everything(hass, entry)

    for _ in range(-(-EXAMPLES // BATCH)):
        handle()
        await hass.async_block_till_done()
    print(f"\nhandler fuzz: {dict(kinds)}")
    assert kinds["junk"] > kinds["valid"] > 0
    await hass.config_entries.async_unload(entry.entry_id)


async def test_junk_through_the_broker(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    entry = await _running(hass, mosquitto, prefix)
    paper_topics = entry.runtime_data.fleet.value_topics
    batch: list[tuple[str, bytes]] = []

    @settings(max_examples=max(200, EXAMPLES // 10), deadline=None, database=None)
    @given(topic=_topics(prefix), payload=fuzz_payloads)
    def collect(topic: str, payload: bytes) -> None:
        # Only what MQTT can carry: a topic without wildcards or NUL, valid UTF-8.
        if _mqtt_topic(topic) and _is_junk(prefix, paper_topics, topic, payload):
            batch.append((topic, payload))

    collect()
    assert len(batch) >= 100
    before = _everything(hass, entry)
    structure = _structure(hass, entry)
    fleet = entry.runtime_data.fleet
    async with TestNode(mosquitto, prefix, "node2") as junk:
        for topic, payload in batch:
            await junk.publish(topic, payload)
        # A last junk message on a subscribed topic; once it was handled, all before it were.
        seen: list[str] = []
        original = fleet.async_handle_message

        def spy(topic: str, payload: bytes, retained: bool) -> None:
            seen.append(topic)
            original(topic, payload, retained)

        with patch.object(entry.runtime_data.hub, "_on_message", spy):
            await junk.publish(f"{prefix}/node2/status", b"maybe")
            await wait_for(hass, lambda: f"{prefix}/node2/status" in seen, "the last message")
    assert _everything(hass, entry) == before
    assert _structure(hass, entry) == structure
    assert "Error handling a message" not in caplog.text
    await hass.config_entries.async_unload(entry.entry_id)


async def test_oversized_payloads_are_dropped_before_parsing(
    hass: HomeAssistant, mosquitto: Broker, prefix: str
) -> None:
    entry = await _running(hass, mosquitto, prefix)
    before = _everything(hass, entry)
    limit = p.MAX_PAYLOAD_BYTES
    marker = "oversized payload marker"
    reading = dict(VALID_STATE, seq=50, ts=1.0e9, p=5.0, note=marker)
    oversized = {
        # A valid reading of a node without a key, padded past the limit.
        f"{prefix}/node2/house1/state": _dump(reading)[:-1] + b" " * limit + b"}",
        # A node on protocol 2: under the limit this raises a repair issue.
        f"{prefix}/node3/announce": _dump({"proto": "2.0", "node": "node3", "x": marker * 300}),
        # A paper value: a number followed by spaces.
        f"paper/{prefix}/house/pac": b"5" + b" " * limit,
    }
    assert all(len(payload) > limit for payload in oversized.values())
    parsed: list[int] = []
    loads = json.loads

    def watched_loads(text: Any, *args: Any, **kwargs: Any) -> Any:
        if (marker.encode() if isinstance(text, bytes) else marker) in text:
            parsed.append(len(text))
        return loads(text, *args, **kwargs)

    with patch.object(json, "loads", watched_loads):
        async with TestNode(mosquitto, prefix, "node2") as node:
            for topic, payload in oversized.items():
                await node.publish(topic, payload)
            # The same announce under the limit is parsed (and refused): the marker shows it.
            await node.publish(
                f"{prefix}/node3/announce", _dump({"proto": "2.0", "node": "node3", "x": marker})
            )
            await wait_for(hass, lambda: bool(parsed), "the announce under the limit")
    # Only the announce under the limit was parsed (by the codec and the version check).
    assert set(parsed) == {len(_dump({"proto": "2.0", "node": "node3", "x": marker}))}
    after = _everything(hass, entry)
    # Only the small announce left a trace: its repair issue. Nothing else changed.
    assert len(after["issues"]) == len(before["issues"]) + 1
    after["issues"] = before["issues"]
    assert after == before
    await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.usefixtures("entity_registry_enabled_by_default")  # the IP address is off by default
async def test_two_nodes_announcing_one_mac(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A copied configuration, or a node speaking in another's name: the device registry
    refuses one MAC on two devices; the announce is used all the same, and nothing raises."""
    entry = signed_entry(hass, mosquitto, prefix, [HOUSE_1, HOUSE_2])
    await setup_entry(hass, entry)
    async with TestNode(mosquitto, prefix, "node2") as node2:
        await node2.announce()  # PAPER_ANNOUNCE's MAC
        await wait_state(hass, "sensor.pole_7_ip_address", "192.168.1.50")
        await node2.announce(name="Pole 8", ip="192.168.1.51")  # the same MAC for node2 ...
        async with SignedNode(mosquitto, prefix, KEY) as node1:
            await node1.announce(name="Pole 9", ip="192.168.1.52")  # ... and for node1
            await wait_state(hass, "sensor.pole_9_ip_address", "192.168.1.52")
    devices = {
        device.name: device.connections
        for device in dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
    }
    assert devices["Pole 8"] == {(dr.CONNECTION_NETWORK_MAC, PAPER_ANNOUNCE.mac)}
    assert devices["Pole 9"] == set()
    assert "which the device Pole 8 already has" in caplog.text
    assert "Error handling a message" not in caplog.text
    await hass.config_entries.async_unload(entry.entry_id)
