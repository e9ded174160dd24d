"""The node's JSON configuration: parsing, defaults and validation with readable messages.

`load(text, mac)` returns a Config or raises ConfigError listing every problem at once. The relays
that are valid on their own are kept on the error (`ConfigError.relays`) so a node with a broken
configuration can still put them in their power-on state.

The validated configuration is made of `semfw.spec` objects only, so once it is loaded this
(large) module can be dropped from the heap with `forget()`.
"""

import json
import sys

from semfw import pins, protocol
from semfw.spec import Config, MeterSpec, RelaySpec, UartSpec

NETWORK_TYPES = ("wifi", "w5500", "lan8720", "host")
POLICIES = ("off", "on", "restore")
ROLES = ("line", "house")
KNOWN_KEYS = (
    "node",
    "name",
    "network",
    "broker",
    "prefix",
    "interval",
    "uarts",
    "meters",
    "relays",
    "pairs",
    "paper_topics",
    "ntp",
    "key",
    "watchdog",
    "pzem",
)
DEFAULT_UART = {"id": 2, "tx": 17, "rx": 16}
MAX_FALLBACK = 4  # other addresses of the broker
# The network keys that name a GPIO.
NETWORK_PINS = ("sck", "mosi", "miso", "cs", "int", "reset", "mdc", "mdio", "power", "ref_clk")


class ConfigError(Exception):
    """Every problem found in a configuration."""

    def __init__(self, errors, relays=()):
        super().__init__("; ".join(errors))
        self.errors = errors
        self.relays = relays


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _fallback(check, value, port):
    """broker.fallback: other addresses of the same broker (a cluster's other servers), tried
    in turn when the current one cannot be reached: "host" or "host:port"."""
    if not isinstance(value, list) or len(value) > MAX_FALLBACK:
        check.fail("broker: 'fallback' must be a list of at most %d addresses" % MAX_FALLBACK)
        return []
    addresses = []
    for index, item in enumerate(value):
        where = "broker: fallback[%d]" % index
        if not isinstance(item, str) or not 0 < len(item) <= 259:
            check.fail('%s must be "host" or "host:port", not %r' % (where, item))
            continue
        host, number = item, ""
        if item.count(":") == 1:  # more is an IPv6 address without a port
            host, _, number = item.partition(":")
        if not host:
            check.fail("%s has no host" % where)
            continue
        if number and not (number.isdigit() and 1 <= int(number) <= 65535):
            check.fail("%s: port must be 1..65535, not %r" % (where, number))
            continue
        addresses.append((host, int(number) if number else port))
    return addresses


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _Checker:
    def __init__(self):
        self.errors = []
        self.warnings = []

    def fail(self, message):
        self.errors.append(message)

    def integer(self, obj, key, where, low, high, default=None):
        value = obj.get(key, default)
        if value is None and default is None and key not in obj:
            self.fail("%s: '%s' is required" % (where, key))
            return None
        if not _is_int(value) or not low <= value <= high:
            self.fail("%s: '%s' must be an integer %d..%d, not %r" % (where, key, low, high, value))
            return None
        return value

    def string(self, obj, key, where, default=None, limit=64, required=False):
        if key not in obj:
            if required:
                self.fail("%s: '%s' is required" % (where, key))
            return default
        value = obj[key]
        if not isinstance(value, str) or len(value) > limit:
            self.fail("%s: '%s' must be a string of at most %d characters" % (where, key, limit))
            return default
        return value

    def pin(self, obj, key, where, output, default=None, taken=None):
        """A GPIO number the ESP32 can use for this key (see semfw.pins), or None.

        `taken`: the pins the Ethernet PHY owns besides its configured ones (pin -> name).
        """
        value = self.integer(obj, key, where, 0, pins.MAX_GPIO, default)
        if value is None:
            return None
        why = pins.problem(value, output)
        if why is None and taken and value in taken:
            why = "GPIO%d is %s" % (value, taken[value])
        if why is not None:
            self.fail("%s: '%s' %s" % (where, key, why))
            return None
        return value

    def boolean(self, obj, key, where, default):
        value = obj.get(key, default)
        if not isinstance(value, bool):
            self.fail("%s: '%s' must be true or false, not %r" % (where, key, value))
            return default
        return value

    def identifier(self, obj, key, where):
        value = obj.get(key)
        if not protocol.valid_id(value):
            self.fail(
                "%s: '%s' must be 1-32 characters of a-z 0-9 _ -, not %r" % (where, key, value)
            )
            return None
        return value

    def obj(self, value, where):
        if not isinstance(value, dict):
            self.fail("%s must be a JSON object" % where)
            return {}
        return value

    def array(self, value, where, limit):
        if not isinstance(value, list) or len(value) > limit:
            self.fail("%s must be a list of at most %d entries" % (where, limit))
            return []
        return value


