"""config.json's broker TLS keys and the time server: defaults and validation messages."""

import json

from semfw import config

from tests.firmware.unit.support import raises

MAC = bytes((0x24, 0x6F, 0x28, 0xA1, 0xB2, 0xC3))


def _load(broker, **changes):
    raw = {
        "node": "pole-7",
        "network": {"type": "wifi", "ssid": "home"},
        "broker": broker,
        "meters": [{"id": "line1", "role": "line", "pair": "house1", "addr": 1}],
    }
    raw.update(changes)
    return config.load(json.dumps(raw), MAC)


def _errors(broker, **changes):
    return raises(config.ConfigError, lambda: _load(broker, **changes)).errors


def test_plain_tcp_by_default():
    cfg = _load({"host": "192.168.1.10"})
    assert cfg.broker_tls is None
    assert cfg.broker_port == 1883


def test_tls_defaults_to_8883_ca_crt_and_the_host_as_server_name():
    cfg = _load({"host": "broker.lan", "tls": True})
    assert cfg.broker_port == 8883
    assert cfg.broker_tls == ("ca.crt", "broker.lan")
    assert cfg.warnings == []


def test_tls_with_its_own_ca_file_and_server_name():
    broker = {
        "host": "192.168.1.10",
        "port": 8884,
        "tls": True,
        "ca": "certs/sem-ca.der",
        "server_name": "broker.lan",
    }
    cfg = _load(broker)
    assert cfg.broker_port == 8884
    assert cfg.broker_tls == ("certs/sem-ca.der", "broker.lan")


def test_tls_keys_are_checked():
    assert _errors({"host": "h", "tls": "yes"}) == [
        "broker: 'tls' must be true or false, not 'yes'"
    ]
    assert _errors({"host": "h", "tls": True, "ca": ""}) == [
        "broker: 'ca' and 'server_name' must not be empty"
    ]
    assert _errors({"host": "h", "tls": True, "server_name": 7}) == [
        "broker: 'server_name' must be a string of at most 253 characters"
    ]


def test_a_ca_without_tls_is_a_warning():
    cfg = _load({"host": "h", "ca": "ca.crt"})
    assert cfg.broker_tls is None
    assert cfg.warnings == ["broker: 'ca' is ignored without \"tls\": true"]


def test_time_server_default_and_off():
    assert _load({"host": "h"}).ntp == "pool.ntp.org"
    assert _load({"host": "h"}, ntp="192.168.1.10").ntp == "192.168.1.10"
    assert _load({"host": "h"}, ntp=None).ntp is None
    assert _load({"host": "h"}, ntp="").ntp is None
    assert _errors({"host": "h"}, ntp=5) == [
        "config: 'ntp' must be a string of at most 253 characters"
    ]


def test_a_user_other_than_the_node_id_is_a_warning():
    assert _load({"host": "h", "user": "pole-7"}).warnings == []
    cfg = _load({"host": "h", "user": "sem", "password": "change me"})
    assert cfg.broker_user == "sem"
    assert cfg.warnings == [
        "broker: user 'sem' is not the node id 'pole-7'; the ACL of docs/mosquitto drops the "
        "messages of such a node"
    ]


def test_fallback_addresses_of_the_broker():
    cfg = _load({"host": "10.0.0.1", "port": 1884, "fallback": ["10.0.0.2", "10.0.0.3:1885"]})
    assert cfg.broker_fallback == [("10.0.0.2", 1884), ("10.0.0.3", 1885)]
    assert _load({"host": "10.0.0.1"}).broker_fallback == []
    # With TLS and fallbacks, each address is checked against its own name.
    cfg = _load({"host": "n1.lan", "tls": True, "fallback": ["n2.lan"]})
    assert cfg.broker_tls == ("ca.crt", None)
    cfg = _load({"host": "n1.lan", "tls": True, "fallback": ["n2.lan"], "server_name": "mq"})
    assert cfg.broker_tls == ("ca.crt", "mq")


def test_bad_fallback_addresses_are_named():
    assert _errors({"host": "a", "fallback": "b"}) == [
        "broker: 'fallback' must be a list of at most 4 addresses"
    ]
    assert _errors({"host": "a", "fallback": ["b", "c", "d", "e", "f"]}) == [
        "broker: 'fallback' must be a list of at most 4 addresses"
    ]
    errors = _errors({"host": "a", "fallback": ["b:0", ":1883", 7, "c:port"]})
    assert errors == [
        "broker: fallback[0]: port must be 1..65535, not '0'",
        "broker: fallback[1] has no host",
        'broker: fallback[2] must be "host" or "host:port", not 7',
        "broker: fallback[3]: port must be 1..65535, not 'port'",
    ]
