"""Tests for smart_energy_meter."""
