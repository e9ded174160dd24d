"""Which pairs the service watches and how each is tuned.

Pairs come from the nodes' announces, as the integration's discovery proposes them
(`semcore.meters.announced_pairs`); an overrides file gives names, cable data and thresholds,
for every pair (`defaults`) or one (`pairs`, keyed `<node>/<pair label>`):

    {"defaults": {"threshold_mode": "uncertainty"},
     "pairs": {"pole-2/house3": {"name": "House 3", "resistance_ohm": 0.06,
                                 "cable": {"length_m": 40, "cross_section_mm2": 16,
                                           "conductor": "aluminium"}}}}

Keys: name, window_s, resistance_ohm, cable {length_m, cross_section_mm2, conductor,
temperature_c}, threshold_mode (fixed | uncertainty), threshold_pct (the fixed mode's share),
debounce (consecutive | cusum), raise_windows, clear_windows.

`node_keys` ({"<node>": "<the node's key>"}) makes the service believe those nodes' readings
only when signed with their key, as the integration does (docs/protocol.md, *Signed readings*).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from custom_components.smart_energy_meter.semcore.cable_loss import CableSpec, Conductor
from custom_components.smart_energy_meter.semcore.debounce import DebounceConfig, DebounceMode
from custom_components.smart_energy_meter.semcore.energy_balance import TheftConfig
from custom_components.smart_energy_meter.semcore.protocol import valid_id
from custom_components.smart_energy_meter.semcore.signing import MIN_KEY_BYTES
from custom_components.smart_energy_meter.semcore.uncertainty import (
    ThresholdMode,
    UncertaintyModel,
)

_LOGGER = logging.getLogger(__name__)

KEYS: Final = frozenset(
    {
        "name",
        "window_s",
        "resistance_ohm",
        "cable",
        "threshold_mode",
        "threshold_pct",
        "debounce",
        "raise_windows",
        "clear_windows",
    }
)
_DEFAULT: Final = TheftConfig()


def pair_key(node: str, label: str) -> str:
    """A pair's key across the service: `<node>/<pair label>`."""
    return f"{node}/{label}"


def theft_config(options: Mapping[str, Any]) -> TheftConfig:
    """The balance's configuration from override options (ValueError if one is invalid)."""
    unknown = set(options) - KEYS
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}")
    cable = None
    if (data := options.get("cable")) is not None:
        cable = CableSpec(
            length_m=float(data["length_m"]),
            cross_section_mm2=float(data["cross_section_mm2"]),
            conductor=Conductor(data.get("conductor", Conductor.COPPER.value)),
            temperature_c=float(data.get("temperature_c", 20.0)),
        )
    resistance = options.get("resistance_ohm")
    uncertainty = UncertaintyModel(
        mode=ThresholdMode(options.get("threshold_mode", ThresholdMode.UNCERTAINTY.value)),
        fixed_pct=float(options.get("threshold_pct", _DEFAULT.uncertainty.fixed_pct)),
    )
    debounce = DebounceConfig(
        mode=DebounceMode(options.get("debounce", DebounceMode.CONSECUTIVE.value)),
        raise_windows=int(options.get("raise_windows", _DEFAULT.debounce.raise_windows)),
        clear_windows=int(options.get("clear_windows", _DEFAULT.debounce.clear_windows)),
    )
    return TheftConfig(
        window_s=float(options.get("window_s", _DEFAULT.window_s)),
        cable=cable,
        resistance_ohm=None if resistance is None else float(resistance),
        uncertainty=uncertainty,
        debounce=debounce,
    )


def node_keys(data: Any) -> dict[str, bytes]:
    """The nodes' signing keys (ValueError naming the node when one is unusable: a node whose
    key is ignored would have its readings believed unsigned)."""
    if not isinstance(data, dict):
        raise ValueError("node_keys: not a JSON object")
    keys: dict[str, bytes] = {}
    for node, key in data.items():
        if not valid_id(node):
            raise ValueError(f"node_keys: {node!r:.40} is not a node id")
        if not isinstance(key, str) or len(key.encode()) < MIN_KEY_BYTES:
            raise ValueError(f"node_keys: the key of {node} is shorter than {MIN_KEY_BYTES} bytes")
        keys[node] = key.encode()
    return keys


@dataclass(frozen=True, slots=True)
class Overrides:
    """Per-pair options over service-wide defaults."""

    defaults: Mapping[str, Any] = field(default_factory=dict)
    pairs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    keys: Mapping[str, bytes] = field(default_factory=dict)  # node -> its signing key
    # Built once: thousands of pairs share the defaults' configuration.
    _configs: dict[str, TheftConfig] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def load(cls, path: Path | None) -> Overrides:
        """Read an overrides file; a missing path means none. A pair whose options are
        invalid is dropped from the overrides with one log line (it keeps the defaults)."""
        if path is None:
            return cls()
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError(f"{path}: not a JSON object")
        defaults = data.get("defaults", {})
        theft_config(defaults)  # invalid defaults stop the service: nothing would be right
        pairs: dict[str, Mapping[str, Any]] = {}
        for key, options in data.get("pairs", {}).items():
            merged = {**defaults, **options}
            try:
                theft_config(merged)
            except (ValueError, KeyError, TypeError) as err:
                _LOGGER.warning("Overrides of pair %s ignored: %s", key, err)
                continue
            pairs[key] = merged
        return cls(defaults, pairs, node_keys(data.get("node_keys", {})))

    def options(self, key: str) -> Mapping[str, Any]:
        """The options of one pair."""
        return self.pairs.get(key, self.defaults)

    def name(self, key: str, announced: str) -> str:
        """The pair's display name: the override's, else the announced one."""
        name = self.options(key).get("name")
        return str(name) if name else announced

    def config(self, key: str) -> TheftConfig:
        """The pair's balance configuration."""
        shared = key if key in self.pairs else ""
        config = self._configs.get(shared)
        if config is None:
            config = self._configs[shared] = theft_config(self.options(key))
        return config
