#!/usr/bin/env bash
# ESPHome, for validating firmware/esphome/ with `esphome config` (offline; nothing is compiled).
# It gets a venv of its own: its pins would fight Home Assistant's in the main one.
set -euo pipefail
version=2026.10.0
python3.14 -m venv "$VENV/esphome"
"$VENV/esphome/bin/pip" install -q --disable-pip-version-check "esphome==$version"
"$VENV/esphome/bin/esphome" version
