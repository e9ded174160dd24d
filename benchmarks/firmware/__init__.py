"""Firmware figures: poll-cycle time on the emulated UART, MicroPython heap of a running node."""
