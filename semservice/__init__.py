"""Theft detection for thousands of meter pairs as a service on a NATS JetStream cluster.

The nodes publish over MQTT to the cluster's MQTT listener, unchanged; the readings land in a
replicated stream partitioned by node id; each worker runs the integration's own pure meter
model and detectors (`custom_components.smart_energy_meter.semcore`) for the partitions it
holds, checkpoints their state to a key-value bucket and publishes theft events.
"""
