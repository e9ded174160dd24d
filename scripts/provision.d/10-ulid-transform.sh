#!/usr/bin/env bash
# ulid-transform with its C++ extension, as Home Assistant's own installs have it.
#
# Home Assistant makes a ULID for the context of every state it writes. PyPI's newest-tagged
# wheel of ulid-transform for this Python carries only the pure-Python fallback, which costs
# about a tenth of a state write; built from the source distribution (g++ and the Python headers
# are in the environment) it gets the compiled module. The benchmarks measure Home Assistant as
# users run it, so they need the compiled one.
set -euo pipefail
version=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("ulid-transform"))')
"$VENV/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps \
    --no-binary ulid-transform "ulid-transform==$version"
"$VENV/bin/python" -c 'import ulid_transform._ulid_impl'
