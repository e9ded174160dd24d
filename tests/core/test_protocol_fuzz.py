"""Property-based fuzzing of the codec: nothing escapes, and whatever is accepted is sane."""

from __future__ import annotations

import json
import math
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from custom_components.smart_energy_meter.semcore import protocol as p

# SEM_FUZZ_EXAMPLES raises the budget for a long local run; the default keeps CI quick.
EXAMPLES = int(os.environ.get("SEM_FUZZ_EXAMPLES", "4000"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)

ids = st.one_of(
    st.sampled_from(["node1", "house1", "line1", "r1", "a", "x" * 32]),
    st.text(alphabet="abc019_-+#/A $\x00é", min_size=0, max_size=40),
)
levels = st.lists(
    st.one_of(
        ids, st.sampled_from(["status", "announce", "state", "relay", "set", "reset_energy"])
    ),
    min_size=0,
    max_size=5,
)
topics = st.builds(lambda lv: "/".join(["sem", *lv]), levels)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
state_keys = st.sampled_from(["seq", "ts", "v", "i", "p", "e", "f", "pf", "alarm", "error", "sig"])
state_objects = st.dictionaries(state_keys, json_values, max_size=10)
announce_keys = st.sampled_from(
    ["proto", "node", "name", "model", "fw", "mac", "ip", "interval", "meters", "relays", "pairs"]
)
meter_objects = st.fixed_dictionaries(
    {},
    optional={
        "id": ids,
        "role": st.sampled_from(["line", "house", "x", 3]),
        "pair": ids,
        "addr": json_scalars,
    },
)
announce_objects = st.dictionaries(
    announce_keys,
    st.one_of(json_values, st.lists(meter_objects, max_size=4), st.just("1.0"), st.just("node1")),
    max_size=11,
)


def _dump(obj: Any) -> bytes:
    return json.dumps(obj, allow_nan=True).encode()


payloads = st.one_of(
    st.binary(max_size=300),
    st.builds(_dump, state_objects),
    st.builds(_dump, announce_objects),
    st.sampled_from([b"", b"online", b"offline", b"ON", b"OFF", b"{}", b"null"]),
    st.builds(lambda n: b"{" + b" " * n + b"}", st.integers(4000, 5000)),
)


def _check_accepted(message: p.Message) -> None:
    """Invariants of anything the codec lets through."""
    for name in ("node", "meter", "relay"):
        value = getattr(message, name, None)
        if value is not None:
            assert p.valid_id(value), (name, value)
    if isinstance(message, p.Snapshot):
        for value, (low, high) in (
            (message.voltage, p.VOLTAGE_RANGE),
            (message.current, p.CURRENT_RANGE),
            (message.power, p.POWER_RANGE),
            (message.frequency, p.FREQUENCY_RANGE),
            (message.power_factor, p.PF_RANGE),
        ):
            assert math.isfinite(value)
            assert low <= value <= high
        assert math.isfinite(message.energy)
        assert p.ENERGY_RANGE[0] <= message.energy <= p.ENERGY_RANGE[1]
        for value in (message.voltage, message.current, message.power, message.energy):
            assert math.copysign(1.0, value) == 1.0  # never a -0 to show
    if isinstance(message, p.Announce):
        assert all(p.valid_id(m.pair) for m in message.meters)
        assert math.isfinite(message.interval)


@FUZZ
@given(topic=topics, payload=payloads, retained=st.booleans())
def test_decode_never_raises(topic: str, payload: bytes, retained: bool) -> None:
    result = p.decode("sem", topic, payload, retained=retained)
    if isinstance(result, p.Rejected):
        assert result.reason
        return
    _check_accepted(result)
    assert len(payload) <= p.MAX_PAYLOAD_BYTES
    if retained:
        assert not isinstance(result, p.RelayCommand | p.ResetEnergyCommand)


@FUZZ
@given(obj=state_objects)
def test_state_objects(obj: dict[str, Any]) -> None:
    result = p.decode_state("n1", "m1", _dump(obj))
    if not isinstance(result, p.Rejected):
        _check_accepted(result)


@FUZZ
@given(obj=announce_objects)
def test_announce_objects(obj: dict[str, Any]) -> None:
    result = p.decode_announce("node1", _dump(obj))
    if not isinstance(result, p.Rejected):
        _check_accepted(result)


VALID_STATE = {
    "seq": 1,
    "ts": 1.0,
    "v": 230.0,
    "i": 1.0,
    "p": 230.0,
    "e": 5.0,
    "f": 50.0,
    "pf": 1.0,
}


@FUZZ
@given(key=state_keys, value=json_values)
def test_one_field_mutations_of_a_valid_state(key: str, value: Any) -> None:
    """Most mutations stay close to valid, so both outcomes are exercised."""
    obj = dict(VALID_STATE, **{key: value})
    result = p.decode_state("n1", "m1", _dump(obj))
    if isinstance(result, p.Rejected):
        assert key in result.reason or key in {"error", "sig"} or "JSON" in result.reason
    else:
        _check_accepted(result)
        if key in {"v", "i", "p", "e", "f", "pf"} and isinstance(result, p.Snapshot):
            # An accepted reading is exactly the number that was sent.
            assert float(value) in {
                result.voltage,
                result.current,
                result.power,
                result.energy,
                result.frequency,
                result.power_factor,
            }


# The JSON number grammar at its edges, written as text: huge integers and exponents, -0,
# subnormals, fractions and exponents together, and the literals that are no numbers.
digits = st.text(alphabet="0123456789", min_size=1, max_size=500)
number_texts = st.one_of(
    st.builds(lambda sign, d: sign + (d.lstrip("0") or "0"), st.sampled_from(["", "-"]), digits),
    st.builds(
        "{}{}.{}e{}{}".format,
        st.sampled_from(["", "-"]),
        st.integers(0, 999),
        st.integers(0, 10**6),
        st.sampled_from(["", "+", "-"]),
        st.integers(0, 999),
    ),
    st.sampled_from(
        [
            "-0",
            "-0.0",
            "0e0",
            "-0e-999",
            "5e-324",
            "2.2250738585072014e-308",
            "1e308",
            "1.7976931348623157e308",
            "1e309",
            "true",
            "false",
            "null",
            "NaN",
            "-Infinity",
            "9999999.999",
            "10000000",
            "10000000.0000001",
        ]
    ),
)
numeric_keys = st.sampled_from(["seq", "ts", "v", "i", "p", "e", "f", "pf"])


@FUZZ
@given(key=numeric_keys, text=number_texts)
def test_the_number_grammar_in_every_numeric_field(key: str, text: str) -> None:
    """Every outcome is a reading inside its ranges or a one-line reason naming the field;
    never an exception (a 400-digit integer once raised OverflowError)."""
    members = ",".join(
        f'"{k}":{text if k == key else json.dumps(v)}' for k, v in VALID_STATE.items()
    )
    result = p.decode_state("n1", "m1", ("{" + members + "}").encode())
    if isinstance(result, p.Rejected):
        assert key in result.reason or "JSON" in result.reason, (text, result.reason)
        assert "\n" not in result.reason
        return
    assert isinstance(result, p.Snapshot)
    _check_accepted(result)


def test_huge_integers_are_rejected_with_a_reason() -> None:
    payload = _dump(dict(VALID_STATE, e=10**400))
    result = p.decode_state("n1", "m1", payload)
    assert result == p.Rejected("'e' is too large")


def test_minus_zero_is_zero() -> None:
    result = p.decode_state("n1", "m1", _dump(dict(VALID_STATE, p=-0.0, e=-0.0)))
    assert isinstance(result, p.Snapshot)
    assert math.copysign(1.0, result.power) == math.copysign(1.0, result.energy) == 1.0
