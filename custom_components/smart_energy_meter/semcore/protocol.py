"""Protocol v1 codec: topics and payloads between meter nodes and the integration.

Pure Python, no Home Assistant import. Every decode returns either a typed message or a
`Rejected` carrying a reason; nothing here raises on bad input. `docs/protocol.md` is the
specification this module implements.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

PROTOCOL_MAJOR: Final = 1
PROTOCOL_VERSION: Final = "1.2"
DEFAULT_PREFIX: Final = "sem"
MAX_PAYLOAD_BYTES: Final = 4096
MAX_METERS: Final = 16
MAX_RELAYS: Final = 16
# Readings per meter a receiver remembers to recognise a copy: a node sends again what the
# broker did not acknowledge (QoS 1 is at least once); the firmware has at most 4 in flight.
RECENT_READINGS: Final = 4

_ID_RE: Final = re.compile(r"[a-z0-9_-]{1,32}")
_PREFIX_RE: Final = re.compile(r"[a-z0-9_-]{1,32}(/[a-z0-9_-]{1,32}){0,3}")
_MAC_RE: Final = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
_SIG_RE: Final = re.compile(r"[0-9a-f]{64}")

# Physical ranges a PZEM-004T v3 (100 A) can report; anything outside is a corrupt reading.
VOLTAGE_RANGE: Final = (0.0, 300.0)
CURRENT_RANGE: Final = (0.0, 100.0)
POWER_RANGE: Final = (0.0, 25_000.0)
PF_RANGE: Final = (0.0, 1.0)
FREQUENCY_RANGE: Final = (45.0, 65.0)
INTERVAL_RANGE: Final = (0.2, 3600.0)
# The PZEM-004T's energy register counts Wh up to 9,999.99 kWh and then starts again at 0.
ENERGY_WRAP_WH: Final = 10_000_000.0
ENERGY_RANGE: Final = (0.0, ENERGY_WRAP_WH)

PAPER_TOPICS: Final = ("vac", "iac", "pac", "energy", "pf")
# `out_of_range` (1.2): the PZEM answered with a value none can measure (a corrupt register).
SENSOR_ERRORS: Final = frozenset({"timeout", "crc", "exception", "no_response", "out_of_range"})
# What exactly went wrong, as the node words it (1.2, optional).
MAX_DETAIL: Final = 64
# The energy balance's statuses a service verdict can carry (semcore.debounce.Status).
VERDICT_STATUSES: Final = frozenset(
    {"ok", "theft", "meter_fault", "tamper_suspected", "not_evaluable", "evaluating"}
)


class Role(StrEnum):
    """Where a meter sits: on the feeder before the house, or the house's own meter."""

    LINE = "line"
    HOUSE = "house"


class NodeStatus(StrEnum):
    """Payload of the retained `status` topic (also the MQTT last will)."""

    ONLINE = "online"
    OFFLINE = "offline"


class RelayState(StrEnum):
    """Relay command and state payloads."""

    ON = "ON"
    OFF = "OFF"


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message that was refused, and why."""

    reason: str


@dataclass(frozen=True, slots=True)
class MeterInfo:
    """One PZEM on a node, as announced."""

    id: str
    role: Role
    pair: str
    address: int | None = None


@dataclass(frozen=True, slots=True)
class RelayInfo:
    """One relay on a node, as announced."""

    id: str
    pair: str


@dataclass(frozen=True, slots=True)
class Announce:
    """A node's retained self-description."""

    node: str
    version: str
    name: str
    model: str
    firmware: str
    mac: str | None
    interval: float
    meters: tuple[MeterInfo, ...]
    relays: tuple[RelayInfo, ...] = ()
    pair_names: dict[str, str] = field(default_factory=dict)
    ip: str | None = None
    paper_topics: bool = False
    # Protocol 1.2, firmware updates: the interpreter, its .mpy format, the update protocol.
    interpreter: str | None = None
    mpy: str | None = None
    update: int | None = None


@dataclass(frozen=True, slots=True)
class NodeGone:
    """An empty retained announce: the node was removed."""

    node: str


