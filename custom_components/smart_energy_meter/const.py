"""Constants for the Smart Energy Meter integration."""

from typing import Final

from .semcore.cable_loss import Conductor
from .semcore.debounce import DebounceMode
from .semcore.instant_rule import (
    DEFAULT_DEBOUNCE,
    DEFAULT_HYSTERESIS,
    DEFAULT_MAX_SKEW,
    DEFAULT_MIN_LOAD,
    DEFAULT_THRESHOLD,
)
from .semcore.uncertainty import ThresholdMode

DOMAIN: Final = "smart_energy_meter"

# Config entry data: one broker connection.
CONF_TLS: Final = "tls"
CONF_CA_CERT: Final = "ca_cert"
CONF_PREFIX: Final = "prefix"
DEFAULT_PORT: Final = 1883
DEFAULT_TLS_PORT: Final = 8883

# Subentry data: one meter pair (one house).
SUBENTRY_PAIR: Final = "meter_pair"
CONF_PAIR: Final = "pair"
CONF_LINE: Final = "line"
CONF_HOUSE: Final = "house"
CONF_RELAY: Final = "relay"
CONF_NODE: Final = "node"
CONF_METER: Final = "meter"
CONF_TOPIC_BASE: Final = "topic_base"
CONF_INTERVAL: Final = "interval"
DEFAULT_VALUE_TOPICS_INTERVAL: Final = 10.0

# Subentry data: the signing key of one node (see "Signed readings" in docs/protocol.md).
SUBENTRY_NODE_KEY: Final = "node_key"
CONF_KEY: Final = "key"

# Detection options: entry-wide defaults (entry options), per pair overrides (subentry data).
CONF_THRESHOLD: Final = "threshold"
CONF_DEBOUNCE: Final = "debounce"
CONF_HYSTERESIS: Final = "hysteresis"
CONF_MIN_LOAD: Final = "min_load"
CONF_MAX_SKEW: Final = "max_skew"
DETECTION_DEFAULTS: Final[dict[str, float]] = {
    CONF_THRESHOLD: DEFAULT_THRESHOLD,
    CONF_DEBOUNCE: DEFAULT_DEBOUNCE,
    CONF_HYSTERESIS: DEFAULT_HYSTERESIS,
    CONF_MIN_LOAD: DEFAULT_MIN_LOAD,
    CONF_MAX_SKEW: DEFAULT_MAX_SKEW,
}

# Energy-balance options, also entry-wide defaults with per-pair overrides. `threshold` above is
# the balance's share in the fixed threshold mode too.
CONF_DETECTION: Final = "detection"
DETECTION_BALANCE: Final = "balance"  # the theft sensor and events follow the energy balance
DETECTION_INSTANT_RULE: Final = "paper"  # ... or the paper's instantaneous rule (stored)
CONF_THRESHOLD_MODE: Final = "threshold_mode"
CONF_DEBOUNCE_MODE: Final = "debounce_mode"
CONF_CABLE_LENGTH: Final = "cable_length"
CONF_CABLE_CROSS_SECTION: Final = "cable_cross_section"
CONF_CABLE_MATERIAL: Final = "cable_material"
CONF_CABLE_TEMPERATURE: Final = "cable_temperature"
BALANCE_DEFAULTS: Final[dict[str, str | float]] = {
    CONF_DETECTION: DETECTION_BALANCE,
    CONF_THRESHOLD_MODE: ThresholdMode.UNCERTAINTY.value,
    CONF_DEBOUNCE_MODE: DebounceMode.CONSECUTIVE.value,
    CONF_CABLE_LENGTH: 0.0,  # no cable between the meters: no loss to compensate
    # A common service drop: twisted aluminium 2x10 mm², a little above ambient.
    CONF_CABLE_CROSS_SECTION: 10.0,
    CONF_CABLE_MATERIAL: Conductor.ALUMINIUM.value,
    CONF_CABLE_TEMPERATURE: 30.0,
}
OPTION_DEFAULTS: Final[dict[str, str | float]] = {**DETECTION_DEFAULTS, **BALANCE_DEFAULTS}

# Per pair only: a fitted or measured cable resistance, and what the actions store.
CONF_RESISTANCE: Final = "resistance"
CONF_CALIBRATION: Final = "calibration"
CONF_COMMISSIONING: Final = "commissioning"

# Bus events and their data.
EVENT_THEFT_DETECTED: Final = f"{DOMAIN}_theft_detected"
EVENT_THEFT_CLEARED: Final = f"{DOMAIN}_theft_cleared"
ATTR_PAIR: Final = "pair"
ATTR_NAME: Final = "name"
ATTR_MISMATCH: Final = "mismatch_percent"
ATTR_LINE_POWER: Final = "line_power"
ATTR_HOUSE_POWER: Final = "house_power"
ATTR_STATUS: Final = "status"
ATTR_DETECTION: Final = "detection"

# Seconds between the balance's clock ticks, which close windows when both meters are silent.
TICK_INTERVAL: Final = 5.0

# How often measurements' states are written (`semcore.state_writes.Policy`); an entry option.
CONF_STATE_WRITES: Final = "state_writes"
