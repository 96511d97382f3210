"""Sensors (the ``wait_upstream`` stage); the sensor is re-exported for old imports."""

from dlflow_airflow.sensors.upstream import UpstreamPartitionSensor

__all__ = ["UpstreamPartitionSensor"]