@dataclass(frozen=True, slots=True)
class StatusMessage:
    """The node's online/offline status."""

    node: str
    status: NodeStatus


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One successful PZEM read."""

    node: str
    meter: str
    seq: int
    ts: float
    voltage: float
    current: float
    power: float
    energy: float
    frequency: float
    power_factor: float
    alarm: bool
    signature: str | None = None
    boot: int | None = None  # the node's boot counter, when it sends one (protocol 1.1)
    dropped: int | None = None  # the meter's readings the node dropped since boot (1.2)


@dataclass(frozen=True, slots=True)
class SensorError:
    """A PZEM that did not answer, or answered what no PZEM can measure: an explicit error,
    never zeros."""

    node: str
    meter: str
    seq: int
    ts: float
    error: str
    signature: str | None = None
    boot: int | None = None
    detail: str | None = None  # the node's words for what went wrong (1.2)
    dropped: int | None = None  # the meter's readings the node dropped since boot (1.2)


@dataclass(frozen=True, slots=True)
class PaperValue:
    """One of the paper's per-value topics (`vac`, `iac`, `pac`, `energy`, `pf`)."""

    base: str
    quantity: str
    value: float


@dataclass(frozen=True, slots=True)
class RelayStateMessage:
    """A relay's confirmed state, read back from the pin by the node."""

    node: str
    relay: str
    state: RelayState


@dataclass(frozen=True, slots=True)
class RelayCommand:
    """A relay `set` command (never retained)."""

    node: str
    relay: str
    state: RelayState


@dataclass(frozen=True, slots=True)
class ResetEnergyCommand:
    """A `reset_energy` command for one meter (never retained)."""

    node: str
    meter: str


@dataclass(frozen=True, slots=True)
class ResetResult:
    """The node's reply to `reset_energy` (1.2): done, or the error the PZEM answered with."""

    node: str
    meter: str
    ok: bool
    error: str | None = None
    detail: str | None = None


class VerdictEvent(StrEnum):
    """What a service verdict says happened to the pair's theft alarm."""

    DETECTED = "detected"
    CLEARED = "cleared"


@dataclass(frozen=True, slots=True)
class ServiceVerdict:
    """The fleet service's current verdict on one pair (1.2, retained): its last change."""

    node: str
    pair: str  # the pair label; the payload's `pair` is `<node>/<pair>`
    id: str
    name: str
    event: VerdictEvent
    status: str  # one of VERDICT_STATUSES
    at: float  # Unix seconds the deciding reading was stored
    since: float | None  # when the theft going on was detected
    mismatch_pct: float | None
    line_power_w: float | None
    house_power_w: float | None
    unaccounted_wh: float


@dataclass(frozen=True, slots=True)
class VerdictWithdrawn:
    """An empty retained verdict: the service no longer judges the pair."""

    node: str
    pair: str


type Message = (
    Announce
    | NodeGone
    | StatusMessage
    | Snapshot
    | SensorError
    | RelayStateMessage
    | RelayCommand
    | ResetEnergyCommand
    | ResetResult
    | ServiceVerdict
    | VerdictWithdrawn
)


def valid_id(value: object) -> bool:
    """Return True for a node, meter, relay or pair id: `[a-z0-9_-]`, 1-32 characters."""
    return isinstance(value, str) and _ID_RE.fullmatch(value) is not None


def valid_prefix(value: object) -> bool:
    """Return True for a topic prefix: 1-4 id-like levels separated by `/`."""
    return isinstance(value, str) and _PREFIX_RE.fullmatch(value) is not None


def valid_topic_base(value: object) -> bool:
    """Return True for a user-given topic base of a paper-topics device (no wildcards)."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= 200
        and not any(c in value for c in "+#\x00")
        and not value.startswith("/")
        and not value.endswith("/")
        and "//" not in value
    )


# --- topics -------------------------------------------------------------------------------


def status_topic(prefix: str, node: str) -> str:
    """Topic of a node's retained online/offline status."""
    return f"{prefix}/{node}/status"


def announce_topic(prefix: str, node: str) -> str:
    """Topic of a node's retained announce."""
    return f"{prefix}/{node}/announce"


def state_topic(prefix: str, node: str, meter: str) -> str:
    """Topic of one meter's snapshots."""
    return f"{prefix}/{node}/{meter}/state"


def reset_energy_topic(prefix: str, node: str, meter: str) -> str:
    """Topic of one meter's energy-reset command."""
    return f"{prefix}/{node}/{meter}/reset_energy"


def reset_result_topic(prefix: str, node: str, meter: str) -> str:
    """Topic of the node's reply to one meter's energy reset (1.2)."""
    return f"{prefix}/{node}/{meter}/reset_energy/result"


