"""The validated configuration's data: plain objects that outlive the validator (semfw.config)."""


class UartSpec:
    __slots__ = ("id", "tx", "rx")

    def __init__(self, uart_id, tx, rx):
        self.id = uart_id
        self.tx = tx
        self.rx = rx


class MeterSpec:
    __slots__ = ("id", "role", "pair", "uart", "addr")

    def __init__(self, meter_id, role, pair, uart, addr):
        self.id = meter_id
        self.role = role
        self.pair = pair
        self.uart = uart
        self.addr = addr


class RelaySpec:
    __slots__ = ("id", "pair", "pin", "active_high", "power_on")

    def __init__(self, relay_id, pair, pin, active_high, power_on):
        self.id = relay_id
        self.pair = pair
        self.pin = pin
        self.active_high = active_high
        self.power_on = power_on


class Config:
    """A validated configuration; every field has its final value (defaults applied)."""

    def __init__(self):
        self.node = ""
        self.name = ""
        self.network = {"type": "wifi"}
        self.broker_host = ""
        self.broker_port = 1883
        self.broker_user = None
        self.broker_password = None
        self.broker_fallback = []  # (host, port) of the broker's other addresses, in order
        # (CA certificate file, server name to check, None: the host's own) or None
        self.broker_tls = None
        self.keepalive_s = 30
        self.prefix = "sem"
        self.interval_ms = 1000
        self.uarts = []
        self.meters = []
        self.relays = []
        self.pairs = []
        self.paper_topics = False
        self.ntp = "pool.ntp.org"
        self.key = None
        self.watchdog = True
        self.pzem_timeout_ms = 200
        self.pzem_retries = 1
        self.pzem_min_gap_ms = 1000
        self.warnings = []
