"""Triggers run by Airflow's triggerer.

``UpstreamPartitionTrigger`` is re-exported here because a sensor deferred by
an earlier release stored this classpath (``dlflow_airflow.triggers.UpstreamPartitionTrigger``).
"""

from dlflow_airflow.triggers.upstream import UpstreamPartitionTrigger

__all__ = ["UpstreamPartitionTrigger"]