def _network(check, raw):
    net = check.obj(raw, "network")
    kind = net.get("type", "wifi")
    if kind not in NETWORK_TYPES:
        check.fail("network: 'type' must be one of %s, not %r" % (", ".join(NETWORK_TYPES), kind))
        return {"type": "invalid"}
    result = {"type": kind, "hostname": check.string(net, "hostname", "network", None, 32)}
    if kind == "wifi":
        result["ssid"] = check.string(net, "ssid", "network", None, 32, required=True)
        result["password"] = check.string(net, "password", "network", "", 64)
    elif kind == "w5500":
        where = "network (w5500)"
        for key in ("sck", "mosi", "miso", "cs", "int"):
            result[key] = check.pin(net, key, where, key not in ("miso", "int"))
        result["spi"] = check.integer(net, "spi", where, 1, 2, 2)
        result["phy_addr"] = check.integer(net, "phy_addr", where, 0, 31, 0)
        if "reset" in net:
            result["reset"] = check.pin(net, "reset", where, True)
    elif kind == "lan8720":
        where = "network (lan8720)"
        result["mdc"] = check.pin(net, "mdc", where, True, 23)
        result["mdio"] = check.pin(net, "mdio", where, True, 18)
        result["phy_addr"] = check.integer(net, "phy_addr", where, 0, 31, 0)
        if "power" in net:
            result["power"] = check.pin(net, "power", where, True)
        mode = net.get("ref_clk_mode", "in")
        if mode not in pins.REF_CLK_PINS:
            check.fail("%s: 'ref_clk_mode' must be in or out, not %r" % (where, mode))
            mode = "in"
        result["ref_clk_mode"] = mode
        if "ref_clk" in net:
            ref_clk = check.pin(net, "ref_clk", where, True)
            why = None if ref_clk is None else pins.ref_clk_problem(ref_clk, mode)
            if why is not None:
                check.fail("%s: 'ref_clk' %s" % (where, why))
                ref_clk = None
            result["ref_clk"] = ref_clk
        elif mode == "out":
            check.fail("%s: 'ref_clk' is required with ref_clk_mode out (GPIO0, 16 or 17)" % where)
    return result


def _relays(check, raw, taken=None):
    relays = []
    for index, item in enumerate(check.array(raw, "relays", 16)):
        where = "relays[%d]" % index
        if not isinstance(item, dict):
            check.fail(where + " must be a JSON object")
            continue
        relay_id = check.identifier(item, "id", where)
        pair = check.identifier(item, "pair", where)
        pin = check.pin(item, "pin", where, True, taken=taken)
        if pin in pins.RELAY_CAUTION:
            check.warnings.append("%s: GPIO%d is %s" % (where, pin, pins.RELAY_CAUTION[pin]))
        active_high = check.boolean(item, "active_high", where, True)
        policy = item.get("power_on", "off")
        if policy not in POLICIES:
            check.fail("%s: 'power_on' must be off, on or restore, not %r" % (where, policy))
            policy = None
        if None in (relay_id, pair, pin, policy):
            continue
        if relay_id in [r.id for r in relays]:
            check.fail("%s: relay id %r is used twice" % (where, relay_id))
            continue
        relays.append(RelaySpec(relay_id, pair, pin, active_high, policy))
    return relays


def safe_relays(text):
    """The relays of a configuration that can be trusted even when the rest is broken."""
    try:
        raw = json.loads(text)
    except (ValueError, TypeError):
        return []
    if not isinstance(raw, dict):
        return []
    check = _Checker()
    network = raw.get("network")
    # A relay on a pin the Ethernet PHY owns is not trusted.
    relays = _relays(
        check, raw.get("relays", []), pins.fixed(network) if isinstance(network, dict) else None
    )
    numbers = [r.pin for r in relays]
    # A pin listed twice is not trusted for either relay.
    return [r for r in relays if numbers.count(r.pin) == 1]


