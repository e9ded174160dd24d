"""Runs the firmware unit tests under MicroPython (the unix port), without pytest.

    micropython tests/firmware/unit/mp_runner.py REPO [FIRMWARE_DIR] [MODULE ...]

FIRMWARE_DIR (default REPO/firmware) is where `semfw` and `semsim` are imported from: the sources,
or their mpy-cross output. Every `test_*` function of every `test_fw_*` module is called; the last
line is `N passed, N failed`.
"""

import os
import sys


def main(argv):
    repo = argv[0]
    firmware = argv[1] if len(argv) > 1 else repo + "/firmware"
    sys.path.insert(0, repo)
    sys.path.insert(0, firmware)
    import semfw

    from tests.firmware.unit import support

    print("firmware: " + semfw.__file__)

    support.REPO = repo
    names = argv[2:]
    if not names:
        names = sorted(
            n[:-3]
            for n in os.listdir(repo + "/tests/firmware/unit")
            if n.startswith("test_fw_") and n.endswith(".py")
        )
    passed = failed = 0
    for name in names:
        module = __import__("tests.firmware.unit." + name, None, None, ["*"])
        for attr in sorted(dir(module)):
            if not attr.startswith("test_"):
                continue
            try:
                getattr(module, attr)()
            except Exception as err:  # a runner reports every failure
                failed += 1
                print("FAIL %s.%s: %r" % (name, attr, err))
                sys.print_exception(err)
            else:
                passed += 1
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
