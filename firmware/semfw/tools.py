"""REPL helpers for commissioning a board (ESP32 only; they use the real UART).

>>> from semfw import tools
>>> tools.read(1)              # read the PZEM at address 1 on UART 2 (tx 17, rx 16)
>>> tools.set_address(3)       # with exactly ONE PZEM on the bus: give it address 3
"""

import asyncio

from semfw import hw, pzem
from semfw.spec import UartSpec


def _bus(uart_id, tx, rx):
    return pzem.Bus(hw.open_uart(UartSpec(uart_id, tx, rx)), hw.Clock(), timeout_ms=300)


def read(address=1, uart_id=2, tx=17, rx=16):
    """One reading, to check the wiring and the address."""
    reading = asyncio.run(pzem.Pzem(_bus(uart_id, tx, rx), address, 0).read())
    print(reading)
    return reading


def set_address(new_address, uart_id=2, tx=17, rx=16):
    """Set the Modbus address of the only PZEM on the bus (sent to the general address 0xF8)."""
    asyncio.run(pzem.set_address(_bus(uart_id, tx, rx), new_address))
    print("PZEM now answers at address %d" % new_address)