def load(text, mac=b"\x00\x00\x00\x00\x00\x00"):
    """Parse and validate configuration text; raise ConfigError with every problem."""
    try:
        raw = json.loads(text)
    except (ValueError, TypeError) as err:
        raise ConfigError(["the configuration is not valid JSON (%s)" % err]) from None
    if not isinstance(raw, dict):
        raise ConfigError(["the configuration must be a JSON object"])
    check = _Checker()
    cfg = Config()
    for key in raw:
        if key not in KNOWN_KEYS:
            cfg.warnings.append("unknown key %r is ignored" % (key,))

    node = raw.get("node")
    if node is None:
        cfg.node = protocol.default_node_id(mac)
    elif protocol.valid_id(node):
        cfg.node = node
    else:
        check.fail("'node' must be 1-32 characters of a-z 0-9 _ -, not %r" % (node,))
    cfg.name = check.string(raw, "name", "config", cfg.node or "node")
    prefix = raw.get("prefix", protocol.DEFAULT_PREFIX)
    if protocol.valid_prefix(prefix):
        cfg.prefix = prefix
    else:
        check.fail("'prefix' must be 1-4 levels of a-z 0-9 _ - separated by /, not %r" % (prefix,))
    interval = raw.get("interval", 1)
    if _is_number(interval) and 0.2 <= interval <= 3600:
        cfg.interval_ms = int(round(interval * 1000))
    else:
        check.fail("'interval' must be a number of seconds 0.2..3600, not %r" % (interval,))

    cfg.network = _network(check, raw.get("network", {}))
    taken = pins.fixed(cfg.network)
    broker = check.obj(raw.get("broker"), "broker")
    cfg.broker_host = check.string(broker, "host", "broker", "", 253, required=True)
    if broker.get("host") == "":
        check.fail("broker: 'host' must not be empty")
    tls = check.boolean(broker, "tls", "broker", False)
    cfg.broker_port = check.integer(broker, "port", "broker", 1, 65535, 8883 if tls else 1883)
    cfg.broker_fallback = _fallback(check, broker.get("fallback", []), cfg.broker_port)
    if tls:
        ca = check.string(broker, "ca", "broker", "ca.crt", 255)
        # Without one, the name checked is the host's; with fallbacks, each address's own.
        default_name = None if cfg.broker_fallback else cfg.broker_host
        server_name = check.string(broker, "server_name", "broker", default_name, 253)
        if ca == "" or server_name == "":
            check.fail("broker: 'ca' and 'server_name' must not be empty")
        cfg.broker_tls = (ca, server_name)
    else:
        for key in ("ca", "server_name"):
            if key in broker:
                cfg.warnings.append('broker: %r is ignored without "tls": true' % key)
    cfg.broker_user = check.string(broker, "user", "broker", None, 64) or None
    cfg.broker_password = check.string(broker, "password", "broker", None, 64)
    if cfg.broker_user is not None and cfg.node and cfg.broker_user != cfg.node:
        # Not an error: other brokers may name accounts differently.
        cfg.warnings.append(
            "broker: user %r is not the node id %r; the ACL of docs/mosquitto drops the "
            "messages of such a node" % (cfg.broker_user, cfg.node)
        )
    cfg.keepalive_s = check.integer(broker, "keepalive", "broker", 5, 3600, 30)

    uarts = []
    listed = []  # every UART id given, valid or not: its meters are not told a second time
    for index, item in enumerate(check.array(raw.get("uarts", [DEFAULT_UART]), "uarts", 3)):
        where = "uarts[%d]" % index
        if not isinstance(item, dict):
            check.fail(where + " must be a JSON object")
            continue
        listed.append(item.get("id"))
        uart_id = check.integer(item, "id", where, 0, 2)
        if uart_id == pins.CONSOLE_UART:
            check.fail(
                "%s: 'id' 0 is the console UART, which mpremote needs to reach the board; "
                "use UART 1 or 2" % where
            )
            uart_id = None
        tx = check.pin(item, "tx", where, True, taken=taken)
        rx = check.pin(item, "rx", where, False, taken=taken)
        if uart_id is not None and uart_id in [u.id for u in uarts]:
            check.fail("%s: UART %d is listed twice" % (where, uart_id))
        elif None not in (uart_id, tx, rx):
            uarts.append(UartSpec(uart_id, tx, rx))
    cfg.uarts = uarts

    meters = []
    raw_meters = check.array(raw.get("meters"), "meters", 16)
    if isinstance(raw.get("meters"), list) and not raw_meters:
        check.fail("meters: at least one meter is needed")
    for index, item in enumerate(raw_meters):
        where = "meters[%d]" % index
        if not isinstance(item, dict):
            check.fail(where + " must be a JSON object")
            continue
        meter_id = check.identifier(item, "id", where)
        if meter_id == "update":
            # <prefix>/<node>/update/state is the firmware update's topic (protocol 1.2).
            check.fail("%s: 'id' update is reserved for firmware updates" % where)
        pair = check.identifier(item, "pair", where)
        role = item.get("role")
        if role not in ROLES:
            check.fail("%s: 'role' must be line or house, not %r" % (where, role))
            role = None
        addr = check.integer(item, "addr", where, 1, 247)
        uart = item.get("uart", listed[0] if listed else None)
        if uart not in [u.id for u in uarts]:
            if uart not in listed:
                check.fail("%s: 'uart' %r is not one of the configured UARTs" % (where, uart))
            uart = None
        if None in (meter_id, pair, role, addr, uart):
            continue
        for other in meters:
            if other.id == meter_id:
                check.fail("%s: meter id %r is used twice" % (where, meter_id))
            elif other.uart == uart and other.addr == addr:
                check.fail("%s: address %d is used twice on UART %d" % (where, addr, uart))
            elif other.pair == pair and other.role == role:
                check.fail("%s: pair %r already has a %s meter" % (where, pair, role))
        meters.append(MeterSpec(meter_id, role, pair, uart, addr))
    cfg.meters = meters

    cfg.relays = _relays(check, raw.get("relays", []), taken)
    pairs = check.obj(raw.get("pairs", {}), "pairs")
    for label in sorted(pairs):
        text = pairs[label]
        if not protocol.valid_id(label) or not isinstance(text, str) or not 0 < len(text) <= 64:
            check.fail("pairs: %r must map a pair label to a name of 1-64 characters" % (label,))
        else:
            cfg.pairs.append((label, text))
    labels = [m.pair for m in meters]
    for relay in cfg.relays:
        if relay.pair not in labels:
            cfg.warnings.append(
                "relay %r switches pair %r, which has no meter" % (relay.id, relay.pair)
            )

    cfg.paper_topics = check.boolean(raw, "paper_topics", "config", False)
    cfg.watchdog = check.boolean(raw, "watchdog", "config", True)
    # null or "": no time server (an isolated network); timestamps then count from the boot.
    if raw.get("ntp", "") is None:
        cfg.ntp = None
    else:
        cfg.ntp = check.string(raw, "ntp", "config", "pool.ntp.org", 253) or None
    key = raw.get("key")
    if key is not None:
        if not isinstance(key, str) or len(key.encode()) < 16:
            check.fail("'key' must be a string of at least 16 bytes")
        else:
            cfg.key = key.encode()
    pzem = check.obj(raw.get("pzem", {}), "pzem")
    cfg.pzem_timeout_ms = check.integer(pzem, "timeout_ms", "pzem", 20, 5000, 200)
    cfg.pzem_retries = check.integer(pzem, "retries", "pzem", 0, 5, 1)
    cfg.pzem_min_gap_ms = check.integer(pzem, "min_gap_ms", "pzem", 0, 60000, 1000)

    _check_pins(check, cfg, uarts, taken)
    cfg.warnings += check.warnings
    if check.errors:
        raise ConfigError(check.errors, safe_relays(text))
    return cfg


def _check_pins(check, cfg, uarts, taken):
    """Every GPIO serves one purpose, and none of the network's is one its PHY owns."""
    used = {}
    for relay in cfg.relays:
        used.setdefault(relay.pin, []).append("relay " + relay.id)
    for uart in uarts:
        used.setdefault(uart.tx, []).append("UART %d tx" % uart.id)
        used.setdefault(uart.rx, []).append("UART %d rx" % uart.id)
    where = "network (%s)" % cfg.network.get("type")
    for key in NETWORK_PINS:
        pin = cfg.network.get(key)
        if pin is None:
            continue
        if pin in taken:
            check.fail("%s: '%s' GPIO%d is %s" % (where, key, pin, taken[pin]))
        else:
            used.setdefault(pin, []).append("network " + key)
    for pin in sorted(used):
        if len(used[pin]) > 1:
            check.fail("GPIO %d is used by %s" % (pin, " and ".join(used[pin])))


def forget():
    """Drop this module (its bytecode is a good part of the heap) once the config is loaded."""
    package = sys.modules.get("semfw")
    for name in ("config", "pins"):
        sys.modules.pop("semfw." + name, None)
        if package is not None and name in package.__dict__:
            del package.__dict__[name]
