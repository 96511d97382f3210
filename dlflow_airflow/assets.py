"""Deprecated: moved to :mod:`dlflow_airflow.pipeline.assets` (0.2); removed in a later release."""

from dlflow_airflow.deprecated import alias

alias(__name__, "dlflow_airflow.pipeline.assets")