def relay_set_topic(prefix: str, node: str, relay: str) -> str:
    """Topic of a relay command."""
    return f"{prefix}/{node}/relay/{relay}/set"


def relay_state_topic(prefix: str, node: str, relay: str) -> str:
    """Topic of a relay's retained confirmed state."""
    return f"{prefix}/{node}/relay/{relay}/state"


def verdict_topic(prefix: str, node: str, pair: str) -> str:
    """Topic of the fleet service's retained verdict on one pair (1.2)."""
    return f"{prefix}/{node}/{pair}/verdict"


def paper_topic(base: str, quantity: str) -> str:
    """Topic of one of the paper's per-value readings under a base."""
    return f"{base}/{quantity}"


def subscriptions(prefix: str) -> tuple[str, ...]:
    """Topic filters the integration subscribes to for a prefix."""
    return (
        f"{prefix}/+/status",
        f"{prefix}/+/announce",
        f"{prefix}/+/+/state",
        f"{prefix}/+/relay/+/state",
        f"{prefix}/+/+/reset_energy/result",
        f"{prefix}/+/+/verdict",
    )


# --- decoding ------------------------------------------------------------------------------


def _number(obj: dict[str, Any], key: str, bounds: tuple[float, float] | None) -> float | str:
    """Return a finite number within bounds, or a reason string."""
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"'{key}' is not a number"
    try:
        number = float(value) + 0.0  # + 0.0: -0 is 0
    except OverflowError:  # an integer of hundreds of digits
        return f"'{key}' is too large"
    if not math.isfinite(number):
        return f"'{key}' is not finite"
    if bounds is not None and not bounds[0] <= number <= bounds[1]:
        return f"'{key}'={number:g} is outside {bounds[0]:g}..{bounds[1]:g}"
    if bounds is None and number < 0:
        return f"'{key}'={number:g} is negative"
    return number


def _seq_ts(obj: dict[str, Any]) -> tuple[int, float] | str:
    seq = obj.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < 2**53:
        return "'seq' is not a non-negative integer"
    ts = _number(obj, "ts", None)
    if isinstance(ts, str):
        return ts
    return seq, ts


def _boot(obj: dict[str, Any]) -> int | Rejected | None:
    boot = obj.get("boot")
    if boot is None:
        return None
    if isinstance(boot, bool) or not isinstance(boot, int) or not 0 <= boot < 2**53:
        return Rejected("'boot' is not a non-negative integer")
    return boot


def _signature(obj: dict[str, Any]) -> str | Rejected | None:
    sig = obj.get("sig")
    if sig is None:
        return None
    if not isinstance(sig, str) or _SIG_RE.fullmatch(sig) is None:
        return Rejected("'sig' is not 64 lowercase hex digits")
    return sig


def _json_object(payload: bytes) -> dict[str, Any] | Rejected:
    if len(payload) > MAX_PAYLOAD_BYTES:
        return Rejected(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    try:
        # What json.loads does with bytes, with one decoder for every payload: given an option,
        # json.loads builds a new decoder on each call.
        text = payload.decode(json.detect_encoding(payload), "surrogatepass")
        obj = _DECODER.decode(text)
    except ValueError as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return Rejected(f"invalid JSON: {err}")
    if not isinstance(obj, dict):
        return Rejected("payload is not a JSON object")
    return obj


def _reject_constant(name: str) -> Any:
    # NaN/Infinity are not JSON; Python would otherwise accept them.
    raise ValueError(f"{name} is not allowed")


_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant)


def decode_state(node: str, meter: str, payload: bytes) -> Snapshot | SensorError | Rejected:
    """Decode a meter `state` payload."""
    obj = _json_object(payload)
    if isinstance(obj, Rejected):
        return obj
    seq_ts = _seq_ts(obj)
    if isinstance(seq_ts, str):
        return Rejected(seq_ts)
    sig = _signature(obj)
    if isinstance(sig, Rejected):
        return sig
    boot = _boot(obj)
    if isinstance(boot, Rejected):
        return boot
    seq, ts = seq_ts
    if "error" in obj:
        error = obj["error"]
        if not isinstance(error, str) or error not in SENSOR_ERRORS:
            return Rejected(f"unknown sensor error {error!r:.40}")
        return SensorError(node, meter, seq, ts, error, sig, boot, _detail(obj), _dropped(obj))
    values: list[float] = []
    for key, bounds in (
        ("v", VOLTAGE_RANGE),
        ("i", CURRENT_RANGE),
        ("p", POWER_RANGE),
        ("e", ENERGY_RANGE),
        ("f", FREQUENCY_RANGE),
        ("pf", PF_RANGE),
    ):
        number = _number(obj, key, bounds)
        if isinstance(number, str):
            return Rejected(number)
        values.append(number)
    alarm = obj.get("alarm", False)
    if not isinstance(alarm, bool):
        return Rejected("'alarm' is not a boolean")
    voltage, current, power, energy, frequency, power_factor = values
    return Snapshot(
        node,
        meter,
        seq,
        ts,
        voltage,
        current,
        power,
        energy,
        frequency,
        power_factor,
        alarm,
        sig,
        boot,
        _dropped(obj),
    )


