"""The host simulator: the node firmware (semfw) with its hardware replaced by emulation.

Runs under the MicroPython unix port (and CPython, for the tests): emulated PZEM-004T devices that
answer the Modbus-RTU byte protocol over an emulated UART, houses whose loads follow a scenario,
bypass theft, meters going offline, and relays that cut their house's load.
"""
