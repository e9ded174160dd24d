"""config.json: defaults, validation messages, and the relays a broken config still trusts."""

import json

from semfw import config

from tests.firmware.unit.support import load_json, raises, repo

MAC = bytes((0x24, 0x6F, 0x28, 0xA1, 0xB2, 0xC3))


def _minimal(**changes):
    raw = {
        "network": {"type": "wifi", "ssid": "home"},
        "broker": {"host": "192.168.1.10"},
        "meters": [{"id": "line1", "role": "line", "pair": "house1", "addr": 1}],
    }
    for key, value in changes.items():
        raw[key] = value
    return raw


def _load(raw):
    return config.load(json.dumps(raw), MAC)


def _errors(raw):
    return raises(config.ConfigError, _load, raw).errors


def test_the_shipped_example_is_valid():
    raw = load_json("firmware/config.example.json")
    cfg = config.load(json.dumps(raw), MAC)
    assert cfg.node == raw["node"]
    assert len(cfg.meters) == 4
    assert [r.id for r in cfg.relays] == ["r1", "r2"]
    assert cfg.warnings == []


def test_defaults():
    cfg = _load(_minimal())
    assert cfg.node == "sem-a1b2c3"
    assert cfg.name == "sem-a1b2c3"
    assert cfg.prefix == "sem"
    assert cfg.interval_ms == 1000
    assert cfg.broker_port == 1883
    assert cfg.broker_user is None
    assert cfg.keepalive_s == 30
    assert cfg.network == {"type": "wifi", "hostname": None, "ssid": "home", "password": ""}
    assert [(u.id, u.tx, u.rx) for u in cfg.uarts] == [(2, 17, 16)]
    assert cfg.meters[0].uart == 2
    assert cfg.relays == []
    assert cfg.paper_topics is False
    assert cfg.pzem_min_gap_ms == 1000


def test_wifi_needs_an_ssid():
    errors = _errors(_minimal(network={"type": "wifi"}))
    assert any("ssid" in e for e in errors)
    cfg = _load(_minimal(network={"type": "wifi", "ssid": "home", "password": "secret"}))
    assert cfg.network["ssid"] == "home"


def test_w5500_needs_its_pins():
    errors = _errors(_minimal(network={"type": "w5500", "sck": 18, "mosi": 23}))
    assert any("'miso' is required" in e for e in errors)
    assert any("'int' is required" in e for e in errors)
    cfg = _load(
        _minimal(network={"type": "w5500", "sck": 18, "mosi": 23, "miso": 19, "cs": 5, "int": 4})
    )
    assert cfg.network["spi"] == 2
    assert cfg.network["int"] == 4


def test_lan8720_defaults_to_the_common_pins():
    cfg = _load(_minimal(network={"type": "lan8720", "power": 12}))
    assert (cfg.network["mdc"], cfg.network["mdio"], cfg.network["power"]) == (23, 18, 12)


def test_unknown_network_type():
    errors = _errors(_minimal(network={"type": "enc28j60"}))
    assert any("'type' must be one of" in e for e in errors)


def test_invalid_json_is_one_clear_message():
    err = raises(config.ConfigError, config.load, "{not json", MAC)
    assert len(err.errors) == 1
    assert "not valid JSON" in err.errors[0]
    err = raises(config.ConfigError, config.load, "[1, 2]", MAC)
    assert "JSON object" in err.errors[0]


def test_every_problem_is_reported_at_once():
    raw = _minimal(node="Bad Node", prefix="/x", interval=0.1)
    raw["broker"] = {"host": "", "port": 70000}
    errors = _errors(raw)
    assert any("'node'" in e for e in errors)
    assert any("'prefix'" in e for e in errors)
    assert any("'interval'" in e for e in errors)
    assert any("'port'" in e for e in errors)
    assert any("'host' must not be empty" in e for e in errors)


def test_interval_must_be_a_number_in_range():
    for bad in (0.1, 3601, "1", True, None):
        errors = _errors(_minimal(interval=bad))
        assert any("'interval'" in e for e in errors), bad
    assert _load(_minimal(interval=0.2)).interval_ms == 200


