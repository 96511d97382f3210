"""dlflow-airflow: DLFlow's feature pipeline as an Apache Airflow provider.

This package is imported by Airflow's DAG processor every few seconds, so it
imports no TensorFlow, PySpark, pandas or numpy at module level.
"""

from __future__ import annotations

__version__ = "0.2.0"
