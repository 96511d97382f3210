"""Where a job runs: the TensorFlow runners (one small protocol, one class per backend),
and the Spark Connect mode's operator (:mod:`.spark_connect`, a client process in the
worker, as the local runner's)."""

from __future__ import annotations

from dlflow_airflow.runners.base import (
    JobFailedError,
    Runner,
    RunnerUnavailableError,
    TfTask,
    get_runner,
    runner_names,
)

__all__ = [
    "JobFailedError",
    "Runner",
    "RunnerUnavailableError",
    "TfTask",
    "get_runner",
    "runner_names",
]
