"""The boot counter of a node that signs its readings (docs/protocol.md, "Signed readings").

The receiver orders a signed node's readings by (boot, seq): with the counter in every `state`,
a reboot is believed at once and a captured reading of an earlier boot never again. The counter
lives in flash and is advanced once per boot, before anything is published.
"""

import os


class BootCounter:
    """The count in a small file, written to `<path>.tmp` and then renamed over `<path>`.

    A rename replaces the file in one step on LittleFS (the ESP32's file system) and on a host.
    Where it does not (FAT removes the old file first), the temporary file already holds the new
    value: the higher of both files is the count. A power cut while writing leaves the old value,
    and nothing was published with the new one yet, so using it again is harmless.
    """

    def __init__(self, path="boot_count"):
        self.path = path
        self.error = None  # why the last advance could not be stored, or None

    @staticmethod
    def _read(path):
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            return -1
        try:
            value = int(text)
        except ValueError:  # a file cut short at its first byte
            return -1
        return value if value >= 0 else -1

    def current(self):
        """The stored count, or -1 before the first boot."""
        return max(self._read(self.path), self._read(self.path + ".tmp"))

    def advance(self):
        """This boot's number: one more than the stored count, stored before it is returned."""
        boot = self.current() + 1
        temporary = self.path + ".tmp"
        self.error = None
        try:
            with open(temporary, "w") as f:
                f.write(str(boot))
            os.rename(temporary, self.path)
        except OSError as err:
            self.error = err
        return boot
