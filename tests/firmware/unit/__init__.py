"""Unit tests of the firmware's pure modules; they run under pytest and under MicroPython."""
