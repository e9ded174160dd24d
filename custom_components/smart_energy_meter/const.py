"""Constants for the Smart Energy Meter integration."""

from typing import Final

DOMAIN: Final = "smart_energy_meter"
