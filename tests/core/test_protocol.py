"""The protocol v1 codec against the shared vectors and its own edge cases."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import pytest

from custom_components.smart_energy_meter.semcore import protocol as p
from custom_components.smart_energy_meter.semcore.debounce import Status
from tests.vectors import Vector, load_vectors

VECTORS = load_vectors()


def _plain(value: Any) -> Any:
    """Turn decoded dataclasses into the JSON shapes the vectors use."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, p.StrEnum):
        return value.value
    return value


def test_vector_set_is_large_enough() -> None:
    assert len(VECTORS) >= 30
    assert sum(v.reject is not None for v in VECTORS) >= 10
    assert all((v.expect is None) != (v.reject is None) for v in VECTORS)


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.name)
def test_vector(vector: Vector) -> None:
    result = p.decode(vector.prefix, vector.topic, vector.payload, retained=vector.retained)
    if vector.reject is not None:
        assert isinstance(result, p.Rejected), result
        assert vector.reject in result.reason
    else:
        assert vector.expect is not None
        assert type(result).__name__ == vector.expect["type"], result
        assert _plain(result) == vector.expect["fields"]


@pytest.mark.parametrize("vector", [v for v in VECTORS if v.expect], ids=lambda v: v.name)
def test_valid_vectors_round_trip(vector: Vector) -> None:
    """What the encoder writes decodes to the same message."""
    message = p.decode(vector.prefix, vector.topic, vector.payload, retained=vector.retained)
    if isinstance(message, p.Snapshot | p.SensorError):
        unsigned = dataclasses.replace(message, signature=None)
        assert p.decode_state(message.node, message.meter, p.encode_state(message)) == unsigned
    elif isinstance(message, p.Announce):
        assert p.decode_announce(message.node, p.encode_announce(message)) == message
    elif isinstance(message, p.RelayStateMessage | p.RelayCommand):
        assert p.decode_relay(p.encode_relay(message.state)) == message.state
    elif isinstance(message, p.ResetResult):
        encoded = p.encode_reset_result(message)
        assert p.decode_reset_result(message.node, message.meter, encoded) == message
    elif isinstance(message, p.ServiceVerdict):
        encoded = p.encode_verdict(message)
        assert p.decode_verdict(message.node, message.pair, encoded) == message


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("a", True),
        ("node-1_x", True),
        ("x" * 32, True),
        ("x" * 33, False),
        ("", False),
        ("a+b", False),
        ("a#", False),
        ("a/b", False),
        ("Ab", False),
        ("a b", False),
        (12, False),
        (None, False),
    ],
)
def test_valid_id(value: object, ok: bool) -> None:
    assert p.valid_id(value) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("sem", True),
        ("site/sem", True),
        ("a/b/c/d", True),
        ("a/b/c/d/e", False),
        ("sem/", False),
        ("se+m", False),
        ("#", False),
        ("", False),
        (None, False),
    ],
)
def test_valid_prefix(value: object, ok: bool) -> None:
    assert p.valid_prefix(value) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("home/house1", True),
        ("esp32/rumah_2", True),
        ("a/+/b", False),
        ("a/#", False),
        ("/abs", False),
        ("trail/", False),
        ("a//b", False),
        ("", False),
        ("x" * 201, False),
        ("nul\x00", False),
        (5, False),
    ],
)
def test_valid_topic_base(value: object, ok: bool) -> None:
    assert p.valid_topic_base(value) is ok


def test_topic_builders_parse_back() -> None:
    prefix = "site/sem"
    assert isinstance(p.decode(prefix, p.status_topic(prefix, "n1"), b"online"), p.StatusMessage)
    assert isinstance(p.decode(prefix, p.announce_topic(prefix, "n1"), b""), p.NodeGone)
    assert isinstance(
        p.decode(prefix, p.state_topic(prefix, "n1", "m1"), b'{"seq":1,"ts":1,"error":"crc"}'),
        p.SensorError,
    )
    assert p.decode(prefix, p.reset_energy_topic(prefix, "n1", "m1"), b"") == (
        p.ResetEnergyCommand("n1", "m1")
    )
    assert p.decode(prefix, p.relay_set_topic(prefix, "n1", "r1"), b"ON") == p.RelayCommand(
        "n1", "r1", p.RelayState.ON
    )
    assert p.decode(prefix, p.relay_state_topic(prefix, "n1", "r1"), b"OFF") == (
        p.RelayStateMessage("n1", "r1", p.RelayState.OFF)
    )
    assert p.paper_topic("home/h1", "vac") == "home/h1/vac"
    assert p.subscriptions("sem") == (
        "sem/+/status",
        "sem/+/announce",
        "sem/+/+/state",
        "sem/+/relay/+/state",
        "sem/+/+/reset_energy/result",
        "sem/+/+/verdict",
    )
    assert p.decode(prefix, p.reset_result_topic(prefix, "n1", "m1"), b'{"ok":true}') == (
        p.ResetResult("n1", "m1", True)
    )
    assert p.verdict_topic(prefix, "n1", "h1") == "site/sem/n1/h1/verdict"
    assert p.decode(prefix, p.verdict_topic(prefix, "n1", "h1"), b"") == (
        p.VerdictWithdrawn("n1", "h1")
    )


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("sem/n1/relay/r1/set", b"TOGGLE", "is not ON/OFF"),
        ("sem/n1/relay/r1/state", b"\xff", "is not ON/OFF"),
        ("sem/n1/relay/r1/blink", b"ON", "not a protocol v1 topic"),
        ("sem/n1/m+/reset_energy", b"", "meter id"),
        ("sem/n1/status", b"\xff\xfe", "is not online/offline"),
        ("sem/n1", b"", "not a protocol v1 topic"),
        ("sem/n1/", b"", "not a protocol v1 topic"),
        ("semx/n1/status", b"online", "not under prefix"),
        ("sem/n1/status", b"x" * 5000, "exceeds 4096"),
    ],
)
def test_decode_rejects(topic: str, payload: bytes, reason: str) -> None:
    result = p.decode("sem", topic, payload)
    assert isinstance(result, p.Rejected)
    assert reason in result.reason


