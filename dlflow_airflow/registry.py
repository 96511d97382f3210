"""Deprecated: moved to :mod:`dlflow_airflow.stages.base` (0.2). Kept so existing DAG files,
user stage kinds and user models keep importing; removed in a later release."""

import sys
import warnings

import dlflow_airflow.stages.base as _moved

warnings.warn(
    "dlflow_airflow.registry moved to dlflow_airflow.stages.base",
    DeprecationWarning,
    stacklevel=2,
)
sys.modules[__name__] = _moved
