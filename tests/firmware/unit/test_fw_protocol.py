"""The node's protocol v1 encoder: payloads equal to the shared vectors, ids, topics, signing."""

import json

from semfw import protocol
from semfw.pzem import Reading

from tests.firmware.unit.support import announce_from_fields, load_json, raises, repo


def _vector(name):
    return load_json("tests/vectors/" + name + ".json")


def _reading_from(fields):
    return Reading(
        int(round(fields["voltage"] * 10)),
        int(round(fields["current"] * 1000)),
        int(round(fields["power"] * 10)),
        int(fields["energy"]),
        int(round(fields["frequency"] * 10)),
        int(round(fields["power_factor"] * 100)),
        fields["alarm"],
    )


def _ms(ts):
    return int(round(ts * 1000))


def test_state_payload_is_byte_identical_to_the_basic_vector():
    vector = _vector("001_state_basic")
    fields = vector["expect"]["fields"]
    payload = protocol.state_payload(fields["seq"], _ms(fields["ts"]), _reading_from(fields))
    assert payload == vector["payload"].encode()


def test_state_payloads_match_every_snapshot_vector():
    checked = 0
    for name in (
        "001_state_basic",
        "002_state_retained",
        "003_state_ints",
        "005_state_no_alarm",
        "006_state_limits",
    ):
        vector = _vector(name)
        fields = vector["expect"]["fields"]
        payload = protocol.state_payload(fields["seq"], _ms(fields["ts"]), _reading_from(fields))
        ours = json.loads(payload)
        theirs = json.loads(vector["payload"])
        theirs.setdefault("alarm", False)
        assert ours == theirs, name
        checked += 1
    assert checked == 5


def test_error_payloads_match_the_error_vectors():
    for name in ("008_state_error_timeout", "009_state_error_crc"):
        vector = _vector(name)
        fields = vector["expect"]["fields"]
        payload = protocol.error_payload(fields["seq"], _ms(fields["ts"]), fields["error"])
        assert json.loads(payload) == json.loads(vector["payload"]), name


def test_error_payload_refuses_unknown_errors():
    raises(ValueError, protocol.error_payload, 1, 0, "zero")


def test_an_impossible_reading_matches_the_out_of_range_vector():
    vector = _vector("069_state_error_out_of_range")
    fields = vector["expect"]["fields"]
    payload = protocol.error_payload(
        fields["seq"], _ms(fields["ts"]), fields["error"], None, fields["detail"]
    )
    assert payload == vector["payload"].encode()


def test_the_detail_is_cut_to_64_characters():
    obj = json.loads(protocol.error_payload(1, 0, "crc", None, "x" * 100))
    assert obj["detail"] == "x" * 64


def test_reset_results_match_their_vectors():
    for name, error, detail in (
        ("071_reset_result_ok", None, None),
        ("072_reset_result_refused", "exception", "slave error"),
    ):
        vector = _vector(name)
        assert protocol.reset_result_payload(error, detail) == vector["payload"].encode(), name
        assert vector["topic"] == protocol.reset_result_topic("sem", "node1", "house1")
    raises(ValueError, protocol.reset_result_payload, "zero")


def test_announce_payload_matches_the_update_node_vector():
    vector = _vector("076_announce_update")
    payload = announce_from_fields(vector["expect"]["fields"])
    assert json.loads(payload) == json.loads(vector["payload"])


def test_announce_omits_unknown_optional_fields():
    payload = protocol.announce_payload(
        "n1", "n1", "m", "1", None, None, 200, [("a", "line", "p", None)], [], [], False
    )
    obj = json.loads(payload)
    assert "mac" not in obj
    assert "ip" not in obj
    assert "pairs" not in obj
    assert "addr" not in obj["meters"][0]
    assert obj["interval"] == 0.2


def test_announce_escapes_names():
    payload = protocol.announce_payload(
        "n1", 'Pole "7" \\ east', "m", "1", None, None, 1000, [], [], [("house1", "Café")], False
    )
    obj = json.loads(payload)
    assert obj["name"] == 'Pole "7" \\ east'
    assert obj["pairs"]["house1"] == "Café"


def test_relay_payloads_match_the_relay_vectors():
    assert protocol.relay_payload(True) == _vector("015_relay_state_on")["payload"].encode()
    assert protocol.relay_payload(False) == _vector("016_relay_state_off")["payload"].encode()
    assert protocol.parse_relay_command(b"ON") is True
    assert protocol.parse_relay_command(b"OFF") is False
    for junk in (b"on", b"1", b"", b"ON ", b"TOGGLE"):
        assert protocol.parse_relay_command(junk) is None