def test_meter_rules():
    meters = [
        {"id": "line1", "role": "line", "pair": "house1", "addr": 1},
        {"id": "line1", "role": "house", "pair": "house1", "addr": 2},
        {"id": "m3", "role": "house", "pair": "house2", "addr": 2},
        {"id": "m4", "role": "line", "pair": "house1", "addr": 4},
        {"id": "m+5", "role": "line", "pair": "house3", "addr": 5},
        {"id": "m6", "role": "meter", "pair": "house3", "addr": 6},
        {"id": "m7", "role": "line", "pair": "house4", "addr": 248},
        {"id": "m8", "role": "line", "pair": "house5", "addr": 8, "uart": 1},
    ]
    errors = _errors(_minimal(meters=meters))
    assert any("meter id 'line1' is used twice" in e for e in errors)
    assert any("address 2 is used twice" in e for e in errors)
    assert any("already has a line meter" in e for e in errors)
    assert any("meters[4]: 'id'" in e for e in errors)
    assert any("'role' must be line or house" in e for e in errors)
    assert any("'addr' must be an integer 1..247" in e for e in errors)
    assert any("'uart' 1 is not one of the configured UARTs" in e for e in errors)


def test_meters_on_two_uarts_may_share_an_address():
    raw = _minimal(
        uarts=[{"id": 1, "tx": 4, "rx": 5}, {"id": 2, "tx": 17, "rx": 16}],
        meters=[
            {"id": "a", "role": "line", "pair": "p", "addr": 1, "uart": 1},
            {"id": "b", "role": "house", "pair": "p", "addr": 1, "uart": 2},
        ],
    )
    cfg = _load(raw)
    assert [(m.id, m.uart) for m in cfg.meters] == [("a", 1), ("b", 2)]


def test_at_least_one_meter():
    errors = _errors(_minimal(meters=[]))
    assert any("at least one meter" in e for e in errors)


def test_relay_rules_and_defaults():
    cfg = _load(_minimal(relays=[{"id": "r1", "pair": "house1", "pin": 26}]))
    relay = cfg.relays[0]
    assert (relay.pin, relay.active_high, relay.power_on) == (26, True, "off")
    errors = _errors(
        _minimal(
            relays=[
                {"id": "r1", "pair": "house1", "pin": 26, "power_on": "toggle"},
                {"id": "r2", "pair": "house1", "pin": 99},
                {"id": "r3", "pair": "house1", "pin": 27, "active_high": "yes"},
            ]
        )
    )
    assert any("'power_on' must be off, on or restore" in e for e in errors)
    assert any("'pin' must be an integer" in e for e in errors)
    assert any("'active_high' must be true or false" in e for e in errors)


def test_pin_conflicts_are_reported():
    raw = _minimal(relays=[{"id": "r1", "pair": "house1", "pin": 17}])
    errors = _errors(raw)
    assert any("GPIO 17 is used by relay r1 and UART 2 tx" in e for e in errors)


# --- the ESP32's pin rules (semfw.pins) ----------------------------------------------------------

# The boards the README names, with the `network` and `uarts` it gives for each, as written there.
BOARDS = {
    "ESP32 DevKit + W5500": (
        '{"type": "w5500", "spi": 2, "sck": 18, "mosi": 23, "miso": 19, "cs": 5, "int": 4}',
        '[{"id": 2, "tx": 17, "rx": 16}]',
    ),
    "WT32-ETH01": (
        '{"type": "lan8720", "mdc": 23, "mdio": 18, "power": 16, "phy_addr": 1}',
        '[{"id": 2, "tx": 17, "rx": 5}]',
    ),
    "Olimex ESP32-POE": (
        '{"type": "lan8720", "mdc": 23, "mdio": 18, "power": 12, '
        '"ref_clk": 17, "ref_clk_mode": "out"}',
        '[{"id": 2, "tx": 4, "rx": 36}]',
    ),
    "ESP32 DevKit, Wi-Fi": (
        '{"type": "wifi", "ssid": "my-network", "password": "my-password"}',
        '[{"id": 2, "tx": 17, "rx": 16}]',
    ),
}


def _one_line(text):
    return " ".join(line.strip() for line in text.splitlines())


def test_the_example_is_valid_on_every_board_the_readme_names():
    with open(repo() + "/firmware/README.md") as f:
        readme = _one_line(f.read())
    example = load_json("firmware/config.example.json")
    for board in BOARDS:
        network, uarts = BOARDS[board]
        assert network in readme, board
        assert uarts in readme, board
        raw = dict(example)
        raw["network"] = json.loads(network)
        raw["uarts"] = json.loads(uarts)
        cfg = config.load(json.dumps(raw), MAC)
        assert [r.pin for r in cfg.relays] == [32, 33], board
        assert cfg.warnings == [], (board, cfg.warnings)


def _one_error(raw):
    errors = _errors(raw)
    assert len(errors) == 1, errors
    return errors[0]


