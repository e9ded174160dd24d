"""The ESP32's pin rules and the Ethernet PHYs' fixed pins, for the configuration validator.

The original ESP32 (ESP32_GENERIC, the chip of every board the README names) has GPIO0-39 except
20, 24 and 28-31. Some of them cannot do what a configuration may ask: this module says why, so
`semfw.config` can refuse the key with one clear line instead of the node failing at boot.
Like the validator, it is dropped from the heap once the configuration is loaded.
"""

MAX_GPIO = 39
_MISSING = (20, 24, 28, 29, 30, 31)

# Wired to the module's SPI flash: touching them stops the chip.
FLASH = (6, 7, 8, 9, 10, 11)
# No output driver, no pull-ups.
INPUT_ONLY = (34, 35, 36, 37, 38, 39)
# UART 0 is the REPL on GPIO1 (TX) and GPIO3 (RX): mpremote reaches the board through it, so it is
# how a broken config.json gets fixed.
CONSOLE_UART = 0
CONSOLE_PINS = {1: "the console's TX (UART 0)", 3: "the console's RX (UART 0)"}

# The ESP32's Ethernet MAC talks RMII to a LAN8720 on pins fixed in silicon; MDC and MDIO (and the
# PHY's power pin) are the configuration's. The 50 MHz clock comes in on GPIO0, or goes out on
# GPIO0, 16 or 17.
RMII = {19: "TXD0", 21: "TX_EN", 22: "TXD1", 25: "RXD0", 26: "RXD1", 27: "CRS_DV"}
REF_CLK_PINS = {"in": (0,), "out": (0, 16, 17)}

# Pins that a relay module may hold at a level that stops the ESP32 from booting (strapping
# pins), or that the chip drives while it boots (the relay would click at every reset).
RELAY_CAUTION = {
    0: "a strapping pin: a relay module that pulls it low keeps the chip in its bootloader",
    2: "a strapping pin: a relay module that pulls it high stops flashing over USB",
    5: "driven by the chip while it boots: the relay may click at every reset",
    12: "a strapping pin: a relay module that pulls it high stops the chip from booting",
    14: "driven by the chip while it boots: the relay may click at every reset",
    15: "driven by the chip while it boots: the relay may click at every reset",
}


def problem(pin, output):
    """Why GPIO `pin` cannot be used, as an output when `output`; None when it can."""
    if not 0 <= pin <= MAX_GPIO or pin in _MISSING:
        return "GPIO%d does not exist on the ESP32" % pin
    if pin in FLASH:
        return "GPIO%d is wired to the module's flash (GPIO6-11)" % pin
    if pin in CONSOLE_PINS:
        return "GPIO%d is %s, which mpremote needs" % (pin, CONSOLE_PINS[pin])
    if output and pin in INPUT_ONLY:
        return "GPIO%d is input-only (GPIO34-39) and cannot drive an output" % pin
    return None


def ref_clk_problem(pin, mode):
    """Why GPIO `pin` cannot carry the LAN8720's 50 MHz clock in `mode`; None when it can."""
    allowed = REF_CLK_PINS[mode]
    if pin in allowed:
        return None
    return "the 50 MHz clock %s is on GPIO%s only, not GPIO%d" % (
        "input" if mode == "in" else "output",
        " or ".join(str(p) for p in allowed),
        pin,
    )


def fixed(network):
    """The GPIOs the configured Ethernet PHY takes besides its configured pins: pin -> name."""
    if network.get("type") != "lan8720":
        return {}
    taken = {}
    for pin in RMII:
        taken[pin] = "the LAN8720's RMII " + RMII[pin]
    if network.get("ref_clk") is None and network.get("ref_clk_mode", "in") == "in":
        taken[0] = "the LAN8720's 50 MHz clock input"
    return taken
