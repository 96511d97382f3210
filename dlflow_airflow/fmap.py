"""Deprecated: moved to :mod:`dlflow_airflow.contract.fmap` (0.2). Kept so existing DAG files,
user stage kinds and user models keep importing; removed in a later release."""

import sys
import warnings

import dlflow_airflow.contract.fmap as _moved

warnings.warn(
    "dlflow_airflow.fmap moved to dlflow_airflow.contract.fmap",
    DeprecationWarning,
    stacklevel=2,
)
sys.modules[__name__] = _moved