def test_a_relay_on_an_input_only_pin_is_refused():
    for pin in (34, 35, 36, 39):
        error = _one_error(_minimal(relays=[{"id": "r1", "pair": "house1", "pin": pin}]))
        assert error == (
            "relays[0]: 'pin' GPIO%d is input-only (GPIO34-39) and cannot drive an output" % pin
        )


def test_an_input_only_pin_may_receive():
    cfg = _load(_minimal(uarts=[{"id": 2, "tx": 17, "rx": 35}]))
    assert cfg.uarts[0].rx == 35
    error = _one_error(_minimal(uarts=[{"id": 2, "tx": 35, "rx": 16}]))
    assert error.startswith("uarts[0]: 'tx' GPIO35 is input-only")


def test_the_flash_pins_are_refused_for_everything():
    for pin in (6, 7, 8, 9, 10, 11):
        error = _one_error(_minimal(relays=[{"id": "r1", "pair": "house1", "pin": pin}]))
        assert error == "relays[0]: 'pin' GPIO%d is wired to the module's flash (GPIO6-11)" % pin
    error = _one_error(_minimal(uarts=[{"id": 2, "tx": 17, "rx": 9}]))
    assert error == "uarts[0]: 'rx' GPIO9 is wired to the module's flash (GPIO6-11)"


def test_pins_the_esp32_does_not_have_are_refused():
    for pin in (20, 24, 28, 31):
        error = _one_error(_minimal(relays=[{"id": "r1", "pair": "house1", "pin": pin}]))
        assert error == "relays[0]: 'pin' GPIO%d does not exist on the ESP32" % pin
    error = _one_error(_minimal(relays=[{"id": "r1", "pair": "house1", "pin": 40}]))
    assert error == "relays[0]: 'pin' must be an integer 0..39, not 40"


def test_the_console_uart_and_its_pins_are_refused():
    error = _one_error(_minimal(uarts=[{"id": 0, "tx": 17, "rx": 16}]))
    assert error == (
        "uarts[0]: 'id' 0 is the console UART, which mpremote needs to reach the board; "
        "use UART 1 or 2"
    )
    error = _one_error(_minimal(relays=[{"id": "r1", "pair": "house1", "pin": 1}]))
    assert error == "relays[0]: 'pin' GPIO1 is the console's TX (UART 0), which mpremote needs"
    error = _one_error(_minimal(uarts=[{"id": 1, "tx": 17, "rx": 3}]))
    assert error == "uarts[0]: 'rx' GPIO3 is the console's RX (UART 0), which mpremote needs"


def test_the_lan8720s_fixed_pins_are_refused():
    net = {"type": "lan8720", "power": 12}
    for pin, name in (
        (19, "TXD0"),
        (21, "TX_EN"),
        (22, "TXD1"),
        (25, "RXD0"),
        (26, "RXD1"),
        (27, "CRS_DV"),
    ):
        error = _one_error(
            _minimal(network=net, relays=[{"id": "r1", "pair": "house1", "pin": pin}])
        )
        assert error == "relays[0]: 'pin' GPIO%d is the LAN8720's RMII %s" % (pin, name)
    # The README's former example: relays on GPIO26/27 of a LAN8720 board.
    errors = _errors(
        _minimal(
            network=net,
            relays=[
                {"id": "r1", "pair": "house1", "pin": 26},
                {"id": "r2", "pair": "house2", "pin": 27},
            ],
        )
    )
    assert errors == [
        "relays[0]: 'pin' GPIO26 is the LAN8720's RMII RXD1",
        "relays[1]: 'pin' GPIO27 is the LAN8720's RMII CRS_DV",
    ]
    error = _one_error(_minimal(network=dict(net, mdio=25)))
    assert error == "network (lan8720): 'mdio' GPIO25 is the LAN8720's RMII RXD0"
    error = _one_error(_minimal(network=net, uarts=[{"id": 2, "tx": 17, "rx": 22}]))
    assert error == "uarts[0]: 'rx' GPIO22 is the LAN8720's RMII TXD1"
    # A W5500 is on SPI: the same pins are free there.
    w5500 = {"type": "w5500", "sck": 18, "mosi": 23, "miso": 19, "cs": 5, "int": 4}
    cfg = _load(_minimal(network=w5500, relays=[{"id": "r1", "pair": "house1", "pin": 26}]))
    assert cfg.relays[0].pin == 26


