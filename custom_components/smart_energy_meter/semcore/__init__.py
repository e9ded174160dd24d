"""Pure core of smart_energy_meter: protocol codec and theft detection.

Nothing in this package imports Home Assistant, so the firmware tests, the simulator and the
benchmarks can use it as a plain library.
"""
