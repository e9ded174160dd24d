"""Ingest benchmark: virtual nodes → mosquitto → (bare aiomqtt ceiling | Home Assistant)."""
