"""Run one simulated node as a board with its own flash: a folder holding what `mpremote` would
copy onto an ESP32 (`semboot.py`, `semfw/`, later the update slots under `fw/`).

    micropython firmware/semsim/board.py FLASH_DIR SCENARIO.json NODE_ID --host H --port P
        [--flash-kb N] [other options of run.py]

The boot goes as on the board: the selector (semboot, from the flash) chooses which copy of
`semfw` is imported, and everything after it, the emulation included, runs that copy. The
process ends with exit code 3 where the board would reset (an update restarts into the new
firmware, a new firmware that crashed at import or did not confirm in time) and 75 where its
watchdog would; whoever started it starts it again, as the board's power would. The relay
states and the boot counter are kept in the flash folder.
"""

import asyncio
import os
import sys

RESET = 3
_here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
_firmware = _here.rsplit("/", 1)[0] if "/" in _here else _here + "/.."


def _absolute(path):
    return path if path.startswith("/") else os.getcwd() + "/" + path


def _used(path):
    total = 0
    for entry in os.ilistdir(path):
        child = path + "/" + entry[0]
        total += _used(child) if entry[1] == 0x4000 else os.stat(child)[6]
    return total


class BoardFlash:
    """The board's side of an update (see semfw.update): free space and a reset."""

    def __init__(self, limit_bytes=None):
        self.limit = limit_bytes
        self.reset_requested = False
        self.on_reset = None

    def free_bytes(self):
        if self.limit is not None:
            return self.limit - _used(".")
        stat = os.statvfs(".")
        return stat[0] * stat[3]

    def reset(self):
        self.reset_requested = True
        if self.on_reset is not None:
            self.on_reset()


async def _deadline(seconds, flash):
    """The time a new firmware has to prove itself (on the board, a hardware timer)."""
    import semboot

    await asyncio.sleep(seconds)
    if semboot.fail("not_confirmed"):
        print("semboot: the new firmware did not confirm within %d s" % seconds)
        flash.reset()


def main(argv):
    if len(argv) < 3:
        print("usage: board.py FLASH_DIR SCENARIO NODE [run.py options] [--flash-kb N]")
        return 2
    flash_dir = argv[0]
    rest = list(argv[1:])
    limit = None
    if "--flash-kb" in rest:
        index = rest.index("--flash-kb")
        limit = int(rest[index + 1]) * 1024
        del rest[index : index + 2]
    rest[0] = _absolute(rest[0])  # the scenario, before the folder changes
    firmware = _absolute(_firmware)
    os.chdir(flash_dir)
    # The flash first (semboot, semfw), the emulation (semsim) from the repository.
    sys.path[:] = [p for p in sys.path if p not in ("", _here, _firmware, firmware)]
    sys.path[:0] = [os.getcwd()]
    sys.path.append(firmware)

    import semboot

    _folder, confirm_s = semboot.select()
    flash = BoardFlash(limit)
    try:
        from semsim import run

        args = run.parse_args(rest)
        if args["state_dir"] is None:
            args["state_dir"] = "."
        runner = run.Runner(args, flash)
    except Exception as err:  # noqa: BLE001 - anything the new firmware raises at import
        if confirm_s is None:
            raise
        print("semboot: the new firmware failed: %r" % (err,))
        semboot.fail("crashed")
        return RESET
    flash.on_reset = runner.done.set
    if confirm_s is not None:
        runner.extra.append(_deadline(confirm_s, flash))
    code = asyncio.run(runner.main())
    return RESET if flash.reset_requested else code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
