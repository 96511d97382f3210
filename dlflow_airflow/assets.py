"""Deprecated: moved to :mod:`dlflow_airflow.pipeline.assets` (0.2). Kept so existing DAG files,
user stage kinds and user models keep importing; removed in a later release."""

import sys
import warnings

import dlflow_airflow.pipeline.assets as _moved

warnings.warn(
    "dlflow_airflow.assets moved to dlflow_airflow.pipeline.assets",
    DeprecationWarning,
    stacklevel=2,
)
sys.modules[__name__] = _moved