def _announce(**changes: Any) -> bytes:
    base: dict[str, Any] = {
        "proto": "1.0",
        "node": "n1",
        "interval": 1,
        "meters": [{"id": "l1", "role": "line", "pair": "h1"}],
    }
    base.update(changes)
    return json.dumps(base).encode()


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"proto": 1}, "'proto' is missing"),
        ({"proto": "x.1"}, "is not a version"),
        ({"proto": "0.9"}, "major version 0"),
        ({"name": 5}, "'name' is not a string"),
        ({"model": "m" * 65}, "'model' is not a string"),
        ({"mac": "AA:BB:CC:DD:EE:FF"}, "'mac'"),
        ({"ip": 10}, "'ip'"),
        ({"interval": 0}, "'interval'=0 is outside"),
        ({"meters": {}}, "'meters' is not a list"),
        (
            {"meters": [{"id": f"m{n}", "role": "line", "pair": f"p{n}"} for n in range(17)]},
            "'meters' is not a list of at most 16",
        ),
        ({"meters": ["l1"]}, "a meter is not an object"),
        ({"meters": [{"id": "l1", "role": "line", "pair": "h/1"}]}, "pair label invalid"),
        ({"meters": [{"id": "l1", "role": "line", "pair": "h1", "addr": 0}]}, "Modbus address"),
        ({"meters": [{"id": "l1", "role": "line", "pair": "h1", "addr": True}]}, "Modbus address"),
        ({"meters": [{"id": "l1", "role": "line", "pair": "h1", "addr": "1"}]}, "Modbus address"),
        (
            {
                "meters": [
                    {"id": "l1", "role": "line", "pair": "h1"},
                    {"id": "l1", "role": "house", "pair": "h1"},
                ]
            },
            "duplicate meter id",
        ),
        ({"relays": "r1"}, "'relays' is not a list"),
        ({"relays": [{"id": "r#", "pair": "h1"}]}, "relay id invalid"),
        ({"relays": [7]}, "relay id invalid"),
        ({"relays": [{"id": "r1", "pair": "H1"}]}, "relay pair label invalid"),
        (
            {"relays": [{"id": "r1", "pair": "h1"}, {"id": "r1", "pair": "h2"}]},
            "duplicate relay id",
        ),
        ({"pairs": []}, "'pairs' is not an object"),
        ({"pairs": {"h1": ""}}, "pair name invalid"),
        ({"pairs": {"H1": "House"}}, "pair name invalid"),
        ({"pairs": {"h1": 3}}, "pair name invalid"),
        ({"paper_topics": "yes"}, "'paper_topics' is not a boolean"),
    ],
)
def test_announce_rejects(changes: dict[str, Any], reason: str) -> None:
    result = p.decode_announce("n1", _announce(**changes))
    assert isinstance(result, p.Rejected)
    assert reason in result.reason


def test_announce_defaults_and_encode_without_optionals() -> None:
    result = p.decode_announce("n1", _announce())
    assert isinstance(result, p.Announce)
    assert result.relays == ()
    assert result.mac is None
    assert result.ip is None
    encoded = json.loads(p.encode_announce(result))
    assert "mac" not in encoded
    assert "pairs" not in encoded
    assert encoded["meters"] == [{"id": "l1", "role": "line", "pair": "h1"}]


@pytest.mark.parametrize(
    ("quantity", "payload", "expected"),
    [
        ("vac", b"225.7", 225.7),
        ("iac", b" 0.108\n", 0.108),
        ("pac", b"24", 24.0),
        ("energy", b"38", 38.0),
        ("pf", b"1.00", 1.0),
    ],
)
def test_paper_values(quantity: str, payload: bytes, expected: float) -> None:
    assert p.decode_paper_value("home/h1", quantity, payload) == p.PaperValue(
        "home/h1", quantity, expected
    )


