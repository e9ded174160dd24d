#!/usr/bin/env bash
# MicroPython's WebAssembly port (32-bit pointers, run by node), from the npm registry: the
# firmware benchmark measures the node's heap on it, the nearest to an ESP32's that runs here.
set -euo pipefail
version=1.27.0
sha256=303919763c8ebfe5923b9da66226c20dce44ad72b604b225fb39338ea15367af
name=micropython-webassembly-pyscript
url="https://registry.npmjs.org/@micropython/$name/-/$name-$version.tgz"
dest="$VENV/lib/micropython-wasm"
mkdir -p "$dest"
"$VENV/bin/python" - "$url" "$sha256" "$dest" <<'PY'
import hashlib
import io
import sys
import tarfile
import urllib.request

url, sha256, dest = sys.argv[1:]
with urllib.request.urlopen(url, timeout=120) as response:
    data = response.read()
digest = hashlib.sha256(data).hexdigest()
if digest != sha256:
    sys.exit(f"{url}: sha256 {digest}, expected {sha256}")
with tarfile.open(fileobj=io.BytesIO(data)) as tar:
    for member in ("micropython.mjs", "micropython.wasm", "package.json"):
        source = tar.extractfile("package/" + member)
        assert source is not None, member
        with open(f"{dest}/{member}", "wb") as out:
            out.write(source.read())
PY
# Fail the provisioning now, not in a benchmark, if the port does not run here.
cat >"$dest/check.mjs" <<'JS'
const { loadMicroPython } = await import(process.argv[2] + "/micropython.mjs");
const mp = await loadMicroPython({ stdout: (line) => console.log(line) });
mp.runPython("import sys, gc, asyncio, json, hashlib; print('micropython-wasm ok', sys.maxsize)");
JS
node "$dest/check.mjs" "$dest"
