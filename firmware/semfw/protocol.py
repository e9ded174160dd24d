"""Protocol v1 on the node side: topics, ids and payloads exactly as docs/protocol.md specifies.

Numbers are written from the PZEM's integer units with fixed decimals, never through a float, so
the payload is the same on an ESP32 (single-precision floats) as on a host.
"""

import hashlib
import json

VERSION = "1.2"
DEFAULT_PREFIX = "sem"
MAX_PAYLOAD = 4096
OUT_OF_RANGE = "out_of_range"  # 1.2: a CRC-valid reply with a value no PZEM can measure
ERRORS = ("timeout", "crc", "exception", "no_response", OUT_OF_RANGE)
MAX_DETAIL = 64
PAPER_QUANTITIES = ("vac", "iac", "pac", "energy", "pf")
_ID_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_-"
_HEX = "0123456789abcdef"


def valid_id(value):
    """Node, meter, relay and pair ids: `[a-z0-9_-]`, 1-32 characters."""
    if not isinstance(value, str) or not 1 <= len(value) <= 32:
        return False
    for char in value:
        if char not in _ID_CHARS:
            return False
    return True


def valid_prefix(value):
    """A topic prefix: 1-4 id-like levels separated by `/`."""
    if not isinstance(value, str):
        return False
    levels = value.split("/")
    if not 1 <= len(levels) <= 4:
        return False
    for level in levels:
        if not valid_id(level):
            return False
    return True


def valid_mac(value):
    """Lower-case `aa:bb:cc:dd:ee:ff`."""
    if not isinstance(value, str) or len(value) != 17:
        return False
    for index, char in enumerate(value):
        if index % 3 == 2:
            if char != ":":
                return False
        elif char not in _HEX:
            return False
    return True


def mac_text(raw):
    """Six MAC bytes as `aa:bb:cc:dd:ee:ff`."""
    return ":".join("%02x" % b for b in raw)


def default_node_id(raw_mac):
    """`sem-` and the last six hex digits of the MAC."""
    return "sem-" + "".join("%02x" % b for b in raw_mac[-3:])


# --- topics ------------------------------------------------------------------------------------


def status_topic(prefix, node):
    return prefix + "/" + node + "/status"


def announce_topic(prefix, node):
    return prefix + "/" + node + "/announce"


def state_topic(prefix, node, meter):
    return prefix + "/" + node + "/" + meter + "/state"


def reset_energy_topic(prefix, node, meter):
    return prefix + "/" + node + "/" + meter + "/reset_energy"


def reset_result_topic(prefix, node, meter):
    return prefix + "/" + node + "/" + meter + "/reset_energy/result"


def relay_set_topic(prefix, node, relay):
    return prefix + "/" + node + "/relay/" + relay + "/set"


def relay_state_topic(prefix, node, relay):
    return prefix + "/" + node + "/relay/" + relay + "/state"


def paper_topic(prefix, node, meter, quantity):
    return prefix + "/" + node + "/" + meter + "/" + quantity


# --- numbers -----------------------------------------------------------------------------------


