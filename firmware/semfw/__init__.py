"""Smart Energy Meter node firmware: PZEM-004T meters and relays, published over MQTT (protocol v1).

Everything in this package except `hw`, `app` and `tools` (the ESP32 side) is pure: it runs under
MicroPython on the ESP32, under the MicroPython unix port on a host (the simulator), and under
CPython (the tests).
"""

VERSION = "1.1.0"
MODEL = "ESP32 + PZEM-004T v3"
