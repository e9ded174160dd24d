"""The Smart Energy Meter integration."""
