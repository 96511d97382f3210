"""Deprecated: moved to :mod:`dlflow_airflow.pipeline.loader` (0.2). Kept so existing DAG files,
user stage kinds and user models keep importing; removed in a later release."""

import sys
import warnings

import dlflow_airflow.pipeline.loader as _moved

warnings.warn(
    "dlflow_airflow.loader moved to dlflow_airflow.pipeline.loader",
    DeprecationWarning,
    stacklevel=2,
)
sys.modules[__name__] = _moved