def _dropped(obj: dict[str, Any]) -> int | None:
    dropped = obj.get("dropped")
    # Only informative, like `detail`: the reading holds without it.
    if isinstance(dropped, bool) or not isinstance(dropped, int) or not 0 <= dropped < 2**53:
        return None
    return dropped


def _detail(obj: dict[str, Any]) -> str | None:
    detail = obj.get("detail")
    # Optional and only informative: the message holds without it.
    return detail if isinstance(detail, str) and 0 < len(detail) <= MAX_DETAIL else None


def decode_reset_result(node: str, meter: str, payload: bytes) -> ResetResult | Rejected:
    """Decode a node's reply to `reset_energy`."""
    obj = _json_object(payload)
    if isinstance(obj, Rejected):
        return obj
    ok = obj.get("ok")
    if not isinstance(ok, bool):
        return Rejected("'ok' is not a boolean")
    if ok:
        return ResetResult(node, meter, True)
    error = obj.get("error")
    if not isinstance(error, str) or error not in SENSOR_ERRORS:
        return Rejected(f"unknown reset error {error!r:.40}")
    return ResetResult(node, meter, False, error, _detail(obj))


def decode_verdict(node: str, pair: str, payload: bytes) -> ServiceVerdict | Rejected:
    """Decode the fleet service's verdict on `<node>/<pair>` (1.2)."""
    obj = _json_object(payload)
    if isinstance(obj, Rejected):
        return obj
    key = f"{node}/{pair}"
    if obj.get("pair") != key:
        return Rejected(f"verdict 'pair' {obj.get('pair')!r:.80} does not match topic {key!r}")
    event_name = obj.get("event")
    if not isinstance(event_name, str) or event_name not in VerdictEvent:
        return Rejected(f"unknown verdict event {event_name!r:.40}")
    event = VerdictEvent(event_name)
    status = obj.get("status")
    if not isinstance(status, str) or status not in VERDICT_STATUSES:
        return Rejected(f"unknown verdict status {status!r:.40}")
    if (event is VerdictEvent.DETECTED) != (status == "theft"):
        return Rejected(f"verdict {event.value} with status {status}")
    verdict_id = obj.get("id")
    kind = "theft" if event is VerdictEvent.DETECTED else "clear"
    # Ids are `<node>/<pair>/theft/<n>` for the pair's n-th alarm, `…/clear/<n>` for its end.
    if not isinstance(verdict_id, str) or not re.fullmatch(
        rf"{re.escape(key)}/{kind}/[1-9][0-9]{{0,15}}", verdict_id
    ):
        return Rejected(f"verdict 'id' {verdict_id!r:.80} is not {key}/{kind}/<n>")
    name = obj.get("name")
    if not isinstance(name, str) or not 0 < len(name) <= 64:
        return Rejected("verdict 'name' is not a string of 1 to 64 characters")
    required: list[float] = []
    for key in ("at", "unaccounted_wh"):
        number = _number(obj, key, None)
        if isinstance(number, str):
            return Rejected(number)
        required.append(number)
    optional: list[float | None] = []
    for key, bounds in (
        ("since", None),
        ("mismatch_pct", (-math.inf, math.inf)),  # negative: the house meter reads more
        ("line_power_w", POWER_RANGE),
        ("house_power_w", POWER_RANGE),
    ):
        value = None if obj.get(key) is None else _number(obj, key, bounds)
        if isinstance(value, str):
            return Rejected(value)
        optional.append(value)
    since, mismatch, line_power, house_power = optional
    return ServiceVerdict(
        node=node,
        pair=pair,
        id=verdict_id,
        name=name,
        event=event,
        status=status,
        at=required[0],
        since=since,
        mismatch_pct=mismatch,
        line_power_w=line_power,
        house_power_w=house_power,
        unaccounted_wh=required[1],
    )