def test_topics():
    assert protocol.status_topic("sem", "n1") == "sem/n1/status"
    assert protocol.announce_topic("sem", "n1") == "sem/n1/announce"
    assert protocol.state_topic("a/b", "n1", "house1") == "a/b/n1/house1/state"
    assert protocol.reset_energy_topic("sem", "n1", "m") == "sem/n1/m/reset_energy"
    assert protocol.relay_set_topic("sem", "n1", "r1") == "sem/n1/relay/r1/set"
    assert protocol.relay_state_topic("sem", "n1", "r1") == "sem/n1/relay/r1/state"
    assert protocol.paper_topic("sem", "n1", "line1", "vac") == "sem/n1/line1/vac"


def test_ids_follow_the_protocol_rule():
    for good in ("a", "node1", "sem-a1b2c3", "house_1", "x" * 32):
        assert protocol.valid_id(good), good
    for bad in ("", "x" * 33, "Node", "a+b", "a#", "a/b", "a b", "é", None, 7):
        assert not protocol.valid_id(bad), bad


def test_prefixes_follow_the_protocol_rule():
    for good in ("sem", "a/b", "a/b/c/d", "site-1/sem"):
        assert protocol.valid_prefix(good), good
    for bad in ("", "/sem", "sem/", "a//b", "a/b/c/d/e", "Sem", "s+m", None):
        assert not protocol.valid_prefix(bad), bad


def test_mac_and_default_node_id():
    raw = bytes((0x24, 0x6F, 0x28, 0xA1, 0xB2, 0xC3))
    assert protocol.mac_text(raw) == "24:6f:28:a1:b2:c3"
    assert protocol.valid_mac(protocol.mac_text(raw))
    assert not protocol.valid_mac("24:6F:28:A1:B2:C3")
    assert protocol.default_node_id(raw) == "sem-a1b2c3"
    assert protocol.valid_id(protocol.default_node_id(raw))


def test_decimal_and_timestamp_formatting():
    assert protocol.decimal(2257, 1) == "225.7"
    assert protocol.decimal(108, 3) == "0.108"
    assert protocol.decimal(100, 3) == "0.1"
    assert protocol.decimal(100, 2) == "1.0"
    assert protocol.decimal(0, 1) == "0.0"
    assert protocol.decimal(5, 2) == "0.05"
    assert protocol.decimal(38, 0) == "38"
    assert protocol.decimal(-15, 1) == "-1.5"
    assert protocol.timestamp(1764072000500) == "1764072000.5"
    assert protocol.timestamp(1764072000000) == "1764072000"
    assert protocol.timestamp(1764072000007) == "1764072000.007"


def test_paper_values():
    reading = Reading(2257, 108, 244, 38, 500, 100, False)
    assert protocol.paper_values(reading) == (
        ("vac", "225.7"),
        ("iac", "0.108"),
        ("pac", "24.4"),
        ("energy", "38"),
        ("pf", "1.0"),
    )


def test_hmac_sha256_matches_rfc_4231():
    digest = protocol.hmac_sha256(b"Jefe", b"what do ya want for nothing?")
    assert protocol.hex_text(digest) == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )
    # Test case 6: a key longer than the block is hashed first.
    digest = protocol.hmac_sha256(
        b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First"
    )
    assert protocol.hex_text(digest) == (
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    )


def test_signature_is_the_last_member_over_topic_and_payload():
    payload = protocol.error_payload(3, 1764072000000, "timeout")
    signed = protocol.sign(b"k" * 16, "sem/n1/m/state", payload)
    obj = json.loads(signed)
    assert signed.startswith(payload[:-1] + b',"sig":"')
    expected = protocol.hex_text(protocol.hmac_sha256(b"k" * 16, b"sem/n1/m/state\n" + payload))
    assert obj["sig"] == expected


def _documented_vector():
    """Key text, topic, unsigned payload and signature of docs/protocol.md's test vector."""
    with open(repo() + "/docs/protocol.md") as f:
        doc = f.read()
    start = doc.index("Test vector: key text `")
    parts = doc[start:].split("`")
    # key text `K` (..., ending `e2 9c 93`), topic `T`, unsigned payload `P` gives `sig` = `S`
    return parts[1], parts[5], parts[7], parts[11]


def test_the_documented_signed_reading_is_the_node_s_own():
    key, topic, unsigned, sig = _documented_vector()
    vector = _vector("064_state_signed_boot")
    fields = vector["expect"]["fields"]
    payload = protocol.state_payload(
        fields["seq"], _ms(fields["ts"]), _reading_from(fields), fields["boot"]
    )
    assert payload == unsigned.encode()
    assert protocol.sign(key.encode(), topic, payload) == vector["payload"].encode()
    assert fields["signature"] == sig


def test_the_error_form_with_a_boot_counter_matches_its_vector():
    vector = _vector("065_state_error_boot")
    fields = vector["expect"]["fields"]
    payload = protocol.error_payload(
        fields["seq"], _ms(fields["ts"]), fields["error"], fields["boot"]
    )
    assert payload == vector["payload"].encode()
