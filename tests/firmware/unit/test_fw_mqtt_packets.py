"""MQTT 3.1.1 packets of the node's client, checked byte by byte against the specification."""

from semfw import mqtt

from tests.firmware.unit.support import raises


def test_remaining_length_encoding():
    # The examples of the MQTT 3.1.1 specification, section 2.2.3.
    assert mqtt.encode_length(0) == b"\x00"
    assert mqtt.encode_length(127) == b"\x7f"
    assert mqtt.encode_length(128) == b"\x80\x01"
    assert mqtt.encode_length(16383) == b"\xff\x7f"
    assert mqtt.encode_length(16384) == b"\x80\x80\x01"
    assert mqtt.encode_length(2097151) == b"\xff\xff\x7f"
    assert mqtt.encode_length(2097152) == b"\x80\x80\x80\x01"
    assert mqtt.encode_length(268435455) == b"\xff\xff\xff\x7f"


def test_connect_packet_with_will_and_credentials():
    packet = mqtt.connect_packet("n1", 30, "u", "p", ("s/n1/status", b"offline", True, 1))
    body = (
        b"\x00\x04MQTT\x04"
        + bytes((0x80 | 0x40 | 0x20 | 0x08 | 0x04 | 0x02,))  # user, password, will
        + b"\x00\x1e"  # keepalive 30 s
        + b"\x00\x02n1"
        + b"\x00\x0bs/n1/status"
        + b"\x00\x07offline"
        + b"\x00\x01u"
        + b"\x00\x01p"
    )
    assert packet == b"\x10" + bytes((len(body),)) + body


def test_connect_packet_minimal():
    packet = mqtt.connect_packet("c", 60)
    assert packet == b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01c"


def test_publish_packets():
    assert mqtt.publish_packet("a/b", b"hi") == b"\x30\x07\x00\x03a/bhi"
    assert mqtt.publish_packet("a/b", b"ON", qos=1, retain=True, packet_id=10) == (
        b"\x33\x09\x00\x03a/b\x00\x0aON"
    )
    assert mqtt.publish_packet("t", b"", qos=1, packet_id=1, dup=True)[0] == 0x3A


def test_long_publish_uses_a_two_byte_length():
    packet = mqtt.publish_packet("t", b"x" * 200)
    assert packet[:3] == b"\x30\xcb\x01"  # 203 = 0x4b | 0x80, then 1
    assert len(packet) == 3 + 203


def test_subscribe_packet():
    packet = mqtt.subscribe_packet(7, [("a/+/set", 1), ("b", 0)])
    body = b"\x00\x07" + b"\x00\x07a/+/set\x01" + b"\x00\x01b\x00"
    assert packet == b"\x82" + bytes((len(body),)) + body


def test_puback_and_fixed_packets():
    assert mqtt.puback_packet(258) == b"\x40\x02\x01\x02"
    assert mqtt.PINGREQ == b"\xc0\x00"
    assert mqtt.DISCONNECT == b"\xe0\x00"


def test_parse_publish_round_trip():
    packet = mqtt.publish_packet("sem/n1/relay/r1/set", b"ON", qos=1, retain=True, packet_id=513)
    first, body = packet[0], packet[2:]
    topic, payload, qos, retain, packet_id = mqtt.parse_publish(first, body)
    assert (topic, payload, qos, retain, packet_id) == (b"sem/n1/relay/r1/set", b"ON", 1, True, 513)
    topic, payload, qos, retain, packet_id = mqtt.parse_publish(0x30, b"\x00\x01tX")
    assert (topic, payload, qos, retain, packet_id) == (b"t", b"X", 0, False, 0)


def test_parse_publish_rejects_malformed_packets():
    raises(mqtt.MQTTError, mqtt.parse_publish, 0x30, b"\x00")
    raises(mqtt.MQTTError, mqtt.parse_publish, 0x30, b"\x00\x09abc")
    raises(mqtt.MQTTError, mqtt.parse_publish, 0x32, b"\x00\x01t\x00")