def _check_major(version: object) -> str | None:
    if not isinstance(version, str):
        return "'proto' is missing or not a string"
    major, _, _minor = version.partition(".")
    if not major.isdigit():
        return f"'proto' {version!r} is not a version"
    if int(major) != PROTOCOL_MAJOR:
        return (
            f"protocol major version {major} is not supported (this side speaks {PROTOCOL_MAJOR})"
        )
    return None


def _str_field(obj: dict[str, Any], key: str, default: str, limit: int = 64) -> str | Rejected:
    value = obj.get(key, default)
    if not isinstance(value, str) or len(value) > limit:
        return Rejected(f"'{key}' is not a string of at most {limit} characters")
    return value


def _meters(raw: object) -> tuple[MeterInfo, ...] | Rejected:
    if not isinstance(raw, list) or len(raw) > MAX_METERS:
        return Rejected(f"'meters' is not a list of at most {MAX_METERS}")
    meters: list[MeterInfo] = []
    for item in raw:
        if not isinstance(item, dict):
            return Rejected("a meter is not an object")
        if not valid_id(item.get("id")) or not valid_id(item.get("pair")):
            return Rejected(f"meter id or pair label invalid in {item!r:.80}")
        try:
            role = Role(str(item.get("role")))
        except ValueError:
            return Rejected(f"meter role {item.get('role')!r:.40} is not line or house")
        address = item.get("addr")
        if address is not None and (
            isinstance(address, bool) or not isinstance(address, int) or not 1 <= address <= 247
        ):
            return Rejected("meter 'addr' is not a Modbus address 1..247")
        meters.append(MeterInfo(item["id"], role, item["pair"], address))
    if len({m.id for m in meters}) != len(meters):
        return Rejected("duplicate meter id")
    if len({(m.pair, m.role) for m in meters}) != len(meters):
        return Rejected("two meters share a pair label and role")
    return tuple(meters)


def _relays(raw: object) -> tuple[RelayInfo, ...] | Rejected:
    if not isinstance(raw, list) or len(raw) > MAX_RELAYS:
        return Rejected(f"'relays' is not a list of at most {MAX_RELAYS}")
    relays: list[RelayInfo] = []
    for item in raw:
        if not isinstance(item, dict) or not valid_id(item.get("id")):
            return Rejected(f"relay id invalid in {item!r:.80}")
        if not valid_id(item.get("pair")):
            return Rejected(f"relay pair label invalid in {item!r:.80}")
        relays.append(RelayInfo(item["id"], item["pair"]))
    if len({r.id for r in relays}) != len(relays):
        return Rejected("duplicate relay id")
    return tuple(relays)


def _pair_names(raw: object) -> dict[str, str] | Rejected:
    if not isinstance(raw, dict):
        return Rejected("'pairs' is not an object")
    for label, name in raw.items():
        if not valid_id(label) or not isinstance(name, str) or not 0 < len(name) <= 64:
            return Rejected(f"pair name invalid for {label!r:.40}")
    return dict(raw)


def decode_announce(node: str, payload: bytes) -> Announce | NodeGone | Rejected:
    """Decode a node's `announce` payload; empty means the node is gone."""
    if not payload:
        return NodeGone(node)
    obj = _json_object(payload)
    if isinstance(obj, Rejected):
        return obj
    if reason := _check_major(obj.get("proto")):
        return Rejected(reason)
    if obj.get("node") != node:
        return Rejected(f"announce 'node' {obj.get('node')!r:.40} does not match topic {node!r}")
    strings: list[str] = []
    for key in ("name", "model", "fw"):
        value = _str_field(obj, key, node if key == "name" else "")
        if isinstance(value, Rejected):
            return value
        strings.append(value)
    mac = obj.get("mac")
    if mac is not None and (not isinstance(mac, str) or _MAC_RE.fullmatch(mac) is None):
        return Rejected("'mac' is not aa:bb:cc:dd:ee:ff")
    ip = _str_field(obj, "ip", "", 45)
    if isinstance(ip, Rejected):
        return ip
    interval = _number(obj, "interval", INTERVAL_RANGE)
    if isinstance(interval, str):
        return Rejected(interval)
    meters = _meters(obj.get("meters"))
    if isinstance(meters, Rejected):
        return meters
    relays = _relays(obj.get("relays", []))
    if isinstance(relays, Rejected):
        return relays
    pair_names = _pair_names(obj.get("pairs", {}))
    if isinstance(pair_names, Rejected):
        return pair_names
    paper = obj.get("paper_topics", False)
    if not isinstance(paper, bool):
        return Rejected("'paper_topics' is not a boolean")
    updates = _update_fields(obj)
    if isinstance(updates, Rejected):
        return updates
    name, model, firmware = strings
    return Announce(
        node=node,
        version=obj["proto"],
        name=name,
        model=model,
        firmware=firmware,
        mac=mac,
        interval=interval,
        meters=meters,
        relays=relays,
        pair_names=pair_names,
        ip=ip or None,
        paper_topics=paper,
        interpreter=updates[0],
        mpy=updates[1],
        update=updates[2],
    )


