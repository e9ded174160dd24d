"""Exercises the ESP32 adapters (semfw.hw, app, tools) under MicroPython with recording stand-ins
for the `machine` and `network` modules, which the unix port does not have. It checks that the
adapter code runs and calls the ESP32 APIs as intended; it proves nothing about real hardware.

    micropython tests/firmware/unit/mp_hw_smoke.py REPO TMPDIR     (last line: N passed, N failed)
"""

import asyncio
import sys

calls = []


class Pin:
    IN = 1
    OUT = 3

    def __init__(self, number, mode=None, value=None):
        self.number = number
        self.level = 0 if value is None else value
        calls.append(("Pin", number, mode))

    def init(self, mode, value=None):
        calls.append(("Pin.init", self.number, mode, value))
        if value is not None:
            self.level = value

    def value(self, *level):
        if level:
            calls.append(("Pin.value", self.number, level[0]))
            self.level = level[0]
            return None
        return self.level


class UART:
    def __init__(self, uart_id, **kwargs):
        calls.append(("UART", uart_id, kwargs))


class SPI:
    def __init__(self, spi_id, **kwargs):
        calls.append(("SPI", spi_id, sorted(kwargs)))


class WDT:
    def __init__(self, timeout):
        calls.append(("WDT", timeout))


class RTC:
    def datetime(self, value):
        calls.append(("RTC.datetime", value))


class Timer:
    ONE_SHOT = 0
    callback = None

    def __init__(self, number):
        calls.append(("Timer", number))

    def init(self, mode, period, callback):
        calls.append(("Timer.init", mode, period))
        Timer.callback = callback


def reset():
    calls.append(("reset",))
    raise Stop()


class Nic:
    def __init__(self, *args, **kwargs):
        calls.append(("NIC", args, sorted(kwargs)))

    def active(self, on):
        calls.append(("active", on))

    def connect(self, ssid, password):
        calls.append(("connect", ssid, password))

    def isconnected(self):
        return True

    def ifconfig(self):
        return ("10.0.0.7", "255.255.255.0", "10.0.0.1", "10.0.0.1")


class Module:
    pass


machine = Module()
machine.Pin, machine.UART, machine.SPI, machine.WDT = Pin, UART, SPI, WDT
machine.RTC = RTC
machine.Timer, machine.reset = Timer, reset
machine.unique_id = lambda: b"\x24\x6f\x28\xa1\xb2\xc3"
network = Module()
network.WLAN, network.LAN, network.STA_IF = Nic, Nic, 0
network.PHY_W5500, network.PHY_LAN8720 = 5500, 8720
network.hostname = lambda name: calls.append(("hostname", name))
sys.modules["machine"] = machine
sys.modules["network"] = network


class Stop(Exception):
    pass


def check_hw(tmp):
    from semfw import hw
    from semfw.spec import RelaySpec, UartSpec

    clock = hw.Clock()
    assert clock.unix_ms() > 1600000000000
    hw.open_uart(UartSpec(2, 17, 16))
    assert (
        "UART",
        2,
        {
            "baudrate": 9600,
            "bits": 8,
            "parity": None,
            "stop": 1,
            "tx": 17,
            "rx": 16,
            "timeout": 0,
            "rxbuf": 256,
        },
    ) in calls
    pin = hw.RelayPin(26)
    assert pin.value() == 0
    pin.value(1)
    pin.value(0)
    assert ("Pin.init", 26, Pin.OUT, 1) in calls
    assert ("Pin.value", 26, 0) in calls
    store = hw.FileStore(tmp + "/relays.json")
    assert store.load() == {}
    store.save({"r1": True})
    assert store.load() == {"r1": True}
    hardware = hw.Hardware(watchdog_ms=10000)
    assert hardware.wdt is None
    hardware.arm_watchdog()
    assert ("WDT", 10000) in calls
    assert hardware.ip() is None
    assert hardware.open_pin(RelaySpec("r1", "p", 27, True, "off")).value() == 0
    for net in (
        {"type": "wifi", "ssid": "home", "password": "x", "hostname": "pole-7"},
        {
            "type": "w5500",
            "spi": 2,
            "sck": 18,
            "mosi": 23,
            "miso": 19,
            "cs": 5,
            "int": 4,
            "phy_addr": 0,
            "reset": 13,
        },
        {
            "type": "lan8720",
            "mdc": 23,
            "mdio": 18,
            "phy_addr": 0,
            "power": 12,
            "ref_clk": 17,
            "ref_clk_mode": "out",
        },
    ):
        nic = asyncio.run(hw.bring_up(net, log=lambda line: None))
        hardware.nic = nic
        assert hardware.ip() == "10.0.0.7"
    assert ("connect", "home", "x") in calls
    assert ("hostname", "pole-7") in calls
    assert ("NIC", (), ["cs", "int", "phy_addr", "phy_type", "reset", "spi"]) in calls
    assert (
        "NIC",
        (),
        ["mdc", "mdio", "phy_addr", "phy_type", "power", "ref_clk", "ref_clk_mode"],
    ) in calls


def check_safe_mode(tmp):
    from semfw import app

    path = tmp + "/config.json"
    with open(path, "w") as f:
        f.write(
            '{"meters": [], "relays": [{"id": "r1", "pair": "h", "pin": 26, '
            '"power_on": "on"}, {"id": "r2", "pair": "h2", "pin": 27}]}'
        )
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        raise Stop()

    app._sleep = sleep
    del calls[:]
    try:
        app.load_config(path, b"\x00" * 6)
        raise AssertionError("a broken configuration was accepted")
    except Stop:
        pass
    assert sleeps == [30]  # it waits and repeats the messages; it does not reset
    assert ("Pin.init", 26, Pin.OUT, 1) in calls  # r1: power-on "on"
    assert ("Pin.init", 27, Pin.OUT, 0) in calls  # r2: "off"
    assert not [c for c in calls if c[0] == "WDT"]


