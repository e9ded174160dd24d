"""Tests of the node firmware (firmware/semfw) and the host simulator (firmware/semsim)."""