def _update_fields(obj: dict[str, Any]) -> tuple[str | None, str | None, int | None] | Rejected:
    """`mp`, `mpy` and `update` of a 1.2 announce, each optional."""
    interpreter = obj.get("mp")
    if interpreter is not None and (not isinstance(interpreter, str) or len(interpreter) > 32):
        return Rejected("'mp' is not a version text")
    mpy = obj.get("mpy")
    if mpy is not None and (not isinstance(mpy, str) or not 0 < len(mpy) <= 8):
        return Rejected("'mpy' is not a format version text")
    update = obj.get("update")
    if update is not None and (
        not isinstance(update, int) or isinstance(update, bool) or not 1 <= update <= 99
    ):
        return Rejected("'update' is not a protocol number")
    return interpreter, mpy, update


def decode_status(node: str, payload: bytes) -> StatusMessage | Rejected:
    """Decode a node's `status` payload."""
    try:
        return StatusMessage(node, NodeStatus(payload.decode("ascii")))
    except UnicodeDecodeError, ValueError:
        return Rejected(f"status {payload[:20]!r} is not online/offline")


def decode_relay(payload: bytes) -> RelayState | Rejected:
    """Decode a relay `set` or `state` payload."""
    try:
        return RelayState(payload.decode("ascii"))
    except UnicodeDecodeError, ValueError:
        return Rejected(f"relay payload {payload[:20]!r} is not ON/OFF")


def decode_paper_value(base: str, quantity: str, payload: bytes) -> PaperValue | Rejected:
    """Decode one of the paper's plain-number topics under a known base."""
    if quantity not in PAPER_TOPICS:
        return Rejected(f"{quantity!r} is not one of {', '.join(PAPER_TOPICS)}")
    if len(payload) > 32:
        return Rejected("paper value longer than 32 bytes")
    try:
        value = float(payload.decode("ascii").strip())
    except UnicodeDecodeError, ValueError:
        return Rejected(f"paper value {payload[:32]!r} is not a number")
    bounds = {
        "vac": VOLTAGE_RANGE,
        "iac": CURRENT_RANGE,
        "pac": POWER_RANGE,
        "pf": PF_RANGE,
        "energy": ENERGY_RANGE,
    }[quantity]
    number = _number({quantity: value}, quantity, bounds)
    if isinstance(number, str):
        return Rejected(number)
    return PaperValue(base, quantity, number)