def check_good_config(tmp):
    import os

    from semfw import app

    path = tmp + "/good.json"
    with open(repo + "/firmware/config.example.json") as src, open(path, "w") as dst:
        dst.write(src.read())
    # The example connects over TLS with the CA certificate ca.crt next to config.json.
    with open(tmp + "/ca.crt", "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\n")
    cwd = os.getcwd()
    os.chdir(tmp)
    try:
        cfg = app.load_config(path, b"\x00" * 6)
    finally:
        os.chdir(cwd)
    assert cfg.node == "pole-7"
    assert cfg.broker_user == cfg.node  # the shipped ACL's rule
    assert cfg.broker_tls == ("ca.crt", "192.168.1.10")
    assert "semfw.config" not in sys.modules  # the validator left the heap


def check_clock(tmp):
    from semfw import hw

    del calls[:]
    # 2026-01-01 12:34:56 UTC, a Thursday (weekday 3 in time.gmtime, 4 for the RTC).
    hw.set_unix_ms(1767270896250)
    assert calls == [("RTC.datetime", (2026, 1, 1, 4, 12, 34, 56, 0))], calls
    lines = []
    address = hw.time_server(None, log=lines.append)
    asyncio.run(hw.keep_time(None, address, log=lines.append))
    assert lines == ["clock: no time server configured; timestamps count from the boot"]
    assert hw.time_server("192.168.1.10", log=lines.append)[0] is not None  # no DNS needed


def check_tls_ca(tmp):
    from semfw import app

    path = tmp + "/tls.json"
    text = (
        '{"node": "pole-7", "network": {"type": "wifi", "ssid": "home"}, '
        '"broker": {"host": "broker.lan", "tls": true, "ca": "%s"}, '
        '"meters": [{"id": "line1", "role": "line", "pair": "house1", "addr": 1}], '
        '"relays": [{"id": "r1", "pair": "house1", "pin": 26, "power_on": "on"}]}'
    )
    with open(path, "w") as f:
        f.write(text % (tmp + "/absent.crt"))
    printed = []

    def sleep(seconds):
        raise Stop()

    app._sleep = sleep
    del calls[:]
    import builtins

    real_print = builtins.print
    builtins.print = lambda *args: printed.append(" ".join(str(a) for a in args))
    try:
        app.load_config(path, b"\x00" * 6)
        raise AssertionError("a missing CA certificate was accepted")
    except Stop:
        pass
    finally:
        builtins.print = real_print
    assert any("absent.crt" in line and "is not on the board" in line for line in printed), printed
    assert ("Pin.init", 26, Pin.OUT, 1) in calls  # the relays still get their power-on state
    with open(tmp + "/ca.crt", "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\n")
    with open(path, "w") as f:
        f.write(text % (tmp + "/ca.crt"))
    cfg = app.load_config(path, b"\x00" * 6)
    assert cfg.broker_tls == (tmp + "/ca.crt", "broker.lan")
    assert cfg.broker_port == 8883


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def check_semboot(tmp):
    """main.py's selector on the board: a new firmware that raises at import resets the board
    into the previous one; so does the timer of one that never confirms."""
    import os

    import semboot
    from semfw import hw

    here = os.getcwd()
    board = tmp + "/board"
    os.mkdir(board)
    os.chdir(board)
    modules = dict(sys.modules)
    path = list(sys.path)
    try:
        for folder in ("fw", "fw/b", "fw/b/semfw"):
            os.mkdir(folder)
        _write("fw/b/semfw/__init__.py", 'VERSION = "9.0.0"\n')
        _write("fw/b/semfw/app.py", 'raise ImportError("broken build")\n')
        state = semboot.read_state()
        semboot.offer(state, "fw/b", "u1", "9.0.0", 30)
        semboot.write_state(state)
        for name in list(sys.modules):
            if name == "semfw" or name.startswith("semfw."):
                del sys.modules[name]
        del calls[:]
        try:
            semboot.main()
            raise AssertionError("the board was not reset")
        except Stop:
            pass
        assert ("Timer.init", Timer.ONE_SHOT, 30000) in calls
        assert calls[-1] == ("reset",)
        assert semboot.read_state()["error"] == "crashed"
        try:
            Timer.callback(None)  # the timer too finds the trial unconfirmed
            raise AssertionError("the timer did not reset the board")
        except Stop:
            pass
        state = semboot.read_state()
        assert semboot.choose(state) == ("", False)
        assert state["last"]["state"] == "rolled_back"
    finally:
        sys.path[:] = path
        for name in list(sys.modules):
            if name not in modules:
                del sys.modules[name]
        sys.modules.update(modules)
        os.chdir(here)
    # booted through the selector, the hardware takes updates
    flash = hw.Hardware().flash
    assert flash is not None
    assert flash.free_bytes() > 0


def check_tools(tmp):
    from semfw import tools

    assert callable(tools.read)
    assert callable(tools.set_address)


repo, tmp = sys.argv[1], sys.argv[2]
sys.path.insert(0, repo + "/firmware")
passed = failed = 0
for check in (
    check_hw,
    check_safe_mode,
    check_good_config,
    check_clock,
    check_tls_ca,
    check_semboot,
    check_tools,
):
    try:
        check(tmp)
        passed += 1
    except Exception as err:  # report every failure
        failed += 1
        print("FAIL", check.__name__, repr(err))
        sys.print_exception(err)
print("%d passed, %d failed" % (passed, failed))
