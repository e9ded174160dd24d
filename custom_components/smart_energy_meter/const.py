"""Constants for the Smart Energy Meter integration."""

from typing import Final

from .semcore.detection import (
    DEFAULT_DEBOUNCE,
    DEFAULT_HYSTERESIS,
    DEFAULT_MAX_SKEW,
    DEFAULT_MIN_LOAD,
    DEFAULT_THRESHOLD,
)

DOMAIN: Final = "smart_energy_meter"

# Config entry data: one broker connection.
CONF_HOST: Final = "host"
CONF_PORT: Final = "port"
CONF_USERNAME: Final = "username"
CONF_PASSWORD: Final = "password"
CONF_TLS: Final = "tls"
CONF_CA_CERT: Final = "ca_cert"
CONF_PREFIX: Final = "prefix"
DEFAULT_PORT: Final = 1883
DEFAULT_TLS_PORT: Final = 8883

# Subentry data: one meter pair (one house).
SUBENTRY_PAIR: Final = "meter_pair"
CONF_PAIR: Final = "pair"
CONF_NAME: Final = "name"
CONF_LINE: Final = "line"
CONF_HOUSE: Final = "house"
CONF_RELAY: Final = "relay"
CONF_NODE: Final = "node"
CONF_METER: Final = "meter"
CONF_TOPIC_BASE: Final = "topic_base"
CONF_INTERVAL: Final = "interval"
DEFAULT_PAPER_INTERVAL: Final = 10.0

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

# Bus events and their data.
EVENT_THEFT_DETECTED: Final = f"{DOMAIN}_theft_detected"
EVENT_THEFT_CLEARED: Final = f"{DOMAIN}_theft_cleared"
ATTR_PAIR: Final = "pair"
ATTR_MISMATCH: Final = "mismatch_percent"
ATTR_LINE_POWER: Final = "line_power"
ATTR_HOUSE_POWER: Final = "house_power"

# A meter with no reading for this many announced intervals is unavailable.
STALE_INTERVALS: Final = 3
# Interval assumed for a protocol node whose announce has not arrived yet.
FALLBACK_INTERVAL: Final = 10.0