def decode(
    prefix: str, topic: str, payload: bytes, *, retained: bool = False
) -> Message | Rejected:
    """Decode any protocol v1 message published under `prefix`.

    Commands that arrive retained are refused: a command must never replay on reconnect.
    """
    if len(payload) > MAX_PAYLOAD_BYTES:
        return Rejected(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    if not topic.startswith(prefix + "/"):
        return Rejected(f"topic {topic[:80]!r} is not under prefix {prefix!r}")
    levels = topic[len(prefix) + 1 :].split("/")
    node = levels[0]
    if not valid_id(node):
        return Rejected(f"node id {node[:40]!r} is invalid")
    match levels[1:]:
        case ["status"]:
            return decode_status(node, payload)
        case ["announce"]:
            return decode_announce(node, payload)
        case ["relay", relay, kind] if kind in ("set", "state"):
            if not valid_id(relay):
                return Rejected(f"relay id {relay[:40]!r} is invalid")
            if kind == "set" and retained:
                return Rejected("retained relay command ignored")
            state = decode_relay(payload)
            if isinstance(state, Rejected):
                return state
            if kind == "set":
                return RelayCommand(node, relay, state)
            return RelayStateMessage(node, relay, state)
        case [meter, "state"]:
            if not valid_id(meter):
                return Rejected(f"meter id {meter[:40]!r} is invalid")
            return decode_state(node, meter, payload)
        case [meter, "reset_energy"]:
            if not valid_id(meter):
                return Rejected(f"meter id {meter[:40]!r} is invalid")
            if retained:
                return Rejected("retained reset_energy command ignored")
            return ResetEnergyCommand(node, meter)
        case [meter, "reset_energy", "result"]:
            if not valid_id(meter):
                return Rejected(f"meter id {meter[:40]!r} is invalid")
            if retained:
                # The reply to one command: a retained one is an old reply, not this one's.
                return Rejected("retained reset result ignored")
            return decode_reset_result(node, meter, payload)
        case [pair, "verdict"]:
            if not valid_id(pair):
                return Rejected(f"pair label {pair[:40]!r} is invalid")
            if not payload:
                # How a retained message is removed from the broker.
                return VerdictWithdrawn(node, pair)
            return decode_verdict(node, pair, payload)
    return Rejected(f"topic {topic[:80]!r} is not a protocol v1 topic")


# --- encoding ------------------------------------------------------------------------------


def _dumps(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


def encode_state(snapshot: Snapshot | SensorError) -> bytes:
    """Encode a `state` payload (unsigned)."""
    head: dict[str, Any] = {"seq": snapshot.seq}
    if snapshot.boot is not None:
        head["boot"] = snapshot.boot
    head["ts"] = snapshot.ts
    tail = {} if snapshot.dropped is None else {"dropped": snapshot.dropped}
    if isinstance(snapshot, SensorError):
        error = {"error": snapshot.error}
        if snapshot.detail is not None:
            error["detail"] = snapshot.detail
        return _dumps({**head, **error, **tail})
    return _dumps(
        {
            **head,
            "v": snapshot.voltage,
            "i": snapshot.current,
            "p": snapshot.power,
            "e": snapshot.energy,
            "f": snapshot.frequency,
            "pf": snapshot.power_factor,
            "alarm": snapshot.alarm,
            **tail,
        }
    )


def encode_announce(announce: Announce) -> bytes:
    """Encode an `announce` payload."""
    obj: dict[str, Any] = {
        "proto": announce.version,
        "node": announce.node,
        "name": announce.name,
        "model": announce.model,
        "fw": announce.firmware,
        "interval": announce.interval,
        "meters": [
            {"id": m.id, "role": m.role.value, "pair": m.pair}
            | ({"addr": m.address} if m.address is not None else {})
            for m in announce.meters
        ],
        "relays": [{"id": r.id, "pair": r.pair} for r in announce.relays],
        "paper_topics": announce.paper_topics,
    }
    if announce.mac is not None:
        obj["mac"] = announce.mac
    if announce.ip is not None:
        obj["ip"] = announce.ip
    if announce.pair_names:
        obj["pairs"] = announce.pair_names
    for key, value in (("mp", announce.interpreter), ("mpy", announce.mpy)):
        if value is not None:
            obj[key] = value
    if announce.update is not None:
        obj["update"] = announce.update
    return _dumps(obj)


def encode_reset_result(result: ResetResult) -> bytes:
    """Encode a reply to `reset_energy`."""
    obj: dict[str, Any] = {"ok": result.ok}
    if result.error is not None:
        obj["error"] = result.error
    if result.detail is not None:
        obj["detail"] = result.detail
    return _dumps(obj)


def encode_relay(state: RelayState) -> bytes:
    """Encode a relay `set` or `state` payload."""
    return state.value.encode()


def encode_verdict(verdict: ServiceVerdict) -> bytes:
    """Encode a service verdict, as the fleet service publishes it."""
    return _dumps(
        {
            "id": verdict.id,
            "pair": f"{verdict.node}/{verdict.pair}",
            "name": verdict.name,
            "event": verdict.event.value,
            "status": verdict.status,
            "at": verdict.at,
            "since": verdict.since,
            "mismatch_pct": verdict.mismatch_pct,
            "line_power_w": verdict.line_power_w,
            "house_power_w": verdict.house_power_w,
            "unaccounted_wh": verdict.unaccounted_wh,
        }
    )