@pytest.mark.parametrize(
    ("quantity", "payload", "reason"),
    [
        ("freq", b"50", "is not one of"),
        ("vac", b"nan", "'vac' is not finite"),
        ("vac", b"inf", "'vac' is not finite"),
        ("vac", b"abc", "is not a number"),
        ("vac", b"\xff", "is not a number"),
        ("vac", b"1" * 40, "longer than 32"),
        ("pac", b"-4", "is outside"),
        ("energy", b"-1", "is outside 0..1e+07"),
        ("energy", b"10000001", "is outside 0..1e+07"),
        ("pf", b"1.5", "is outside"),
    ],
)
def test_paper_values_rejected(quantity: str, payload: bytes, reason: str) -> None:
    result = p.decode_paper_value("home/h1", quantity, payload)
    assert isinstance(result, p.Rejected)
    assert reason in result.reason


def test_encode_refuses_nan() -> None:
    """The encoder never writes NaN, which would not be JSON."""
    snapshot = p.Snapshot("n", "m", 1, 1.0, math.nan, 0, 0, 0, 50, 1, False)
    with pytest.raises(ValueError, match="not JSON compliant"):
        p.encode_state(snapshot)


def test_decode_never_raises_on_odd_types() -> None:
    for payload in (b"null", b"1", b'"s"', b"{}", b'{"seq":-1,"ts":1}', b'{"seq":1,"ts":-1}'):
        assert isinstance(p.decode_state("n", "m", payload), p.Rejected)


@pytest.mark.parametrize("decoder", [p.decode_announce, lambda n, b: p.decode_state(n, "m", b)])
def test_size_limit_applies_to_direct_decoders(decoder: Any) -> None:
    result = decoder("n", b"{" + b" " * p.MAX_PAYLOAD_BYTES + b"}")
    assert isinstance(result, p.Rejected)
    assert "exceeds 4096" in result.reason


# --- the fleet service's verdict (1.2) ------------------------------------------------------

VERDICT: dict[str, Any] = {
    "id": "pole-2/house3/clear/4",
    "pair": "pole-2/house3",
    "name": "House 3",
    "event": "cleared",
    "status": "ok",
    "at": 1764072090.0,
    "since": None,
    "mismatch_pct": 0.4,
    "line_power_w": 120.0,
    "house_power_w": 119.5,
    "unaccounted_wh": 3.25,
}


def test_verdict_statuses_are_the_balances() -> None:
    """A verdict carries the energy balance's status: the codec knows exactly those."""
    assert {status.value for status in Status} == p.VERDICT_STATUSES


def test_verdict_decodes_with_since_null_and_integers() -> None:
    verdict = p.decode_verdict("pole-2", "house3", json.dumps(VERDICT).encode())
    assert isinstance(verdict, p.ServiceVerdict)
    assert (verdict.event, verdict.status, verdict.since) == (p.VerdictEvent.CLEARED, "ok", None)
    assert verdict.unaccounted_wh == 3.25
    whole = p.decode_verdict("pole-2", "house3", json.dumps(VERDICT | {"at": 5}).encode())
    assert isinstance(whole, p.ServiceVerdict)
    assert whole.at == 5.0
    assert isinstance(whole.at, float)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"pair": None}, "does not match topic"),
        ({"event": ["cleared"]}, "unknown verdict event"),
        ({"status": 1}, "unknown verdict status"),
        ({"status": "theft"}, "verdict cleared with status theft"),
        ({"id": None}, "verdict 'id' None"),
        ({"id": "pole-2/house3/clear/0"}, "verdict 'id'"),
        ({"id": "pole-2/house3/clear/4/x"}, "verdict 'id'"),
        ({"id": "pole-2.house3/clear/4"}, "verdict 'id'"),
        ({"name": ""}, "verdict 'name'"),
        ({"name": "x" * 65}, "verdict 'name'"),
        ({"at": -1}, "'at'=-1 is negative"),
        ({"at": 10**400}, "'at' is too large"),
        ({"since": "1"}, "'since' is not a number"),
        ({"mismatch_pct": math.inf}, "Infinity is not allowed"),
        ({"line_power_w": 25_001}, "'line_power_w'=25001 is outside"),
        ({"unaccounted_wh": -0.5}, "'unaccounted_wh'=-0.5 is negative"),
    ],
)
def test_verdict_rejections(change: dict[str, Any], reason: str) -> None:
    payload = json.dumps(VERDICT | change).encode()
    result = p.decode("sem", "sem/pole-2/house3/verdict", payload, retained=True)
    assert isinstance(result, p.Rejected)
    assert reason in result.reason