def decimal(value, places):
    """An integer count of 10**-places units as a JSON number: decimal(2257, 1) == "225.7".

    Trailing zeros are dropped down to one decimal, so 100 with 2 places is "1.0".
    """
    if places == 0:
        return str(value)
    sign = "-" if value < 0 else ""
    value = abs(value)
    scale = 10**places
    fraction = str(value % scale)
    fraction = "0" * (places - len(fraction)) + fraction
    fraction = fraction.rstrip("0") or "0"
    return sign + str(value // scale) + "." + fraction


def timestamp(unix_ms):
    """Unix time in ms as a JSON number of seconds: 1764072000500 -> "1764072000.5"."""
    if unix_ms % 1000 == 0:
        return str(unix_ms // 1000)
    return decimal(unix_ms, 3)


def _string(value):
    return json.dumps(value)


def _object(members):
    """A JSON object from (key, already-encoded value) pairs, in that order."""
    return "{" + ",".join(_string(key) + ":" + text for key, text in members) + "}"


def _bool(value):
    return "true" if value else "false"


# --- payloads ----------------------------------------------------------------------------------


def _head(seq, unix_ms, boot):
    """`seq`, the boot counter when the node counts its boots, and `ts`."""
    if boot is None:
        return (("seq", str(seq)), ("ts", timestamp(unix_ms)))
    return (("seq", str(seq)), ("boot", str(boot)), ("ts", timestamp(unix_ms)))


def state_payload(seq, unix_ms, reading, boot=None):
    """A `state` snapshot of one PZEM read."""
    return _object(
        _head(seq, unix_ms, boot)
        + (
            ("v", decimal(reading.voltage_dv, 1)),
            ("i", decimal(reading.current_ma, 3)),
            ("p", decimal(reading.power_dw, 1)),
            ("e", str(reading.energy_wh)),
            ("f", decimal(reading.frequency_dhz, 1)),
            ("pf", decimal(reading.pf_c, 2)),
            ("alarm", _bool(reading.alarm)),
        )
    ).encode()


def error_payload(seq, unix_ms, error, boot=None, detail=None):
    """The `state` error form: an explicit error, optionally what exactly (1.2), no readings."""
    if error not in ERRORS:
        raise ValueError("unknown sensor error %r" % (error,))
    members = _head(seq, unix_ms, boot) + (("error", _string(error)),)
    if detail:
        members += (("detail", _string(detail[:MAX_DETAIL])),)
    return _object(members).encode()


def reset_result_payload(error=None, detail=None):
    """The reply to `reset_energy` (1.2): done, or the error the PZEM answered with."""
    if error is None:
        return b'{"ok":true}'
    if error not in ERRORS:
        raise ValueError("unknown sensor error %r" % (error,))
    members = (("ok", "false"), ("error", _string(error)))
    if detail:
        members += (("detail", _string(detail[:MAX_DETAIL])),)
    return _object(members).encode()


def paper_values(reading):
    """The paper's per-value topics of one reading, as (quantity, plain number) pairs."""
    return (
        ("vac", decimal(reading.voltage_dv, 1)),
        ("iac", decimal(reading.current_ma, 3)),
        ("pac", decimal(reading.power_dw, 1)),
        ("energy", str(reading.energy_wh)),
        ("pf", decimal(reading.pf_c, 2)),
    )


def interval_text(interval_ms):
    """The announced interval in seconds."""
    return decimal(interval_ms, 3)


def announce_payload(
    node,
    name,
    model,
    firmware,
    mac,
    ip,
    interval_ms,
    meters,
    relays,
    pairs,
    paper_topics,
    extra=(),
):
    """The retained `announce`.

    meters: (id, role, pair, addr or None) tuples; relays: (id, pair) tuples; pairs: a list of
    (label, display name) in the order to publish them; extra: (key, encoded value) members
    appended at the end (the update capability, semfw.update).
    """
    meter_items = []
    for meter_id, role, pair, address in meters:
        members = [("id", _string(meter_id)), ("role", _string(role)), ("pair", _string(pair))]
        if address is not None:
            members.append(("addr", str(address)))
        meter_items.append(_object(members))
    relay_items = [_object((("id", _string(rid)), ("pair", _string(pair)))) for rid, pair in relays]
    members = [
        ("proto", _string(VERSION)),
        ("node", _string(node)),
        ("name", _string(name)),
        ("model", _string(model)),
        ("fw", _string(firmware)),
    ]
    if mac:
        members.append(("mac", _string(mac)))
    if ip:
        members.append(("ip", _string(ip)))
    members += [
        ("interval", interval_text(interval_ms)),
        ("meters", "[" + ",".join(meter_items) + "]"),
        ("relays", "[" + ",".join(relay_items) + "]"),
    ]
    if pairs:
        members.append(("pairs", _object([(label, _string(text)) for label, text in pairs])))
    members.append(("paper_topics", _bool(paper_topics)))
    members += extra
    return _object(members).encode()


def relay_payload(on):
    return b"ON" if on else b"OFF"


def parse_relay_command(payload):
    """True for ON, False for OFF, None for anything else."""
    if payload == b"ON":
        return True
    if payload == b"OFF":
        return False
    return None


# --- signing -----------------------------------------------------------------------------------


def hmac_sha256(key, message):
    """HMAC-SHA256 (RFC 2104); MicroPython has hashlib.sha256 but no hmac module."""
    block = 64
    if len(key) > block:
        key = hashlib.sha256(key).digest()
    key = key + b"\x00" * (block - len(key))
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key) + message).digest()
    return hashlib.sha256(bytes(b ^ 0x5C for b in key) + inner).digest()


def hex_text(raw):
    return "".join("%02x" % b for b in raw)


def sign(key, topic, payload):
    """Append `"sig"` as the last member: HMAC-SHA256(key, topic + "\\n" + payload), hex."""
    digest = hmac_sha256(key, topic.encode() + b"\n" + payload)
    return payload[:-1] + b',"sig":"' + hex_text(digest).encode() + b'"}'


# --- dropped readings (1.2) --------------------------------------------------------------------


def with_dropped(payload, dropped):
    """A `state` payload with `"dropped"`: the meter's readings since boot that never went out."""
    return payload[:-1] + b',"dropped":' + str(dropped).encode() + b"}"