def test_the_lan8720s_clock_pin():
    # GPIO0 carries the clock in unless it goes out elsewhere.
    error = _one_error(
        _minimal(network={"type": "lan8720"}, relays=[{"id": "r1", "pair": "house1", "pin": 0}])
    )
    assert error == "relays[0]: 'pin' GPIO0 is the LAN8720's 50 MHz clock input"
    error = _one_error(_minimal(network={"type": "lan8720", "ref_clk": 17}))
    assert (
        error == "network (lan8720): 'ref_clk' the 50 MHz clock input is on GPIO0 only, not GPIO17"
    )
    error = _one_error(_minimal(network={"type": "lan8720", "ref_clk": 4, "ref_clk_mode": "out"}))
    assert error == (
        "network (lan8720): 'ref_clk' the 50 MHz clock output is on GPIO0 or 16 or 17 only, "
        "not GPIO4"
    )
    error = _one_error(_minimal(network={"type": "lan8720", "ref_clk_mode": "out"}))
    assert (
        error == "network (lan8720): 'ref_clk' is required with ref_clk_mode out (GPIO0, 16 or 17)"
    )
    # The README's clock on GPIO17 out clashes with the default UART: said, not accepted.
    error = _one_error(_minimal(network={"type": "lan8720", "ref_clk": 17, "ref_clk_mode": "out"}))
    assert error == "GPIO 17 is used by UART 2 tx and network ref_clk"
    cfg = _load(
        _minimal(
            network={"type": "lan8720", "ref_clk": 16, "ref_clk_mode": "out"},
            uarts=[{"id": 2, "tx": 4, "rx": 36}],
        )
    )
    assert (cfg.network["ref_clk"], cfg.network["ref_clk_mode"]) == (16, "out")


def test_a_relay_on_a_boot_pin_is_a_warning():
    cfg = _load(_minimal(relays=[{"id": "r1", "pair": "house1", "pin": 12}]))
    assert cfg.relays[0].pin == 12
    assert cfg.warnings == [
        "relays[0]: GPIO12 is a strapping pin: a relay module that pulls it high stops the chip "
        "from booting"
    ]


def test_a_broken_config_does_not_trust_a_relay_on_a_pin_the_phy_owns():
    raw = _minimal(
        interval="fast",
        network={"type": "lan8720", "power": 12},
        relays=[
            {"id": "r1", "pair": "house1", "pin": 26, "power_on": "on"},
            {"id": "r2", "pair": "house2", "pin": 34, "power_on": "on"},
            {"id": "r3", "pair": "house3", "pin": 32, "power_on": "on"},
        ],
    )
    err = raises(config.ConfigError, _load, raw)
    assert [r.id for r in err.relays] == ["r3"]


def test_pairs_and_warnings():
    cfg = _load(
        _minimal(
            pairs={"house1": "House 1"},
            colour="blue",
            relays=[{"id": "r9", "pair": "house9", "pin": 26}],
        )
    )
    assert cfg.pairs == [("house1", "House 1")]
    assert any("'colour'" in w for w in cfg.warnings)
    assert any("pair 'house9', which has no meter" in w for w in cfg.warnings)
    errors = _errors(_minimal(pairs={"House 1": "x"}))
    assert any("pairs:" in e for e in errors)


def test_signing_key_must_be_long_enough():
    errors = _errors(_minimal(key="short"))
    assert any("'key'" in e for e in errors)
    assert _load(_minimal(key="0123456789abcdef")).key == b"0123456789abcdef"


def test_broken_config_keeps_the_relays_it_can_trust():
    raw = _minimal(
        interval="fast",
        relays=[
            {"id": "r1", "pair": "house1", "pin": 26, "power_on": "on"},
            {"id": "r2", "pair": "house2", "pin": 27, "power_on": "sometimes"},
        ],
    )
    err = raises(config.ConfigError, _load, raw)
    assert [(r.id, r.power_on) for r in err.relays] == [("r1", "on")]


def test_relays_sharing_a_pin_are_not_trusted():
    text = json.dumps(
        {"relays": [{"id": "r1", "pair": "a", "pin": 26}, {"id": "r2", "pair": "b", "pin": 26}]}
    )
    assert config.safe_relays(text) == []
    assert config.safe_relays("garbage") == []


def test_forget_drops_the_validator_but_not_the_loaded_config():
    import sys

    cfg = _load(_minimal())
    config.forget()
    assert "semfw.config" not in sys.modules
    assert "semfw.pins" not in sys.modules
    assert cfg.meters[0].id == "line1"
    from semfw import config as again  # a later import loads it afresh

    assert again.load(json.dumps(_minimal()), MAC).node == "sem-a1b2c3"


def test_the_meter_id_update_is_reserved():
    errors = _errors(
        _minimal(meters=[{"id": "update", "role": "line", "pair": "house1", "addr": 1}])
    )
    assert errors == ["meters[0]: 'id' update is reserved for firmware updates"]
